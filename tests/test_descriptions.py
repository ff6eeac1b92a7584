"""beam_pipelines.descriptions (description choice, cross-lingual pairs) and mel.languages."""
import pytest

from beam_pipelines import descriptions
from mel import languages

WP, WD = descriptions.WIKIPEDIA, descriptions.WIKIDATA


# --- choose_description ------------------------------------------------------------------------

def test_entity_counts_decide_first():
  wikipedia = {"en": "Hong Kong is a city.", "vi": "Hồng Kông là một khu vực.", "de": "Hongkong."}
  got = descriptions.choose_description(
      wikipedia, {}, entity_counts={"vi": 37, "en": 5},
      language_totals={"en": 10**9, "de": 10**8, "vi": 10})
  assert got == ("Hồng Kông là một khu vực.", "vi", WP)


def test_language_totals_break_ties_in_entity_counts():
  wikipedia = {"en": "E.", "vi": "V.", "de": "D."}
  got = descriptions.choose_description(
      wikipedia, {}, entity_counts={"vi": 3, "en": 3, "de": 1},
      language_totals={"en": 100, "vi": 200, "de": 10**6})
  assert got == ("V.", "vi", WP)
  # No mentions of the entity at all: the biggest language wins.
  got = descriptions.choose_description(wikipedia, {}, {}, {"en": 100, "vi": 200, "de": 300})
  assert got == ("D.", "de", WP)


def test_language_code_breaks_full_ties():
  wikipedia = {"vi": "V.", "en": "E.", "de": "D."}
  assert descriptions.choose_description(wikipedia, {}, {}, {}) == ("D.", "de", WP)
  assert descriptions.choose_description(wikipedia, {}, {"en": 2, "vi": 2}, {"en": 5, "vi": 5}) == (
      "E.", "en", WP)


def test_wikipedia_beats_wikidata():
  wikipedia = {"de": "Hongkong ist eine Sonderverwaltungszone."}
  wikidata = {"en": "Special Administrative Region of China", "vi": "một khu vực"}
  got = descriptions.choose_description(wikipedia, wikidata, {"en": 100, "vi": 50},
                                        {"en": 10**9, "vi": 10**8})
  assert got == ("Hongkong ist eine Sonderverwaltungszone.", "de", WP)


def test_wikidata_when_no_wikipedia_sentence():
  wikidata = {"en": "Special Administrative Region of China", "vi": "một khu vực"}
  got = descriptions.choose_description({}, wikidata, {"vi": 37}, {"en": 10**9})
  assert got == ("một khu vực", "vi", WD)
  got = descriptions.choose_description({"en": "  ", "vi": ""}, wikidata, {}, {"en": 10**9})
  assert got == ("Special Administrative Region of China", "en", WD)


def test_non_mbert_languages_give_no_candidates():
  # 'ang' (Old English) and 'simple' have Wikipedias but are not mBERT languages; nor is zh-yue.
  wikipedia = {"ang": "Hong Kong is an stōw.", "simple": "Hong Kong is a city.", "zh-yue": "香港"}
  wikidata = {"fr": "région administrative spéciale de Chine", "simple": "city"}
  counts = {"ang": 1000, "simple": 1000, "zh-yue": 1000}
  assert descriptions.choose_description(wikipedia, wikidata, counts, counts) == (
      "région administrative spéciale de Chine", "fr", WD)
  assert descriptions.choose_description(wikipedia, {}, counts, counts) == ("", "", "")


def test_empty_result():
  assert descriptions.choose_description({}, {}, {}, {}) == ("", "", "")
  assert descriptions.choose_description({"en": ""}, {"de": "   "}, {"en": 1}, {}) == ("", "", "")


def test_text_is_stripped():
  got = descriptions.choose_description({"en": "  Paris is a city.\n"}, {}, {}, {})
  assert got == ("Paris is a city.", "en", WP)


def test_rank_languages():
  assert descriptions.rank_languages(["en", "vi", "de", "fr"], {"fr": 1, "de": 1},
                                     {"de": 5, "en": 7}) == ["de", "fr", "en", "vi"]


# --- sample_pairs ------------------------------------------------------------------------------

MBERT_20 = ["af", "ar", "bn", "de", "el", "en", "es", "fr", "hi", "ja",
            "ko", "mr", "nl", "pt", "ru", "sv", "th", "uk", "vi", "zh"]


def _texts(source):
  return {lang: f"{source} {lang}" for lang in MBERT_20}


def test_all_pairs_when_few_languages():
  wikipedia = {"en": "E.", "vi": "V.", "de": "D."}
  pairs = descriptions.sample_pairs("Q8646", "vi", wikipedia, {}, max_pairs=5, seed=1)
  assert pairs == [("de", "D."), ("en", "E.")]   # sorted by language, selected one left out


def test_at_most_max_pairs_never_the_selected_language():
  wikipedia = _texts("wp")
  for max_pairs in (0, 1, 3, 19, 25):
    pairs = descriptions.sample_pairs("Q8646", "vi", wikipedia, {}, max_pairs, seed=3)
    assert len(pairs) == min(max_pairs, 19)
    langs = [l for l, _ in pairs]
    assert "vi" not in langs
    assert langs == sorted(set(langs))
    assert all(text == f"wp {lang}" for lang, text in pairs)


def test_deterministic_for_a_seed():
  wikipedia = _texts("wp")
  first = descriptions.sample_pairs("Q8646", "en", wikipedia, {}, 3, seed=7)
  again = descriptions.sample_pairs("Q8646", "en", dict(reversed(list(wikipedia.items()))), {},
                                    3, seed=7)
  assert first == again   # and independent of the input's order


def test_seed_and_entity_change_the_sample():
  wikipedia = _texts("wp")
  by_seed = {tuple(descriptions.sample_pairs("Q8646", "en", wikipedia, {}, 3, seed=s))
             for s in range(10)}
  assert len(by_seed) > 1
  by_entity = {tuple(descriptions.sample_pairs(f"Q{i}", "en", wikipedia, {}, 3, seed=0))
               for i in range(10)}
  assert len(by_entity) > 1


def test_wikipedia_text_preferred_over_wikidata_for_the_same_language():
  wikipedia = {"de": "Hongkong ist eine Sonderverwaltungszone.", "fr": "  "}
  wikidata = {"de": "Sonderverwaltungszone", "fr": "région", "en": "region", "ang": "stōw"}
  pairs = descriptions.sample_pairs("Q8646", "en", wikipedia, wikidata, 10, seed=0)
  assert pairs == [("de", "Hongkong ist eine Sonderverwaltungszone."), ("fr", "région")]


def test_mixed_sources_sampled():
  wikipedia = {lang: f"wp {lang}" for lang in MBERT_20[:10]}
  wikidata = _texts("wd")
  pairs = descriptions.sample_pairs("Q1", "zh", wikipedia, wikidata, 4, seed=11)
  assert len(pairs) == 4
  for lang, text in pairs:
    assert text == (f"wp {lang}" if lang in MBERT_20[:10] else f"wd {lang}")


# --- mel.languages -----------------------------------------------------------------------------

def test_mbert_languages():
  assert len(languages.MBERT_LANGUAGES) == 104
  codes = [code for _, code in languages.MBERT_LANGUAGES]
  assert len(set(codes)) == 103 == len(languages.MBERT_LANGUAGE_CODES)
  assert [c for c in codes if codes.count(c) > 1] == ["zh", "zh"]
  assert {"th", "mn", "en", "vi", "uk", "el", "ja", "bn", "mr", "azb", "pnb"} <= set(codes)
  assert not {"ang", "simple", "zh-yue", "be-tarask"} & languages.MBERT_LANGUAGE_CODES
  # Every mBERT code is a Wikipedia edition.
  assert languages.MBERT_LANGUAGE_CODES <= languages.WIKIPEDIA_LANGUAGE_CODES


@pytest.mark.parametrize("dbname, lang", [
    ("ukwiki", "uk"), ("enwiki", "en"), ("zh_yuewiki", "zh-yue"), ("be_x_oldwiki", "be-tarask"),
    ("zh_min_nanwiki", "zh-min-nan"), ("simplewiki", "simple"), ("enwikinews", "en"),
    ("dewiktionary", "de"), ("frwikiquote", "fr"), ("viwikivoyage", "vi"),
    ("enwikisource", "en"), ("enwikibooks", "en"), ("enwikiversity", "en"),
])
def test_dbname_to_language(dbname, lang):
  assert languages.dbname_to_language(dbname) == lang


@pytest.mark.parametrize("dbname", ["", None, "wiki", "wikinews", "en", "EnWiki", "en-wiki",
                                    "en wiki", "1wiki", "enwikipedia", "ukwiki.xml",
                                    "_wiki"])
def test_bad_dbnames_raise(dbname):
  with pytest.raises(ValueError):
    languages.dbname_to_language(dbname)


@pytest.mark.parametrize("site, expected", [
    ("enwiki", True), ("viwiki", True), ("zh_yuewiki", True), ("be_x_oldwiki", True),
    ("simplewiki", True), ("angwiki", True),
    ("commonswiki", False), ("specieswiki", False), ("metawiki", False),
    ("wikidatawiki", False), ("mediawikiwiki", False), ("sourceswiki", False),
    ("enwikiquote", False), ("dewikinews", False), ("viwikivoyage", False),
    ("enwiktionary", False), ("wiki", False), ("EnWiki", False), ("en-wiki", False),
])
def test_is_wikipedia_site(site, expected):
  assert languages.is_wikipedia_site(site) is expected
