"""Exact search in numpy: the ground truth the approximate indexes are measured against.

    <path>/ids.txt, <path>/vectors.npy (float32 [N, D], memory-mapped on load)
"""
import os
from typing import Optional, Sequence

import numpy as np

from mel.retrieval.ids import write_ids
from mel.retrieval.index import (IDS, Index, IndexLoadError, as_queries, check_shape, read_ids,
                                 select_top_k)

VECTORS = "vectors.npy"


class BruteForceIndex(Index):
  """Exact inner product in numpy. Memory: the float32 vectors."""

  kind = "brute_force"
  CHUNK_BYTES = 256 << 20  # bound on the [queries, database chunk] score block
  QUERY_BLOCK = 1024

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
    queries = as_queries(queries, self.dimension)
    n = self.vectors.shape[0]
    rows_out, scores_out = [], []
    for qs in range(0, max(len(queries), 1), self.QUERY_BLOCK):
      block = queries[qs:qs + self.QUERY_BLOCK]
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
        best_rows, best_scores = select_top_k(np.concatenate([best_rows, rows], axis=1),
                                              np.concatenate([best_scores, scores], axis=1), k)
      if best_rows.shape[1] < k:
        best_rows, best_scores = select_top_k(best_rows, best_scores, k)
      rows_out.append(best_rows)
      scores_out.append(best_scores)
    return np.concatenate(rows_out)[:len(queries)], np.concatenate(scores_out)[:len(queries)]

  def _write_files(self, directory):
    write_ids(os.path.join(directory, IDS), self.ids)
    np.save(os.path.join(directory, VECTORS), np.asarray(self.vectors, dtype=np.float32))
    return {"ids": IDS}

  @classmethod
  def from_directory(cls, path, manifest, verify=True):
    ids = read_ids(path, manifest)
    vectors_path = os.path.join(path, VECTORS)
    if not os.path.exists(vectors_path):
      raise IndexLoadError(f"{vectors_path}: missing")
    check_shape(vectors_path, manifest)
    # Memory-mapped: pages come from the page cache, nothing is copied on load.
    vectors = np.load(vectors_path, mmap_mode="r")
    return cls(ids, vectors, manifest.get("params"), manifest.get("model"))
