"""Offline mention detection in any language: the surface-form dictionary and its spotter.

The dictionary (written by `python -m mel.linking.build_dictionary`) holds, per language, every anchor
text of the training mentions, normalised with `mel.surface_forms.normalize_surface`, with

    linked     training anchors with this text (links to an entity of the KB)
    seen       occurrences of the text in the training documents (anchors included)
    link_prob  linked / seen: how often the text is a link when it appears (the classic
               Wikipedia spotter's "keyphraseness")
    entities   the entities it linked to, with counts (top 10): P(entity | text)

The spotter (`MentionDetector`) normalises a text with offsets back to the original
(`normalize_with_offsets`), cuts it into units and matches dictionary forms over units:

- **Units.** Characters of scripts written without spaces between words (Han, kana, Thai, Lao,
  Khmer, Myanmar, Tibetan) are one unit each, with the combining marks that follow them; runs
  of other letters, marks and digits (any space-delimited script: Latin, Cyrillic, Greek,
  Devanagari, Bengali, Hangul, ...) are one unit; any other non-space character (punctuation,
  symbols) is a unit of its own. A form matches only from the start of a unit to the end of a
  unit, so in space-delimited scripts matches fall on word boundaries ("paris" never matches
  inside "parisian"), and in ja/zh/th any character sequence can match. The rule depends on the
  script of the characters, not on the language code, so mixed-script text (Latin names in
  Japanese) is handled too.
- **Selection.** Every occurrence of a form whose link_prob >= min_link_prob and linked >=
  min_linked is a candidate; candidates are taken longest first (in units, then higher
  link_prob, then leftmost) and a candidate overlapping a taken one is dropped.
- **Language.** The dictionary of the text's language is used; a supported language without
  training anchors falls back to the forms of all languages pooled (counts summed).
- **Windows.** Long text is processed in windows of `window` characters (+ margins so that a
  match across a window edge is still found whole), so memory stays bounded for any length.
"""
import dataclasses
import json
import os
import re
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from mel import files
from mel.surface_forms import normalize_with_offsets

FORMAT = "mel-dictionary/1"
MANIFEST = "manifest.json"
FORMS = "forms.tsv"
HEADER = "lang\tform\tlinked\tseen\tentities"
ALL_LANGUAGES = "*"      # the pooled table, for languages without their own anchors
MAX_UNITS = 24           # forms longer than this many units are not kept
TOP_ENTITIES = 10        # entities kept per form

# Defaults of the spotter (see MentionDetector). Chosen on the demo data's held-out documents;
# the figures are in README "Linking".
DEFAULT_MIN_LINK_PROB = 0.05
DEFAULT_MIN_LINKED = 2


class DictionaryError(ValueError):
  """A dictionary directory is missing, incomplete, corrupt, or not a mel dictionary."""


# ---------------------------------------------------------------------------------------------
# units

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
  """The compiled unit pattern (built once from the Unicode database, ~0.5 s)."""
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


def find_all(text: str, starts: Sequence[int], ends: Sequence[int], table: Mapping,
             max_units: int = MAX_UNITS) -> Iterator[Tuple[int, int, object]]:
  """Every (first unit, last unit + 1, value) where text[starts[i]:ends[j - 1]] is a form.

  table maps every unit prefix of every form to the form's value, or to None for a prefix
  that is not itself a form; the walk from unit i stops at the first string not in table,
  so the cost is ~1-2 dictionary look-ups per unit, whatever the dictionary's size.
  """
  n = len(starts)
  missing = table.get  # local for speed
  for i in range(n):
    a = starts[i]
    stop = min(n, i + max_units)
    j = i
    while j < stop:
      value = missing(text[a:ends[j]], _MISSING)
      if value is _MISSING:
        break
      j += 1
      if value is not None:
        yield i, j, value


_MISSING = object()


# ---------------------------------------------------------------------------------------------
# the dictionary


@dataclasses.dataclass(frozen=True)
class FormStats:
  """What the dictionary knows of one normalised text in one language."""
  form: str
  linked: int
  seen: int
  entities: Tuple[Tuple[str, int], ...]   # (entity id, anchors), most frequent first

  @property
  def link_prob(self) -> float:
    return self.linked / self.seen if self.seen else 0.0

  def prior(self) -> Dict[str, float]:
    """P(entity | text) over the kept entities (counts / linked)."""
    return {e: n / self.linked for e, n in self.entities} if self.linked else {}


class SurfaceDictionary:
  """Per-language {form: FormStats}, with the unit-prefix tables the spotter walks."""

  def __init__(self, tables: Mapping[str, Mapping[str, FormStats]], manifest: Optional[dict] = None,
               max_units: int = MAX_UNITS):
    self.tables = {lang: dict(forms) for lang, forms in tables.items()}
    self.manifest = dict(manifest or {})
    self.max_units = max_units
    self._walk: Dict[str, dict] = {}

  def languages(self) -> List[str]:
    return sorted(lang for lang in self.tables if lang != ALL_LANGUAGES)

  def table(self, lang: str) -> Dict[str, FormStats]:
    """The forms of lang, or the pooled forms of all languages when lang has none."""
    if lang in self.tables and self.tables[lang]:
      return self.tables[lang]
    if ALL_LANGUAGES not in self.tables:
      pooled: Dict[str, list] = {}
      for forms in self.tables.values():
        for form, s in forms.items():
          linked, seen, entities = pooled.get(form, (0, 0, {}))
          merged = dict(entities)
          for e, n in s.entities:
            merged[e] = merged.get(e, 0) + n
          pooled[form] = (linked + s.linked, seen + s.seen, merged)
      self.tables[ALL_LANGUAGES] = {
          form: FormStats(form, linked, max(seen, linked), tuple(sorted(
              entities.items(), key=lambda x: (-x[1], x[0]))[:TOP_ENTITIES]))
          for form, (linked, seen, entities) in pooled.items()}
    return self.tables[ALL_LANGUAGES]

  def walk_table(self, lang: str, min_link_prob: float, min_linked: int) -> dict:
    """{unit prefix: FormStats or None} of lang's forms that pass the thresholds (cached)."""
    key = (lang if lang in self.tables and self.tables[lang] else ALL_LANGUAGES,
           min_link_prob, min_linked)
    walk = self._walk.get(key)
    if walk is None:
      walk = {}
      for form, s in self.table(lang).items():
        if s.linked < min_linked or s.link_prob < min_link_prob:
          continue
        prefixes = form_units(form)
        if not prefixes or len(prefixes) > self.max_units or prefixes[-1] != form:
          continue
        for prefix in prefixes[:-1]:
          walk.setdefault(prefix, None)
        walk[form] = s
      self._walk[key] = walk
    return walk

  # on disk ---------------------------------------------------------------------------------
  def save(self, path: str, extra_manifest: Optional[dict] = None) -> dict:
    """Writes <path>/forms.tsv then <path>/manifest.json, atomically (local paths).

    A gs:// path is written through a local temp directory, then copied file by file with
    the manifest last (its presence means the dictionary is complete).
    """
    if path.startswith("gs://"):
      import tempfile
      with tempfile.TemporaryDirectory() as tmp:
        manifest = self.save(os.path.join(tmp, "dictionary"), extra_manifest)
        import tensorflow as tf
        tf.io.gfile.makedirs(path)
        for name in (FORMS, MANIFEST):
          tf.io.gfile.copy(os.path.join(tmp, "dictionary", name), f"{path.rstrip('/')}/{name}",
                           overwrite=True)
      return manifest
    with files.atomic_directory(path) as tmp:
      counts = {}
      with open(os.path.join(tmp, FORMS), "w", encoding="utf-8") as f:
        f.write(HEADER + "\n")
        for lang in sorted(self.tables):
          if lang == ALL_LANGUAGES:
            continue
          forms = self.tables[lang]
          counts[lang] = {"forms": len(forms), "anchors": sum(s.linked for s in forms.values())}
          for form in sorted(forms):
            s = forms[form]
            if not form or any(c in form for c in "\t\n\r"):
              raise ValueError(f"form {form!r} cannot be stored in {FORMS}")
            f.write(f"{lang}\t{form}\t{s.linked}\t{s.seen}\t"
                    f"{json.dumps([list(x) for x in s.entities], ensure_ascii=False)}\n")
      manifest = {"format": FORMAT, "max_units": self.max_units, "languages": counts,
                  **(extra_manifest or {}),
                  "files": {FORMS: {"bytes": os.path.getsize(os.path.join(tmp, FORMS)),
                                    "sha256": files.sha256_file(os.path.join(tmp, FORMS))}}}
      tmp_manifest = os.path.join(tmp, f".{MANIFEST}.tmp")
      with open(tmp_manifest, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True, ensure_ascii=False)
      os.replace(tmp_manifest, os.path.join(tmp, MANIFEST))
    self.manifest = manifest
    return manifest

  @classmethod
  def load(cls, path: str, verify: bool = True) -> "SurfaceDictionary":
    """Reads a dictionary directory (local); DictionaryError naming the file and problem."""
    manifest = read_manifest(path)
    forms_path = os.path.join(path, FORMS)
    info = manifest["files"].get(FORMS)
    if info is None:
      raise DictionaryError(f"{os.path.join(path, MANIFEST)}: does not list {FORMS}")
    if not os.path.isfile(forms_path):
      raise DictionaryError(f"{forms_path}: missing (listed in {MANIFEST})")
    if os.path.getsize(forms_path) != info["bytes"]:
      raise DictionaryError(f"{forms_path}: {os.path.getsize(forms_path)} bytes, {MANIFEST} "
                            f"says {info['bytes']} (truncated or altered)")
    if verify and files.sha256_file(forms_path) != info["sha256"]:
      raise DictionaryError(f"{forms_path}: checksum does not match {MANIFEST} (corrupted)")
    tables: Dict[str, Dict[str, FormStats]] = {}
    with open(forms_path, encoding="utf-8") as f:
      if f.readline().rstrip("\n") != HEADER:
        raise DictionaryError(f"{forms_path}: line 1 is not the header {HEADER!r}")
      for n, line in enumerate(f, 2):
        parts = line.rstrip("\n").split("\t")
        try:
          lang, form, linked, seen, entities = parts
          stats = FormStats(form, int(linked), int(seen),
                            tuple((str(e), int(c)) for e, c in json.loads(entities)))
        except (ValueError, TypeError) as e:
          raise DictionaryError(f"{forms_path}: line {n} is malformed ({e})") from None
        tables.setdefault(lang, {})[form] = stats
    return cls(tables, manifest, manifest.get("max_units", MAX_UNITS))


def read_manifest(path: str) -> dict:
  manifest_path = os.path.join(path, MANIFEST)
  if not os.path.isdir(path):
    raise DictionaryError(f"{path}: no surface-form dictionary here (run python -m "
                          f"mel.linking.build_dictionary --mining_dir MINING --output {path})")
  if not os.path.isfile(manifest_path):
    raise DictionaryError(f"{manifest_path}: missing (the dictionary was never completely "
                          f"written)")
  try:
    with open(manifest_path, encoding="utf-8") as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise DictionaryError(f"{manifest_path}: unreadable ({e})") from None
  if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
    raise DictionaryError(f"{manifest_path}: not a {FORMAT} manifest")
  if not isinstance(manifest.get("files"), dict):
    raise DictionaryError(f"{manifest_path}: no 'files' field")
  return manifest


# ---------------------------------------------------------------------------------------------
# the spotter


@dataclasses.dataclass(frozen=True)
class Spot:
  """A detected mention: [start, end) in the original text."""
  start: int
  end: int
  text: str            # the original text of the span
  form: str            # its normalised form (the dictionary key)
  link_prob: float
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
      for spot in taken:
        yield spot
      pos = max(end, taken[-1].end if taken else end)

  def _detect_chunk(self, text, chunk_start, chunk_end, table, first, last, at_text_end):
    """Spots starting in [first, last) of text[chunk_start:chunk_end], sorted by start."""
    norm = normalize_with_offsets(text[chunk_start:chunk_end])
    starts, ends = units(norm.text)
    candidates = []
    for i, j, stats in find_all(norm.text, starts, ends, table, self.dictionary.max_units):
      a, b = starts[i], ends[j - 1]
      if not (norm.is_piece_boundary(a) and norm.is_piece_boundary(b)):
        continue
      start, stop = norm.span(a, b)
      start += chunk_start
      stop += chunk_start
      if not first <= start < last or (stop >= chunk_end and not at_text_end):
        continue
      candidates.append((-(j - i), -stats.link_prob, start, stop, stats))
    candidates.sort(key=lambda c: c[:3])
    taken: List[Spot] = []
    occupied: List[Tuple[int, int]] = []   # sorted, disjoint
    import bisect
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
