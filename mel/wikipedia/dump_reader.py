"""Streaming reader for MediaWiki XML dumps (pages-articles, any language, any export version).

Compression is recognised from the file's first bytes, not its name: bzip2 (also multistream),
gzip, xz, or none. The XML parser reads the byte stream itself, so the encoding comes from the
byte order mark or the XML declaration: UTF-8 and UTF-16 (LE/BE, with BOM) dumps are read
correctly and CRLF line ends become LF as XML requires. Memory stays flat: each <page> is
freed once yielded.

A dump that ends early (a cut download) raises DumpTruncatedError after every complete page has
been yielded; other malformed XML raises DumpFormatError. Both name the file.
"""
import bz2
import dataclasses
import gzip
import io
import lzma
import xml.etree.ElementTree as ET
from typing import BinaryIO, Callable, Iterator, Optional, Union

from mel.wikipedia import titles
from mel import languages


class DumpError(Exception):
  """A dump file cannot be read (further); the message names the file."""

  def __init__(self, path, message, pages_read=0):
    super().__init__(f"{path}: {message}")
    self.path = path
    self.pages_read = pages_read


class DumpTruncatedError(DumpError):
  """The dump ends inside an element; every complete page before that was yielded."""


class DumpFormatError(DumpError):
  """The file is not a MediaWiki XML dump, or its XML is malformed."""


@dataclasses.dataclass(frozen=True)
class RawPage:
  """One <page> as it is in the dump (the last revision's text)."""
  wiki: str
  lang: str
  title: str
  ns: int
  page_id: int
  redirect: str   # raw target of <redirect title=...>, '' for articles
  text: str
  source: str     # the dump file


_MAGIC = ((b"BZh", bz2.BZ2File), (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw)),
          (b"\xfd7zXZ\x00", lzma.LZMAFile))


def open_dump(path: str, open_raw: Optional[Callable[[str], BinaryIO]] = None):
  """Opens a dump as decompressed bytes.

  open_raw(path) returns the file's raw bytes as a seekable binary file; the default opens
  local files. The Beam jobs pass Beam's FileSystems (gs:// and other URLs), so this module
  never imports Beam.
  """
  raw = (open_raw or _open_local)(path)
  head = raw.read(6)
  raw.seek(0)
  for magic, opener in _MAGIC:
    if head.startswith(magic):
      return opener(raw)
  return raw


def _open_local(path: str) -> BinaryIO:
  if "://" in path:
    raise DumpError(path, "not a local file: read it through a filesystem that knows its "
                    "scheme (the Beam jobs pass open_raw)")
  return open(path, "rb")


class _ReadAvailable:
  """Hands the XML parser what a decompressor has so far (read1), so a stream cut short loses
  no complete page: a plain read(n) of BZ2File/GzipFile drops the bytes it had gathered in
  that call when the decompressor then hits the cut (EOFError)."""

  def __init__(self, f):
    self._f = f

  def read(self, n=-1):
    if n is None or n < 0 or not hasattr(self._f, "read1"):
      return self._f.read(n)
    return self._f.read1(n)


_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def _local(tag: str) -> str:
  return tag.rsplit("}", 1)[-1]


def read_dump(path: str, stream=None, open_raw: Optional[Callable[[str], BinaryIO]] = None
              ) -> Iterator[Union[titles.SiteInfo, RawPage]]:
  """Yields the dump's SiteInfo (first), then every complete <page> as a RawPage.

  The wiki is named by <siteinfo><dbname>, or, for exports without <siteinfo>, by the root's
  xml:lang (then the canonical namespace names apply).
  """
  stream = _ReadAvailable(stream if stream is not None else open_dump(path, open_raw))
  site = None
  pages = 0
  root = None
  try:
    context = ET.iterparse(stream, events=("start", "end"))
    for event, elem in context:
      tag = _local(elem.tag)
      if event == "start":
        if root is None:
          root = elem
          if tag != "mediawiki":
            raise DumpFormatError(path, f"root element is <{tag}>, not <mediawiki>")
        continue
      if tag == "siteinfo":
        site = _siteinfo(path, elem)
        yield site
        root.clear()
      elif tag == "page":
        if site is None:
          # Special:Export files may omit <siteinfo>; the root's xml:lang still names the wiki.
          xml_lang = root.get(_XML_LANG, "")
          if not xml_lang:
            raise DumpFormatError(path, "<page> before <siteinfo> and no xml:lang on "
                                  "<mediawiki>: cannot tell the wiki")
          site = titles.default_siteinfo(xml_lang.replace("-", "_") + "wiki")
          yield site
        yield _page(path, site, elem)
        pages += 1
        root.clear()  # Frees the page: memory stays flat on multi-GB dumps.
  except ET.ParseError as e:
    line, column = e.position
    if "no element found" in str(e) or "unclosed token" in str(e):
      raise DumpTruncatedError(path, f"dump ends early at line {line}, column {column} after "
                               f"{pages} complete pages ({e})", pages) from None
    raise DumpFormatError(path, f"malformed XML at line {line}, column {column} after "
                          f"{pages} pages: {e}", pages) from None
  except (OSError, EOFError, lzma.LZMAError) as e:
    raise DumpTruncatedError(path, f"compressed stream broken after {pages} complete pages: {e}",
                             pages) from None
  if site is None:
    raise DumpFormatError(path, "no <siteinfo> found")


def read_page_fragment(path: str, site: titles.SiteInfo, data: bytes, where: str = "",
                       complete: bool = True) -> Iterator[RawPage]:
  """The <page> elements of a piece of a dump (a multistream dump's stream: whole pages, no
  root element), as read_dump would yield them; `where` names the piece in errors.

  A piece that is not whole pages raises DumpFormatError; one cut short (complete=False, the
  end of a truncated file) yields its complete pages, then raises DumpTruncatedError.
  """
  pages = 0
  label = f"{path} ({where})" if where else path
  try:
    context = ET.iterparse(io.BytesIO(b"<mediawiki>" + data + b"</mediawiki>"),
                           events=("start", "end"))
    root = None
    for event, elem in context:
      if root is None:
        root = elem
        continue
      if event == "end" and _local(elem.tag) == "page":
        yield _page(path, site, elem)
        pages += 1
        root.clear()
  except ET.ParseError as e:
    line, column = e.position
    if complete:
      raise DumpFormatError(label, f"not a sequence of whole <page> elements: {e} at line "
                            f"{line}, column {column} after {pages} pages", pages) from None
  if not complete:
    raise DumpTruncatedError(label, f"the file ends inside this bz2 stream, after {pages} "
                             "complete pages", pages)


def _siteinfo(path, elem) -> titles.SiteInfo:
  dbname = case = None
  namespaces = {}
  for child in elem.iter():
    tag = _local(child.tag)
    if tag == "dbname":
      dbname = (child.text or "").strip()
    elif tag == "case":
      case = (child.text or "").strip()
    elif tag == "namespace":
      key = int(child.get("key"))
      if child.text and child.text.strip():
        namespaces[child.text.strip().lower()] = key
  if not dbname:
    raise DumpFormatError(path, "<siteinfo> has no <dbname>: cannot tell the language")
  try:
    lang = languages.dbname_to_language(dbname)
  except ValueError as e:
    raise DumpFormatError(path, str(e)) from None
  return titles.SiteInfo(wiki=dbname, lang=lang, case=case or "first-letter",
                         namespaces=namespaces)


def _page(path, site, elem) -> RawPage:
  title = ""
  ns = None
  page_id = 0
  redirect = ""
  text = ""
  for child in elem:
    tag = _local(child.tag)
    if tag == "title":
      title = child.text or ""
    elif tag == "ns":
      ns = int(child.text)
    elif tag == "id":
      page_id = int(child.text)
    elif tag == "redirect":
      redirect = child.get("title") or ""
    elif tag == "revision":
      # Several revisions (full-history exports): the last one is the current text.
      text_elem = child.find("{*}text")
      if text_elem is None:
        text_elem = child.find("text")
      text = (text_elem.text or "") if text_elem is not None else ""
  if ns is None:
    ns = titles.page_namespace(title, site)
  return RawPage(wiki=site.wiki, lang=site.lang, title=title, ns=ns, page_id=page_id,
                 redirect=redirect, text=text, source=path)
