"""Manifests: the JSON file written last into an output directory, listing its files with their
sizes and sha256, so that its presence means the output is complete and every file can be
checked against it.

    manifest.write(directory, {"format": "mel-index/1", ..., "files": describe_files(directory)})
    manifest.read(directory, "mel-index/1", required=("count",), error=IndexLoadError)
    manifest.check_files(directory, manifest["files"], verify=True, error=IndexLoadError)

Indexes, embeddings and the spotter's dictionary use it; each passes its own format string and
error class, so a failure names the file and the problem in that output's terms.
"""
import hashlib
import json
import os
from typing import Dict, Iterable, Type

from mel.files import sha256_file

NAME = "manifest.json"


class ManifestError(ValueError):
  """A directory's manifest is missing, unreadable, of another format, or does not match."""


def file_entry(path: str) -> dict:
  """{"bytes", "sha256"} of a file."""
  return {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}


def bytes_entry(data: bytes) -> dict:
  """{"bytes", "sha256"} of a file's future contents (written elsewhere, e.g. by Beam)."""
  return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def describe_files(directory: str, skip: Iterable[str] = (NAME,)) -> Dict[str, dict]:
  """{relative path: {"bytes", "sha256"}} for every file under directory, sorted."""
  skip = set(skip)
  files = {}
  for root, _, names in os.walk(directory):
    for name in names:
      full = os.path.join(root, name)
      rel = os.path.relpath(full, directory).replace(os.sep, "/")
      if rel not in skip:
        files[rel] = file_entry(full)
  return dict(sorted(files.items()))


def write(directory: str, manifest: dict, name: str = NAME) -> dict:
  """Writes manifest as directory/name atomically (temp file, then rename); returns it."""
  tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2, sort_keys=True, ensure_ascii=False)
  os.replace(tmp, os.path.join(directory, name))
  return manifest


def read(directory: str, fmt: str, required: Iterable[str] = (),
         error: Type[Exception] = ManifestError, name: str = NAME) -> dict:
  """The manifest of directory; error naming the file if missing, unreadable or not fmt."""
  path = os.path.join(directory, name)
  if not os.path.isdir(directory):
    raise error(f"{directory}: not a directory (no {fmt} output here)")
  if not os.path.isfile(path):
    raise error(f"{path}: missing (the output was never completely written)")
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise error(f"{path}: unreadable ({e})") from None
  if not isinstance(manifest, dict) or manifest.get("format") != fmt:
    found = manifest.get("format") if isinstance(manifest, dict) else None
    raise error(f"{path}: format {found!r}, expected {fmt!r}")
  for key in required:
    if key not in manifest:
      raise error(f"{path}: no {key!r} field")
  return manifest


def check_files(directory: str, files: Dict[str, dict], verify: bool = True,
                error: Type[Exception] = ManifestError, name: str = NAME) -> None:
  """Every listed file is present with its size (always) and its sha256 (verify=True)."""
  if not isinstance(files, dict):
    raise error(f"{os.path.join(directory, name)}: no 'files' mapping")
  for rel, entry in files.items():
    full = os.path.join(directory, rel)
    if not os.path.isfile(full):
      raise error(f"{full}: missing (listed in {name})")
    size = os.path.getsize(full)
    if size != entry["bytes"]:
      what = "truncated" if size < entry["bytes"] else "larger than written"
      raise error(f"{full}: {what}: {size} bytes, {name} says {entry['bytes']}")
    if verify and sha256_file(full) != entry["sha256"]:
      raise error(f"{full}: checksum does not match {name} (file corrupted)")
