"""Deterministic, document-level holdout sampling (the paper's per-language heldout set).

Each document gets a hash in [0, 1) from (seed, wiki, doc_id). Per language, documents are taken
in hash order until the holdout has at least `target` mentions (whole documents, so no document
is on both sides), but never more than `max_fraction` of the language's mentions.
"""
import hashlib
from typing import Iterable, List, Tuple


def stable_hash(*parts: str) -> int:
  """A 64-bit hash that is the same in every process and on every runner (unlike hash())."""
  digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
  return int.from_bytes(digest, "big")


def doc_fraction(seed: int, wiki: str, doc_id: int) -> float:
  """In [0, 1): the hash's top 53 bits, which a float holds exactly."""
  return (stable_hash(str(seed), "holdout", wiki, str(doc_id)) >> 11) / 2.0**53


def candidate_threshold(target: int, language_total: int, oversample: float = 4.0) -> float:
  """Documents with doc_fraction below this are enough to find `target` mentions (w.h.p.)."""
  if language_total <= 0:
    return 0.0
  return min(1.0, oversample * target / language_total)


def select_holdout(docs: Iterable[Tuple[float, str, int, int]], target: int,
                   language_total: int, max_fraction: float) -> List[Tuple[str, int]]:
  """docs: (fraction, wiki, doc_id, mentions). Returns the (wiki, doc_id) pairs held out."""
  cap = max_fraction * language_total
  chosen, taken = [], 0
  for _, wiki, doc_id, n in sorted(docs):
    if taken >= target:
      break
    if taken + n > cap:
      continue  # this document would push the holdout past the cap; smaller ones may fit
    chosen.append((wiki, doc_id))
    taken += n
  return chosen
