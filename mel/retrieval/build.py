"""Building large indexes without holding all float32 vectors in memory.

20M x 300-d is 24 GB of float32, and building ScaNN in one call peaks at ~3.3x its float input.
`build_index_from_embeddings` / `build_streaming` read the vectors as a stream, twice: a ScaNN
tree is trained on a sample spread over all rows, then every row is inserted into it (int8 +
4-bit codes: ~1.25 bytes per dimension). Beyond `shard_size` vectors the rows are split into
shards that share that one tree (trained once, from a sample of all rows) and are filled and
written one at a time. `build_sharded` builds one index per in-memory (ids, vectors) shard,
each with its own tree. Independently trained shards lose recall on clustered data (each
shard's tree sees every cluster thinly): bench/RESULTS.md has the figures.

Every builder writes into `<output>.tmp-<pid>` and renames it at the end: the output holds
either the previous complete index or the new one.
"""
import math
import os
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from mel import manifest as manifests
from mel.files import atomic_directory
from mel.retrieval import embeddings
from mel.retrieval.brute_force import BruteForceIndex
from mel.retrieval.index import FORMAT, Index, IndexLoadError, read_manifest
from mel.retrieval.scann import ScannIndex
from mel.retrieval.scann_memory import warn_if_save_will_not_fit
from mel.retrieval.sharded import shard_entry, shard_name, sharded_fields

# Default shard budgets. A brute-force shard holds float32 vectors (2.4 GB: 2M x 300-d). A ScaNN
# shard holds int8 vectors + 4-bit codes (~1.25 bytes per dimension), but filling and saving it
# peaks far above that, in its last step (ScaNN's serialisation), and the peak grows with the
# tree's leaves more than with the shard's rows (scann_memory says why). Measured at 300-d, one
# shard of a shared tree: 5M rows, 4,000 leaves: 7.1 GB; 5M rows, 17,889 leaves (20M's tree):
# 19.1 GB; 6.7M rows, 17,889 leaves: 20.9 GB; one 20M tree was killed at 24 GB. Shards share
# one tree, so more of them cost no recall: 1.875 GB is 5M x 300-d or 2M x 768-d per shard.
DEFAULT_SHARD_BYTES = 2_400_000_000
DEFAULT_SCANN_SHARD_BYTES = 1_875_000_000
SCANN_BYTES_PER_DIMENSION = 1.25   # int8 reordering data + 4-bit AH codes at 2 dims per block

Pieces = Iterable[Tuple[Sequence[str], np.ndarray]]   # (ids [m], vectors float32 [m, D]), ...


def default_shard_size(dimension: int, kind: str = "brute_force") -> int:
  """Vectors per index shard: float32 for brute force, int8 + 4-bit codes for ScaNN."""
  if kind == "scann":
    return max(1, int(DEFAULT_SCANN_SHARD_BYTES //
                      (SCANN_BYTES_PER_DIMENSION * max(dimension, 1))))
  return max(1, DEFAULT_SHARD_BYTES // (4 * max(dimension, 1)))


def _build_one(kind: str, ids, vectors, params, total) -> Index:
  if kind == "brute_force":
    return BruteForceIndex.build(ids, vectors)
  if kind == "scann":
    return ScannIndex.build(ids, vectors, params=params, total=total)
  raise ValueError(f"unknown index kind {kind!r} (brute_force or scann)")


def _sharded_manifest(directory: str, entries: List[dict], count: int, dimension: int,
                      params: dict, model: Optional[dict]) -> dict:
  """Writes the manifest of a sharded index whose shards are in directory; returns it."""
  return manifests.write(directory, {
      "format": FORMAT, "kind": "sharded", "count": count, "dimension": dimension,
      "params": params, "model": dict(model or {}), **sharded_fields(directory, entries)})


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
      shard_manifest = index.write_into(os.path.join(tmp, shard_name(len(entries))))
      entries.append(shard_entry(len(entries), shard_manifest))
      count += len(index)
      del index, vectors  # free the shard before the next one is produced
    if not entries:
      raise ValueError("no vectors to index")
    return _sharded_manifest(tmp, entries, count, dimension,
                             {"shard_kind": kind, **(params or {})}, model)


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


def _row_range(pieces: Pieces, start: int, stop: int) -> Iterator[Tuple[Sequence[str],
                                                                        np.ndarray]]:
  """The rows [start, stop) of a stream of (ids, vectors) pieces, as pieces (views)."""
  offset = 0
  for ids, vectors in pieces:
    a, b = max(start - offset, 0), min(stop - offset, len(ids))
    if a < b:
      yield ids[a:b], vectors[a:b]
    offset += len(ids)
    if offset >= stop:
      break


def build_streaming(source: Callable[[], Pieces], output_dir: str, total: int,
                    kind: str = "scann", params: Optional[dict] = None,
                    model: Optional[dict] = None, shard_size: Optional[int] = None,
                    progress: bool = False) -> dict:
  """Sharded index over a re-readable stream of (ids, vectors) pieces; returns the manifest.

  source() must yield the same total rows on every call (an embeddings directory, a
  deterministic generator). Rows are split evenly into shards of at most shard_size
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
  shard_size = shard_size or default_shard_size(dimension, kind)
  num_shards = max(1, math.ceil(total / shard_size))
  bounds = [round(i * total / num_shards) for i in range(num_shards + 1)]
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=total, unit="vec", unit_scale=True, desc="indexing")
  update = bar.update if bar is not None else None
  shared = None
  if kind == "scann":
    warn_if_save_will_not_fit(params, dimension, max(b - a for a, b in zip(bounds, bounds[1:])),
                              total, bar)
  if kind == "scann" and num_shards > 1:
    if bar is not None:
      bar.set_description("training the shared tree")
    shared = ScannIndex.train_shared(source, total, params=params, model=model)
  entries = []
  with atomic_directory(output_dir) as tmp:
    for i, (start, stop) in enumerate(zip(bounds, bounds[1:])):
      if bar is not None:
        bar.set_description(f"shard {i + 1}/{num_shards}")
      shard_source = lambda: _row_range(source(), start, stop)  # noqa: E731
      if shared is not None:
        index = shared.refill(shard_source, stop - start, progress=update)
      elif kind == "scann":
        index = ScannIndex.build_streaming(shard_source, stop - start, params=params,
                                           model=model, progress=update)
      elif kind == "brute_force":
        pieces = list(shard_source())
        index = BruteForceIndex.build([e for ids, _ in pieces for e in ids],
                                      np.concatenate([v for _, v in pieces]), model=model)
        del pieces
        if update:
          update(stop - start)
      else:
        raise ValueError(f"unknown index kind {kind!r} (brute_force or scann)")
      if len(index) != stop - start or index.dimension != dimension:
        raise ValueError(f"shard {i}: {len(index)} x {index.dimension} vectors, expected "
                         f"{stop - start} x {dimension}")
      index.model = dict(model or {})
      entries.append(shard_entry(i, index.write_into(os.path.join(tmp, shard_name(i)))))
      del index
    if bar is not None:
      bar.close()
    shard_params = {"shard_kind": kind, **({"shared_tree": True} if shared else {})}
    return _sharded_manifest(tmp, entries, total, dimension,
                             {**shard_params, **(params or {})}, model)


def _model_of_embeddings(embeddings_dir: str, source_manifest: dict) -> dict:
  """The "model" an index built from these embeddings records."""
  return {**source_manifest.get("model", {}), "embeddings": os.path.abspath(embeddings_dir)}


def index_is_current(index_dir: str, embeddings_dir: str, kind: str) -> bool:
  """Whether index_dir holds a complete index of kind built from embeddings_dir as it is now."""
  try:
    manifest = read_manifest(index_dir)
    source_manifest = embeddings.read_manifest(embeddings_dir)
  except (IndexLoadError, embeddings.EmbeddingsError, OSError, ValueError):
    return False
  return (manifest.get("params", {}).get("shard_kind") == kind and
          manifest.get("count") == source_manifest["count"] and
          manifest.get("model") == _model_of_embeddings(embeddings_dir, source_manifest))


def build_index_from_embeddings(embeddings_dir: str, output_dir: str, kind: str = "scann",
                                shard_size: Optional[int] = None,
                                params: Optional[dict] = None, verify: bool = True,
                                progress: bool = False) -> dict:
  """Sharded index over a mel.retrieval.embeddings directory (build_streaming); returns its
  manifest.

  Shards hold at most shard_size vectors (default: default_shard_size(D, kind)), split
  evenly; the embeddings manifest's "model" dict is recorded as the index's model. With
  verify, every embeddings file's checksum is checked once before building (the build reads
  the shards two or three times more; sizes and shapes are checked on every read).
  """
  source_manifest = embeddings.read_manifest(embeddings_dir)
  if verify:
    embeddings.check(embeddings_dir, source_manifest)
  source = lambda: embeddings.iter_shards(embeddings_dir, verify=False)  # noqa: E731
  model = _model_of_embeddings(embeddings_dir, source_manifest)
  return build_streaming(source, output_dir, source_manifest["count"], kind=kind, params=params,
                         model=model, shard_size=shard_size, progress=progress)
