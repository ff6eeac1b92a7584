"""Units: what a surface form may start and end on, in any script.

Characters of scripts written without spaces between words (Han, kana, Thai, Lao, Khmer,
Myanmar, Tibetan) are one unit each, with the combining marks that follow them; runs of other
letters, marks and digits (any space-delimited script: Latin, Cyrillic, Greek, Devanagari,
Bengali, Hangul, ...) are one unit; any other non-space character (punctuation, symbols) is a
unit of its own. A form matches only from the start of a unit to the end of a unit, so in
space-delimited scripts matches fall on word boundaries ("paris" never matches inside
"parisian"), and in ja/zh/th any character sequence can match. The rule depends on the script
of the characters, not on the language code, so mixed-script text (Latin names in Japanese) is
handled too.

The dictionary builder counts occurrences and the spotter finds mentions with the same walk
(`prefix_table` + `find_all`), so `seen` counts exactly what the spotter could match.
"""
import re
from typing import Dict, Iterable, Iterator, List, Mapping, Sequence, Tuple

MAX_UNITS = 24           # forms longer than this many units are not kept

# Scripts written without spaces between words: each letter is a unit.
_CONTINUA_RANGES = (
    (0x0E00, 0x0EFF),    # Thai, Lao
    (0x0F00, 0x0FFF),    # Tibetan
    (0x1000, 0x109F),    # Myanmar
    (0x1780, 0x17FF), (0x19E0, 0x19FF),   # Khmer
    (0x2E80, 0x2FDF),    # CJK radicals
    (0x3000, 0x303F),    # CJK symbols (々, 〆)
    (0x3040, 0x30FF),    # Hiragana, Katakana
    (0x3100, 0x312F), (0x31A0, 0x31FF),   # Bopomofo, Katakana extensions
    (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),   # Han
    (0xA9E0, 0xA9FF), (0xAA60, 0xAA7F),   # Myanmar extensions
    (0xFF66, 0xFF9F),    # half-width Katakana
    (0x20000, 0x3134F),  # Han extensions
)

_UNIT_RE = None
_MISSING = object()


def _class(ranges: Sequence[Tuple[int, int]]) -> str:
  return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


def _ranges(predicate) -> List[Tuple[int, int]]:
  out, start = [], None
  for cp in range(0x110000):
    if predicate(cp):
      if start is None:
        start = cp
    elif start is not None:
      out.append((start, cp - 1))
      start = None
  if start is not None:
    out.append((start, 0x10FFFF))
  return out


def unit_regex():
  """The compiled unit pattern, built once from the Unicode database (it walks every code
  point, so it is built on first use, not at import)."""
  global _UNIT_RE
  if _UNIT_RE is None:
    import unicodedata
    categories = [unicodedata.category(chr(cp))[0] for cp in range(0x110000)]
    continua = bytearray(0x110000)
    for a, b in _CONTINUA_RANGES:
      continua[a:b + 1] = b"\x01" * (b - a + 1)
    letters = _class(_ranges(lambda cp: continua[cp] and categories[cp] in "LN"))
    marks = _class(_ranges(lambda cp: categories[cp] == "M"))
    words = _class(_ranges(lambda cp: categories[cp] in "LMN" and not (
        continua[cp] and categories[cp] in "LN")))
    _UNIT_RE = re.compile(f"[{letters}][{marks}]*|[{words}]+|\\S")
  return _UNIT_RE


def units(text: str) -> Tuple[List[int], List[int]]:
  """Unit (starts, ends) of a normalised text, as lists of offsets into it."""
  starts, ends = [], []
  for m in unit_regex().finditer(text):
    starts.append(m.start())
    ends.append(m.end())
  return starts, ends


def form_units(form: str) -> List[str]:
  """The prefixes of a form that end at a unit end (the last one is the form itself)."""
  return [form[:end] for end in units(form)[1]]


def prefix_table(items: Iterable[Tuple[str, object]], max_units: int = MAX_UNITS
                 ) -> Tuple[Dict[str, object], int]:
  """({unit prefix: None, form: value}, forms left out) for find_all.

  A form is left out when it has more than max_units units or does not end on a unit end
  (a form cut inside a unit could never be matched).
  """
  table: Dict[str, object] = {}
  left_out = 0
  for form, value in items:
    prefixes = form_units(form)
    if not prefixes or len(prefixes) > max_units or prefixes[-1] != form:
      left_out += 1
      continue
    for prefix in prefixes[:-1]:
      table.setdefault(prefix, None)
    table[form] = value
  return table, left_out


def find_all(text: str, starts: Sequence[int], ends: Sequence[int], table: Mapping,
             max_units: int = MAX_UNITS) -> Iterator[Tuple[int, int, object]]:
  """Every (first unit, last unit + 1, value) where text[starts[i]:ends[j - 1]] is a form.

  table is a prefix_table: the walk from unit i stops at the first string not in it, so the
  cost is one or two dictionary look-ups per unit, whatever the dictionary's size.
  """
  n = len(starts)
  look_up = table.get  # bound once: this is the inner loop of the spotter and the builder
  for i in range(n):
    a = starts[i]
    stop = min(n, i + max_units)
    j = i
    while j < stop:
      value = look_up(text[a:ends[j]], _MISSING)
      if value is _MISSING:
        break
      j += 1
      if value is not None:
        yield i, j, value
