"""ScaNN indexes: tree partitioning + asymmetric hashing (AH) + exact reordering.

    index = ScannIndex.build(ids, vectors, params={"num_leaves": 8000})   # in memory
    index = ScannIndex.build_streaming(source, total)     # a stream read twice (sample, insert)
    tree = ScannIndex.train_shared(source, total)         # one tree for several shards ...
    shard = tree.refill(shard_source, count)              # ... filled one at a time

scann_params_for chooses the parameters from N (its docstring says why each). Saved as
`<path>/ids.txt` and `<path>/scann/` (ScaNN's serialized searcher, relative asset paths).

ScaNN's numpy binding is loaded without TensorFlow (scann_modules). What saving a tree costs in
memory, and the warning before a build that will not fit: mel.retrieval.scann_memory.
"""
import importlib.util
import math
import os
import sys
import types
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from mel.retrieval.ids import ConcatIds, write_ids
from mel.retrieval.index import (IDS, MANIFEST, Index, IndexLoadError, as_queries, check_shape,
                                 read_ids)

# Below this many entities a ScaNN index is ScaNN's exact brute force: a tree over a few
# thousand points saves nothing (exact search over 5k x 300-d is ~0.1 ms) and k-means needs
# enough points per leaf to be meaningful.
SCANN_BRUTE_FORCE_BELOW = 5_000
# Share of the tree's leaves searched by default (scann_params_for).
LEAVES_TO_SEARCH = 0.2
# Vectors per ScaNN insertion call while streaming (x 300-d float32: 120 MB).
INSERT_CHUNK = 100_000

_SCANN = None


def scann_modules():
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
  - num_leaves_to_search: LEAVES_TO_SEARCH (20%) of the leaves, at least 8: the main latency
    knob (search time is roughly the number of points in the searched leaves). Chosen on data
    shaped like real entity embeddings, where a mention's nearest entities spread over many
    leaves: recall@100 0.95 needs 15-20% of the leaves there, at every size measured (the demo
    model's real vectors at 120k, the generator fitted to them at 1M and 5M: bench/RESULTS.md).
    Callers that want speed over recall pass leaves_to_search.
  - training_sample_size: 128 points per leaf, at least 100k, at most 2M (and n). ScaNN's
    default 100k sample left only ~20 points per true cluster at 5M and k-means scattered
    clusters across leaves (recall collapsed to 0.59); training costs sample x leaves x
    iterations (5M: 10 minutes on 2 cores; 2M x 17,889 leaves at 20M: 34 minutes), hence
    the cap. Sharded indexes share one tree, so it is trained once.
  - spherical k-means: the vectors are unit and scored by inner product, so the centroids
    should be directions too.
  - AH with 2 dims per block and anisotropic threshold 0.2 (ScaNN's recommended setting for
    inner product), then exact reordering of the top `reorder` candidates (>= 4k at search).
    Saving holds one codebook copy per leaf (scann_memory.scann_save_overhead_bytes: ~11 GB
    at 20M); dims_per_block 4 halves it and the codes, but needs 4x the reordering and tops
    out lower (5M: recall@100 0.929 against 0.952 at 20% of the leaves; build peak 8.2
    against 12.4 GB).
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
      "num_leaves_to_search": int(min(num_leaves, max(8, math.ceil(LEAVES_TO_SEARCH *
                                                                  num_leaves)))),
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
    pybind, builder_module = scann_modules()
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

  def append(self, ids: Sequence[str], vectors: np.ndarray) -> None:
    """Inserts rows after the last, in memory, into the trained tree (each vector to its
    nearest leaf, coded with the trained codebooks): ids [n], vectors float32 [n, D]. A
    knowledge base's small added segments are searched this way (mel.retrieval.kb)."""
    if len(vectors) != len(ids) or (len(ids) and vectors.shape[1] != self.dimension):
      raise ValueError(f"{len(ids)} ids and vectors of shape {vectors.shape}, expected "
                       f"[{len(ids)}, {self.dimension}]")
    added: List[str] = []
    self._insert(ids, vectors, np.arange(len(ids)), into=added)
    self.ids = ConcatIds([self.ids, added])
    if self.searcher.size() != len(self.ids):
      raise RuntimeError(f"ScaNN holds {self.searcher.size()} vectors, {len(self.ids)} ids")

  def _insert(self, ids, vectors, rows: np.ndarray, progress=None, into=None) -> None:
    into = self.ids if into is None else into
    for start in range(0, len(rows), INSERT_CHUNK):
      chunk = rows[start:start + INSERT_CHUNK]
      # The raw pybind searcher: ScannSearcher.upsert needs docids and keeps a Python dict
      # of them (~2 GB at 20M); None means "a new datapoint", numbered in insertion order.
      self.searcher.searcher.upsert([None] * len(chunk),
                                    np.ascontiguousarray(vectors[chunk], np.float32),
                                    INSERT_CHUNK)
      into.extend(ids[r] for r in chunk.tolist())
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
    queries = as_queries(queries, self.dimension)
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
    write_ids(os.path.join(directory, IDS), self.ids)
    scann_dir = os.path.join(directory, self.DIRECTORY)
    os.makedirs(scann_dir)
    # relative asset paths: the directory is renamed from its temp name after writing
    self.searcher.serialize(scann_dir, relative_path=True)
    return {"ids": IDS}

  @classmethod
  def from_directory(cls, path, manifest, verify=True):
    ids = read_ids(path, manifest)
    scann_dir = os.path.join(path, cls.DIRECTORY)
    if not os.path.isdir(scann_dir):
      raise IndexLoadError(f"{scann_dir}: missing")
    # Check the reordering data's shape before ScaNN reads it: ScaNN does not say which file
    # disagrees (and may abort the process) on a mismatch.
    for name in ("dataset.npy", "int8_dataset.npy"):
      data_path = os.path.join(scann_dir, name)
      if os.path.exists(data_path):
        check_shape(data_path, manifest)
    pybind, _ = scann_modules()
    try:
      searcher = pybind.load_searcher(scann_dir)
    except Exception as e:  # ScaNN raises RuntimeError/ValueError with its own wording
      raise IndexLoadError(f"{scann_dir}: ScaNN could not load it ({e})") from e
    if searcher.size() != manifest["count"]:
      raise IndexLoadError(f"{scann_dir}: {searcher.size()} vectors, {MANIFEST} says "
                           f"{manifest['count']}")
    return cls(ids, manifest["dimension"], searcher, manifest["params"], manifest.get("model"))
