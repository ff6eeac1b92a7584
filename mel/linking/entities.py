"""The entity table as serving reads it: id and description of each index row."""
from typing import Dict, Iterable, Sequence, Tuple

import numpy as np

from mel import retrieval


class EntityTexts:
  """Entity id and description of each index row, from entities.tsv (line = table row).

  Index rows follow the table's order for brute-force indexes but not for streamed ScaNN
  builds (the training sample goes in first), so rows are mapped through the ids: a
  permutation array when they differ, nothing when they agree.
  """

  def __init__(self, path: str, index_ids: Sequence[str]):
    self.lines = retrieval.IdList.from_file(path)
    if len(self.lines) != len(index_ids):
      raise ValueError(f"{path}: {len(self.lines)} entities, the index holds {len(index_ids)}")
    table_ids = (line.split("\t", 1)[0] for line in self.lines)
    self.row_of = None
    if any(a != b for a, b in zip(table_ids, index_ids)):
      position = {line.split("\t", 1)[0]: i for i, line in enumerate(self.lines)}
      try:
        self.row_of = np.array([position[e] for e in index_ids], dtype=np.int64)
      except KeyError as e:
        raise ValueError(f"{path}: no entity {e.args[0]!r}, which the index holds") from None

  def __getitem__(self, index_row: int) -> Tuple[str, str]:
    row = index_row if self.row_of is None else int(self.row_of[index_row])
    entity_id, _, text = self.lines[row].partition("\t")
    return entity_id, text

  def texts_of(self, entity_ids: Iterable[str]) -> Dict[str, str]:
    """{entity id: text} for the ids the table holds (one pass over the table)."""
    wanted = set(entity_ids)
    found = {}
    for line in self.lines:
      entity_id, _, text = line.partition("\t")
      if entity_id in wanted:
        found[entity_id] = text
    return found
