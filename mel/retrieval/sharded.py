"""Several indexes searched as one: global row = shard offset + local row, top-k merged.

    <path>/manifest.json       kind "sharded", "shards": [{"path", "kind", "count"}], and the
                               checksums of each shard's manifest
    <path>/shard-00000/        one index directory per shard (its own manifest and files)

The top manifest checksums each shard's manifest, which checksums that shard's files: a chain,
so every byte is verified once on load. mel.retrieval.build writes sharded indexes one shard
at a time.
"""
import concurrent.futures
import os
from typing import List

import numpy as np

from mel import manifest as manifests
from mel.retrieval.ids import ConcatIds
from mel.retrieval.index import (MANIFEST, Index, IndexLoadError, as_queries, load_index,
                                 select_top_k)


def shard_name(i: int) -> str:
  return f"shard-{i:05d}"


def shard_entry(i: int, shard_manifest: dict) -> dict:
  """The top manifest's entry for shard i, from the shard's own manifest."""
  return {"path": shard_name(i), "kind": shard_manifest["kind"],
          "count": shard_manifest["count"]}


def sharded_fields(directory: str, shards: List[dict]) -> dict:
  """The "shards" and "files" of a sharded manifest whose shards are written in directory."""
  files = {f"{s['path']}/{MANIFEST}": manifests.file_entry(
      os.path.join(directory, s["path"], MANIFEST)) for s in shards}
  return {"shards": shards, "files": files}


class ShardedIndex(Index):
  """Several indexes searched together: global row = shard offset + local row."""

  kind = "sharded"

  def __init__(self, shards: List[Index], params=None, model=None):
    if not shards:
      raise ValueError("a sharded index needs at least one shard")
    dims = {s.dimension for s in shards}
    if len(dims) != 1:
      raise ValueError(f"shards of different dimensions {sorted(dims)}")
    super().__init__(ConcatIds([s.ids for s in shards]), dims.pop(), params, model)
    self.shards = shards
    self.offsets = np.cumsum([0] + [len(s) for s in shards])[:-1].tolist()
    self.threads = min(len(shards), os.cpu_count() or 1)
    self._pool = None

  def live_ids(self):
    for shard in self.shards:
      yield from shard.live_ids()

  def tree_leaves(self):
    trees = [shard.tree_leaves() for shard in self.shards]
    if any(t is None for t in trees):
      return None
    return max(t[0] for t in trees), min(t[1] for t in trees)

  def search(self, queries, k, **options):
    """As Index.search over all shards; options (e.g. leaves_to_search) go to each shard."""
    queries = as_queries(queries, self.dimension)

    def search_shard(shard, offset):
      rows, scores = shard.search(queries, k, **options)
      return np.where(rows >= 0, rows + offset, -1), scores

    # A batch keeps every core busy inside each shard's search; fewer queries than cores
    # leave cores idle there, so the shards are searched side by side (ScaNN and BLAS release
    # the GIL; 20M in 3 shards, one query: see bench/RESULTS.md). The largest shard is
    # searched in this thread: a hand-off to the pool costs tens of microseconds, as much as
    # a small shard's whole search (a knowledge base's added segment, bench/kb_update.py).
    if self.threads > 1 and len(queries) < self.threads:
      if self._pool is None:
        self._pool = concurrent.futures.ThreadPoolExecutor(self.threads - 1)
      largest = max(range(len(self.shards)), key=lambda i: len(self.shards[i]))
      others = [self._pool.submit(search_shard, shard, offset)
                for i, (shard, offset) in enumerate(zip(self.shards, self.offsets))
                if i != largest]
      results = [search_shard(self.shards[largest], self.offsets[largest])]
      results += [future.result() for future in others]
    else:
      results = [search_shard(s, o) for s, o in zip(self.shards, self.offsets)]
    rows = np.concatenate([r for r, _ in results], axis=1)
    scores = np.concatenate([s for _, s in results], axis=1)
    return select_top_k(rows, scores, k)

  def _write_files(self, directory):
    shards = []
    for i, shard in enumerate(self.shards):
      shards.append(shard_entry(i, shard.write_into(os.path.join(directory, shard_name(i)))))
    return sharded_fields(directory, shards)

  @classmethod
  def from_directory(cls, path, manifest, verify=True):
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
