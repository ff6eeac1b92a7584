"""The nearest-entity index interface, its on-disk form, and loading any saved index.

    index = ScannIndex.build(ids, vectors)            # vectors float32 [N, D], unit rows
    rows, scores = index.search(queries, k=100)       # int64 [Q, k], float32 [Q, k], best first
    index.save(path); index = load_index(path)        # manifest + checksums, atomic write

Scores are inner products (cosine for unit vectors). Implementations: exact search
(mel.retrieval.brute_force), ScaNN (mel.retrieval.scann) and shards searched together with a
top-k merge (mel.retrieval.sharded); mel.retrieval.build builds large ones from a stream.

On disk an index is a directory written last-to-first: files, then `manifest.json`
(mel.manifest), all under `<path>.tmp-<pid>`, then renamed to `<path>`; a directory without a
manifest is not an index.

    <path>/manifest.json   {"format", "kind", "count", "dimension", "ids", "files": {name:
                           {"bytes", "sha256"}}, "params", "model", "shards" (sharded only)}
    <path>/ids.txt         entity ids, one per line, in row order (mel.retrieval.ids)
    <path>/vectors.npy     brute_force: float32 [N, D]
    <path>/scann/...       scann: ScaNN's serialized searcher (relative asset paths)
    <path>/shard-00000/    sharded: one index directory per shard (its own manifest)

Importing this module (or any of mel.retrieval's index modules) does not import TensorFlow.
"""
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mel import manifest as manifests
from mel.files import atomic_directory
from mel.retrieval.ids import IdList, take

FORMAT = "mel-index/1"
MANIFEST = manifests.NAME
IDS = "ids.txt"
KINDS = ("brute_force", "scann", "sharded")


class IndexLoadError(ValueError):
  """A saved index is missing, incomplete, corrupt, or does not match its manifest."""


# ---------------------------------------------------------------------------------------------
# top-k helpers


def as_queries(queries, dimension: int) -> np.ndarray:
  """queries [D] or [Q, D] -> contiguous float32 [Q, D]; ValueError for another dimension."""
  queries = np.asarray(queries, dtype=np.float32)
  if queries.ndim == 1:
    queries = queries[None, :]
  if queries.ndim != 2 or queries.shape[1] != dimension:
    raise ValueError(f"queries of shape {queries.shape}, expected [Q, {dimension}]")
  return np.ascontiguousarray(queries)


def select_top_k(rows: np.ndarray, scores: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
  """Best k of each row of candidates [Q, M], ordered by (-score, row); pads -1 / -inf.

  Candidates must carry -inf for empty slots. The row tie-break makes the order deterministic
  and independent of how candidates were split into chunks or shards.
  """
  if scores.shape[1] > k:
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    rows = np.take_along_axis(rows, part, axis=1)
    scores = np.take_along_axis(scores, part, axis=1)
  order = np.lexsort((rows, -scores), axis=1)
  rows = np.take_along_axis(rows, order, axis=1)
  scores = np.take_along_axis(scores, order, axis=1)
  rows = np.where(np.isneginf(scores), -1, rows)
  if rows.shape[1] < k:
    rows = np.pad(rows, ((0, 0), (0, k - rows.shape[1])), constant_values=-1)
    scores = np.pad(scores, ((0, 0), (0, k - scores.shape[1])), constant_values=-np.inf)
  return rows.astype(np.int64), scores.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the interface


class Index:
  """Maximum inner product search over N entity vectors of dimension D.

  Implementations set `kind`, and define search, _write_files (the files, not the manifest)
  and from_directory (a saved index whose manifest and files were checked).
  """

  kind = ""

  def __init__(self, ids: Sequence, dimension: int, params: Optional[dict] = None,
               model: Optional[dict] = None):
    self.ids = ids
    self.dimension = int(dimension)
    self.params = dict(params or {})
    self.model = dict(model or {})

  def __len__(self) -> int:
    return len(self.ids)

  def search(self, queries: np.ndarray, k: int, **options) -> Tuple[np.ndarray, np.ndarray]:
    """queries float32 [Q, D] -> (rows int64 [Q, k], scores float32 [Q, k]), best first.

    rows index `ids`; slots beyond the results found hold row -1 and score -inf.
    """
    raise NotImplementedError

  def search_ids(self, queries: np.ndarray, k: int, **options) -> Tuple[List[List[str]],
                                                                        np.ndarray]:
    """(ids [Q][<=k], scores float32 [Q, k]): ids[q][j] scored scores[q, j]; padding dropped."""
    rows, scores = self.search(queries, k, **options)
    valid = rows >= 0
    flat = iter(self.take_ids(rows[valid]))
    return [[next(flat) for _ in range(n)] for n in valid.sum(axis=1).tolist()], scores

  def live_ids(self):
    """The ids search can return, in row order (all of ids, unless rows are masked)."""
    return iter(self.ids)

  def take_ids(self, rows: np.ndarray) -> List[str]:
    """The ids of rows int [n] (all >= 0), as a list."""
    return take(self.ids, rows)

  def tree_leaves(self) -> Optional[Tuple[int, int]]:
    """(leaves searched by default, leaves of the smallest tree) for partitioned indexes;
    None for exact search."""
    return None

  def wide_search_options(self, factor: int) -> dict:
    """search() options that look factor times wider than the defaults ({} when exact)."""
    tree = self.tree_leaves()
    if tree is None:
      return {}
    default, fewest = tree
    return {"leaves_to_search": min(fewest, factor * default)}

  def save(self, path: str, model: Optional[dict] = None) -> dict:
    """Writes the index to directory path atomically; returns the manifest."""
    if model is not None:
      self.model = dict(model)
    with atomic_directory(path) as tmp:
      return self.write_into(tmp)

  @staticmethod
  def load(path: str, verify: bool = True, dimension: Optional[int] = None) -> "Index":
    return load_index(path, verify=verify, dimension=dimension)

  def write_into(self, directory: str) -> dict:
    """Writes the files, then the manifest, into directory (created if needed; not atomic:
    save and the builders call it inside a temp directory); returns the manifest."""
    os.makedirs(directory, exist_ok=True)
    extra = self._write_files(directory)
    manifest = {"format": FORMAT, "kind": self.kind, "count": len(self),
                "dimension": self.dimension, "params": self.params, "model": self.model,
                **extra}
    if "files" not in manifest:
      manifest["files"] = manifests.describe_files(directory)
    return manifests.write(directory, manifest)

  def _write_files(self, directory: str) -> dict:
    """Writes the index's files into directory; returns fields for its manifest."""
    raise NotImplementedError

  @classmethod
  def from_directory(cls, path: str, manifest: dict, verify: bool = True) -> "Index":
    """The index saved at path, whose manifest was read and files checked by load_index."""
    raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# loading


def read_manifest(path: str) -> dict:
  """The manifest of the index at path; IndexLoadError if missing, unreadable or not ours."""
  manifest = manifests.read(path, FORMAT, required=("kind", "count", "dimension", "files"),
                            error=IndexLoadError)
  if manifest["kind"] not in KINDS:
    raise IndexLoadError(f"{os.path.join(path, MANIFEST)}: unknown kind {manifest['kind']!r}")
  return manifest


def read_ids(path: str, manifest: dict) -> IdList:
  """The ids file of the index at path, checked against the manifest's count."""
  ids_path = os.path.join(path, manifest.get("ids", IDS))
  ids = IdList.from_file(ids_path, error=IndexLoadError)
  if len(ids) != manifest["count"]:
    raise IndexLoadError(f"{ids_path}: {len(ids)} ids, {MANIFEST} says {manifest['count']}")
  return ids


def check_shape(path: str, manifest: dict) -> None:
  """The .npy file at path holds [count, dimension] of the manifest (reads the header only)."""
  with open(path, "rb") as f:
    version = np.lib.format.read_magic(f)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, _, _ = read_header(f)
  if shape != (manifest["count"], manifest["dimension"]):
    raise IndexLoadError(f"{path}: shape {shape}, {MANIFEST} says "
                         f"({manifest['count']}, {manifest['dimension']})")


def _implementations() -> dict:
  # Imported here: each implementation's module imports this one for Index.
  from mel.retrieval.brute_force import BruteForceIndex
  from mel.retrieval.scann import ScannIndex
  from mel.retrieval.sharded import ShardedIndex
  return {cls.kind: cls for cls in (BruteForceIndex, ScannIndex, ShardedIndex)}


def load_index(path: str, verify: bool = True, dimension: Optional[int] = None) -> Index:
  """Loads any saved index (kind from its manifest).

  Sizes of all files are always checked, checksums only with verify=True (reads every byte);
  dimension, if given, must match the index's (e.g. the query encoder's output size).
  Raises IndexLoadError naming the file and the problem.
  """
  path = os.path.abspath(path)
  manifest = read_manifest(path)
  if dimension is not None and manifest["dimension"] != dimension:
    raise IndexLoadError(f"{os.path.join(path, MANIFEST)}: dimension {manifest['dimension']}, "
                         f"the queries have {dimension}")
  manifests.check_files(path, manifest["files"], verify, error=IndexLoadError)
  index = _implementations()[manifest["kind"]].from_directory(path, manifest, verify=verify)
  index.manifest = manifest
  return index


def index_bytes(path: str) -> int:
  """Bytes on disk of a saved index (all its files)."""
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)
