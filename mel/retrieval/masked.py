"""An index whose dead rows are never returned: replaced and removed entities of a growing
knowledge base (mel.retrieval.kb), and the entities `mel evaluate --nil_fraction` takes out.

    index = MaskedIndex(load_index(path), dead_rows)      # dead_rows: int [m], rows of index
    rows, scores = index.search(queries, k)               # k live rows (or fewer), best first

Nothing is rebuilt: the inner index is searched for k + (dead rows it holds) results, which
always leaves k live ones when the search is exact, and the dead are dropped. When that is many
more than k (a large removal), the search starts at 2k and doubles until k live rows are found
or every live row was within reach; `mel kb compact` then rebuilds one index without them.
"""
from typing import Iterator

import numpy as np

from mel.retrieval.index import Index, as_queries, select_top_k

WIDE_SEARCH = 8   # dead rows beyond WIDE_SEARCH x k: search in doubling steps instead


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
    wanted = enough if len(self.dead) <= WIDE_SEARCH * k else min(enough, 2 * k)
    while True:
      rows, scores = self.inner.search(queries, wanted, **options)
      alive = (rows >= 0) & self.alive[np.maximum(rows, 0)]
      if wanted >= enough or alive.sum(axis=1).min(initial=k) >= k:
        break
      wanted = min(enough, 2 * wanted)
    return select_top_k(np.where(alive, rows, -1), np.where(alive, scores, -np.inf), k)
