"""The folder tree is the data flow: a rule on package prefixes over every import in the tree.

Every `import` and `from ... import` in mel/, beam_pipelines/ and mewsli9/ is read with ast,
including imports inside functions, and checked against the stage order below; no list of
allowed module pairs is kept by hand.
"""
import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("mel", "beam_pipelines", "mewsli9")

# The most specific prefix decides a module's stage.
STAGE_OF_PREFIX = {
    "mel.wikipedia": "shared",
    "beam_pipelines": "mining",
    "mewsli9": "datasets",
    "mel.training": "training",
    "mel.modeling": "training",
    "mel.retrieval": "retrieval",
    "beam_pipelines.encode_entities": "retrieval",   # the retrieval stage's Beam job
    "mel.retrieval.negatives": "negatives",
    "mel.evaluation": "evaluation",
    "mel.linking": "linking",
    "mel.serving": "serving",
    # entry points: the `mel` command, `python -m mel.train`, `mel.link` / `mel.load`
    "mel.cli": "entry", "mel.__main__": "entry", "mel.train": "entry",
}
# Data flows left to right: a module may import its own stage and the stages before it...
ORDER = ("shared", "mining", "datasets", "training", "retrieval", "negatives", "evaluation",
         "linking", "serving", "entry")
# ...except that serving (evaluation, linking, the HTTP service) imports no mining, training or
# negative mining, evaluation and linking are siblings, and the dataset tools import no Beam.
FORBIDDEN = {
    "datasets": {"mining"},
    "evaluation": {"mining", "training", "negatives"},
    "linking": {"mining", "training", "negatives", "datasets", "evaluation"},
    "serving": {"mining", "training", "negatives", "datasets", "evaluation"},
}
# Third-party imports that belong to one stage only.
BEAM_STAGES = {"mining", "retrieval"}   # apache_beam: the Beam jobs (beam_pipelines/)


def module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


MODULES = {module_name(p): p for package in PACKAGES
           for p in sorted((ROOT / package).rglob("*.py"))}


def stage_of(module: str) -> str:
  if module == "mel":
    return "entry"   # mel/__init__.py: mel.link and mel.load
  best = max((prefix for prefix in STAGE_OF_PREFIX
              if module == prefix or module.startswith(prefix + ".")), key=len, default=None)
  if best is not None:
    return STAGE_OF_PREFIX[best]
  if module.startswith("mel."):
    return "shared"   # records, schema, manifest, model_dir, towers, anchors, ...
  raise AssertionError(f"{module}: no stage for this module; add its package to the rule")


def imports_of(module: str):
  """(line, imported module) for every import statement of module, at any depth."""
  path = MODULES[module]
  tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
  package = module if path.name == "__init__.py" else module.rpartition(".")[0]
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for alias in node.names:
        yield node.lineno, alias.name
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parent = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parent + ([base] if base else []))
      for alias in node.names:
        candidate = f"{base}.{alias.name}"
        yield node.lineno, candidate if candidate in MODULES else base


def ours(name: str) -> bool:
  return name.split(".")[0] in PACKAGES


def test_every_module_has_a_stage():
  assert len(MODULES) > 40
  for module in MODULES:
    stage_of(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_later_stage(module):
  stage = stage_of(module)
  problems = []
  for line, name in imports_of(module):
    if name.split(".")[0] == "apache_beam" and stage not in BEAM_STAGES | {"entry"}:
      problems.append(f"line {line}: imports {name}: Beam belongs to the Beam jobs")
    if not ours(name):
      continue
    if name not in MODULES and not any(m.startswith(name + ".") for m in MODULES):
      problems.append(f"line {line}: imports {name}, which is not in the tree")
      continue
    target = stage_of(name)
    if ORDER.index(target) > ORDER.index(stage):
      problems.append(f"line {line}: imports {name} ({target}), a later stage than {stage}")
    elif target in FORBIDDEN.get(stage, ()):
      problems.append(f"line {line}: imports {name} ({target}): {stage} must not")
  assert not problems, f"{MODULES[module].relative_to(ROOT)}:\n  " + "\n  ".join(problems)


def test_the_rule_catches_imports_inside_functions(tmp_path, monkeypatch):
  """The rule reads nested imports too: a linking module that imports training inside a
  function is reported."""
  bad = tmp_path / "mel" / "linking" / "bad.py"
  bad.parent.mkdir(parents=True)
  bad.write_text("def f():\n  from mel.training import configs\n  return configs\n")
  monkeypatch.setitem(MODULES, "mel.linking.bad", bad)
  monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
  with pytest.raises(AssertionError, match=r"mel\.training\.configs \(training\): linking must not"):
    test_no_module_imports_a_later_stage("mel.linking.bad")


def test_no_file_under_mel_is_over_500_lines():
  long = {str(p.relative_to(ROOT)): n for p in (ROOT / "mel").rglob("*.py")
          if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
  assert not long, f"split these modules: {long}"


def test_the_readme_layout_names_every_module():
  """README's Layout section lists each folder's modules: a module added or moved without the
  README is caught here."""
  readme = (ROOT / "README.md").read_text(encoding="utf-8")
  section = readme[readme.index("## Layout"):readme.index("## Data and licences")]
  blocks, current = {}, None
  for line in section.splitlines():
    head = line[4:].split(" ", 1)[0] if line.startswith("    ") and not line.startswith("     ") \
        else ""
    if head.endswith("/"):
      current = head
      blocks[current] = line
    elif current and line.startswith("     "):
      blocks[current] += " " + line
    else:
      current = None
  missing = []
  for folder in ("mel/", "mel/wikipedia/", "beam_pipelines/", "mel/training/", "mel/modeling/",
                 "mel/retrieval/", "mel/evaluation/", "mel/linking/", "mel/serving/", "mewsli9/"):
    assert folder in blocks, f"README Layout has no line for {folder}"
    for path in sorted((ROOT / folder).glob("*.py")):
      if path.stem not in ("__init__", "__main__") and not re.search(rf"\b{path.stem}\b",
                                                                      blocks[folder]):
        missing.append(f"{folder}{path.name}")
  assert not missing, f"README Layout does not name: {missing}"
