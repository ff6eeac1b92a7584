"""R@k of ranked predictions: the gold's rank per query, recall at a cut-off, and one system's
figures by frequency bin, over all queries (micro), over the bins (macro) and per language.

Pure functions of ranks, bins and languages: no model, index or file is read here.
"""
from typing import Optional, Sequence

import numpy as np

from mel.bins import BIN_LABELS


def gold_ranks(predictions: Sequence[Sequence[str]], gold: Sequence[str]) -> np.ndarray:
  """int64 [Q]: 1-based rank of gold[q] in predictions[q], 0 when it is not there."""
  if len(predictions) != len(gold):
    raise ValueError(f"{len(predictions)} prediction lists for {len(gold)} queries")
  ranks = np.zeros(len(gold), np.int64)
  for q, (ranked, g) in enumerate(zip(predictions, gold)):
    for r, entity_id in enumerate(ranked, 1):
      if entity_id == g:
        ranks[q] = r
        break
  return ranks


def recall_at(ranks: np.ndarray, k: int) -> Optional[float]:
  """Share of queries with the gold within the first k; None for no queries."""
  if len(ranks) == 0:
    return None
  return float(np.mean((ranks >= 1) & (ranks <= k)))


def _mean(values) -> Optional[float]:
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


def recall_report(ranks: np.ndarray, bins: Sequence[int], langs: Sequence[str],
                  ks: Sequence[int]) -> dict:
  """All figures of one system.

  Args:
    ranks: int [Q], rank of the gold (0: not retrieved).
    bins: [Q] frequency bin index of each query's gold entity (mel.bins).
    langs: [Q] language of each query.
    ks: the cut-offs.
  Returns:
    {"queries", "micro": {"R@k"}, "macro": {"R@k"} (mean over non-empty bins), "bins": [{"bin",
    "queries", "R@k"...}] (all six; R@k None when empty), "empty_bins", "languages": {lang:
    {"queries", "R@k"}}, "language_macro": {"R@k"}}.
  """
  ranks = np.asarray(ranks)
  bins = np.asarray(bins, np.int64)
  langs = np.asarray(langs, object)
  if not len(ranks) == len(bins) == len(langs):
    raise ValueError(f"ranks, bins and langs differ in length: {len(ranks)}, {len(bins)}, "
                     f"{len(langs)}")
  keys = [f"R@{k}" for k in ks]

  def row(selected) -> dict:
    return {"queries": int(len(selected)),
            **{key: recall_at(selected, k) for key, k in zip(keys, ks)}}

  per_bin = [{"bin": label, **row(ranks[bins == b])} for b, label in enumerate(BIN_LABELS)]
  languages = {lang: row(ranks[langs == lang]) for lang in sorted(set(langs.tolist()))}
  return {
      "queries": int(len(ranks)),
      "micro": {key: recall_at(ranks, k) for key, k in zip(keys, ks)},
      "macro": {key: _mean(r[key] for r in per_bin) for key in keys},
      "bins": per_bin,
      "empty_bins": [r["bin"] for r in per_bin if r["queries"] == 0],
      "languages": languages,
      "language_macro": {key: _mean(r[key] for r in languages.values()) for key in keys},
  }
