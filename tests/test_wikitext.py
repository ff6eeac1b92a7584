"""mel.wikipedia.wikitext: clean text, link offsets, link accounting, descriptions."""
import mwparserfromhell
import pytest

from mel.wikipedia import dump_reader
from mel.wikipedia import titles
from mel.wikipedia import wikitext

EN = titles.SiteInfo("enwiki", "en", "first-letter", {"file": 6, "category": 14})

PARIS = ("'''Paris''' is the [[capital city|capital]] of [[France]].<ref>See [[Ref target]].</ref>"
         " {{Infobox|leader=[[Anne Hidalgo]]}} It has [[museum]]s.\n\n== History ==\n"
         "The [[Roman Empire|''Romans'']] came.\n[[File:Paris.jpg|thumb|The [[Seine]]]]\n"
         "[[Category:Capitals]]\n[[fr:Paris]]")


def _anchors(parsed):
  return [(parsed.text[l.start:l.end], l.target) for l in parsed.links]


def test_constructed_page_text_links_and_accounting():
  parsed = wikitext.parse_page(PARIS, EN)
  assert parsed.text == ("Paris is the capital of France. It has museums.\n\nHistory\n\n"
                         "The Romans came.")
  # 'museum' + trail 's' is one anchor, as MediaWiki displays it.
  assert _anchors(parsed) == [("capital", "Capital city"), ("France", "France"),
                              ("museums", "Museum"), ("Romans", "Roman Empire")]
  counts = dict(parsed.link_counts)
  assert counts == {"found": 10, "in_ref": 1, "in_template": 1, "file_link": 1,
                    "in_file_caption": 1, "category_link": 1, "interlanguage_link": 1}
  assert parsed.description == "Paris is the capital of France."


def test_no_link_trail_in_scripts_without_spaces():
  ja = titles.SiteInfo("jawiki", "ja", "first-letter", {})
  parsed = wikitext.parse_page("[[記号]]である。", ja)
  assert _anchors(parsed) == [("記号", "記号")]
  assert parsed.text == "記号である。"


def test_displayed_non_article_links_keep_their_text_but_are_not_mentions():
  parsed = wikitext.parse_page(
      "See [[wikt:cat|cat]], [[:Category:Cats|all cats]], [[:fr:Chat|chat]] and [[#Top|top]].",
      EN)
  assert parsed.text == "See cat, all cats, chat and top."
  assert parsed.links == ()
  assert dict(parsed.link_counts) == {"found": 4, "interwiki_link": 2,
                                      "non_article_namespace": 1, "section_link": 1}


def test_description_skips_headings_and_empty_paragraphs():
  parsed = wikitext.parse_page("{{Infobox}}\n== Intro ==\n[[File:x.png]]\nFoo is a bar. Baz.", EN)
  assert parsed.description == "Foo is a bar."


@pytest.mark.parametrize("text", [
    "[[Foo|bar", "{{unclosed template [[X]]", "'''''bold [[Y]]", "<ref>never closed [[Z]]",
    "{| class=wikitable\n| [[T]]\n", "[[[[nested]]]]", "<div>" * 300 + "[[D]]", "]]}}|}",
])
def test_malformed_wikitext_never_raises_and_stays_accounted(text):
  parsed = wikitext.parse_page(text, EN)
  counts = dict(parsed.link_counts)
  expected = len(mwparserfromhell.parse(text).filter_wikilinks(recursive=True))
  assert counts.get("found", 0) == expected
  assert counts.get("found", 0) == len(parsed.links) + sum(
      n for k, n in counts.items() if k != "found")
  for link in parsed.links:
    assert parsed.text[link.start:link.end].strip()


def test_parser_failure_is_a_wikitext_parse_error(monkeypatch):
  def explode(_):
    raise RecursionError("maximum recursion depth exceeded")
  monkeypatch.setattr(wikitext.mwparserfromhell, "parse", explode)
  with pytest.raises(wikitext.WikitextParseError, match="RecursionError"):
    wikitext.parse_page("[[X]]", EN)


def test_redirect_target_fallback():
  assert wikitext.redirect_target("#REDIRECT [[Hồng Kông#Lịch sử]]") == "Hồng Kông#Lịch sử"
  assert wikitext.redirect_target("#redirect:[[Foo|bar]]") == "Foo"
  assert wikitext.redirect_target("# [[Foo]] is a list item") == ""


# Real pages: (mini dump, title, first anchors with their normalized targets, description).
REAL_PAGES = [
    ("jawiki", "アンパサンド", [("記号", "記号"), ("ラテン語", "ラテン語")],
     "アンパサンド（&, ）は、並立助詞「…と…」を意味する記号である。"),
    ("bnwiki", "বাংলা ভাষা", [("ইন্দো-আর্য", "ইন্দো-আর্য ভাষাসমূহ"),
                             ("দক্ষিণ এশিয়ার", "দক্ষিণ এশিয়া")],
     "বাংলা ভাষা (বাঙলা, বাঙ্গলা, তথা বাঙ্গালা নামেও পরিচিত) একটি ইন্দো-আর্য ভাষা, যা দক্ষিণ "
     "এশিয়ার বাঙালি জাতির প্রধান কথ্য ও লেখ্য ভাষা।"),
    ("mrwiki", "मराठी भाषा", [("इंडो-युरोपीय", "इंडो-युरोपीय भाषासमूह"), ("भाषा", "भाषा")],
     "मराठी भाषा ही इंडो-युरोपीय भाषाकुळातील एक भाषा आहे."),
    ("elwiki", "Αθλητισμός", [("αθλητικούς αγώνες", "Αθλητικός αγώνας"),
                              ("Αρχαία Ελλάδα", "Αρχαία Ελλάδα")], None),
    ("ukwiki", "Географія", [("заст.", "Активна і пасивна лексика української мови"),
                             ("система наук", "Наука")], None),
    ("viwiki", "Hà Nội", [("thủ đô", "Thủ đô"), ("thành phố trực thuộc trung ương",
                                                 "Thành phố trực thuộc trung ương")],
     "Hà Nội là thủ đô, thành phố trực thuộc trung ương và là một trong hai đô thị loại đặc "
     "biệt của nước Cộng hòa Xã hội chủ nghĩa Việt Nam."),
]


@pytest.fixture(scope="module")
def mini_pages(shared_data):
  pages = {}
  for wiki in {w for w, *_ in REAL_PAGES} | {"enwiki"}:
    items = list(dump_reader.read_dump(str(shared_data / f"wikipedia/mini/{wiki}-mini.xml.bz2")))
    pages[wiki] = (items[0], [p for p in items[1:] if p.ns == 0 and not p.redirect])
  return pages


@pytest.mark.parametrize("wiki,title,first_anchors,description", REAL_PAGES)
def test_real_pages(mini_pages, wiki, title, first_anchors, description):
  site, pages = mini_pages[wiki]
  page = next(p for p in pages if p.title == title)
  parsed = wikitext.parse_page(page.text, site)
  assert _anchors(parsed)[:len(first_anchors)] == first_anchors
  if description is not None:
    assert parsed.description == description
  else:
    assert parsed.description and parsed.description in parsed.text


def test_every_link_of_every_real_page_is_placed_or_accounted(mini_pages):
  for site, pages in mini_pages.values():
    for page in pages:
      parsed = wikitext.parse_page(page.text, site)
      counts = dict(parsed.link_counts)
      found = len(mwparserfromhell.parse(page.text).filter_wikilinks(recursive=True))
      assert counts.get("found", 0) == found, page.title
      assert found == len(parsed.links) + sum(n for k, n in counts.items() if k != "found")
      for link in parsed.links:
        anchor = parsed.text[link.start:link.end]
        assert anchor and anchor == anchor.strip(), (page.title, link)
        assert link.target and link.target[0] == link.target[0].upper()


def test_united_kingdom_page(shared_data):
  text = (shared_data / "wikitext/United-Kingdom.txt").read_text(encoding="utf-8")
  assert len(text) > 300_000
  parsed = wikitext.parse_page(text, titles.default_siteinfo("enwiki"))
  counts = dict(parsed.link_counts)
  assert counts["found"] == len(mwparserfromhell.parse(text).filter_wikilinks(recursive=True))
  assert counts["found"] > 1600
  assert len(parsed.links) > 1300
  assert parsed.description.startswith("The United Kingdom of Great Britain and Northern "
                                       "Ireland, commonly known as the United Kingdom (UK)")
  assert parsed.description.endswith("is a sovereign country in western Europe.")
