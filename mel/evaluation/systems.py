"""The systems evaluation compares: each answers queries with ranked entity ids.

- DualEncoder: a model dir's exported mention tower (mel.towers) and an index of its entity
  vectors (mel.retrieval); the index must come from that model (kind, step, entity table).
- AliasTableSystem: the alias-table baseline (mel.evaluation.alias_table).

A system has a name, describe() (what produced its figures, for the report), retrieve(queries,
k) and known(gold) (how many gold entities it can return at all).
"""
import os
from typing import List, Optional, Sequence

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

  def retrieve(self, queries: Sequence[Query], k: int) -> List[List[str]]:
    from tqdm import tqdm
    from mel import towers
    vectors = towers.mention_tower(self.model_dir).encode(queries, self.batch_size,
                                                          self.progress)
    out = []
    for start in tqdm(range(0, len(queries), SEARCH_BATCH), desc=f"{self.name}: retrieval",
                      unit="batch", mininterval=5, disable=not self.progress):
      ids, _ = self.index.search_ids(vectors[start:start + SEARCH_BATCH], k)
      out.extend(ids)
    return out

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
