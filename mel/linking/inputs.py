"""Checks of what callers pass to the linker, with errors that name the problem."""
import re
import warnings
from typing import AbstractSet, List, Optional, Tuple

import numpy as np

from mel import languages

_QID = re.compile(r"Q[1-9][0-9]*")
# A BCP-47-like tag: a 2-3 letter language, then subtags (script, region, variant: pt-br,
# sr-latn, es-419); Wikipedia codes outside this pattern (simple, roa-tara) are listed.
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
# Wikipedia codes whose text is in another listed language (Simple English; Bokmål as "no").
_SAME_LANGUAGE = {"simple": "en", "nb": "no"}
_WARNED: set = set()   # codes warned about in this process (UnseenLanguageWarning)


class UnseenLanguageWarning(UserWarning):
  """A language code outside the model's pretraining languages: it is linked all the same (the
  tokenizer reads any script), but results may be poor."""


def qid_of(entity_id: str) -> str:
  """The entity's QID, "" for an entity known only by its Wikipedia page."""
  return entity_id if _QID.fullmatch(entity_id) else ""


def check_language(lang, known: Optional[AbstractSet[str]] = None) -> str:
  """The language code, lower-cased with "_" as "-" ("EN" -> "en", "zh_yue" -> "zh-yue").

  Any well-formed code is accepted: a Wikipedia language code (en, zh-yue, be-tarask, simple)
  or a BCP-47-like tag (gsw, pt-br); ValueError naming anything else ("", "12", "en us!").
  known: the model's pretraining languages (mel.languages.pretraining_languages); a code
  outside them (a tag counts as its language: pt-br as pt; simple as en) gives an
  UnseenLanguageWarning, once per code per process.
  """
  code = lang.strip().lower().replace("_", "-") if isinstance(lang, str) else None
  if not code or not (code in languages.WIKIPEDIA_LANGUAGE_CODES or
                      _LANGUAGE_TAG.fullmatch(code)):
    raise ValueError(f"invalid language {lang!r}: give a Wikipedia language code (en, zh, "
                     f"zh-yue, be-tarask, simple) or a BCP-47 language tag (gsw, pt-br)")
  if known is not None and not _covers(known, code) and code not in _WARNED:
    _WARNED.add(code)
    warnings.warn(f"language {code!r} is not one of the languages this model was pretrained "
                  f"on (mel.languages.pretraining_languages): mel links it, but results may "
                  f"be poor",
                  UnseenLanguageWarning, stacklevel=2)
  return code


def _covers(known: AbstractSet[str], code: str) -> bool:
  """code is a pretraining language, an alias of one (simple: en), or a tag (not itself a
  Wikipedia code) of one (pt-br: pt)."""
  if code in known or _SAME_LANGUAGE.get(code) in known:
    return True
  return code not in languages.WIKIPEDIA_LANGUAGE_CODES and code.split("-")[0] in known


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
