"""Entity embeddings on disk: shards of ids + float32 vectors, and a manifest written last.

    <dir>/vectors-00000.npy    float32 [n, D], unit rows (np.load(..., mmap_mode="r") works)
    <dir>/ids-00000.txt        n entity ids, one per line, same order
    <dir>/manifest.json        {"format", "dimension", "count", "shards": [{"vectors", "ids",
                               "count", "sha256"}], "model": {...}} -- present = complete

Each shard is written to a temp name and renamed, so a killed encoder leaves only whole shards,
and a rerun skips them (resume per shard). Shards are the unit the index builder streams:
nothing here needs all vectors in memory at once.
"""
import hashlib
import io
import json
import os
from typing import Iterator, List, Optional, Tuple

import numpy as np

from mel.files import sha256_file

FORMAT = "mel-embeddings/1"
MANIFEST = "manifest.json"


class EmbeddingsError(ValueError):
  """An embeddings directory is incomplete or does not match its manifest."""


def shard_names(index: int) -> Tuple[str, str]:
  return f"vectors-{index:05d}.npy", f"ids-{index:05d}.txt"



def shard_complete(directory: str, index: int) -> bool:
  vectors, ids = shard_names(index)
  return (os.path.exists(os.path.join(directory, vectors))
          and os.path.exists(os.path.join(directory, ids)))


def shard_files(index: int, ids: List[str], vectors: np.ndarray) -> dict:
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


def write_manifest(directory: str, num_shards: int, model: Optional[dict] = None) -> dict:
  """Checks every shard, then writes the manifest (atomically); returns it."""
  shards, dimension = [], None
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
    shards.append({"vectors": vectors_name, "ids": ids_name, "count": n,
                   "sha256": {vectors_name: sha256_file(os.path.join(directory, vectors_name)),
                              ids_name: sha256_file(os.path.join(directory, ids_name))}})
  manifest = make_manifest(shards, dimension or 0, model)
  tmp = os.path.join(directory, f".{MANIFEST}.tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
  os.replace(tmp, os.path.join(directory, MANIFEST))
  return manifest


def shard_entry(index: int, files: dict, count: int) -> dict:
  """The manifest entry of a shard from its files' bytes (see shard_files)."""
  vectors_name, ids_name = shard_names(index)
  return {"vectors": vectors_name, "ids": ids_name, "count": count,
          "sha256": {name: hashlib.sha256(files[name]).hexdigest()
                     for name in (vectors_name, ids_name)}}


def make_manifest(shards: List[dict], dimension: int, model: Optional[dict] = None) -> dict:
  shards = sorted(shards, key=lambda entry: entry["vectors"])
  return {"format": FORMAT, "dimension": int(dimension),
          "count": sum(entry["count"] for entry in shards), "shards": shards,
          "model": model or {}}


def read_manifest(directory: str) -> dict:
  path = os.path.join(directory, MANIFEST)
  if not os.path.exists(path):
    raise EmbeddingsError(f"{directory}: no {MANIFEST} (encoding did not finish)")
  with open(path, encoding="utf-8") as f:
    manifest = json.load(f)
  if manifest.get("format") != FORMAT:
    raise EmbeddingsError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
  return manifest


def iter_shards(directory: str, verify: bool = True) -> Iterator[Tuple[List[str], np.ndarray]]:
  """Yields (ids, vectors [n, D] memory-mapped) per shard, checked against the manifest."""
  manifest = read_manifest(directory)
  for shard in manifest["shards"]:
    for name, digest in shard["sha256"].items():
      path = os.path.join(directory, name)
      if not os.path.exists(path):
        raise EmbeddingsError(f"{path}: missing")
      if verify and sha256_file(path) != digest:
        raise EmbeddingsError(f"{path}: checksum does not match {MANIFEST}")
    with open(os.path.join(directory, shard["ids"]), encoding="utf-8") as f:
      ids = [line.rstrip("\n") for line in f]
    vectors = np.load(os.path.join(directory, shard["vectors"]), mmap_mode="r")
    if len(ids) != shard["count"] or vectors.shape != (shard["count"], manifest["dimension"]):
      raise EmbeddingsError(f"{directory}: shard {shard['vectors']} does not match {MANIFEST}")
    yield ids, vectors
