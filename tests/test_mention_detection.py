"""The spotter: normalisation with offsets, units, longest-first matching, windows, dictionaries."""
import collections
import json
import os

import pytest
from hypothesis import given, settings, strategies as st

from mel import anchors, schema
from mel.linking import dictionary as dic, spotter, units
from mel.surface_forms import normalize_surface, normalize_with_offsets

# Characters that stress NFKC and case folding: combining marks, a Bengali vowel sign that
# composes with the one before it, Hangul jamo, full-width and compatibility forms, ß, final
# sigma, ligatures, and several kinds of whitespace.
_TRICKY = ("e\u0301\u0327\u0308Aa\u00df\u03a3\u03c2\u1f88\u09c7\u09be\u09cb\u0995\u1100\u1161"
           "\u11a8\uac00\uff21\uff41\uff10\u3000\u00a0\u2003\t\n \ufb01\u3300\u2460\u0f73\u0f71"
           "\u0f72\u0130\u0345\u212b\u00c5\u30ab\u3099\u30ac\uff76\uff9e")
TEXT = st.text(alphabet=st.sampled_from(_TRICKY) | st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_normalize_with_offsets_equals_normalize_surface(text):
  norm = normalize_with_offsets(text)
  assert norm.text == normalize_surface(text)
  assert len(norm.starts) == len(norm.ends) == len(norm.text)
  for i in range(len(norm.text)):
    assert 0 <= norm.starts[i] < norm.ends[i] <= len(text)
    assert i == 0 or norm.starts[i] >= norm.starts[i - 1]


@settings(max_examples=200, deadline=None)
@given(TEXT, st.data())
def test_spans_at_piece_boundaries_map_back_to_their_original_text(text, data):
  norm = normalize_with_offsets(text)
  if len(norm.text) < 1:
    return
  i = data.draw(st.integers(0, len(norm.text) - 1))
  j = data.draw(st.integers(i + 1, len(norm.text)))
  if not (norm.is_piece_boundary(i) and norm.is_piece_boundary(j)):
    return
  if norm.text[i] == " " or norm.text[j - 1] == " ":
    return
  start, end = norm.span(i, j)
  assert normalize_surface(text[start:end]) == norm.text[i:j]


def _stats(form, linked=10, seen=20, entity=None):
  return dic.FormStats(form, linked, seen, ((entity or f"E:{form}", linked),))


def _dictionary(forms_by_lang):
  tables = {lang: {f: (v if isinstance(v, dic.FormStats) else _stats(f, *v))
                   for f, v in forms.items()} for lang, forms in forms_by_lang.items()}
  return dic.SurfaceDictionary(tables)


def _spots(detector, text, lang):
  return [(s.start, s.end, s.text) for s in detector.detect(text, lang)]


def test_latin_word_boundaries_case_and_offsets():
  d = _dictionary({"en": {"paris": (5, 10), "new york": (5, 10), "york": (5, 10),
                          "new york city": (3, 10), "st. louis": (3, 5)}})
  det = spotter.MentionDetector(d, min_link_prob=0.1, min_linked=2)
  text = "PARIS, parisian  New\u00a0York City and York; St. Louis."
  want = ["PARIS", "New\u00a0York City", "York;", "St. Louis"]
  at = [text.index(w) for w in want]
  assert _spots(det, text, "en") == [(a, a + len(w.rstrip(";")), w.rstrip(";"))
                                     for a, w in zip(at, want)]


def test_longest_first_then_link_probability():
  d = _dictionary({"en": {"a b": (5, 10), "b c": (9, 10), "b c d": (2, 10), "a": (5, 10)}})
  det = spotter.MentionDetector(d, min_link_prob=0.0, min_linked=1)
  # "b c d" (3 units) wins over "a b" / "b c"; then "a" fills the gap
  assert _spots(det, "a b c d", "en") == [(0, 1, "a"), (2, 7, "b c d")]
  # same length: the higher link probability wins ("b c" 0.9 over "a b" 0.5)
  assert _spots(det, "a b c", "en") == [(0, 1, "a"), (2, 5, "b c")]


def test_thresholds_exclude_forms():
  d = _dictionary({"en": {"rare": (1, 1), "common word": (3, 300), "good": (4, 8)}})
  assert _spots(spotter.MentionDetector(d, 0.05, 2), "rare common word good", "en") == [
      (17, 21, "good")]
  assert [s[2] for s in _spots(spotter.MentionDetector(d, 0.0, 1), "rare common word good",
                               "en")] == ["rare", "common word", "good"]


def test_cyrillic_and_greek():
  d = _dictionary({"uk": {"київ": (9, 10), "україни": (5, 10)},
                   "el": {"αθήνα": (9, 10), "ελλάδασ": (5, 10)}})
  det = spotter.MentionDetector(d, 0.1, 2)
  assert _spots(det, "Київ — столиця України.", "uk") == [(0, 4, "Київ"), (15, 22, "України")]
  # final sigma folds to σ, so "Ελλάδας" meets the form "ελλάδασ"; "Αθήνας" is another word
  # (accents are kept: "ΑΘΗΝΑ" without its tonos is not "αθήνα")
  text = "Η ΑΘΉΝΑ και η Αθήνας της Ελλάδας, ΑΘΗΝΑ"
  assert _spots(det, text, "el") == [(2, 7, "ΑΘΉΝΑ"), (25, 32, "Ελλάδας")]


def test_japanese_and_thai_match_by_characters():
  d = _dictionary({"ja": {"東京都": (9, 10), "京都": (9, 10), "tokyo": (5, 10)},
                   "th": {"กรุงเทพ": (9, 10)}})
  det = spotter.MentionDetector(d, 0.1, 2)
  # inside a run of kanji with no spaces; longest first: 東京都 beats 京都
  assert _spots(det, "東京都庁と京都市とＴＯＫＹＯ", "ja") == [
      (0, 3, "東京都"), (5, 7, "京都"), (9, 14, "ＴＯＫＹＯ")]
  assert _spots(det, "เมืองกรุงเทพมหานคร", "th") == [(5, 12, "กรุงเทพ")]


def test_bengali_words_and_decomposed_vowel_signs():
  form = "কোলকাতা"   # with the precomposed o-kar U+09CB
  d = _dictionary({"bn": {form: (9, 10), "ভারত": (9, 10)}})
  det = spotter.MentionDetector(d, 0.1, 2)
  decomposed = form.replace("\u09cb", "\u09c7\u09be")
  text = f"{decomposed} শহর, ভারতের রাজধানী নয়"
  # the decomposed spelling matches (offsets cover both original code points); "ভারতের"
  # (of India) is one word, so "ভারত" does not match inside it
  assert _spots(det, text, "bn") == [(0, len(decomposed), decomposed)]


def test_language_without_anchors_falls_back_to_all_languages():
  d = _dictionary({"vi": {"hà nội": (9, 10)}, "uk": {"київ": (9, 10)}})
  det = spotter.MentionDetector(d, 0.1, 2)
  assert _spots(det, "Hà Nội, Київ", "fr") == [(0, 6, "Hà Nội"), (8, 12, "Київ")]
  assert _spots(det, "Hà Nội, Київ", "uk") == [(8, 12, "Київ")]


WORDS = ["new", "york", "city", "paris", "is", "a", "ΑΘΗΝΑ", "東京", "都", ",", " ", "  ", "\n",
         "ß", "ss"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(WORDS), max_size=60), st.integers(1, 40), st.integers(0, 12))
def test_windows_give_the_same_spots_as_one_pass(words, window, margin):
  text = "".join(w if w.strip() == "" else w + (" " if w.isascii() else "") for w in words)
  d = _dictionary({"en": {"new york": (5, 10), "new york city": (3, 10), "york": (9, 10),
                          "paris": (9, 10), "αθηνα": (9, 10), "東京都": (9, 10), "東京": (3, 10),
                          "ss": (3, 10)}})
  whole = _spots(spotter.MentionDetector(d, 0.0, 1), text, "en")
  # margins at least as long as the longest form keep every match whole
  windowed = _spots(spotter.MentionDetector(d, 0.0, 1, window=window, margin=margin + 14), text, "en")
  assert windowed == whole
  for start, end, s in whole:
    assert text[start:end] == s


def test_dictionary_round_trip_and_corruption(tmp_path):
  d = _dictionary({"en": {"paris": (5, 10)}, "ja": {"東京": (3, 4)}})
  path = str(tmp_path / "dictionary")
  manifest = d.save(path, {"params": {"min_linked": 1}})
  assert manifest["languages"] == {"en": {"forms": 1, "anchors": 5},
                                   "ja": {"forms": 1, "anchors": 3}}
  loaded = dic.SurfaceDictionary.load(path)
  assert loaded.tables == d.tables
  forms = tmp_path / "dictionary" / dic.FORMS
  data = bytearray(forms.read_bytes())
  data[-3] ^= 1
  forms.write_bytes(bytes(data))
  with pytest.raises(dic.DictionaryError, match="forms.tsv: checksum"):
    dic.SurfaceDictionary.load(path)
  forms.write_bytes(bytes(data[:-5]))
  with pytest.raises(dic.DictionaryError, match="forms.tsv: .* bytes"):
    dic.SurfaceDictionary.load(path, verify=False)
  manifest_path = tmp_path / "dictionary" / "manifest.json"
  original = manifest_path.read_text(encoding="utf-8")
  manifest_path.write_text(original.replace(dic.FORMAT, "mel-dictionary/0"), encoding="utf-8")
  with pytest.raises(dic.DictionaryError, match="manifest.json: format 'mel-dictionary/0'"):
    dic.SurfaceDictionary.load(path)
  os.remove(manifest_path)
  with pytest.raises(dic.DictionaryError, match="manifest.json: missing"):
    dic.SurfaceDictionary.load(path)
  with pytest.raises(dic.DictionaryError, match="mel dictionary --mining_dir"):
    dic.SurfaceDictionary.load(str(tmp_path / "nowhere"))


def _mention(n, lang, text, start, mention, entity):
  return schema.Mention(
      mention_id=f"{lang}wiki:1:{n}", lang=lang, wiki=f"{lang}wiki", doc_id=1, doc_title="T",
      left_context=text[:start], mention=mention, right_context="", start=start,
      end=start + len(mention), target_title=entity, entity_id=entity, qid="", split="train")


def test_link_probability_counts():
  text = "Paris is big. Paris, Parisian. In PARIS. Lyon."
  mentions = [_mention(0, "en", text, 0, "Paris", "P"), _mention(1, "en", text, 34, "PARIS",
                                                                 "P2"),
              _mention(2, "en", text, 20, "Paris", "P")]   # an anchor inside "Parisian"
  counts = anchors.AnchorCounts.from_mentions((m.lang, m.mention, m.entity_id) for m in mentions)
  assert counts.by_language["en"]["paris"] == {"P": 2, "P2": 1} and not counts.skipped
  table, left_out = units.prefix_table([("paris", "paris")])
  doc = schema.Document(wiki="enwiki", lang="en", doc_id=1, title="T", text=text, split="train")
  other = schema.Document(wiki="dewiki", lang="de", doc_id=2, title="T", text=text,
                          split="train")
  seen, chars = dic.count_occurrences([doc, other], {"en": table}, 24, progress=False)
  assert seen["en"]["paris"] == 3 and "de" not in seen   # "Parisian" is another word
  assert chars == len(normalize_surface(text)) and left_out == 0
  d, report = dic.from_anchors(counts, [doc, other])
  assert d.tables["en"]["paris"] == dic.FormStats("paris", 3, 3, (("P", 2), ("P2", 1)))
  assert report["document_chars"] == chars


def test_prior_backs_off_to_all_languages():
  d = dic.SurfaceDictionary({
      "en": {"paris": dic.FormStats("paris", 10, 20, (("A", 6), ("B", 4))),
             "lyon": dic.FormStats("lyon", 2, 4, (("L", 2),)),
             "roma": dic.FormStats("roma", 5, 9, (("R", 3),))},   # 2 anchors not kept
      "fr": {"paris": dic.FormStats("paris", 5, 10, (("A", 1), ("C", 4)))},
      "de": {"lyon": dic.FormStats("lyon", 2, 2, (("M", 2),))}})
  approx = pytest.approx
  # a language that saw the form: its own anchors
  assert d.prior("paris", "en") == approx({"A": 0.6, "B": 0.4})
  assert d.prior("paris", "fr") == approx({"A": 0.2, "C": 0.8})
  assert d.prior("lyon", "en") == approx({"L": 1.0})
  # fr never saw "lyon", en and de did: all languages pooled, L 2 + M 2 of 4
  assert d.prior("lyon", "fr") == approx({"L": 0.5, "M": 0.5})
  # a language without anchors: pooled, A 6+1, B 4, C 4 of 15
  assert d.prior("paris", "vi") == approx({"A": 7 / 15, "B": 4 / 15, "C": 4 / 15})
  # anchors of entities not kept still count in the total
  assert d.prior("roma", "en") == approx({"R": 0.6})
  assert d.prior("rome", "en") == {} and d.prior("rome", "vi") == {}


def test_dictionary_prior_is_the_anchor_counts_probability():
  triples = [("en", "Paris", "A")] * 5 + [("en", "PARIS", "B")] * 2 + [
      ("fr", "Paris", "A"), ("fr", "paris", "C"), ("fr", "Lyon", "L"), ("de", "Lyon", "M"),
      ("de", "Lyon", "L"), ("ja", "東京", "T"), ("ja", "東京都", "T2")]
  counts = anchors.AnchorCounts.from_mentions(triples)
  documents = [schema.Document(wiki="enwiki", lang="en", doc_id=1, title="T",
                               text="Paris and Lyon, Paris.", split="train")]
  d, _ = dic.from_anchors(counts, documents)
  for text in ("Paris", "lyon", "東京", "東京都", "Roma"):
    for lang in ("en", "fr", "de", "ja", "vi"):
      assert d.prior(normalize_surface(text), lang) == pytest.approx(
          dict(counts.ranked(text, lang))), (text, lang)


@pytest.mark.slow
def test_build_dictionary_on_the_mini_mining(mini_mining, tmp_path):
  from conftest import run_module
  from mel import records
  out = tmp_path / "dictionary"
  result = run_module("mel", "dictionary", "--mining_dir", mini_mining[0], "--output", out,
                      "--no_progress")
  assert result.returncode == 0, result.stderr[-3000:]
  manifest = json.loads((out / "manifest.json").read_text())
  d = dic.SurfaceDictionary.load(str(out))
  train = list(records.read_output(str(mini_mining[0]), records.MENTIONS_TRAIN))
  per_lang = collections.Counter(m.lang for m in train)
  assert {lang: c["anchors"] for lang, c in manifest["languages"].items()} == dict(per_lang)
  for lang, forms in d.tables.items():
    for s in forms.values():
      assert 1 <= s.linked <= s.seen and sum(n for _, n in s.entities) <= s.linked
  # every training anchor's form is in its language's table with that entity
  for m in train[:200]:
    stats = d.tables[m.lang][normalize_surface(m.mention)]
    assert m.entity_id in dict(stats.entities) or len(stats.entities) == dic.TOP_ENTITIES
  # a rerun on the same mining run reuses it; other parameters rebuild it
  before = (out / dic.FORMS).stat().st_mtime_ns
  result = run_module("mel", "dictionary", "--mining_dir", mini_mining[0], "--output", out)
  assert result.returncode == 0 and "reused" in result.stderr
  assert (out / dic.FORMS).stat().st_mtime_ns == before
  result = run_module("mel", "dictionary", "--mining_dir", mini_mining[0], "--output", out,
                      "--min_linked", "2", "--no_progress")
  assert result.returncode == 0 and "reused" not in result.stderr
  assert all(s.linked >= 2 for forms in dic.SurfaceDictionary.load(str(out)).tables.values()
             for s in forms.values())
