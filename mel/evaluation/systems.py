"""The systems evaluation compares: each answers queries with ranked entity ids.

- DualEncoder: a model dir's exported mention tower (mel.towers) and an index of its entity
  vectors (mel.retrieval); the index must come from that model (kind, step, entity table).
- AliasTableSystem: the alias-table baseline (mel.evaluation.alias_table).

A system has a name, describe() (what produced its figures, for the report), retrieve(queries,
k) and known(gold) (how many gold entities it can return at all). A system with scores (the
dual encoder) also has `index`, encode(queries) and search(vectors, k): the NIL evaluation
(mel.evaluation.nil) encodes the queries once and searches the index twice, as it is and without
the removed entities (top1_without).
"""
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mel.evaluation.datasets import Query

ALIAS_TABLE = "alias table"
SEARCH_BATCH = 1024   # queries per index search: bounds the [batch, k] id lists held at once


class DualEncoder:
  """A model dir's exported mention tower + an index of its entity encodings."""

  def __init__(self, name: str, model_dir: str, index_path: Optional[str] = None,
               batch_size: int = 256, progress: bool = True):
    from mel.model_dir import ModelDir
    from mel.retrieval import kb
    self.name, self.model_dir = name, model_dir
    self.batch_size, self.progress = batch_size, progress
    directory = ModelDir(model_dir)
    # no index_path: the model's knowledge base as it is now (index/ plus `mel kb` changes)
    self.index, self.kb = kb.open_search_index(model_dir, index_path)
    self.index_path = index_path or directory.index
    self.identity = directory.check_index(self.index.model, self.index_path)

  def describe(self) -> dict:
    return {"kind": "dual_encoder", "model_dir": os.path.abspath(self.model_dir),
            "model_kind": self.identity["kind"], "model_step": self.identity["step"],
            "entity_table_sha256": self.identity["entity_table_sha256"],
            "index": os.path.abspath(self.index_path), "index_kind": self.index.kind,
            "index_entities": len(self.index), "index_manifest_model": self.index.model,
            "kb_generation": self.kb.generation if self.kb else None,
            "live_entities": self.kb.live_count if self.kb else len(self.index)}

  def encode(self, queries: Sequence[Query]) -> np.ndarray:
    """float32 [Q, D]: the mention tower's vectors of the queries."""
    from mel import towers
    return towers.mention_tower(self.model_dir).encode(queries, self.batch_size, self.progress)

  def search(self, vectors: np.ndarray, k: int) -> List[List[str]]:
    """[Q][<=k] entity ids, best first, for vectors float32 [Q, D]."""
    from tqdm import tqdm
    out = []
    for start in tqdm(range(0, len(vectors), SEARCH_BATCH), desc=f"{self.name}: retrieval",
                      unit="batch", mininterval=5, disable=not self.progress):
      ids, _ = self.index.search_ids(vectors[start:start + SEARCH_BATCH], k)
      out.extend(ids)
    return out

  def retrieve(self, queries: Sequence[Query], k: int) -> List[List[str]]:
    return self.search(self.encode(queries), k)

  def known(self, gold: Sequence[str]) -> int:
    ids = set(self.index.live_ids())
    return sum(1 for g in gold if g in ids)


class AliasTableSystem:
  """The alias-table baseline (mel.evaluation.alias_table.AliasTable) as a system."""

  def __init__(self, table, source: dict):
    self.name = ALIAS_TABLE
    self.table = table
    self.source = source

  def describe(self) -> dict:
    return {"kind": "alias_table", "normalisation": "mel.surface_forms.normalize_surface",
            "back_off": "P(e | string, language), else P(e | string) pooled over languages",
            "strings": len(self.table.pooled), "entries": self.table.num_pairs,
            "training_mentions": self.table.num_mentions, **self.source}

  def retrieve(self, queries: Sequence[Query], k: int) -> List[List[str]]:
    return [self.table.candidates(q.mention, k, q.lang) for q in queries]

  def known(self, gold: Sequence[str]) -> int:
    return sum(1 for g in gold if g in self.table.entity_totals)


def top1_without(index, vectors: np.ndarray, dead_rows: Sequence[int]
                 ) -> Tuple[List[Optional[str]], np.ndarray]:
  """The best entity of each query and its cosine, searching index without its dead rows (the
  removed entities' rows, mel.retrieval.ids.rows_of) through a MaskedIndex: nothing is rebuilt.

  Args:
    index: a mel.retrieval Index.
    vectors: float32 [Q, D] query vectors.
    dead_rows: rows of index never to return.
  Returns:
    (ids [Q], None where nothing was found; cosines float64 [Q], -inf where nothing was found).
  """
  from mel.retrieval.masked import MaskedIndex
  masked = MaskedIndex(index, dead_rows)
  ids: List[Optional[str]] = []
  cosines = np.full(len(vectors), -np.inf)
  for start in range(0, len(vectors), SEARCH_BATCH):
    rows, scores = masked.search(vectors[start:start + SEARCH_BATCH], 1)
    found = rows[:, 0] >= 0
    names = iter(masked.take_ids(rows[found, 0]))
    ids.extend(next(names) if f else None for f in found.tolist())
    cosines[start:start + len(rows)] = np.where(found, scores[:, 0], -np.inf)
  return ids, cosines


def full_top1_without(index, vectors: np.ndarray, dead_rows: Sequence[int],
                      queries: Sequence[Query], anchors, removed) -> Tuple[List[Optional[str]],
                                                                          np.ndarray]:
  """Full mode's best entity of each query and its score (mel.scoring), searching index
  without its dead rows: FULL_CANDIDATES candidates from the wider search, re-ranked by cosine
  + prior weight x P(entity | mention, language) of the training anchors (mel.anchors; the
  removed entities taken out of it). The linker also scores anchor entities the search missed,
  with the entity tower: not here (no tower is loaded), so this is full mode over the
  candidates the index returns.

  Returns (ids [Q], None where nothing was found; scores float64 [Q], -inf where none).
  """
  from mel import scoring
  from mel.retrieval.masked import MaskedIndex
  masked = MaskedIndex(index, dead_rows)
  options = masked.wide_search_options(scoring.FULL_LEAVES_FACTOR)
  ids: List[Optional[str]] = []
  scores = np.full(len(vectors), -np.inf)
  for start in range(0, len(vectors), SEARCH_BATCH):
    found, cosines = masked.search_ids(vectors[start:start + SEARCH_BATCH],
                                       scoring.FULL_CANDIDATES, **options)
    for q, (candidates, row) in enumerate(zip(found, cosines.tolist()), start):
      if not candidates:
        ids.append(None)
        continue
      prior = {e: p for e, p in anchors.ranked(queries[q].mention, queries[q].lang)
               if e not in removed}
      best = min(((scoring.full_score(c, prior.get(e, 0.0)), e)
                  for e, c in zip(candidates, row)),
                 key=lambda x: scoring.rank_key(*x))
      ids.append(best[1])
      scores[q] = best[0]
  return ids, scores
