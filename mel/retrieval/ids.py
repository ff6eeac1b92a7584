"""Entity ids of an index's rows: a compact read-only sequence, and the ids of shards as one.

20M ids as Python strings would cost ~1.3 GB of serving memory; an IdList holds the ids file's
bytes and one end offset per row, and decodes a row when it is read.

    <index>/ids.txt    entity ids, one per line, in row order (write_ids, IdList.from_file)
"""
from collections.abc import Sequence
from typing import Dict, Iterable, Iterator, List, Type

import numpy as np


class IdList(Sequence):
  """Entity ids as one UTF-8 blob + end offsets; indexing returns str."""

  def __init__(self, blob: bytes, ends: np.ndarray):
    self._blob = blob
    self._ends = ends  # [N] end offset of each id (exclusive, before its newline)

  @classmethod
  def from_file(cls, path: str, error: Type[Exception] = ValueError) -> "IdList":
    """The lines of path (one id each); error naming the file when its last line is cut."""
    with open(path, "rb") as f:
      blob = f.read()
    if blob and not blob.endswith(b"\n"):
      raise error(f"{path}: truncated (no final newline)")
    newlines = np.flatnonzero(np.frombuffer(blob, dtype=np.uint8) == 10)
    dtype = np.uint32 if len(blob) < 2**32 else np.int64
    return cls(blob, newlines.astype(dtype))

  def __len__(self) -> int:
    return len(self._ends)

  def _start(self, i: int) -> int:
    return 0 if i == 0 else int(self._ends[i - 1]) + 1

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    n = len(self)
    if i < 0:
      i += n
    if not 0 <= i < n:
      raise IndexError(f"id row {i} out of range for {n} ids")
    return self._blob[self._start(i):int(self._ends[i])].decode("utf-8")

  def __iter__(self) -> Iterator[str]:
    start = 0
    for end in self._ends.tolist():
      yield self._blob[start:end].decode("utf-8")
      start = end + 1

  def take(self, rows: np.ndarray) -> List[str]:
    """ids of rows [n] (all valid) as a list."""
    rows = np.asarray(rows, dtype=np.int64)
    ends = self._ends[rows].astype(np.int64)
    starts = np.where(rows > 0, self._ends[np.maximum(rows - 1, 0)].astype(np.int64) + 1, 0)
    blob = self._blob
    return [blob[s:e].decode("utf-8") for s, e in zip(starts.tolist(), ends.tolist())]


class ConcatIds(Sequence):
  """The ids of several shards as one sequence (global row = shard offset + local row)."""

  def __init__(self, parts: List[Sequence]):
    self._parts = parts
    self._offsets = np.cumsum([0] + [len(p) for p in parts])

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    if i < 0:
      i += len(self)
    if not 0 <= i < len(self):
      raise IndexError(f"id row {i} out of range for {len(self)} ids")
    part = int(np.searchsorted(self._offsets, i, side="right")) - 1
    return self._parts[part][i - int(self._offsets[part])]

  def __iter__(self) -> Iterator[str]:
    for part in self._parts:
      yield from part

  def take(self, rows: np.ndarray) -> List[str]:
    """ids of rows [n] (all valid) as a list, each shard's rows taken at once."""
    rows = np.asarray(rows, dtype=np.int64)
    parts = np.searchsorted(self._offsets, rows, side="right") - 1
    out = [None] * len(rows)
    for p in np.unique(parts).tolist():
      where = np.flatnonzero(parts == p)
      local = rows[where] - self._offsets[p]
      for i, entity_id in zip(where.tolist(), take(self._parts[p], local)):
        out[i] = entity_id
    return out


def take(ids: Sequence, rows: np.ndarray) -> List[str]:
  """ids[rows] as a list for rows int [n] (all >= 0), vectorised where ids supports it."""
  if hasattr(ids, "take"):
    return ids.take(rows)
  return [ids[r] for r in np.asarray(rows).tolist()]


def write_ids(path: str, ids: Iterable[str]) -> int:
  """Writes ids one per line; returns how many. ValueError for an empty id or one with a
  newline (it would shift every later row)."""
  count = 0
  with open(path, "w", encoding="utf-8") as f:
    for entity_id in ids:
      if not entity_id or "\n" in entity_id:
        raise ValueError(f"bad entity id {entity_id!r}: empty or contains a newline")
      f.write(entity_id + "\n")
      count += 1
  return count


def rows_of(ids: Sequence, wanted: Iterable[str]) -> Dict[str, List[int]]:
  """{entity id: its rows in ids} for the wanted ids that ids holds (one pass over ids)."""
  wanted = set(wanted)
  found: Dict[str, List[int]] = {}
  if wanted:
    for row, entity_id in enumerate(ids):
      if entity_id in wanted:
        found.setdefault(entity_id, []).append(row)
  return found
