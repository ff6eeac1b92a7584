"""Frequency bins of the paper (Sec. 5.2.1, Table 6): how often an entity was seen in training.

Shared by evaluation (R@k per bin) and the Mewsli-9 format (its freq_bin column).
"""
import bisect

BIN_EDGES = (1, 10, 100, 1_000, 10_000)
BIN_LABELS = ("[0, 1)", "[1, 10)", "[10, 100)", "[100, 1k)", "[1k, 10k)", "[10k, +)")


def frequency_bin(count: int) -> int:
  """Bin index 0-5 of a training count: 0 -> 0, 1..9 -> 1, 10..99 -> 2, ..., >= 10k -> 5."""
  if count < 0:
    raise ValueError(f"negative training count {count}")
  return bisect.bisect_right(BIN_EDGES, count)
