"""Checks of what callers pass to the linker, with errors that name the problem."""
import re
from typing import List, Tuple

import numpy as np

from mel import languages

SUPPORTED_LANGUAGES = tuple(sorted(languages.MBERT_LANGUAGE_CODES))
_QID = re.compile(r"Q[1-9][0-9]*")


def qid_of(entity_id: str) -> str:
  """The entity's QID, "" for an entity known only by its Wikipedia page."""
  return entity_id if _QID.fullmatch(entity_id) else ""


def check_language(lang) -> str:
  """The language code, lower-cased; ValueError listing the supported codes otherwise."""
  code = lang.strip().lower().replace("_", "-") if isinstance(lang, str) else lang
  if code not in languages.MBERT_LANGUAGE_CODES:
    raise ValueError(f"unsupported language {lang!r}: mel links text in the 104 mBERT "
                     f"languages, given by Wikipedia code (zh covers Simplified and "
                     f"Traditional): {' '.join(SUPPORTED_LANGUAGES)}")
  return code


def check_top_k(top_k) -> int:
  if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
    raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
  return int(top_k)


def check_spans(text: str, spans) -> List[Tuple[int, int]]:
  """Caller spans ((start, end) pairs or {"start", "end"} dicts) as sorted (start, end);
  ValueError naming the first bad span."""
  out = []
  for k, span in enumerate(spans):
    if isinstance(span, dict):
      span = (span.get("start"), span.get("end"))
    try:
      start, end = span
    except (TypeError, ValueError):
      raise ValueError(f"span {k} ({span!r}) is not a (start, end) pair") from None
    if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
               for x in (start, end)):
      raise ValueError(f"span {k} ({span!r}): start and end must be integers")
    start, end = int(start), int(end)
    if not 0 <= start < end <= len(text):
      raise ValueError(f"span {k} [{start}, {end}) is out of range for a text of {len(text)} "
                       f"characters (need 0 <= start < end <= {len(text)})")
    if not text[start:end].strip():
      raise ValueError(f"span {k} [{start}, {end}) holds only whitespace")
    out.append((start, end, k))
  out.sort()
  for (a, b, i), (c, d, j) in zip(out, out[1:]):
    if c < b:
      raise ValueError(f"spans {i} [{a}, {b}) and {j} [{c}, {d}) overlap")
  return [(a, b) for a, b, _ in out]
