"""Wikimedia multistream dumps: the index of stream offsets, the header, streams of pages.

A `*-pages-articles-multistream.xml.bz2` is one bzip2 stream holding the header (<mediawiki>
and <siteinfo>), then streams of 100 <page> elements each, then one holding </mediawiki>. Its
`*-multistream-index.txt.bz2` has one line per page, `offset:page_id:title`, where offset is
the byte at which the page's stream starts. A worker can therefore read any run of streams
without the rest of the file (beam_pipelines/read_dumps.py splits the file this way).

An index that does not belong to its dump (an older one, say) is caught: every stream read
must start where the index says, hold the pages it lists (count, first and last id), and the
stream after the last one listed must be the closing one. StaleIndexError names both files.
"""
import bisect
import bz2
import dataclasses
import io
import re
from typing import BinaryIO, Callable, Iterable, Iterator, List, Optional, Tuple

from mel.wikipedia import bz2_streams
from mel.wikipedia import dump_reader
from mel.wikipedia import titles

PAGES_PER_STREAM = 100  # what Wikimedia writes


class StaleIndexError(dump_reader.DumpError):
  """The index does not describe the dump (a different or older file)."""


class IndexFormatError(dump_reader.DumpError):
  """A line of the index is not `offset:page_id:title`."""


@dataclasses.dataclass(frozen=True)
class IndexedStream:
  """One stream as the index lists it."""
  offset: int
  pages: int
  first_id: int
  last_id: int


def index_path_for(dump_path: str) -> Optional[str]:
  """`X-multistream.xml.bz2` -> `X-multistream-index.txt.bz2` (Wikimedia's naming)."""
  if not dump_path.endswith(".xml.bz2"):
    return None
  return dump_path[:-len(".xml.bz2")] + "-index.txt.bz2"


def parse_index(lines: Iterable[str], name: str) -> List[IndexedStream]:
  """Index lines -> its streams in file order; IndexFormatError names the line."""
  streams = []
  offset = pages = first_id = last_id = None
  for line_no, line in enumerate(lines, start=1):
    line = line.rstrip("\n")
    if not line:
      continue
    fields = line.split(":", 2)
    try:
      if len(fields) != 3:
        raise ValueError
      at, page_id = int(fields[0]), int(fields[1])
    except ValueError:
      raise IndexFormatError(name, f"line {line_no} is not offset:page_id:title: "
                             f"{line[:80]!r}") from None
    if at != offset:
      if offset is not None:
        if at < offset:
          raise IndexFormatError(name, f"line {line_no}: offset {at} comes after {offset}")
        streams.append(IndexedStream(offset, pages, first_id, last_id))
      offset, pages, first_id = at, 0, page_id
    pages += 1
    last_id = page_id
  if offset is not None:
    streams.append(IndexedStream(offset, pages, first_id, last_id))
  return streams


def read_index(path: str, open_raw: Callable[[str], BinaryIO]) -> List[IndexedStream]:
  """The index file (bz2 as published, or plain text) -> its streams."""
  with open_raw(path) as raw:
    head = raw.read(3)
    raw.seek(0)
    data = bz2.BZ2File(raw) if bz2_streams.is_bz2(head) else raw
    try:
      return parse_index(io.TextIOWrapper(data, encoding="utf-8"), path)
    except (OSError, EOFError, UnicodeDecodeError) as e:
      raise IndexFormatError(path, f"cannot be read: {e}") from None


def read_header(path: str, f: BinaryIO) -> Tuple[titles.SiteInfo, int]:
  """The dump's SiteInfo and the offset of its first stream of pages."""
  try:
    stream = bz2_streams.read_stream(f, 0)
  except bz2_streams.Bz2StreamError as e:
    raise dump_reader.DumpFormatError(path, str(e)) from None
  if b"<page>" in stream.data or b"<siteinfo" not in stream.data:
    raise dump_reader.DumpFormatError(
        path, "its first bz2 stream is not a multistream header (<siteinfo> alone)")
  site = next(dump_reader.read_dump(path, stream=io.BytesIO(stream.data + b"</mediawiki>")))
  return site, stream.end


def pages_of_range(path: str, index_path: str, site: titles.SiteInfo, f: BinaryIO,
                   index: List[IndexedStream], start: int, claim: Callable[[int], bool]
                   ) -> Iterator[List[dump_reader.RawPage]]:
  """The pages of the streams a range owns, one list per stream.

  The range owns the streams listed in the index that start at or after `start` for which
  claim(offset) is true (the Beam reader passes its tracker's try_claim); reading stops at the
  first one it does not own. Raises StaleIndexError, DumpTruncatedError (after the complete
  pages of a stream cut short by the end of the file) or DumpFormatError.
  """
  offsets = [s.offset for s in index]
  i = bisect.bisect_left(offsets, start)
  if i == len(index):
    return

  refused = []

  def wanted(offset):  # asked before a stream is decompressed
    if i == len(index):
      return True  # the closing stream, checked below
    if offset != index[i].offset:
      raise StaleIndexError(path, f"a bz2 stream starts at byte {offset}, but {index_path} "
                            f"lists one at {index[i].offset}")
    if not claim(offset):
      refused.append(offset)
      return False
    return True

  try:
    for stream in bz2_streams.iter_streams(f, index[i].offset, wanted):
      if i == len(index):
        _check_closing_stream(path, index_path, stream)
        return
      listed = index[i]
      where = f"bz2 stream at byte {stream.offset}"
      pages = []
      try:
        for page in dump_reader.read_page_fragment(path, site, stream.data, where,
                                                   stream.complete):
          pages.append(page)
      except dump_reader.DumpTruncatedError:
        yield pages
        raise
      except dump_reader.DumpFormatError as e:
        raise StaleIndexError(path, f"{e}; {index_path} says a stream of pages starts "
                              "there") from None
      got = (len(pages), pages[0].page_id if pages else None,
             pages[-1].page_id if pages else None)
      if got != (listed.pages, listed.first_id, listed.last_id):
        raise StaleIndexError(
            path, f"the {where} holds {got[0]} pages, ids {got[1]}..{got[2]}; {index_path} "
            f"lists {listed.pages}, ids {listed.first_id}..{listed.last_id}")
      yield pages
      i += 1
  except bz2_streams.Bz2StreamError as e:
    raise StaleIndexError(path, f"{e}: not a stream start, though {index_path} lists it "
                          "as one") from None
  if refused:
    return  # the next stream belongs to another range
  # The file ended: before a stream the index lists, or with no closing stream.
  where = (f"before byte {index[i].offset}, where {index_path} lists a stream"
           if i < len(index) else "without the closing </mediawiki> stream")
  raise dump_reader.DumpTruncatedError(path, f"the file ends {where}")


def _check_closing_stream(path, index_path, stream):
  if stream.data.strip() != b"</mediawiki>":
    raise StaleIndexError(path, f"the bz2 stream at byte {stream.offset}, after the last one "
                          f"{index_path} lists, holds more than </mediawiki>: the dump has "
                          "pages the index does not list")


def check_index(path: str, index_path: str, site: titles.SiteInfo, f: BinaryIO,
                index: List[IndexedStream], first_offset: int, samples: int = 3):
  """Reads a few streams (the first, the last, some between) against the index: a cheap check,
  before any work is split, that the index belongs to the dump. Raises StaleIndexError."""
  if not index:
    raise StaleIndexError(path, f"{index_path} lists no pages")
  if index[0].offset != first_offset:
    raise StaleIndexError(path, f"its first stream of pages starts at byte {first_offset}, "
                          f"{index_path} says {index[0].offset}")
  picks = sorted({round(k * (len(index) - 1) / max(1, samples - 1)) for k in range(samples)})
  for k in picks:
    owned = {index[k].offset}
    try:
      for _ in pages_of_range(path, index_path, site, f, index, index[k].offset,
                              lambda offset: offset in owned):
        pass
    except dump_reader.DumpTruncatedError:
      pass  # a cut-off file: the read itself reports it


# --------------------------------------------------------------------------------------------
# Writing (tests, benchmarks, and turning any dump into one many workers can read)

_PAGE_START = re.compile(rb"^[ \t]*<page>", re.MULTILINE)
_ROOT_END = re.compile(rb"^[ \t]*</mediawiki>", re.MULTILINE)


def write_multistream(source: str, dump_path: str, index_path: str,
                      pages_per_stream: int = PAGES_PER_STREAM) -> int:
  """Rewrites a UTF-8 pages-articles dump (any compression) as Wikimedia publishes it: header
  stream, streams of `pages_per_stream` pages, closing stream, and the bz2 index. Returns the
  number of page streams."""
  with dump_reader.open_dump(source) as f:
    data = f.read()
  if not data.lstrip().startswith((b"<mediawiki", b"<?xml")):
    raise dump_reader.DumpFormatError(source, "not a UTF-8 XML dump")
  starts = [m.start() for m in _PAGE_START.finditer(data)]
  end = _ROOT_END.search(data, starts[-1] if starts else 0)
  if not starts or end is None:
    raise dump_reader.DumpFormatError(source, "no <page> elements, or no </mediawiki>")
  header = data[:starts[0]]
  site = next(dump_reader.read_dump(source, stream=io.BytesIO(header + b"</mediawiki>")))
  bounds = starts + [end.start()]
  index_lines = []
  streams = 0
  with open(dump_path, "wb") as out:
    out.write(bz2.compress(header))
    for first in range(0, len(starts), pages_per_stream):
      chunk = data[bounds[first]:bounds[min(first + pages_per_stream, len(starts))]]
      offset = out.tell()
      for page in dump_reader.read_page_fragment(source, site, chunk):
        index_lines.append(f"{offset}:{page.page_id}:{page.title}\n")
      out.write(bz2.compress(chunk))
      streams += 1
    out.write(bz2.compress(data[end.start():]))
  with bz2.open(index_path, "wt", encoding="utf-8") as out:
    out.writelines(index_lines)
  return streams
