"""Entity embeddings on disk: shards of ids + float32 vectors, and a manifest written last.

    <dir>/vectors-00000.npy    float32 [n, D], unit rows (np.load(..., mmap_mode="r") works)
    <dir>/ids-00000.txt        n entity ids, one per line, same order
    <dir>/manifest.json        {"format": "mel-embeddings/2", "dimension", "count",
                               "shards": [{"vectors", "ids", "count"}],
                               "files": {name: {"bytes", "sha256"}}, "model": {...}}
                               (mel.manifest) -- present = complete

Each shard is written to a temp name and renamed, so a killed encoder leaves only whole shards,
and a rerun skips them (resume per shard). Shards are the unit the index builder streams:
nothing here needs all vectors in memory at once. The local encoder (mel.retrieval.encode)
writes with write_shard / write_manifest; the Beam encoder (beam_pipelines/encode_entities.py)
writes the bytes of shard_files through Beam's file systems and builds the manifest with
shard_entry and make_manifest.
"""
import io
import os
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from mel import manifest as manifests

FORMAT = "mel-embeddings/2"
MANIFEST = manifests.NAME


class EmbeddingsError(ValueError):
  """An embeddings directory is incomplete or does not match its manifest."""


def shard_names(index: int) -> Tuple[str, str]:
  """(vectors file, ids file) of shard index."""
  return f"vectors-{index:05d}.npy", f"ids-{index:05d}.txt"


def shard_complete(directory: str, index: int) -> bool:
  return all(os.path.exists(os.path.join(directory, name)) for name in shard_names(index))


def shard_files(index: int, ids: List[str], vectors: np.ndarray) -> Dict[str, bytes]:
  """The bytes of one shard's two files, by file name (the vectors file first)."""
  if vectors.ndim != 2 or vectors.shape[0] != len(ids):
    raise ValueError(f"shard {index}: {len(ids)} ids but vectors of shape {vectors.shape}")
  for entity_id in ids:
    if not entity_id or "\n" in entity_id:
      raise ValueError(f"shard {index}: bad entity id {entity_id!r}")
  buffer = io.BytesIO()
  np.save(buffer, np.ascontiguousarray(vectors, dtype=np.float32))
  vectors_name, ids_name = shard_names(index)
  return {vectors_name: buffer.getvalue(),
          ids_name: "".join(i + "\n" for i in ids).encode("utf-8")}


def write_shard(directory: str, index: int, ids: List[str], vectors: np.ndarray) -> None:
  """Writes one shard atomically (ids file last: its presence marks the shard complete)."""
  os.makedirs(directory, exist_ok=True)
  for name, data in shard_files(index, ids, vectors).items():
    tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
      f.write(data)
    os.replace(tmp, os.path.join(directory, name))


def shard_entry(index: int, count: int) -> dict:
  """The manifest's entry for shard index of count rows."""
  vectors_name, ids_name = shard_names(index)
  return {"vectors": vectors_name, "ids": ids_name, "count": int(count)}


def make_manifest(shards: List[dict], files: Dict[str, dict], dimension: int,
                  model: Optional[dict] = None) -> dict:
  """The manifest of shard entries (shard_entry) whose files are described by files
  ({name: {"bytes", "sha256"}}, mel.manifest.file_entry / bytes_entry)."""
  shards = sorted(shards, key=lambda entry: entry["vectors"])
  return {"format": FORMAT, "dimension": int(dimension),
          "count": sum(entry["count"] for entry in shards), "shards": shards,
          "files": dict(sorted(files.items())), "model": model or {}}


def write_manifest(directory: str, num_shards: int, model: Optional[dict] = None) -> dict:
  """Checks that shards 0..num_shards-1 are whole and agree, then writes the manifest
  (atomically); returns it."""
  shards, files, dimension = [], {}, None
  for index in range(num_shards):
    if not shard_complete(directory, index):
      raise EmbeddingsError(f"{directory}: shard {index} is missing")
    vectors_name, ids_name = shard_names(index)
    vectors = np.load(os.path.join(directory, vectors_name), mmap_mode="r")
    with open(os.path.join(directory, ids_name), encoding="utf-8") as f:
      n = sum(1 for _ in f)
    if vectors.shape[0] != n:
      raise EmbeddingsError(f"{directory}: shard {index} has {n} ids and {vectors.shape[0]} "
                            "vectors")
    if dimension is None:
      dimension = int(vectors.shape[1])
    elif vectors.shape[1] != dimension:
      raise EmbeddingsError(f"{directory}: shard {index} has dimension {vectors.shape[1]}, "
                            f"not {dimension}")
    shards.append(shard_entry(index, n))
    for name in (vectors_name, ids_name):
      files[name] = manifests.file_entry(os.path.join(directory, name))
  return manifests.write(directory, make_manifest(shards, files, dimension or 0, model))


def read_manifest(directory: str) -> dict:
  """The manifest of an embeddings directory; EmbeddingsError naming the file if missing,
  unreadable or of another format (re-encode embeddings of an older format)."""
  return manifests.read(directory, FORMAT, required=("dimension", "count", "shards", "files"),
                        error=EmbeddingsError)


def check(directory: str, manifest: dict, verify: bool = True) -> None:
  """Every file of the manifest is present with its size, and its checksum with verify."""
  manifests.check_files(directory, manifest["files"], verify, error=EmbeddingsError)


def iter_shards(directory: str, verify: bool = True) -> Iterator[Tuple[List[str], np.ndarray]]:
  """Yields (ids, vectors [n, D] memory-mapped) per shard, checked against the manifest:
  sizes and shapes always, checksums with verify (each shard just before it is read)."""
  manifest = read_manifest(directory)
  for shard in manifest["shards"]:
    names = (shard["vectors"], shard["ids"])
    unlisted = [name for name in names if name not in manifest["files"]]
    if unlisted:
      raise EmbeddingsError(f"{os.path.join(directory, MANIFEST)}: shard file {unlisted[0]} "
                            "is not among its files")
    manifests.check_files(directory, {name: manifest["files"][name] for name in names},
                          verify, error=EmbeddingsError)
    with open(os.path.join(directory, shard["ids"]), encoding="utf-8") as f:
      ids = [line.rstrip("\n") for line in f]
    vectors = np.load(os.path.join(directory, shard["vectors"]), mmap_mode="r")
    if len(ids) != shard["count"] or vectors.shape != (shard["count"], manifest["dimension"]):
      raise EmbeddingsError(f"{os.path.join(directory, shard['vectors'])}: "
                            f"{len(ids)} ids, vectors of shape {vectors.shape}, {MANIFEST} says "
                            f"({shard['count']}, {manifest['dimension']})")
    yield ids, vectors
