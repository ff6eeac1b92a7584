"""mel: multilingual entity linking to WikiData in 100+ languages (Botha et al. 2020)."""
import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent


def _requirements(name):
  lines = (_HERE / name).read_text(encoding="utf-8").splitlines()
  return [l.strip() for l in lines if l.strip() and not l.startswith(("#", "-r"))]


setuptools.setup(
    name="mel",
    version="0.1.0",
    description="Multilingual entity linking to WikiData in 100+ languages",
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=["mel", "mel.*", "beam_pipelines",
                                               "beam_pipelines.*", "mewsli9", "mewsli9.*"]),
    package_data={"mel.serving": ["page.html"]},
    install_requires=_requirements("requirements.txt"),
    extras_require={"test": _requirements("requirements-test.txt")},
    entry_points={"console_scripts": ["beam=beam_pipelines.cli:main", "mel=mel.cli:main"]},
    license="Apache-2.0",
)
