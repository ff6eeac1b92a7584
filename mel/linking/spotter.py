"""Offline mention detection in any language: dictionary forms found in text.

The spotter (`MentionDetector`) normalises a text with offsets back to the original
(`mel.surface_forms.normalize_with_offsets`), cuts it into units (mel.linking.units: words in
space-delimited scripts, characters in ja/zh/th) and matches the forms of the surface-form
dictionary (mel.linking.dictionary) from a unit start to a unit end:

- **Selection.** Every occurrence of a form whose link_prob >= min_link_prob and linked >=
  min_linked is a candidate; candidates are taken longest first (in units, then higher
  link_prob, then leftmost) and a candidate overlapping a taken one is dropped.
- **Language.** The dictionary of the text's language is used. Any language code works: one
  without training anchors (a language the training data never saw, mBERT / XLM-R pretraining
  language or not) falls back to the forms of all languages pooled (counts summed), so names
  seen in any language are still spotted; a tag of a known language (pt-br) uses that
  language's forms (SurfaceDictionary.table_language). Spans the caller gives skip the spotter
  and link in any language (mel.linking.linker).
- **Windows.** Long text is processed in windows of `window` characters (+ margins so that a
  match across a window edge is still found whole), so memory stays bounded for any length.
"""
import bisect
import dataclasses
from typing import Iterator, List, Optional, Tuple

from mel.linking import units
from mel.linking.dictionary import SurfaceDictionary
from mel.surface_forms import normalize_with_offsets

# Defaults of the spotter, chosen on the demo data's held-out documents (README "Linking").
DEFAULT_MIN_LINK_PROB = 0.05
DEFAULT_MIN_LINKED = 2


@dataclasses.dataclass(frozen=True)
class Spot:
  """A detected mention: [start, end) in the original text."""
  start: int
  end: int
  text: str            # the original text of the span
  form: str            # its normalised form (the dictionary key)
  link_prob: Optional[float]   # None for spans the caller gave
  linked: int


class MentionDetector:
  """Finds dictionary forms in text (see the module docstring for the rules).

  min_link_prob: forms linked less often than this when they occur are not spotted;
  min_linked: forms with fewer training anchors are not spotted (one anchor is noise).
  """

  def __init__(self, dictionary: SurfaceDictionary, min_link_prob: float = DEFAULT_MIN_LINK_PROB,
               min_linked: int = DEFAULT_MIN_LINKED, window: int = 20_000, margin: int = 1_000):
    if window < 1 or margin < 0:
      raise ValueError(f"window must be >= 1 and margin >= 0, got {window}, {margin}")
    self.dictionary = dictionary
    self.min_link_prob = float(min_link_prob)
    self.min_linked = int(min_linked)
    self.window = int(window)
    self.margin = int(margin)

  def detect(self, text: str, lang: str) -> List[Spot]:
    return list(self.iter_detect(text, lang))

  def iter_detect(self, text: str, lang: str) -> Iterator[Spot]:
    """Spots in text order, one window at a time (memory bounded by the window)."""
    table = self.dictionary.walk_table(lang, self.min_link_prob, self.min_linked)
    n = len(text)
    pos = 0
    while pos < n:
      end = min(n, pos + self.window)
      chunk_start = max(0, pos - self.margin)
      chunk_end = min(n, end + self.margin)
      taken = self._detect_chunk(text, chunk_start, chunk_end, table, pos, end,
                                 at_text_end=chunk_end == n)
      yield from taken
      pos = max(end, taken[-1].end if taken else end)

  def _detect_chunk(self, text, chunk_start, chunk_end, table, first, last, at_text_end):
    """Spots starting in [first, last) of text[chunk_start:chunk_end], sorted by start."""
    norm = normalize_with_offsets(text[chunk_start:chunk_end])
    starts, ends = units.units(norm.text)
    candidates = []
    for i, j, stats in units.find_all(norm.text, starts, ends, table,
                                      self.dictionary.max_units):
      a, b = starts[i], ends[j - 1]
      if not (norm.is_piece_boundary(a) and norm.is_piece_boundary(b)):
        continue
      start, stop = norm.span(a, b)
      start += chunk_start
      stop += chunk_start
      # a match touching the chunk's end may continue past it: the next window finds it whole
      if not first <= start < last or (stop >= chunk_end and not at_text_end):
        continue
      candidates.append((-(j - i), -stats.link_prob, start, stop, stats))
    candidates.sort(key=lambda c: c[:3])
    taken: List[Spot] = []
    occupied: List[Tuple[int, int]] = []   # sorted, disjoint
    for _, _, start, stop, stats in candidates:
      k = bisect.bisect_left(occupied, (start, start))
      if k > 0 and occupied[k - 1][1] > start:
        continue
      if k < len(occupied) and occupied[k][0] < stop:
        continue
      occupied.insert(k, (start, stop))
      taken.append(Spot(start, stop, text[start:stop], stats.form, stats.link_prob,
                        stats.linked))
    taken.sort(key=lambda s: s.start)
    return taken
