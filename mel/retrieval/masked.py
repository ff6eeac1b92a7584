"""An index whose dead rows are never returned: replaced and removed entities of a growing
knowledge base (mel.retrieval.kb), and the entities `mel evaluate --nil_fraction` takes out.

    index = MaskedIndex(load_index(path), dead_rows)      # dead_rows: int [m], rows of index
    rows, scores = index.search(queries, k)               # k live rows (or fewer), best first

Nothing is rebuilt: the inner index is searched for a few more than k results, doubled until
every query has k live ones or every live row was within reach (k + the dead rows it holds),
and the dead are dropped: the k best live rows, exactly so when the inner search is exact.
Many dead rows cost searches; `mel kb compact` rebuilds one index without them.
"""
from typing import Iterator

import numpy as np

from mel.retrieval.index import Index, as_queries, select_top_k

EXTRA = 8   # first search: k + EXTRA + k / 4 results (at most k + dead rows)


class MaskedIndex(Index):
  """inner without its dead rows; rows, ids and dimension are the inner index's."""

  kind = "masked"   # in memory only: a KB generation is its on-disk form

  def __init__(self, inner: Index, dead_rows=()):
    super().__init__(inner.ids, inner.dimension, inner.params, inner.model)
    self.inner = inner
    dead = np.unique(np.asarray(dead_rows, dtype=np.int64))
    if len(dead) and (dead[0] < 0 or dead[-1] >= len(inner)):
      raise ValueError(f"dead rows out of range for an index of {len(inner)} rows")
    self.dead = dead
    self.alive = None
    if len(dead):
      self.alive = np.ones(len(inner), dtype=bool)
      self.alive[dead] = False

  @property
  def live_count(self) -> int:
    return len(self) - len(self.dead)

  def is_live(self, rows: np.ndarray) -> np.ndarray:
    """bool [n] for rows int [n] (all >= 0)."""
    rows = np.asarray(rows, dtype=np.int64)
    return np.ones(rows.shape, bool) if self.alive is None else self.alive[rows]

  def live_ids(self) -> Iterator[str]:
    if self.alive is None:
      yield from self.inner.live_ids()
      return
    for entity_id, alive in zip(self.ids, self.alive.tolist()):
      if alive:
        yield entity_id

  def tree_leaves(self):
    return self.inner.tree_leaves()

  def search(self, queries, k, **options):
    """As Index.search, over the live rows only."""
    queries = as_queries(queries, self.dimension)
    if self.alive is None:
      return self.inner.search(queries, k, **options)
    enough = min(len(self), k + len(self.dead))   # reaches k live rows when exact
    # Most queries meet few dead rows: a few more than k, doubled while any query is short.
    # Asking for k + all dead rows at once costs a ScaNN search of that many (its reordering
    # grows with k): 800 dead rows in a 1M base made a query 1.9x slower (bench/kb_update.py).
    wanted = min(enough, k + min(len(self.dead), EXTRA + k // 4))
    rows_out = np.full((len(queries), k), -1, np.int64)
    scores_out = np.full((len(queries), k), -np.inf, np.float32)
    todo = np.arange(len(queries))
    while len(todo):
      rows, scores = self.inner.search(queries[todo], wanted, **options)
      alive = (rows >= 0) & self.alive[np.maximum(rows, 0)]
      done = (alive.sum(axis=1) >= k) | (wanted >= enough)
      best_rows, best_scores = select_top_k(np.where(alive, rows, -1),
                                            np.where(alive, scores, -np.inf), k)
      rows_out[todo[done]], scores_out[todo[done]] = best_rows[done], best_scores[done]
      todo = todo[~done]                       # only the queries still short search again
      wanted = min(enough, 2 * wanted)
    return rows_out, scores_out
