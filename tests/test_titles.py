"""mel.wikipedia.titles: title normalisation, link classification, page namespaces."""
import bz2
import functools
import re

import pytest

from mel.wikipedia import dump_reader
from mel.wikipedia import titles

# Localised namespace names as a <siteinfo> gives them (lower-cased), plus the canonical English
# names that titles.CANONICAL_NAMESPACES adds on every wiki.
VI = titles.SiteInfo("viwiki", "vi", "first-letter", {"tập tin": 6, "thể loại": 14, "bản mẫu": 10})
JA = titles.SiteInfo("jawiki", "ja", "first-letter", {"ファイル": 6, "カテゴリ": 14})
EN = titles.SiteInfo("enwiki", "en", "first-letter", {"file": 6, "category": 14, "wikipedia": 4})


@functools.lru_cache(maxsize=None)
def _site_and_links(shared_data, lang):
  """The real <siteinfo> of a mini dump and every [[link]] target written in its articles."""
  path = shared_data / "wikipedia" / "mini" / f"{lang}wiki-mini.xml.bz2"
  with bz2.open(path) as stream:
    pages = dump_reader.read_dump(str(path), stream=stream)
    site = next(pages)
    links = tuple(m.group(1) for page in pages if page.ns == 0 and not page.redirect
                  for m in re.finditer(r"\[\[([^\[\]|]+)", page.text))
  return site, links


# --- normalize_title ---------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("hồng_kông#Lịch sử", "Hồng kông"),          # the docstring's own example
    ("Hong__Kong", "Hong Kong"),                  # underscores, and a run of them is one space
    ("  Hong_Kong  ", "Hong Kong"),
    ("Hong\u00a0Kong", "Hong Kong"),              # no-break space
    ("東京\u3000タワー", "東京 タワー"),            # ideographic space
    ("Hong\u2003\u2009Kong", "Hong Kong"),        # em space + thin space: one space
    ("AT&amp;T", "AT&T"),                         # HTML entities
    ("Caf&eacute;", "Café"),
    ("A&quot;b", "A\"b"),
    ("Hong%20Kong", "Hong Kong"),                 # %-escapes (UTF-8)
    ("H%E1%BB%93ng_K%C3%B4ng", "Hồng Kông"),
    ("Paris#History", "Paris"),                   # the fragment is dropped
    (":Paris", "Paris"),                          # a leading ':' is removed
    (": Paris", "Paris"),
    ("Paris\u200e", "Paris"),                     # direction marks are removed
    ("\u200fTel Aviv", "Tel Aviv"),
])
def test_normalize_title(raw, expected):
  assert titles.normalize_title(raw) == expected


def test_percent_signs_that_are_not_utf8_escapes_are_kept():
  assert titles.normalize_title("100% Pure") == "100% Pure"
  assert titles.normalize_title("Caf%E9") == "Caf%E9"   # Latin-1 escape: not valid UTF-8


def test_escaped_hash_is_a_fragment_after_decoding():
  assert titles.normalize_title("Paris%23History") == "Paris"


@pytest.mark.parametrize("raw, expected", [
    ("paris", "Paris"),
    ("über", "Über"),
    ("київ", "Київ"),              # Cyrillic
    ("αθήνα", "Αθήνα"),            # Greek
    ("ελευθέριος Βενιζέλος", "Ελευθέριος Βενιζέλος"),
    ("ǆungla", "Ǆungla"),          # a digraph letter with a one-letter upper case
    ("ßtraße", "ßtraße"),          # 'ß'.upper() is 'SS': MediaWiki keeps 'ß'
    ("ﬁsh", "ﬁsh"),                # 'ﬁ'.upper() is 'FI': kept as well
    ("東京", "東京"),               # no case at all
    ("iPhone", "IPhone"),          # first-letter wikis do upper-case it
    ("1984 (novel)", "1984 (novel)"),
])
def test_first_letter_is_upper_cased(raw, expected):
  assert titles.normalize_title(raw) == expected


def test_only_the_first_letter_changes():
  assert titles.normalize_title("hồng kông") == "Hồng kông"
  assert titles.normalize_title("eBay_inc") == "EBay inc"


def test_case_sensitive_mode_keeps_case_but_still_normalises():
  assert titles.normalize_title("iPhone", case="case-sensitive") == "iPhone"
  assert titles.normalize_title("київ", case="case-sensitive") == "київ"
  assert titles.normalize_title("foo_bar#x", case="case-sensitive") == "foo bar"
  assert titles.normalize_title(":a&amp;b", case="case-sensitive") == "a&b"


def test_nfc_normalisation_of_decomposed_strings():
  decomposed = "Ho\u0302\u0300ng Ko\u0302ng"     # o + circumflex + grave, as some editors type it
  assert len(decomposed) == 12
  assert titles.normalize_title(decomposed) == "Hồng Kông"
  assert len(titles.normalize_title(decomposed)) == 9
  assert titles.normalize_title("e\u0301cole") == "École"   # NFC first, then upper-cased


@pytest.mark.parametrize("raw", ["#Section", "#", "", "   ", "_", ":", "\u00a0", "%23Top"])
def test_nothing_left_gives_empty(raw):
  assert titles.normalize_title(raw) == ""


def test_normalisation_is_idempotent():
  for raw in ["hồng_kông#Lịch sử", "AT&amp;T", "H%E1%BB%93ng_K%C3%B4ng", "ßtraße", "київ"]:
    once = titles.normalize_title(raw)
    assert titles.normalize_title(once) == once


# --- classify_link -----------------------------------------------------------------------------

@pytest.mark.parametrize("target, expected", [
    # Localised names from <siteinfo>, any case, '_' or ' ' inside, spaces around the prefix.
    ("Tập tin:Sa Pa.jpg", titles.FILE),
    ("tập_tin:Sa Pa.jpg", titles.FILE),
    ("TẬP TIN:Sa Pa.jpg", titles.FILE),
    (" Tập tin : Sa Pa.jpg", titles.FILE),
    ("Thể loại:Việt Nam", titles.CATEGORY),
    ("thể_loại:Việt Nam", titles.CATEGORY),
    ("Bản mẫu:Hộp thông tin", titles.NAMESPACE),
    # Canonical English names are valid on every wiki.
    ("File:Sa Pa.jpg", titles.FILE),
    ("Image:Sa Pa.jpg", titles.FILE),
    ("image:Sa Pa.jpg", titles.FILE),
    ("Media:Sa Pa.ogg", titles.FILE),
    ("Category:Việt Nam", titles.CATEGORY),
    ("Template:Infobox", titles.NAMESPACE),
    ("Help:Contents", titles.NAMESPACE),
    ("User:Example", titles.NAMESPACE),
    ("Category talk:Việt Nam", titles.NAMESPACE),
    ("Special:Random", titles.NAMESPACE),
    ("Portal:Việt Nam", titles.NAMESPACE),
    # A leading ':' makes a displayed link to the file/category page itself.
    (":Category:Việt Nam", titles.NAMESPACE),
    (":Thể loại:Việt Nam", titles.NAMESPACE),
    (":File:Sa Pa.jpg", titles.NAMESPACE),
    (":Tập tin:Sa Pa.jpg", titles.NAMESPACE),
    # Language prefixes: sidebar link without ':', displayed interwiki with it.
    ("fr:Paris", titles.INTERLANGUAGE),
    ("en:Hong Kong", titles.INTERLANGUAGE),
    ("zh-yue:香港", titles.INTERLANGUAGE),
    ("simple:Hong Kong", titles.INTERLANGUAGE),
    (":fr:Paris", titles.INTERWIKI),
    (":en:Hong Kong", titles.INTERWIKI),
    ("wikt:foo", titles.INTERWIKI),
    ("Wiktionary:foo", titles.INTERWIKI),
    ("d:Q8646", titles.INTERWIKI),
    ("commons:Category:Hong Kong", titles.INTERWIKI),
    # Links into the same page.
    ("#Section", titles.SECTION),
    ("#Lịch sử", titles.SECTION),
    ("#Sec[tion]", titles.SECTION),   # the fragment may hold characters a title may not
    # Characters that no title may hold, and empty targets.
    ("Foo[bar", titles.INVALID),
    ("Foo]bar", titles.INVALID),
    ("Foo{bar}", titles.INVALID),
    ("Foo|bar", titles.INVALID),
    ("a<b>c", titles.INVALID),
    ("Tab\x09here", titles.INVALID),
    ("&#91;Foo&#93;", titles.INVALID),  # entities are decoded before the check
    ("", titles.INVALID),
    ("   ", titles.INVALID),
    (":", titles.INVALID),
])
def test_classify_link_kinds_vi(target, expected):
  kind, title = titles.classify_link(target, VI)
  assert kind == expected
  assert title == ""


@pytest.mark.parametrize("target, expected", [
    ("hồng_kông", "Hồng kông"),
    ("Hồng Kông#Lịch sử", "Hồng Kông"),
    (":Hồng Kông", "Hồng Kông"),
    ("  Hà Nội ", "Hà Nội"),
    ("AT&amp;T", "AT&T"),
    ("H%E1%BB%93ng_K%C3%B4ng", "Hồng Kông"),
    # A colon that is no prefix: not a namespace, language or interwiki name.
    ("Star Wars: Episode I", "Star Wars: Episode I"),
    ("Avengers: Endgame", "Avengers: Endgame"),
    ("UTC+07:00", "UTC+07:00"),
    ("ISO 3166-2:VN", "ISO 3166-2:VN"),
    ("tập tin hỏng:x", "Tập tin hỏng:x"),
])
def test_classify_link_articles(target, expected):
  assert titles.classify_link(target, VI) == (titles.ARTICLE, expected)


def test_classify_link_japanese_names():
  assert titles.classify_link("ファイル:Gnome-globe.svg", JA) == (titles.FILE, "")
  assert titles.classify_link("カテゴリ:日本", JA) == (titles.CATEGORY, "")
  assert titles.classify_link(":カテゴリ:日本", JA) == (titles.NAMESPACE, "")
  assert titles.classify_link("Category:日本", JA) == (titles.CATEGORY, "")
  assert titles.classify_link("en:Tokyo", JA) == (titles.INTERLANGUAGE, "")
  assert titles.classify_link("パリ", JA) == (titles.ARTICLE, "パリ")
  assert titles.classify_link("J:COM すみだ・台東", JA) == (titles.ARTICLE, "J:COM すみだ・台東")


def test_project_namespace_comes_from_siteinfo_only():
  # On Wikipedias <siteinfo> names the project namespace "Wikipedia"; on a wiki whose siteinfo
  # does not (WikiNews), "Wikipedia:" is an interwiki prefix.
  assert titles.classify_link("Wikipedia:Sandbox", EN) == (titles.NAMESPACE, "")
  news = titles.default_siteinfo("enwikinews")
  assert news.lang == "en" and news.namespaces == {}
  assert titles.classify_link("Wikipedia:Sandbox", news) == (titles.INTERWIKI, "")
  assert titles.classify_link("Project:Sandbox", news) == (titles.NAMESPACE, "")


def test_case_sensitive_site_keeps_first_letter():
  wiktionary = titles.SiteInfo("enwiktionary", "en", "case-sensitive", {})
  assert titles.classify_link("iPhone", wiktionary) == (titles.ARTICLE, "iPhone")
  assert titles.classify_link("iPhone", VI) == (titles.ARTICLE, "IPhone")


def test_real_siteinfo_namespaces(shared_data):
  site, links = _site_and_links(shared_data, "vi")
  assert (site.wiki, site.lang, site.case) == ("viwiki", "vi", "first-letter")
  assert site.namespaces["tập tin"] == 6 and site.namespaces["thể loại"] == 14
  assert titles.classify_link("Tập tin:Sa Pa.jpg", site) == (titles.FILE, "")
  assert titles.classify_link("Thể loại:Tỉnh Việt Nam", site) == (titles.CATEGORY, "")
  assert titles.classify_link("Wikipedia:Sandbox", site) == (titles.NAMESPACE, "")
  # Every real link written with a localised File/Category prefix is classified as such.
  files = [l for l in links if l.split(":", 1)[0].strip().lower() == "tập tin"]
  categories = [l for l in links if l.split(":", 1)[0].strip().lower() == "thể loại"]
  assert files and categories
  assert {titles.classify_link(l, site)[0] for l in files} == {titles.FILE}
  assert {titles.classify_link(l, site)[0] for l in categories} == {titles.CATEGORY}


# Was a bug, fixed: namespace aliases that <siteinfo> does not list (viwiki 'Hình:', jawiki '画像:'
#  = File) are classified as ARTICLE, so image captions and options become prose and the file name
#  becomes a mention target
@pytest.mark.parametrize("lang, target", [("vi", "Hình:Sa Pa.jpg"),
                                          ("ja", "画像:Gnome-globe.svg")])
def test_file_namespace_aliases_used_in_real_dumps(shared_data, lang, target):
  site, links = _site_and_links(shared_data, lang)
  assert target in links   # the link is really written so in the dump (Lào Cai; 地理学)
  assert titles.classify_link(target, site) == (titles.FILE, "")


# Was a bug, fixed: illegal characters are checked before %-escapes are decoded:
#  '[[Foo%5Bbar%5D]]' gives ARTICLE 'Foo[bar]', MediaWiki makes no link
@pytest.mark.parametrize("target", ["Foo%5Bbar%5D", "x%7Cy", "a%3Cb%3E"])
def test_escaped_illegal_characters_are_invalid(target):
  assert titles.classify_link(target, VI) == (titles.INVALID, "")


# Was a bug, fixed: Turkish/Azerbaijani wikis upper-case 'i' to 'İ' (MediaWiki
#  LanguageTr::ucfirst); the link [[istanbul]] gives 'Istanbul', not the page 'İstanbul'
def test_turkish_dotted_capital_i():
  tr = titles.default_siteinfo("trwiki")
  assert titles.classify_link("istanbul", tr) == (titles.ARTICLE, "İstanbul")


# --- SiteInfo / page_namespace -----------------------------------------------------------------

def test_namespace_of():
  assert VI.namespace_of("Tập_tin") == 6
  assert VI.namespace_of("  thể   loại ") == 14
  assert VI.namespace_of("Image") == 6
  assert VI.namespace_of("Category talk") == 15
  assert VI.namespace_of("Hồng Kông") is None
  assert VI.namespace_of("") is None
  assert VI.namespace_of(" ") is None


def test_default_siteinfo():
  site = titles.default_siteinfo("zh_yuewiki")
  assert site == titles.SiteInfo("zh_yuewiki", "zh-yue", "first-letter", {})
  with pytest.raises(ValueError):
    titles.default_siteinfo("not a wiki")


@pytest.mark.parametrize("title, expected", [
    ("Tập tin:Sa Pa.jpg", 6),
    ("Thể loại:Việt Nam", 14),
    ("Bản mẫu:Hộp thông tin", 10),
    ("File:Sa Pa.jpg", 6),
    ("Category:Việt Nam", 14),
    ("Thảo luận:Hà Nội", 0),         # not in this SiteInfo's names
    ("Star Wars: Episode I", 0),
    ("Hồng Kông", 0),
    ("Talk:Hồng Kông", 1),
    ("Module:Citation", 828),
])
def test_page_namespace(title, expected):
  assert titles.page_namespace(title, VI) == expected


def test_page_namespace_with_real_siteinfo(shared_data):
  site, _ = _site_and_links(shared_data, "vi")
  assert titles.page_namespace("Thảo luận:Hà Nội", site) == 1
  assert titles.page_namespace("Cổng thông tin:Việt Nam", site) == 100
  assert titles.page_namespace("Mô đun:Citation", site) == 828
  assert titles.page_namespace("Hà Nội", site) == 0
