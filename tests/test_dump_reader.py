"""mel.wikipedia.dump_reader on real dumps, other compressions, and the edge-case files."""
import bz2
import gzip
import lzma
import shutil

import pytest

from mel.wikipedia import dump_reader
from mel.wikipedia import titles


def _read(path):
  items = list(dump_reader.read_dump(str(path)))
  return items[0], items[1:]


def test_mini_dump_siteinfo_and_pages(shared_data):
  site, pages = _read(shared_data / "wikipedia/mini/ukwiki-mini.xml.bz2")
  assert isinstance(site, titles.SiteInfo)
  assert (site.wiki, site.lang, site.case) == ("ukwiki", "uk", "first-letter")
  assert site.namespaces["категорія"] == 14 and site.namespaces["файл"] == 6
  assert len(pages) == 38
  geo = next(p for p in pages if p.title == "Географія")
  assert geo.ns == 0 and not geo.redirect and geo.page_id > 0
  assert geo.text.startswith("{{") or "Геогра" in geo.text[:2000]
  assert all(p.wiki == "ukwiki" and p.source.endswith("ukwiki-mini.xml.bz2") for p in pages)


def test_language_comes_from_dbname_not_file_name(shared_data, tmp_path):
  misleading = tmp_path / "enwiki-latest-pages-articles.xml.bz2"
  shutil.copy(shared_data / "wikipedia/mini/jawiki-mini.xml.bz2", misleading)
  site, pages = _read(misleading)
  assert (site.wiki, site.lang) == ("jawiki", "ja")
  assert {p.lang for p in pages} == {"ja"}


@pytest.mark.parametrize("name,opener", [("dump.xml.gz", gzip.open), ("dump.xml.xz", lzma.open),
                                         ("dump.xml", open), ("no-extension", gzip.open)])
def test_compression_is_sniffed_from_content(shared_data, tmp_path, name, opener):
  raw = bz2.open(shared_data / "wikipedia/mini/mrwiki-mini.xml.bz2").read()
  path = tmp_path / name
  with opener(path, "wb") as f:
    f.write(raw)
  site, pages = _read(path)
  assert site.wiki == "mrwiki" and len(pages) == 162


def test_utf16le_crlf_dump_is_read_correctly(shared_data):
  site, pages = _read(shared_data / "wikipedia/edge-cases/bgwiki-3pages-utf16le-crlf.xml.bz2")
  assert (site.wiki, site.lang) == ("bgwiki", "bg")
  assert [p.title for p in pages][0] == "Григориански календар"
  assert len(pages) == 3
  assert all("\r" not in p.text for p in pages)  # XML end-of-line handling turned CRLF to LF
  assert "[[Папа]]" in pages[0].text


def test_truncated_dump_yields_complete_pages_then_names_the_file(shared_data):
  path = str(shared_data / "wikipedia/edge-cases/ukwiki-truncated-midpage.xml.xz")
  seen = []
  with pytest.raises(dump_reader.DumpTruncatedError) as err:
    for item in dump_reader.read_dump(path):
      seen.append(item)
  assert len(seen) == 1 + 532  # siteinfo + every complete page
  assert err.value.pages_read == 532
  assert "ukwiki-truncated-midpage.xml.xz" in str(err.value)
  assert "ends early" in str(err.value)


def test_last_revision_and_namespaces_of_a_multi_revision_export(shared_data):
  site, pages = _read(shared_data / "wikipedia/edge-cases/pair-0.10.xml")
  assert [p.ns for p in pages] == [0, 1]
  article = pages[0]
  raw = (shared_data / "wikipedia/edge-cases/pair-0.10.xml").read_text(encoding="utf-8")
  assert raw.count("<revision>") > 2
  # The article's text is the one of its last <revision> in the file.
  page_xml = raw[:raw.index("</page>")]
  last_text = page_xml[page_xml.rindex("<text"):]
  assert article.text.splitlines()[0][:20] in last_text


def test_not_a_dump_and_missing_siteinfo_raise_format_errors(tmp_path):
  bad = tmp_path / "notes.xml"
  bad.write_text("<html><body>hello</body></html>", encoding="utf-8")
  with pytest.raises(dump_reader.DumpFormatError, match="notes.xml: root element is <html>"):
    list(dump_reader.read_dump(str(bad)))
  nosite = tmp_path / "nosite.xml"
  nosite.write_text("<mediawiki><page><title>A</title><ns>0</ns><id>1</id></page></mediawiki>",
                    encoding="utf-8")
  with pytest.raises(dump_reader.DumpFormatError, match="<page> before <siteinfo> and no xml:lang"):
    list(dump_reader.read_dump(str(nosite)))
  garbage = tmp_path / "garbage.xml"
  garbage.write_text("<mediawiki><siteinfo><dbname>xxwiki</dbname></siteinfo><page>&bogus;"
                     "</page></mediawiki>", encoding="utf-8")
  with pytest.raises(dump_reader.DumpFormatError, match="garbage.xml: malformed XML"):
    list(dump_reader.read_dump(str(garbage)))


def test_export_without_siteinfo_takes_the_wiki_from_xml_lang(shared_data):
  site, pages = _read(shared_data / "wikipedia/edge-cases/enwiki-table-markup.xml.bz2")
  assert (site.wiki, site.lang, site.namespaces) == ("enwiki", "en", {})
  assert len(pages) == 5 and pages[0].title == "Constructive vote of no confidence"


def test_urls_need_a_filesystem(tmp_path):
  """The reader itself opens local files only (it imports no Beam); a URL without open_raw is
  a clear error naming it, and open_raw serves any scheme."""
  with pytest.raises(dump_reader.DumpError, match="gs://b/x.xml.bz2: not a local file"):
    list(dump_reader.read_dump("gs://b/x.xml.bz2"))
  local = tmp_path / "d.xml"
  local.write_text("<mediawiki><siteinfo><dbname>xxwiki</dbname></siteinfo></mediawiki>")
  opened = []

  def open_raw(path):
    opened.append(path)
    return open(local, "rb")
  items = list(dump_reader.read_dump("mem://d.xml", open_raw=open_raw))
  assert opened == ["mem://d.xml"] and items[0].wiki == "xxwiki"
