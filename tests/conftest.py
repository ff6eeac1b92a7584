"""Shared fixtures: the real data in ../shared/data (read in place, never copied into the repo)."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("MEL_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  if not SHARED_DATA.is_dir():
    raise FileNotFoundError(f"shared data not found at {SHARED_DATA} (set MEL_SHARED_DATA)")
  return SHARED_DATA


def run_module(module: str, *args, timeout: int = 900, cwd=None):
  """Runs `python -m module args` as a user would; returns the CompletedProcess."""
  import subprocess
  import sys
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}
  return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                        text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="session")
def mini_mining(shared_data, tmp_path_factory):
  """`beam run extract_mentions` on the 7 shared mini dumps + WikiData: (output dir, result)."""
  out = tmp_path_factory.mktemp("mini") / "out"
  result = run_module("beam_pipelines.cli", "run", "extract_mentions",
                      f"--wikipedia_dumps={shared_data}/wikipedia/mini/*.xml.bz2",
                      f"--wikidata_dump={shared_data}/wikidata/entities.jsonl",
                      f"--output_dir={out}", "--holdout_per_language=30")
  assert result.returncode == 0, result.stderr[-3000:]
  return out, result


@pytest.fixture(scope="session")
def mini_vocab(mini_mining, tmp_path_factory):
  """A WordPiece vocabulary learned from the mini mining output (mBERT layout)."""
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  result = run_module("mel.build_vocab", "--mining_dir", mini_mining[0], "--output", path,
                      "--vocab_size", 3000, "--max_words", 8000)
  assert result.returncode == 0, result.stderr[-3000:]
  return path
