"""Nearest-entity retrieval: one interface, exact (numpy) and ScaNN implementations, shards.

    index = ScannIndex.build(ids, vectors)            # vectors float32 [N, D], unit rows
    rows, scores = index.search(queries, k=100)       # int64 [Q, k], float32 [Q, k], best first
    index.save(path); index = load_index(path)        # manifest + checksums, atomic write

Large indexes never hold all float32 vectors in memory (20M x 300-d is 24 GB; building ScaNN
in one call peaks at ~3.3x its float input). `build_index_from_embeddings` / `build_streaming`
read the vectors as a stream, twice: a ScaNN tree is trained on a sample spread over all rows,
then every row is inserted into it (int8 + 4-bit codes: ~1.25 bytes per dimension). Beyond
`max_shard_size` vectors the rows are split into shards that share that one tree (trained
once, from a sample of all rows) and are filled and written one at a time. `build_sharded`
builds one index per in-memory (ids, vectors) shard, each with its own tree. Shards are
searched with a top-k merge. Independently trained shards lose recall on clustered data (each
shard's tree sees every cluster thinly): bench/RESULTS.md has the figures.

On disk an index is a directory written last-to-first: files, then `manifest.json`, all under
`<path>.tmp-<pid>`, then renamed to `<path>`; a directory without a manifest is not an index.

    <path>/manifest.json   {"format", "kind", "count", "dimension", "ids", "files": {name:
                           {"bytes", "sha256"}}, "params", "model", "shards" (sharded only)}
    <path>/ids.txt         entity ids, one per line, in row order
    <path>/vectors.npy     brute_force: float32 [N, D]
    <path>/scann/...       scann: ScaNN's serialized searcher (relative asset paths)
    <path>/shard-00000/    sharded: one index directory per shard (its own manifest)

Scores are inner products (cosine for unit vectors). Importing this module does not import
TensorFlow: ScaNN's numpy binding is loaded without running `scann/__init__.py`.
"""
import concurrent.futures
import importlib.util
import json
import math
import os
import sys
import types
import warnings
from collections.abc import Sequence
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from mel.files import atomic_directory, sha256_file

FORMAT = "mel-index/1"
MANIFEST = "manifest.json"
IDS = "ids.txt"
KINDS = ("brute_force", "scann", "sharded")

# Below this many entities a ScaNN index is ScaNN's exact brute force: a tree over a few
# thousand points saves nothing (exact search over 5k x 300-d is ~0.1 ms) and k-means needs
# enough points per leaf to be meaningful.
SCANN_BRUTE_FORCE_BELOW = 5_000
# Default shard budgets. A brute-force shard holds float32 vectors (2.4 GB: 2M x 300-d). A ScaNN
# shard holds int8 vectors + 4-bit codes (~1.25 bytes per dimension), but filling and saving it
# peaks far above that, in its last step (ScaNN's serialisation), and the peak grows with the
# tree's leaves more than with the shard's rows (SCANN_SAVE_BYTES_PER_LEAF_CENTRE says why).
# Measured at 300-d, one shard of a shared tree: 5M rows, 4,000 leaves: 7.1 GB; 5M rows, 17,889
# leaves (20M's tree): 19.1 GB; 6.7M rows, 17,889 leaves: 20.9 GB; one 20M tree was killed at
# 24 GB. Shards share one tree, so more of them cost no recall: 1.875 GB is 5M x 300-d or 2M x
# 768-d per shard.
DEFAULT_SHARD_BYTES = 2_400_000_000
DEFAULT_SCANN_SHARD_BYTES = 1_875_000_000
# ScaNN 1.4.2 serialises a tree-AH searcher by asking every leaf for its factory options, and
# each leaf answers with its own protobuf copy of the AH codebook (16 centres per block), all
# held at once: ~270 bytes per centre per leaf, whatever the leaf holds. Measured with
# bench/scann_shard_memory.py (2,000 leaves, 300-d): 0.63 MB per leaf at 2 dims per block
# (150 blocks), 0.28 MB at 4, 1.38 MB at 1; 20M's 17,889 leaves at 2 dims: ~11 GB.
SCANN_SAVE_BYTES_PER_LEAF_CENTRE = 270
# Vectors per ScaNN insertion call while streaming (x 300-d float32: 120 MB).
INSERT_CHUNK = 100_000


class IndexLoadError(ValueError):
  """A saved index is missing, incomplete, corrupt, or does not match its manifest."""


# ---------------------------------------------------------------------------------------------
# ids: a compact read-only sequence (20M Python strings would cost ~1.3 GB of the serving RAM)


class IdList(Sequence):
  """Entity ids as one UTF-8 blob + end offsets; indexing returns str."""

  def __init__(self, blob: bytes, ends: np.ndarray):
    self._blob = blob
    self._ends = ends  # [N] end offset of each id (exclusive, before its newline)
    self._starts = None

  @classmethod
  def from_file(cls, path: str) -> "IdList":
    with open(path, "rb") as f:
      blob = f.read()
    if blob and not blob.endswith(b"\n"):
      raise IndexLoadError(f"{path}: truncated (no final newline)")
    newlines = np.flatnonzero(np.frombuffer(blob, dtype=np.uint8) == 10)
    dtype = np.uint32 if len(blob) < 2**32 else np.int64
    return cls(blob, newlines.astype(dtype))

  def __len__(self) -> int:
    return len(self._ends)

  def _start(self, i: int) -> int:
    return 0 if i == 0 else int(self._ends[i - 1]) + 1

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    n = len(self)
    if i < 0:
      i += n
    if not 0 <= i < n:
      raise IndexError(f"id row {i} out of range for {n} ids")
    return self._blob[self._start(i):int(self._ends[i])].decode("utf-8")

  def __iter__(self) -> Iterator[str]:
    start = 0
    for end in self._ends.tolist():
      yield self._blob[start:end].decode("utf-8")
      start = end + 1

  def take(self, rows: np.ndarray) -> List[str]:
    """ids of rows [n] (all valid) as a list."""
    rows = np.asarray(rows, dtype=np.int64)
    ends = self._ends[rows].astype(np.int64)
    starts = np.where(rows > 0, self._ends[np.maximum(rows - 1, 0)].astype(np.int64) + 1, 0)
    blob = self._blob
    return [blob[s:e].decode("utf-8") for s, e in zip(starts.tolist(), ends.tolist())]


class _ConcatIds(Sequence):
  """The ids of several shards as one sequence (global row = shard offset + local row)."""

  def __init__(self, parts: List[Sequence]):
    self._parts = parts
    self._offsets = np.cumsum([0] + [len(p) for p in parts])

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    if i < 0:
      i += len(self)
    if not 0 <= i < len(self):
      raise IndexError(f"id row {i} out of range for {len(self)} ids")
    part = int(np.searchsorted(self._offsets, i, side="right")) - 1
    return self._parts[part][i - int(self._offsets[part])]

  def __iter__(self) -> Iterator[str]:
    for part in self._parts:
      yield from part

  def take(self, rows: np.ndarray) -> List[str]:
    rows = np.asarray(rows, dtype=np.int64)
    parts = np.searchsorted(self._offsets, rows, side="right") - 1
    out = [None] * len(rows)
    for p in np.unique(parts).tolist():
      where = np.flatnonzero(parts == p)
      local = rows[where] - self._offsets[p]
      for i, entity_id in zip(where.tolist(), _take(self._parts[p], local)):
        out[i] = entity_id
    return out


def _take(ids: Sequence, rows: np.ndarray) -> List[str]:
  """ids[rows] as a list, vectorised where the sequence supports it."""
  if hasattr(ids, "take"):
    return ids.take(rows)
  return [ids[r] for r in np.asarray(rows).tolist()]


def _write_ids(path: str, ids: Iterable[str]) -> int:
  count = 0
  with open(path, "w", encoding="utf-8") as f:
    for entity_id in ids:
      if not entity_id or "\n" in entity_id:
        raise ValueError(f"bad entity id {entity_id!r}: empty or contains a newline")
      f.write(entity_id + "\n")
      count += 1
  return count


# ---------------------------------------------------------------------------------------------
# files, manifests, atomic directories



def _describe_files(directory: str, skip=(MANIFEST,)) -> Dict[str, dict]:
  """{relative path: {"bytes", "sha256"}} for every file under directory (sorted)."""
  files = {}
  for root, _, names in os.walk(directory):
    for name in sorted(names):
      full = os.path.join(root, name)
      rel = os.path.relpath(full, directory).replace(os.sep, "/")
      if rel in skip:
        continue
      files[rel] = {"bytes": os.path.getsize(full), "sha256": sha256_file(full)}
  return dict(sorted(files.items()))


def _write_manifest(directory: str, manifest: dict) -> None:
  tmp = os.path.join(directory, f".{MANIFEST}.tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
  os.replace(tmp, os.path.join(directory, MANIFEST))


def read_manifest(path: str) -> dict:
  """The manifest of the index at path; IndexLoadError if missing, unreadable or not ours."""
  manifest_path = os.path.join(path, MANIFEST)
  if not os.path.isdir(path):
    raise IndexLoadError(f"{path}: no index here (not a directory)")
  if not os.path.exists(manifest_path):
    raise IndexLoadError(f"{manifest_path}: missing (the index was never completely written)")
  try:
    with open(manifest_path, encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise IndexLoadError(f"{manifest_path}: unreadable ({e})") from e
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    found = manifest.get("format") if isinstance(manifest, dict) else None
    raise IndexLoadError(f"{manifest_path}: format {found!r}, expected {FORMAT!r}")
  for key in ("kind", "count", "dimension", "files"):
    if key not in manifest:
      raise IndexLoadError(f"{manifest_path}: no {key!r} field")
  if manifest["kind"] not in KINDS:
    raise IndexLoadError(f"{manifest_path}: unknown kind {manifest['kind']!r}")
  return manifest


def _check_files(path: str, manifest: dict, verify: bool) -> None:
  """Every listed file is present with its size (always) and checksum (verify=True)."""
  for name, info in manifest["files"].items():
    full = os.path.join(path, name)
    if not os.path.isfile(full):
      raise IndexLoadError(f"{full}: missing (listed in {MANIFEST})")
    size = os.path.getsize(full)
    if size != info["bytes"]:
      what = "truncated" if size < info["bytes"] else "larger than written"
      raise IndexLoadError(f"{full}: {what}: {size} bytes, {MANIFEST} says {info['bytes']}")
    if verify and sha256_file(full) != info["sha256"]:
      raise IndexLoadError(f"{full}: checksum does not match {MANIFEST} (file corrupted)")


def _npy_shape(path: str) -> Tuple[int, ...]:
  with open(path, "rb") as f:
    version = np.lib.format.read_magic(f)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, _, _ = read_header(f)  # the header only, not the data
  return shape


# ---------------------------------------------------------------------------------------------
# top-k helpers


def _as_queries(queries, dimension: int) -> np.ndarray:
  queries = np.asarray(queries, dtype=np.float32)
  if queries.ndim == 1:
    queries = queries[None, :]
  if queries.ndim != 2 or queries.shape[1] != dimension:
    raise ValueError(f"queries of shape {queries.shape}, expected [Q, {dimension}]")
  return np.ascontiguousarray(queries)


def _select_top_k(rows: np.ndarray, scores: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
  """Best k of each row of candidates [Q, M], ordered by (-score, row); pads -1 / -inf.

  Candidates must carry -inf for empty slots. The row tie-break makes the order deterministic
  and independent of how candidates were split into chunks or shards.
  """
  q, m = scores.shape
  if m > k:
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
  """Maximum inner product search over N entity vectors of dimension D."""

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
    flat = iter(_take(self.ids, rows[valid]))
    return [[next(flat) for _ in range(n)] for n in valid.sum(axis=1).tolist()], scores

  def take_ids(self, rows: np.ndarray) -> List[str]:
    """The ids of rows int [n] (all >= 0), as a list."""
    return _take(self.ids, rows)

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
      manifest = self._write_into(tmp)
    return manifest

  @staticmethod
  def load(path: str, verify: bool = True, dimension: Optional[int] = None) -> "Index":
    return load_index(path, verify=verify, dimension=dimension)

  # subclasses: write files (not the manifest) and say what goes into the manifest
  def _write_files(self, directory: str) -> dict:
    raise NotImplementedError

  def _write_into(self, directory: str) -> dict:
    os.makedirs(directory, exist_ok=True)
    extra = self._write_files(directory)
    manifest = {"format": FORMAT, "kind": self.kind, "count": len(self),
                "dimension": self.dimension, "params": self.params, "model": self.model,
                **extra}
    if "files" not in manifest:
      manifest["files"] = _describe_files(directory)
    _write_manifest(directory, manifest)
    return manifest


def _check_ids(path: str, manifest: dict) -> IdList:
  ids_path = os.path.join(path, manifest.get("ids", IDS))
  ids = IdList.from_file(ids_path)
  if len(ids) != manifest["count"]:
    raise IndexLoadError(f"{ids_path}: {len(ids)} ids, {MANIFEST} says {manifest['count']}")
  return ids


# ---------------------------------------------------------------------------------------------
# exact search


class BruteForceIndex(Index):
  """Exact inner product in numpy: the ground truth. Memory: the float32 vectors."""

  kind = "brute_force"
  CHUNK_BYTES = 256 << 20  # bound on the [queries, database chunk] score block

  def __init__(self, ids, vectors: np.ndarray, params=None, model=None):
    super().__init__(ids, vectors.shape[1], params, model)
    self.vectors = vectors

  @classmethod
  def build(cls, ids: Sequence[str], vectors: np.ndarray, model: Optional[dict] = None
            ) -> "BruteForceIndex":
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(ids):
      raise ValueError(f"{len(ids)} ids but vectors of shape {vectors.shape}")
    return cls(list(ids), vectors, model=model)

  def search(self, queries, k, **options):
    if options:
      raise TypeError(f"brute force search takes no options, got {sorted(options)}")
    queries = _as_queries(queries, self.dimension)
    n = self.vectors.shape[0]
    rows_out, scores_out = [], []
    query_block = 1024
    for qs in range(0, max(len(queries), 1), query_block):
      block = queries[qs:qs + query_block]
      chunk = max(k, self.CHUNK_BYTES // (4 * max(len(block), 1)))
      best_rows = np.full((len(block), 0), -1, dtype=np.int64)
      best_scores = np.full((len(block), 0), -np.inf, dtype=np.float32)
      for start in range(0, n, chunk):
        scores = block @ np.asarray(self.vectors[start:start + chunk]).T
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1], dtype=np.int64),
                               scores.shape)
        if scores.shape[1] > k:  # keep k per chunk before merging: bounded [Q, 2k] merge
          part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
          rows = np.take_along_axis(rows, part, axis=1)
          scores = np.take_along_axis(scores, part, axis=1)
        best_rows, best_scores = _select_top_k(np.concatenate([best_rows, rows], axis=1),
                                               np.concatenate([best_scores, scores], axis=1), k)
      if best_rows.shape[1] < k:
        best_rows, best_scores = _select_top_k(best_rows, best_scores, k)
      rows_out.append(best_rows)
      scores_out.append(best_scores)
    return np.concatenate(rows_out)[:len(queries)], np.concatenate(scores_out)[:len(queries)]

  def _write_files(self, directory):
    _write_ids(os.path.join(directory, IDS), self.ids)
    np.save(os.path.join(directory, "vectors.npy"), np.asarray(self.vectors, dtype=np.float32))
    return {"ids": IDS}

  @classmethod
  def _load(cls, path, manifest):
    ids = _check_ids(path, manifest)
    vectors_path = os.path.join(path, "vectors.npy")
    if not os.path.exists(vectors_path):
      raise IndexLoadError(f"{vectors_path}: missing")
    shape = _npy_shape(vectors_path)
    if shape != (manifest["count"], manifest["dimension"]):
      raise IndexLoadError(f"{vectors_path}: shape {shape}, {MANIFEST} says "
                           f"({manifest['count']}, {manifest['dimension']})")
    # Memory-mapped: pages come from the page cache, nothing is copied on load.
    vectors = np.load(vectors_path, mmap_mode="r")
    return cls(ids, vectors, manifest.get("params"), manifest.get("model"))


# ---------------------------------------------------------------------------------------------
# ScaNN

_SCANN = None


def _scann():
  """ScaNN's pybind searcher module, imported without `scann/__init__.py`.

  That __init__ imports TensorFlow (+5 s, +0.5 GB) for ScaNN's TF ops, which serving does not
  use: a bare package stands in while the numpy binding is imported, then is removed, so a
  later `import scann` still runs the real __init__ (reusing the loaded submodules).
  """
  global _SCANN
  if _SCANN is None:
    if "scann" in sys.modules:
      from scann.scann_ops.py import scann_builder, scann_ops_pybind
    else:
      spec = importlib.util.find_spec("scann")
      if spec is None:
        raise ImportError("scann is not installed (pip install scann==1.4.2)")
      stub = types.ModuleType("scann")
      stub.__path__ = list(spec.submodule_search_locations)
      stub.__spec__ = spec
      sys.modules["scann"] = stub
      try:
        from scann.scann_ops.py import scann_builder, scann_ops_pybind
      finally:
        del sys.modules["scann"]
    _SCANN = (scann_ops_pybind, scann_builder)
  return _SCANN


def scann_params_for(n: int, total: Optional[int] = None) -> dict:
  """ScaNN parameters for n vectors (one index or shard) out of total (all shards).

  - n < SCANN_BRUTE_FORCE_BELOW: ScaNN's exact brute force (no tree to train).
  - num_leaves ~ 4 sqrt(n), at most n / 100: ScaNN's rule of thumb is ~sqrt(N) leaves, but
    on clustered 300-d data finer leaves partition much better once N grows (5M: recall@100
    0.95 searching 20% of 8,944 leaves, 9 ms p50, against 0.91 at 20% of 2 sqrt(N) = 4,472
    leaves, 23 ms; bench/RESULTS.md). At least 100 points per leaf keeps k-means meaningful.
  - num_leaves_to_search: ~3% of the leaves (at least 8): the main latency knob (search time
    is roughly the number of points in the searched leaves); recall@100 ~0.95 at 1M, 0.86-0.88 at
    5M (reorder 400-1000) on the benchmark's data (callers that need more pass leaves_to_search).
    At 20M (3 shards sharing one tree of 17,889 leaves) the partition degrades: 0.63 at 3%,
    0.89 at 30% of the leaves, where a partition into the true clusters needs 14% for 0.95
    (bench/RESULTS.md; a tree per shard did worse: 0.46 and 0.82).
  - training_sample_size: 128 points per leaf, at least 100k, at most 2M (and n). ScaNN's
    default 100k sample left only ~20 points per true cluster at 5M and k-means scattered
    clusters across leaves (recall collapsed to 0.59); training costs sample x leaves x
    iterations (5M: 10 minutes on 2 cores; 2M x 17,889 leaves at 20M: 34 minutes), hence
    the cap. Sharded indexes share one tree, so it is trained once.
  - spherical k-means: the vectors are unit and scored by inner product, so the centroids
    should be directions too.
  - AH with 2 dims per block and anisotropic threshold 0.2 (ScaNN's recommended setting for
    inner product), then exact reordering of the top `reorder` candidates (>= 4k at search).
    Saving holds one codebook copy per leaf (scann_save_overhead_bytes: ~11 GB at 20M);
    dims_per_block 4 halves it and the codes, but needs 4x the reordering and tops out lower
    (5M: recall@100 0.929 against 0.952 at 20% of the leaves; build peak 8.2 against 12.4 GB).
  - reorder_dtype int8 once there are >= 1M vectors in all: 4x less memory than float32
    (20M x 300-d: 6 GB, not 24 GB) at a measured recall cost at 1M of ~0.005 in recall@100
    and ~0.02 in recall@10 (bench/RESULTS.md).
  """
  total = n if total is None else total
  if n < SCANN_BRUTE_FORCE_BELOW:
    return {"algorithm": "brute_force"}
  num_leaves = int(max(1, min(round(4 * math.sqrt(n)), n // 100)))
  return {
      "algorithm": "tree_ah",
      "num_leaves": num_leaves,
      "num_leaves_to_search": int(min(num_leaves, max(8, math.ceil(0.03 * num_leaves)))),
      "training_sample_size": int(min(n, max(100_000, min(2_000_000, 128 * num_leaves)))),
      "training_iterations": 12,
      "spherical": True,
      "soar_lambda": None,
      "overretrieve_factor": None,
      "dims_per_block": 2,
      "anisotropic_quantization_threshold": 0.2,
      "reorder": 400,
      "reorder_dtype": "int8" if total >= 1_000_000 else "float32",
  }


def scann_save_overhead_bytes(params: dict, dimension: int) -> int:
  """Memory ScaNN's save of one tree-AH index (or shard) takes beyond the index itself.

  num_leaves x AH blocks x 16 centres x SCANN_SAVE_BYTES_PER_LEAF_CENTRE: the per-leaf
  codebook copies, the same for every shard of a shared tree. 0 for ScaNN brute force.
  """
  if params.get("algorithm") != "tree_ah":
    return 0
  return int(params["num_leaves"]) * _ah_blocks(params, dimension) * 16 * \
      SCANN_SAVE_BYTES_PER_LEAF_CENTRE


def _ah_blocks(params: dict, dimension: int) -> int:
  """AH subspaces (blocks) a tree-AH index codes each vector into."""
  return math.ceil(dimension / params["dims_per_block"])


def scann_save_peak_bytes(params: dict, dimension: int, rows: int) -> int:
  """A lower bound on the memory a process needs to fill and save a tree-AH ScaNN shard.

  The shard (int8 vectors, unpacked AH codes and ScaNN's copies of both while it writes them:
  ~2 x dimension + blocks bytes per row) plus scann_save_overhead_bytes. The measured peaks
  were 12-26% higher (5M rows, 4,000 leaves: 7.12 GB against 6.34; 6.7M rows, 17,889 leaves:
  20.9 GB against 16.6), from the trained tree, Python's ids and allocator slack.
  """
  return (rows * (2 * dimension + _ah_blocks(params, dimension)) +
          scann_save_overhead_bytes(params, dimension))


def _available_memory() -> Optional[int]:
  """MemAvailable in bytes (Linux), or None where /proc/meminfo does not say."""
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


class ScannIndex(Index):
  """ScaNN: tree partitioning + asymmetric hashing + exact reordering (see scann_params_for)."""

  kind = "scann"
  DIRECTORY = "scann"

  def __init__(self, ids, dimension, searcher, params, model=None):
    super().__init__(ids, dimension, params, model)
    self.searcher = searcher
    self.threads = os.cpu_count() or 1
    searcher.set_num_threads(self.threads)

  @classmethod
  def build(cls, ids: Sequence[str], vectors: np.ndarray, params: Optional[dict] = None,
            model: Optional[dict] = None, total: Optional[int] = None) -> "ScannIndex":
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(ids):
      raise ValueError(f"{len(ids)} ids but vectors of shape {vectors.shape}")
    if len(ids) == 0:
      raise ValueError("cannot build a ScaNN index over 0 vectors")
    params = {**scann_params_for(len(ids), total), **(params or {})}
    pybind, builder_module = _scann()
    reorder_type = builder_module.ReorderType
    builder = pybind.builder(vectors, 10, "dot_product")
    if params["algorithm"] == "brute_force":
      builder = builder.score_brute_force(quantize=reorder_type.FLOAT32)
    elif params["algorithm"] == "tree_ah":
      builder = builder.tree(
          params["num_leaves"], params["num_leaves_to_search"],
          training_sample_size=params["training_sample_size"],
          training_iterations=params["training_iterations"],
          spherical=params["spherical"], soar_lambda=params["soar_lambda"],
          overretrieve_factor=params["overretrieve_factor"])
      builder = builder.score_ah(
          params["dims_per_block"],
          anisotropic_quantization_threshold=params["anisotropic_quantization_threshold"])
      builder = builder.reorder(params["reorder"],
                                quantize=reorder_type[params["reorder_dtype"].upper()])
    else:
      raise ValueError(f"unknown ScaNN algorithm {params['algorithm']!r}")
    searcher = builder.set_n_training_threads(os.cpu_count() or 1).build()
    return cls(list(ids), vectors.shape[1], searcher, params, model)

  @classmethod
  def build_streaming(cls, source: Callable[[], Iterable[Tuple[Sequence[str], np.ndarray]]],
                      total: int, params: Optional[dict] = None, model: Optional[dict] = None,
                      progress: Optional[Callable[[int], None]] = None) -> "ScannIndex":
    """One tree over total vectors that never sit in memory as float32 all at once.

    source() yields (ids, vectors [m, D]) pieces, the same rows on every call (it is read
    twice). Pass 1 keeps a training sample spread evenly over all rows (every step-th row);
    ScaNN trains the partitioner and the AH codebooks on it (ScannIndex.build); pass 2
    inserts every other row into that tree (leaf assignment, AH codes, int8 data), chunk by
    chunk. Rows are numbered sample first, then insertion order; `ids` follows that order.
    Memory: ~3.3x the sample's float32 while training, then the index itself.
    Why: independently built shards each see every cluster of the data at a fraction of its
    size, and their k-means trees then split near neighbours over many leaves (measured at
    5M in 3 shards: recall@10 0.51 searching 1% of leaves); one tree trained on a global
    sample does not.
    """
    params = {**scann_params_for(total), **(params or {})}
    if params["algorithm"] != "tree_ah":  # small: no tree to train, build in memory
      pieces = list(source())
      ids = [i for piece_ids, _ in pieces for i in piece_ids]
      return cls.build(ids, np.concatenate([v for _, v in pieces]), params, model, total)
    index, step = cls._train_on_sample(source, total, params, model)
    if progress:
      progress(len(index.ids))
    seen = 0
    for ids, vectors in source():
      keep = np.ones(len(ids), dtype=bool)
      keep[(-seen) % step::step] = False  # already in the index (the sample)
      seen += len(ids)
      index._insert(ids, vectors, np.flatnonzero(keep), progress)
    index._check_size(total)
    return index

  @classmethod
  def train_shared(cls, source: Callable[[], Iterable[Tuple[Sequence[str], np.ndarray]]],
                   total: int, params: Optional[dict] = None, model: Optional[dict] = None
                   ) -> Optional["ScannIndex"]:
    """A tree + AH codebooks for all total rows, trained on a sample spread over all of them.

    The shards of a large index are then filled from it one at a time (refill): they share
    one partition, chosen (leaves, sample) from the whole index's N, so a sharded index
    partitions the data as one tree would, and the k-means cost is paid once.
    Returns None when scann_params_for(total) needs no tree (small: brute force).
    """
    params = {**scann_params_for(total), **(params or {}), "shared_tree": True}
    if params["algorithm"] != "tree_ah":
      return None
    return cls._train_on_sample(source, total, params, model)[0]

  @classmethod
  def _train_on_sample(cls, source, total, params, model) -> Tuple["ScannIndex", int]:
    """(an index trained on and holding every step-th row of source, step)."""
    step = max(1, total // params["training_sample_size"])
    sample_ids, sample, seen = [], [], 0
    for ids, vectors in source():
      rows = np.arange((-seen) % step, len(ids), step)
      sample_ids.extend(ids[r] for r in rows.tolist())
      sample.append(np.asarray(vectors[rows], dtype=np.float32))
      seen += len(ids)
    if seen != total:
      raise ValueError(f"source yielded {seen} vectors, expected {total}")
    sample = np.concatenate(sample)
    index = cls.build(sample_ids, sample, {**params, "training_sample_size": len(sample)},
                      model, total)
    return index, step

  def refill(self, source: Callable[[], Iterable[Tuple[Sequence[str], np.ndarray]]],
             count: int, progress: Optional[Callable[[int], None]] = None) -> "ScannIndex":
    """Empties this index, keeping its trained tree and codebooks, and inserts source's rows.

    Rows are numbered in source order. Used to fill the shards of a shared tree in turn.
    """
    raw = self.searcher.searcher
    # ScaNN deletes by moving the last row into the freed slot: deleting from the end moves
    # nothing.
    for stop in range(raw.size(), 0, -INSERT_CHUNK):
      raw.delete(list(range(stop - 1, max(stop - INSERT_CHUNK, 0) - 1, -1)))
    if raw.size() != 0:
      raise RuntimeError(f"ScaNN index holds {raw.size()} vectors after deleting all of them")
    self.ids = []
    for ids, vectors in source():
      self._insert(ids, vectors, np.arange(len(ids)), progress)
    self._check_size(count)
    return self

  def _insert(self, ids, vectors, rows: np.ndarray, progress=None) -> None:
    for start in range(0, len(rows), INSERT_CHUNK):
      chunk = rows[start:start + INSERT_CHUNK]
      # The raw pybind searcher: ScannSearcher.upsert needs docids and keeps a Python dict
      # of them (~2 GB at 20M); None means "a new datapoint", numbered in insertion order.
      self.searcher.searcher.upsert([None] * len(chunk),
                                    np.ascontiguousarray(vectors[chunk], np.float32),
                                    INSERT_CHUNK)
      self.ids.extend(ids[r] for r in chunk.tolist())
      if progress:
        progress(len(chunk))

  def _check_size(self, expected: int) -> None:
    if self.searcher.size() != expected or len(self.ids) != expected:
      raise RuntimeError(f"streaming build holds {self.searcher.size()} vectors and "
                         f"{len(self.ids)} ids, expected {expected}")

  def tree_leaves(self):
    if self.params.get("algorithm") != "tree_ah":
      return None
    return self.params["num_leaves_to_search"], self.params["num_leaves"]

  def search(self, queries, k, leaves_to_search: Optional[int] = None,
             reorder: Optional[int] = None):
    """As Index.search; leaves_to_search / reorder override the built parameters."""
    queries = _as_queries(queries, self.dimension)
    if len(queries) == 0 or len(self) == 0:
      return (np.full((len(queries), k), -1, np.int64),
              np.full((len(queries), k), -np.inf, np.float32))
    tree = self.params["algorithm"] == "tree_ah"
    leaves = (leaves_to_search or self.params["num_leaves_to_search"]) if tree else -1
    pre = max(reorder or self.params["reorder"], 4 * k) if tree else -1
    found = min(k, len(self))  # ScaNN pads with NaN / row 0 past the results it has
    if len(queries) == 1:
      rows, scores = self.searcher.search_batched(queries, found, pre, leaves)
    else:
      batch = max(1, min(256, math.ceil(len(queries) / self.threads)))
      rows, scores = self.searcher.search_batched_parallel(queries, found, pre, leaves, batch)
    scores = np.where(np.isnan(scores), -np.inf, scores).astype(np.float32)
    rows = np.where(np.isneginf(scores), -1, rows.astype(np.int64))
    if found < k:
      rows = np.pad(rows, ((0, 0), (0, k - found)), constant_values=-1)
      scores = np.pad(scores, ((0, 0), (0, k - found)), constant_values=-np.inf)
    return rows, scores

  def _write_files(self, directory):
    _write_ids(os.path.join(directory, IDS), self.ids)
    scann_dir = os.path.join(directory, self.DIRECTORY)
    os.makedirs(scann_dir)
    # relative asset paths: the directory is renamed from its temp name after writing
    self.searcher.serialize(scann_dir, relative_path=True)
    return {"ids": IDS}

  @classmethod
  def _load(cls, path, manifest):
    ids = _check_ids(path, manifest)
    scann_dir = os.path.join(path, cls.DIRECTORY)
    if not os.path.isdir(scann_dir):
      raise IndexLoadError(f"{scann_dir}: missing")
    # Check the reordering data's shape before ScaNN reads it: ScaNN does not say which file
    # disagrees (and may abort the process) on a mismatch.
    for name in ("dataset.npy", "int8_dataset.npy"):
      data_path = os.path.join(scann_dir, name)
      if os.path.exists(data_path):
        shape = _npy_shape(data_path)
        if shape != (manifest["count"], manifest["dimension"]):
          raise IndexLoadError(f"{data_path}: shape {shape}, {MANIFEST} says "
                               f"({manifest['count']}, {manifest['dimension']})")
    pybind, _ = _scann()
    try:
      searcher = pybind.load_searcher(scann_dir)
    except Exception as e:  # ScaNN raises RuntimeError/ValueError with its own wording
      raise IndexLoadError(f"{scann_dir}: ScaNN could not load it ({e})") from e
    if searcher.size() != manifest["count"]:
      raise IndexLoadError(f"{scann_dir}: {searcher.size()} vectors, {MANIFEST} says "
                           f"{manifest['count']}")
    return cls(ids, manifest["dimension"], searcher, manifest["params"], manifest.get("model"))


# ---------------------------------------------------------------------------------------------
# shards


def _shard_name(i: int) -> str:
  return f"shard-{i:05d}"


class ShardedIndex(Index):
  """Several indexes searched together: global row = shard offset + local row."""

  kind = "sharded"

  def __init__(self, shards: List[Index], params=None, model=None):
    if not shards:
      raise ValueError("a sharded index needs at least one shard")
    dims = {s.dimension for s in shards}
    if len(dims) != 1:
      raise ValueError(f"shards of different dimensions {sorted(dims)}")
    super().__init__(_ConcatIds([s.ids for s in shards]), dims.pop(), params, model)
    self.shards = shards
    self.offsets = np.cumsum([0] + [len(s) for s in shards])[:-1].tolist()
    self.threads = min(len(shards), os.cpu_count() or 1)
    self._pool = None

  def tree_leaves(self):
    trees = [shard.tree_leaves() for shard in self.shards]
    if any(t is None for t in trees):
      return None
    return max(t[0] for t in trees), min(t[1] for t in trees)

  def search(self, queries, k, **options):
    """As Index.search over all shards; options (e.g. leaves_to_search) go to each shard."""
    queries = _as_queries(queries, self.dimension)

    def search_shard(shard, offset):
      rows, scores = shard.search(queries, k, **options)
      return np.where(rows >= 0, rows + offset, -1), scores

    # A batch keeps every core busy inside each shard's search; fewer queries than cores
    # leave cores idle there, so the shards are searched side by side (ScaNN and BLAS release
    # the GIL; 20M in 3 shards, one query: see bench/RESULTS.md).
    if self.threads > 1 and len(queries) < self.threads:
      if self._pool is None:
        self._pool = concurrent.futures.ThreadPoolExecutor(self.threads)
      results = list(self._pool.map(search_shard, self.shards, self.offsets))
    else:
      results = [search_shard(s, o) for s, o in zip(self.shards, self.offsets)]
    rows = np.concatenate([r for r, _ in results], axis=1)
    scores = np.concatenate([s for _, s in results], axis=1)
    return _select_top_k(rows, scores, k)

  def _write_files(self, directory):
    shards = []
    for i, shard in enumerate(self.shards):
      shard_manifest = shard._write_into(os.path.join(directory, _shard_name(i)))
      shards.append(_shard_entry(i, shard_manifest))
    return _sharded_fields(directory, shards)

  @classmethod
  def _load(cls, path, manifest, verify=True):
    shards, offset = [], 0
    for entry in manifest.get("shards", []):
      shard_path = os.path.join(path, entry["path"])
      shard = load_index(shard_path, verify=verify)
      if (len(shard) != entry["count"] or shard.dimension != manifest["dimension"]):
        raise IndexLoadError(f"{os.path.join(shard_path, MANIFEST)}: {len(shard)} x "
                             f"{shard.dimension}, {os.path.join(path, MANIFEST)} says "
                             f"{entry['count']} x {manifest['dimension']}")
      shards.append(shard)
      offset += len(shard)
    if offset != manifest["count"] or not shards:
      raise IndexLoadError(f"{os.path.join(path, MANIFEST)}: shards hold {offset} vectors, "
                           f"count says {manifest['count']}")
    return cls(shards, manifest.get("params"), manifest.get("model"))


def _shard_entry(i: int, shard_manifest: dict) -> dict:
  return {"path": _shard_name(i), "kind": shard_manifest["kind"],
          "count": shard_manifest["count"]}


def _sharded_fields(directory: str, shards: List[dict]) -> dict:
  # The top manifest checksums each shard's manifest, which checksums that shard's files: a
  # chain, so every byte is verified once on load.
  files = {f"{s['path']}/{MANIFEST}": {
      "bytes": os.path.getsize(os.path.join(directory, s["path"], MANIFEST)),
      "sha256": sha256_file(os.path.join(directory, s["path"], MANIFEST))} for s in shards}
  return {"shards": shards, "files": files}


def _build_one(kind: str, ids, vectors, params, total) -> Index:
  if kind == "brute_force":
    return BruteForceIndex.build(ids, vectors)
  if kind == "scann":
    return ScannIndex.build(ids, vectors, params=params, total=total)
  raise ValueError(f"unknown index kind {kind!r} (brute_force or scann)")


def build_sharded(shards: Iterable[Tuple[Sequence[str], np.ndarray]], output_dir: str,
                  kind: str = "scann", params: Optional[dict] = None,
                  model: Optional[dict] = None, total: Optional[int] = None) -> dict:
  """Builds, saves and frees one index per (ids, vectors [n, D]) shard; returns the manifest.

  Only one shard's vectors and index are in memory at a time; the whole sharded index appears
  at output_dir atomically once every shard is written. params override scann_params_for(n of
  the shard, total); total (all shards' count, if known) picks the reordering dtype.
  """
  entries, count, dimension = [], 0, None
  with atomic_directory(output_dir) as tmp:
    for ids, vectors in shards:
      if len(ids) == 0:
        continue
      if dimension is None:
        dimension = int(vectors.shape[1])
      elif vectors.shape[1] != dimension:
        raise ValueError(f"shard {len(entries)} has dimension {vectors.shape[1]}, not "
                         f"{dimension}")
      index = _build_one(kind, ids, vectors, params, total)
      index.model = dict(model or {})
      shard_manifest = index._write_into(os.path.join(tmp, _shard_name(len(entries))))
      entries.append(_shard_entry(len(entries), shard_manifest))
      count += len(index)
      del index, vectors  # free the shard before the next one is produced
    if not entries:
      raise ValueError("no vectors to index")
    manifest = {"format": FORMAT, "kind": "sharded", "count": count, "dimension": dimension,
                "params": {"shard_kind": kind, **(params or {})}, "model": dict(model or {}),
                **_sharded_fields(tmp, entries)}
    _write_manifest(tmp, manifest)
  return manifest


def default_shard_size(dimension: int, kind: str = "brute_force") -> int:
  """Vectors per index shard: float32 for brute force, int8 + 4-bit codes for ScaNN."""
  if kind == "scann":
    return max(1, int(DEFAULT_SCANN_SHARD_BYTES // (1.25 * max(dimension, 1))))
  return max(1, DEFAULT_SHARD_BYTES // (4 * max(dimension, 1)))


def rechunk(shards: Iterable[Tuple[List[str], np.ndarray]], max_size: int
            ) -> Iterator[Tuple[List[str], np.ndarray]]:
  """Regroups (ids, vectors) pieces into chunks of exactly max_size (the last may be smaller).

  Pieces are (memory-mapped) slices until a chunk is complete: one chunk is copied at a time,
  and the pieces are dropped before the chunk is handed on (the consumer builds an index
  from it while this generator is suspended).
  """
  ids, pieces, size = [], [], 0
  for shard_ids, vectors in shards:
    start = 0
    while start < len(shard_ids):
      take = min(max_size - size, len(shard_ids) - start)
      ids.extend(shard_ids[start:start + take])
      pieces.append(vectors[start:start + take])
      size += take
      start += take
      if size == max_size:
        chunk = np.concatenate(pieces).astype(np.float32, copy=False)
        chunk_ids, ids, pieces, size = ids, [], [], 0
        yield chunk_ids, chunk
        del chunk_ids, chunk
    del vectors
  if size:
    chunk = np.concatenate(pieces).astype(np.float32, copy=False)
    pieces = []
    yield ids, chunk


def _row_range(pieces: Iterable[Tuple[Sequence[str], np.ndarray]], start: int, stop: int
               ) -> Iterator[Tuple[Sequence[str], np.ndarray]]:
  """The rows [start, stop) of a stream of (ids, vectors) pieces, as pieces (views)."""
  offset = 0
  for ids, vectors in pieces:
    a, b = max(start - offset, 0), min(stop - offset, len(ids))
    if a < b:
      yield ids[a:b], vectors[a:b]
    offset += len(ids)
    if offset >= stop:
      break


def build_streaming(source: Callable[[], Iterable[Tuple[Sequence[str], np.ndarray]]],
                    output_dir: str, total: int, kind: str = "scann",
                    params: Optional[dict] = None, model: Optional[dict] = None,
                    max_shard_size: Optional[int] = None, progress: bool = False) -> dict:
  """Sharded index over a re-readable stream of (ids, vectors) pieces; returns the manifest.

  source() must yield the same total rows on every call (an embeddings directory, a
  deterministic generator). Rows are split evenly into shards of at most max_shard_size
  (default_shard_size(D, kind)). ScaNN: one shard is one tree trained on a sample of its rows
  and filled by insertion (ScannIndex.build_streaming); several shards share one tree, trained
  once on a sample spread over all total rows with parameters chosen from total, and are
  filled from it one after another (ScannIndex.train_shared, refill). A brute-force shard is
  copied into memory. Each shard is written and freed before the next; output_dir appears
  atomically at the end.
  """
  first = next(iter(source()), None)
  if first is None or total == 0:
    raise ValueError("no vectors to index")
  dimension = int(first[1].shape[1])
  del first
  max_shard_size = max_shard_size or default_shard_size(dimension, kind)
  num_shards = max(1, math.ceil(total / max_shard_size))
  bounds = [round(i * total / num_shards) for i in range(num_shards + 1)]
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=total, unit="vec", unit_scale=True, desc="indexing")
  entries = []
  shared = None
  if kind == "scann":
    _warn_if_save_will_not_fit(params, dimension, max(b - a for a, b in zip(bounds, bounds[1:])),
                               total, bar)
  if kind == "scann" and num_shards > 1:
    if bar is not None:
      bar.set_description("training the shared tree")
    shared = ScannIndex.train_shared(source, total, params=params, model=model)
  with atomic_directory(output_dir) as tmp:
    for i, (start, stop) in enumerate(zip(bounds, bounds[1:])):
      if bar is not None:
        bar.set_description(f"shard {i + 1}/{num_shards}")
      shard_source = lambda: _row_range(source(), start, stop)  # noqa: E731
      if shared is not None:
        index = shared.refill(shard_source, stop - start, progress=bar.update if bar else None)
      elif kind == "scann":
        index = ScannIndex.build_streaming(shard_source, stop - start, params=params,
                                           model=model, progress=bar.update if bar else None)
      elif kind == "brute_force":
        pieces = list(shard_source())
        index = BruteForceIndex.build([e for ids, _ in pieces for e in ids],
                                      np.concatenate([v for _, v in pieces]), model=model)
        del pieces
        if bar is not None:
          bar.update(stop - start)
      else:
        raise ValueError(f"unknown index kind {kind!r} (brute_force or scann)")
      if len(index) != stop - start or index.dimension != dimension:
        raise ValueError(f"shard {i}: {len(index)} x {index.dimension} vectors, expected "
                         f"{stop - start} x {dimension}")
      index.model = dict(model or {})
      entries.append(_shard_entry(i, index._write_into(os.path.join(tmp, _shard_name(i)))))
      del index
    if bar is not None:
      bar.close()
    shard_params = {"shard_kind": kind, **({"shared_tree": True} if shared else {})}
    manifest = {"format": FORMAT, "kind": "sharded", "count": total, "dimension": dimension,
                "params": {**shard_params, **(params or {})}, "model": dict(model or {}),
                **_sharded_fields(tmp, entries)}
    _write_manifest(tmp, manifest)
  return manifest


def _warn_if_save_will_not_fit(params: Optional[dict], dimension: int, shard_rows: int,
                               total: int, bar=None) -> None:
  """Warns before training (which can take an hour) when the save cannot fit in memory."""
  # one shard or several sharing a tree: the leaves come from all rows (train_shared)
  full = {**scann_params_for(total, total), **(params or {})}
  if full["algorithm"] != "tree_ah":
    return
  need = scann_save_peak_bytes(full, dimension, shard_rows)
  available = _available_memory()
  summary = (f"ScaNN: {full['num_leaves']:,} leaves, "
             f"{_ah_blocks(full, dimension)} AH blocks; saving a shard "
             f"of {shard_rows:,} rows needs at least {need / 1e9:.1f} GB "
             f"({scann_save_overhead_bytes(full, dimension) / 1e9:.1f} GB of it ScaNN's "
             f"per-leaf codebook copies)")
  if bar is not None:
    bar.write(summary + (f"; {available / 1e9:.1f} GB available" if available else ""),
              file=sys.stderr)
  if available is not None and need > available:
    warnings.warn(f"{summary}, but only {available / 1e9:.1f} GB is available: the build "
                  "will probably run out of memory when it saves. Use fewer leaves or more "
                  "dims per block (params num_leaves / dims_per_block), or smaller shards "
                  "(max_shard_size; the codebook copies do not shrink with it).", RuntimeWarning,
                  stacklevel=3)


def _model_of_embeddings(embeddings_dir: str, source_manifest: dict) -> dict:
  """The "model" an index built from these embeddings records."""
  return {**source_manifest.get("model", {}), "embeddings": os.path.abspath(embeddings_dir)}


def index_is_current(index_dir: str, embeddings_dir: str, kind: str) -> bool:
  """Whether index_dir holds a complete index of kind built from embeddings_dir as it is now."""
  from mel.retrieval import embeddings
  try:
    manifest = read_manifest(index_dir)
    source_manifest = embeddings.read_manifest(embeddings_dir)
  except (IndexLoadError, embeddings.EmbeddingsError, OSError, ValueError):
    return False
  return (manifest.get("params", {}).get("shard_kind") == kind and
          manifest.get("count") == source_manifest["count"] and
          manifest.get("model") == _model_of_embeddings(embeddings_dir, source_manifest))


def build_index_from_embeddings(embeddings_dir: str, output_dir: str, kind: str = "scann",
                                max_shard_size: Optional[int] = None,
                                params: Optional[dict] = None, verify: bool = True,
                                progress: bool = False) -> dict:
  """Sharded index over a mel.retrieval.embeddings directory (build_streaming); returns its manifest.

  Shards hold at most max_shard_size vectors (default: default_shard_size(D, kind)), split
  evenly; the embeddings manifest's "model" dict is recorded as the index's model. With
  verify, every embeddings file's checksum is checked once before building (the build reads
  the shards two or three times more; sizes and shapes are checked on every read).
  """
  from mel.retrieval import embeddings
  source_manifest = embeddings.read_manifest(embeddings_dir)
  if verify:
    for _ in embeddings.iter_shards(embeddings_dir, verify=True):
      pass
  source = lambda: embeddings.iter_shards(embeddings_dir, verify=False)  # noqa: E731
  model = _model_of_embeddings(embeddings_dir, source_manifest)
  return build_streaming(source, output_dir, source_manifest["count"], kind=kind, params=params,
                         model=model, max_shard_size=max_shard_size, progress=progress)


# ---------------------------------------------------------------------------------------------


def load_index(path: str, verify: bool = True, dimension: Optional[int] = None) -> Index:
  """Loads any saved index (kind from its manifest).

  Sizes of all files are always checked, checksums only with verify=True (reads every byte);
  dimension, if given, must match the index's (e.g. the query encoder's output size).
  Raises IndexLoadError naming the file and the problem.
  """
  path = os.path.abspath(path)
  manifest = read_manifest(path)
  manifest_path = os.path.join(path, MANIFEST)
  if dimension is not None and manifest["dimension"] != dimension:
    raise IndexLoadError(f"{manifest_path}: dimension {manifest['dimension']}, the queries "
                         f"have {dimension}")
  _check_files(path, manifest, verify)
  if manifest["kind"] == "brute_force":
    index = BruteForceIndex._load(path, manifest)
  elif manifest["kind"] == "scann":
    index = ScannIndex._load(path, manifest)
  else:
    index = ShardedIndex._load(path, manifest, verify=verify)
  index.manifest = manifest
  return index


def index_bytes(path: str) -> int:
  """Bytes on disk of a saved index (all its files)."""
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)
