"""NIL figures: which gold entities to take out of the index, which queries choose the threshold,
the threshold, and what it gives on the other queries (`mel evaluate --nil_fraction F`).

    removed = removed_entities(gold_entities, fraction=0.2, seed=0)   # the same for every system
    calibration = calibration_half(query_ids, seed=0)                 # bool [Q]
    section = nil_section(cosines, correct, in_kb, calibration)       # threshold, test, curve

Per query the system gives its top-1 entity and cosine, searched without the removed entities:
cosines float [Q] (-inf: no candidate), correct bool [Q] (the top-1 is the gold), in_kb bool [Q]
(the gold is in the searched index; the others, out-of-KB, should come back NIL). At threshold
t a query is linked when its cosine >= t (never when it has no candidate), else it abstains
(NIL). Over a set of queries:

    accuracy           (in-KB linked to their gold + out-of-KB abstained) / queries
    NIL precision      out-of-KB abstained / abstained
    NIL recall         out-of-KB abstained / out-of-KB
    linking precision  linked to their gold / linked (all linked, in-KB or not)
    coverage           in-KB linked (to any entity) / in-KB

each None where its denominator is 0.

**Choosing the threshold** (choose_threshold): the calibration half's m distinct cosines
u_1 < ... < u_m leave m + 1 different outcomes: link the queries with cosine >= u_i, or link
none. The one with the highest accuracy wins; ties go to the lowest threshold (the most queries
linked at the same accuracy). Its threshold is the midpoint (u_{i-1} + u_i) / 2, which links the
same calibration queries as u_i but sits between them (u_1 itself for i = 1); "link none" is
u_m + NONE_MARGIN.

Entities and queries are drawn by sha256 of (seed, kind, id), not Python's hash() (salted per
process): the same seed gives the same removal and split on every machine and for every system.
Pure functions: no model, index or file is read here.
"""
import hashlib
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

NONE_MARGIN = 1e-3    # "link none": this far above the highest calibration cosine
CURVE_POINTS = 21     # thresholds of the curve across the test half's cosine range
TIE_RULE = "highest calibration accuracy, ties to the lowest threshold (the most linked)"


def draw(seed: int, kind: str, key: str) -> int:
  """A 64-bit number fixed by (seed, kind, key): the order entities and queries are drawn in."""
  digest = hashlib.sha256(f"{seed}\t{kind}\t{key}".encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big")


def removed_entities(entities: Iterable[str], fraction: float, seed: int) -> List[str]:
  """round(fraction x n) of the n distinct entities (halves round up), those drawn first; sorted.

  A query whose gold is removed is out-of-KB, and so is every other mention of that entity.
  """
  if not 0 <= fraction <= 1:
    raise ValueError(f"the NIL fraction must be in [0, 1], got {fraction}")
  distinct = sorted(set(entities))
  count = int(fraction * len(distinct) + 0.5)
  return sorted(sorted(distinct, key=lambda e: (draw(seed, "entity", e), e))[:count])


def calibration_half(query_ids: Sequence[str], seed: int) -> np.ndarray:
  """bool [Q]: the half of the queries (rounded up) that choose the threshold, drawn by id;
  the others are the test half."""
  order = sorted(range(len(query_ids)), key=lambda q: (draw(seed, "query", query_ids[q]), q))
  calibration = np.zeros(len(query_ids), bool)
  calibration[order[:(len(query_ids) + 1) // 2]] = True
  return calibration


def _ratio(numerator: int, denominator: int) -> Optional[float]:
  return numerator / denominator if denominator else None


def figures(cosines, correct, in_kb, threshold: float) -> dict:
  """The figures above at one threshold, with the counts they come from."""
  cosines = np.asarray(cosines, np.float64)
  correct = np.asarray(correct, bool)
  in_kb = np.asarray(in_kb, bool)
  linked = cosines >= threshold
  out = ~in_kb
  right = int((linked & correct).sum())
  nil_right = int((~linked & out).sum())
  n, n_linked, n_in = len(cosines), int(linked.sum()), int(in_kb.sum())
  return {"threshold": float(threshold), "queries": n, "in_kb": n_in, "out_of_kb": n - n_in,
          "linked": n_linked, "abstained": n - n_linked,
          "accuracy": _ratio(right + nil_right, n),
          "nil_precision": _ratio(nil_right, n - n_linked),
          "nil_recall": _ratio(nil_right, n - n_in),
          "linking_precision": _ratio(right, n_linked),
          "coverage": _ratio(int((linked & in_kb).sum()), n_in)}


def choose_threshold(cosines, correct, in_kb) -> Tuple[float, float]:
  """(threshold, accuracy at it) of the calibration queries; see the module docstring."""
  cosines = np.asarray(cosines, np.float64)
  correct = np.asarray(correct, bool)
  in_kb = np.asarray(in_kb, bool)
  cuts = np.unique(cosines[np.isfinite(cosines)])   # u_1 < ... < u_m
  if len(cuts) == 0:
    raise ValueError("no calibration query has a candidate: no threshold to choose")
  # per cut u_i: correct queries with cosine >= u_i, plus out-of-KB ones below it (-inf too)
  right = np.sort(cosines[correct])
  out = np.sort(cosines[~in_kb])
  hits = (len(right) - np.searchsorted(right, cuts, side="left")
          + np.searchsorted(out, cuts, side="left"))
  hits = np.append(hits, len(out))                   # link none
  best = int(np.argmax(hits))                        # the first maximum: the lowest threshold
  if best == len(cuts):
    threshold = float(cuts[-1]) + NONE_MARGIN
  elif best == 0:
    threshold = float(cuts[0])
  else:
    threshold = (float(cuts[best - 1]) + float(cuts[best])) / 2
  return threshold, float(hits[best]) / len(cosines)


def curve_thresholds(cosines, chosen: float, points: int = CURVE_POINTS) -> List[float]:
  """points thresholds evenly across the finite cosines' range (4 decimals), and chosen."""
  cosines = np.asarray(cosines, np.float64)
  finite = cosines[np.isfinite(cosines)]
  spread = [] if len(finite) == 0 else np.linspace(finite.min(), finite.max(), points)
  return sorted({round(float(t), 4) for t in spread} | {float(chosen)})


def nil_section(cosines, correct, in_kb, calibration, points: int = CURVE_POINTS) -> dict:
  """One system's NIL figures: the threshold chosen on the calibration half, the figures at it
  on both halves, and the test half's curve.

  Args:
    cosines: float [Q], the top-1 cosine searched without the removed entities (-inf: none).
    correct: bool [Q], the top-1 is the gold entity.
    in_kb: bool [Q], the gold is in the searched index.
    calibration: bool [Q], the half that chooses the threshold (calibration_half).
  Returns:
    {"threshold", "tie_rule", "calibration": figures, "test": figures, "curve": [figures]}.
  """
  cosines = np.asarray(cosines, np.float64)
  correct = np.asarray(correct, bool)
  in_kb = np.asarray(in_kb, bool)
  calibration = np.asarray(calibration, bool)
  if not len(cosines) == len(correct) == len(in_kb) == len(calibration):
    raise ValueError(f"cosines, correct, in_kb and calibration differ in length: "
                     f"{len(cosines)}, {len(correct)}, {len(in_kb)}, {len(calibration)}")
  if (correct & ~in_kb).any():
    raise ValueError("a query is correct whose gold is not in the index")
  cal, test = calibration, ~calibration
  threshold, _ = choose_threshold(cosines[cal], correct[cal], in_kb[cal])
  return {"threshold": threshold, "tie_rule": TIE_RULE,
          "calibration": figures(cosines[cal], correct[cal], in_kb[cal], threshold),
          "test": figures(cosines[test], correct[test], in_kb[test], threshold),
          "curve": [figures(cosines[test], correct[test], in_kb[test], t)
                    for t in curve_thresholds(cosines[test], threshold, points)]}
