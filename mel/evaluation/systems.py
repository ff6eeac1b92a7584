"""The systems evaluation compares: each answers queries with ranked entity ids.

- DualEncoder: a model dir's exported mention tower (mel.towers) and an index of its entity
  vectors (mel.retrieval); the index must come from that model (kind, step, entity table).
- AliasTableSystem: the alias-table baseline (mel.evaluation.alias_table).
- Reranked ("<base> +CA", paper Sec. 5.5.2): a dual encoder's ranked predictions with its top K
  re-scored by a cross-attention reranker (mel.towers.Reranker, a model.kind CA model dir).

A system has a name, describe() (what produced its figures, for the report), retrieve(queries,
k) and known(gold) (how many gold entities it can return at all). A system with scores (the
dual encoder) also has `index`, encode(queries) and search(vectors, k): the NIL evaluation
(mel.evaluation.nil) encodes the queries once and searches the index twice, as it is and without
the removed entities (top1_without). A Reranked system has `base` (its dual encoder) and
rerank(queries, predictions): it reorders the predictions its base made, searching nothing.
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

  def texts(self):
    """What the index's rows are: texts_of(ids) -> {entity id: text} (the knowledge base's
    live entities, or the model's entities.tsv for an --index given)."""
    if self.kb is not None:
      return self.kb.entities
    from mel.model_dir import ModelDir
    from mel.retrieval.kb import EntityTexts
    return EntityTexts(ModelDir(self.model_dir).entities, self.index.ids)


RERANK_CHUNK = 1024   # queries whose pairs are built and scored at once (bounds the strings held)


class Reranked:
  """"<base> +CA": base's ranked predictions, the first `top` reordered by a reranker's logits.

  Each query's (doc_title, left_context, mention, right_context) is paired with the texts of its
  top `top` entities as base's index rows give them (DualEncoder.texts); the pairs are scored
  by the reranker (mel.towers.Reranker, max_batch pairs per call), the top is sorted by logit
  (ties keep base's order) and base's ranks after it follow unchanged: R@k for k >= top is
  base's, R@1 moves.
  """

  def __init__(self, base: DualEncoder, reranker_dir: str, top: int = 5,
               progress: bool = True):
    from mel import towers
    if top < 1:
      raise ValueError(f"--rerank_top must be 1 or more, got {top}")
    self.base, self.top, self.progress = base, int(top), progress
    self.name = f"{base.name} +CA"
    self.reranker_dir = reranker_dir
    self.reranker = towers.reranker(reranker_dir)   # ValueError unless a model.kind CA dir

  def describe(self) -> dict:
    manifest = self.reranker.manifest
    return {"kind": "reranked", "base_system": self.base.name,
            "reranker_dir": os.path.abspath(self.reranker_dir),
            "reranker_step": manifest.get("step"), "reranker_loss": manifest.get("loss"),
            "reranker_probability": manifest.get("probability"), "rerank_top": self.top,
            "candidate_texts": f"{self.base.name}'s index rows (its entity texts)",
            "order": "reranker logit over the base's top rerank_top (ties: the base's order), "
                     "then the base's ranks unchanged"}

  def known(self, gold: Sequence[str]) -> int:
    return self.base.known(gold)

  def logits(self, queries: Sequence[Query], predictions: Sequence[Sequence[str]], texts=None,
             desc: str = "reranking") -> List[np.ndarray]:
    """[Q] float32 [min(top, len(predictions[q]))]: the reranker's logit of each query with each
    of its first `top` entities (texts: base.texts() unless given)."""
    from tqdm import tqdm
    texts = texts if texts is not None else self.base.texts()
    out: List[np.ndarray] = []
    with tqdm(total=len(queries), desc=f"{self.name}: {desc}", unit="query", mininterval=5,
              disable=not self.progress) as bar:
      for start in range(0, len(queries), RERANK_CHUNK):
        chunk = list(zip(queries[start:start + RERANK_CHUNK],
                         predictions[start:start + RERANK_CHUNK]))
        known = texts.texts_of({e for _, p in chunk for e in p[:self.top]})
        pairs = [(q, known.get(e, "")) for q, p in chunk for e in p[:self.top]]
        logits = self.reranker([q.doc_title for q, _ in pairs], [q.left_context for q, _ in pairs],
                               [q.mention for q, _ in pairs], [q.right_context for q, _ in pairs],
                               [t for _, t in pairs])
        at = 0
        for _, p in chunk:
          n = min(self.top, len(p))
          out.append(np.asarray(logits[at:at + n], np.float32))
          at += n
        bar.update(len(chunk))
    return out

  def rerank(self, queries: Sequence[Query], predictions: Sequence[Sequence[str]]
             ) -> List[List[str]]:
    """base's predictions [Q][k] -> this system's [Q][k] (see the class docstring)."""
    return rerank_predictions(predictions, self.logits(queries, predictions), self.top)

  def retrieve(self, queries: Sequence[Query], k: int) -> List[List[str]]:
    return self.rerank(queries, self.base.retrieve(queries, max(k, self.top)))


def rerank_predictions(predictions: Sequence[Sequence[str]], logits: Sequence[np.ndarray],
                       top: int) -> List[List[str]]:
  """Each query's first `top` predictions sorted by logit, best first (ties keep their order),
  then the rest as they were. logits[q] has one value per prediction in the first `top`."""
  out = []
  for ranked, scores in zip(predictions, logits):
    head = list(ranked[:top])
    if len(scores) != len(head):
      raise ValueError(f"{len(scores)} logits for {len(head)} candidates")
    order = sorted(range(len(head)), key=lambda i: (-float(scores[i]), i))
    out.append([head[i] for i in order] + list(ranked[top:]))
  return out


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


def topk_without(index, vectors: np.ndarray, dead_rows: Sequence[int], k: int
                 ) -> List[List[str]]:
  """[Q][<=k] entity ids, best first, searching index without its dead rows (as top1_without):
  the candidates a Reranked system reorders when the removed entities are out of the KB."""
  from mel.retrieval.masked import MaskedIndex
  masked = MaskedIndex(index, dead_rows)
  out: List[List[str]] = []
  for start in range(0, len(vectors), SEARCH_BATCH):
    ids, _ = masked.search_ids(vectors[start:start + SEARCH_BATCH], k)
    out.extend(list(row) for row in ids)
  return out


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
