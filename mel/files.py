"""File helpers shared by every stage that writes a manifest (embeddings, index, dictionary):
checksums and atomic directory replacement."""
import contextlib
import hashlib
import os
import shutil
from typing import Iterator


def sha256_file(path: str) -> str:
  """Hex sha256 of a file's bytes, read in 4 MB blocks (index files are GBs)."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      digest.update(block)
  return digest.hexdigest()


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
  """Yields a temp directory; on success it replaces path, on failure it is removed.

  A directory cannot be renamed over a non-empty one, so an existing directory is moved aside
  first and deleted after the swap: path holds either the old or the new complete directory,
  except for the instant between the two renames.
  """
  path = os.path.abspath(path)
  tmp = f"{path}.tmp-{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    yield tmp
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  old = f"{path}.old-{os.getpid()}"
  if os.path.exists(path):
    os.rename(path, old)
  os.rename(tmp, path)
  shutil.rmtree(old, ignore_errors=True)
