"""How mention strings are compared: one normalisation for the alias table and the spotter.

Anchor texts from training and spans found in new text must meet on the same key, so both
`mel.evaluation.alias_table` (P(entity | mention string), evaluation baseline) and `mel.linking.spotter`
(the offline spotter) normalise with `normalize_surface`.
"""
import unicodedata


def normalize_surface(text: str) -> str:
  """NFKC, case-folded, whitespace runs collapsed to one space, stripped.

  NFKC folds full-width/compatibility forms (ｔｅｘｔ -> text, ﬁ -> fi); casefold is the Unicode
  caseless match (Straße -> strasse); scripts without case are unchanged.
  """
  return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


# ---------------------------------------------------------------------------------------------
# The same normalisation with offsets back to the original text (the spotter's view of a text)


class NormalizedText:
  """normalize_surface(original) with, per normalised character, the original span it came from.

  text == normalize_surface(original); for 0 <= i < len(text), original[starts[i]:ends[i]] is
  the piece of the original (one character, or a character with the combining marks NFKC
  merged into it) that produced text[i]. A collapsed whitespace run maps to its first
  character. starts and ends are int64 numpy arrays [len(text)], non-decreasing.
  """

  __slots__ = ("text", "starts", "ends")

  def __init__(self, text: str, starts, ends):
    self.text, self.starts, self.ends = text, starts, ends

  def span(self, i: int, j: int):
    """Original (start, end) of the normalised span [i, j), j > i."""
    return int(self.starts[i]), int(self.ends[j - 1])

  def is_piece_boundary(self, i: int) -> bool:
    """True if a span may start (or end) before text[i]: it does not split an original piece.

    One original piece can give several normalised characters (ß -> ss, ﬁ -> fi, ㍻ -> 平成);
    a match that began or ended inside such a piece would have no original span.
    """
    if i <= 0 or i >= len(self.text):
      return True
    return self.starts[i] != self.starts[i - 1]


_SEGMENT_RE = None


def _segment_re():
  """Regex of NFKC-independent pieces: a character plus the characters that may merge into it.

  NFKC of a text is the concatenation of NFKC of its pieces when every piece starts at a
  character whose full decomposition starts with a starter (canonical combining class 0) that
  no composition pairs with what precedes it (Unicode UAX #15, "normalization boundaries").
  The non-starters are found once by scanning the Unicode database (~0.4 s): combining marks,
  second halves of canonical compositions (e.g. Bengali U+09BE, which composes with U+09C7),
  Hangul vowel and final jamo, and characters that decompose to those.
  """
  global _SEGMENT_RE
  if _SEGMENT_RE is None:
    import re
    seconds = {chr(cp) for cp in list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3))}
    for cp in range(0x110000):
      decomposition = unicodedata.decomposition(chr(cp))
      if decomposition and not decomposition.startswith("<"):
        parts = decomposition.split()
        if len(parts) == 2:
          a, b = (chr(int(x, 16)) for x in parts)
          if unicodedata.normalize("NFC", a + b) == chr(cp):
            seconds.add(b)
    ranges, start, prev = [], None, None
    for cp in range(0x110000):
      c = chr(cp)
      first = unicodedata.normalize("NFKD", c)[:1] if unicodedata.decomposition(c) else c
      merges = bool(first) and (unicodedata.combining(first) != 0 or first in seconds)
      if merges and start is None:
        start = cp
      elif not merges and start is not None:
        ranges.append((start, prev))
        start = None
      prev = cp
    if start is not None:
      ranges.append((start, prev))
    cls = "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    _SEGMENT_RE = re.compile(f"(?s:.[{cls}]*)")
  return _SEGMENT_RE


def _nfkc_casefold_with_offsets(text: str):
  """(NFKC(text).casefold(), starts, ends): offsets as in NormalizedText, whitespace kept."""
  import numpy as np
  n = len(text)
  if text.isascii():
    return text.lower(), np.arange(n, dtype=np.int64), np.arange(1, n + 1, dtype=np.int64)
  folded = text.casefold()
  if len(folded) == n and unicodedata.is_normalized("NFKC", text) and (
      unicodedata.is_normalized("NFKC", folded)):
    # Case folding maps every character to one (it never shrinks), and NFKC changes nothing.
    return folded, np.arange(n, dtype=np.int64), np.arange(1, n + 1, dtype=np.int64)
  pieces, starts, ends = [], [], []
  cache = {}
  for match in _segment_re().finditer(text):
    segment = match.group()
    out = cache.get(segment)
    if out is None:
      out = cache[segment] = unicodedata.normalize("NFKC", segment).casefold()
    if out:
      pieces.append(out)
      starts.append((match.start(), len(out)))
  result = "".join(pieces)
  lengths = np.fromiter((k for _, k in starts), dtype=np.int64, count=len(starts))
  first = np.fromiter((s for s, _ in starts), dtype=np.int64, count=len(starts))
  seg_starts = np.repeat(first, lengths)
  # a piece ends where the next non-empty piece starts (empty pieces are never produced by NFKC
  # of a non-empty segment, so the next piece's start is this piece's end)
  next_start = np.append(first[1:], n)
  ends = np.repeat(next_start, lengths)
  return result, seg_starts, ends


_WHITESPACE_CODES = None


def normalize_with_offsets(text: str) -> NormalizedText:
  """normalize_surface(text), with offsets back to text (see NormalizedText).

  Equal to normalize_surface character for character (a property test checks it on arbitrary
  Unicode); the work is done per NFKC-independent piece, so an offset always points at the
  piece of the original that produced a character. Cost: C-speed on ASCII and on text that
  is already NFKC with length-preserving case folding (most Greek, Cyrillic, Vietnamese,
  Indic text); otherwise one cached NFKC call per piece (~1 us per character).
  """
  import numpy as np
  global _WHITESPACE_CODES
  if _WHITESPACE_CODES is None:
    _WHITESPACE_CODES = np.array([cp for cp in range(0x3100) if chr(cp).isspace()], np.uint32)
  folded, starts, ends = _nfkc_casefold_with_offsets(text)
  if not folded:
    empty = np.zeros(0, np.int64)
    return NormalizedText("", empty, empty)
  codes = np.frombuffer(folded.encode("utf-32-le"), dtype=np.uint32)
  space = np.isin(codes, _WHITESPACE_CODES)
  # keep every non-space; of a whitespace run keep its first character, as one " "
  keep = ~space
  keep[1:] |= space[1:] & ~space[:-1]
  keep[0] = not space[0]
  nonspace = np.flatnonzero(~space)
  if len(nonspace) == 0:
    empty = np.zeros(0, np.int64)
    return NormalizedText("", empty, empty)
  keep[nonspace[-1] + 1:] = False   # trailing whitespace
  codes = np.where(space, np.uint32(32), codes)[keep]
  return NormalizedText(codes.tobytes().decode("utf-32-le"), starts[keep], ends[keep])
