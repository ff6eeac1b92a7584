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
