"""Reading the dumps: Wikipedia XML -> RawPages, WikiData JSON -> lines -> items.

One big file is read by many workers where its format allows (split reads, the default):
- a Wikimedia multistream dump with its `-multistream-index.txt.bz2` beside it: byte ranges of
  whole 100-page streams, found through the index (mel/wikipedia/multistream.py);
- a bz2 WikiData dump (published as many concatenated streams): byte ranges split at stream
  starts, lines at newlines (mel/wikipedia/bz2_streams.py).
Both are splittable DoFns over byte offsets (OffsetRestrictionTracker, one claim per stream), so
a runner cuts them into `split_bytes` ranges up front and can split a busy range further.

Any other file is read whole by one worker, with a log line and a `dump/read_whole/<reason>`
count saying why (gzip and xz cannot be read from the middle; a dump with no index, or with
an index that does not match it, is read sequentially). Whole files' pages and lines are then
reshuffled so they are parsed in parallel; split reads need no reshuffle.

Both modes yield exactly the same records: tests compare them on every shared excerpt.
"""
import dataclasses
import functools
import logging
from typing import Optional

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker

from beam_pipelines import wikidata
from beam_pipelines.transforms import (COUNTS, DEAD_LETTER, CountingDoFn, dead, sitelink_rows)
from mel.wikipedia import bz2_streams
from mel.wikipedia import dump_reader
from mel.wikipedia import multistream
from mel.wikipedia import titles

DEFAULT_SPLIT_BYTES = 64 << 20

# Why a file is read whole (counted as dump/read_whole/<reason>).
SPLIT_READS_OFF = "split_reads_off"
NOT_BZ2 = "not_bz2"
NO_INDEX = "no_index"
BAD_INDEX = "index_does_not_match"


@dataclasses.dataclass(frozen=True)
class ReadOptions:
  split_reads: bool = True
  split_bytes: int = DEFAULT_SPLIT_BYTES


def open_beam_file(path):
  """A file's raw bytes through Beam's filesystems (local, gs://, ...)."""
  from apache_beam.io.filesystem import CompressionTypes
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _file_size(path) -> int:
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def _exists(path) -> bool:
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.exists(path)


def _is_bz2(path) -> bool:
  with open_beam_file(path) as f:
    return bz2_streams.is_bz2(f.read(3))


@functools.lru_cache(maxsize=4)
def _index(index_path: str, size: int):
  """Read once per worker process and dump: English's index is ~230k streams."""
  return multistream.read_index(index_path, open_beam_file)


@dataclasses.dataclass(frozen=True)
class SplitFile:
  """A dump to read in byte ranges: [start, size) of `path`."""
  path: str
  start: int
  size: int
  split_bytes: int
  index_path: str = ""                    # Wikipedia: its multistream index
  index_size: int = 0
  site: Optional[titles.SiteInfo] = None  # Wikipedia: from the header stream


class _ByteRanges(beam.transforms.core.RestrictionProvider):
  """[start, size) of a SplitFile, cut into split_bytes ranges; sized in bytes."""

  def initial_restriction(self, split_file):
    return OffsetRange(split_file.start, split_file.size)

  def create_tracker(self, restriction):
    return OffsetRestrictionTracker(restriction)

  def split(self, split_file, restriction):
    yield from restriction.split(split_file.split_bytes)

  def restriction_size(self, split_file, restriction):
    return restriction.size()


class _Claims:
  """A tracker's try_claim for the readers, and the final claim that marks a range done."""

  def __init__(self, tracker):
    self._tracker = tracker
    self._refused = False

  def claim(self, offset: int) -> bool:
    if self._refused:
      return False
    self._refused = not self._tracker.try_claim(offset)
    return not self._refused

  def finish(self):
    if not self._refused:
      self._tracker.try_claim(self._tracker.current_restriction().stop)


def _read_whole(path, reason, level=logging.INFO, detail=""):
  logging.log(level, "%s: read whole by one worker (%s)%s", path, reason,
              f": {detail}" if detail else "")
  return reason


# --------------------------------------------------------------------------------------------
# Wikipedia


class _PlanWikipediaReadFn(CountingDoFn):
  """A dump path -> SplitFile (tagged 'split', with its SiteInfo tagged 'siteinfo'), or the
  path itself to read whole."""

  def __init__(self, options: ReadOptions):
    self._options = options

  def process(self, path):
    self.count("", "dump/files")
    reason = self._plan(path)
    if isinstance(reason, SplitFile):
      self.count("", "dump/read_split")
      yield beam.pvalue.TaggedOutput("siteinfo", (reason.site.wiki, reason.site))
      yield beam.pvalue.TaggedOutput("split", reason)
      return
    self.count("", f"dump/read_whole/{reason}")
    yield path

  def _plan(self, path):
    if not self._options.split_reads:
      return _read_whole(path, SPLIT_READS_OFF)
    if not _is_bz2(path):
      return _read_whole(path, NOT_BZ2, detail="only bz2 multistream dumps can be split")
    index_path = multistream.index_path_for(path) or ""
    if not index_path or not _exists(index_path):
      level = logging.WARNING if "multistream" in path else logging.INFO
      return _read_whole(path, NO_INDEX, level, f"no index {index_path or '(name)'} beside it")
    try:
      index_size = _file_size(index_path)
      index = _index(index_path, index_size)
      with open_beam_file(path) as f:
        site, first = multistream.read_header(path, f)
        multistream.check_index(path, index_path, site, f, index, first)
    except dump_reader.DumpError as e:
      return _read_whole(path, BAD_INDEX, logging.WARNING, str(e))
    return SplitFile(path=path, start=first, size=_file_size(path),
                     split_bytes=self._options.split_bytes, index_path=index_path,
                     index_size=index_size, site=site)


def _dump_error(fn, lang, path, e):
  reason = {dump_reader.DumpTruncatedError: "truncated",
            multistream.StaleIndexError: BAD_INDEX}.get(type(e), "format_error")
  logging.error("%s", e)
  fn.count(lang, f"dump/errors/{reason}")
  return dead("dump", reason, path, path, str(e))


class _ReadWholeDumpFn(CountingDoFn):
  """A dump file -> its SiteInfo and RawPages; errors name the file and go to dead letter."""

  def process(self, path):
    lang = ""
    pages = 0
    try:
      for obj in dump_reader.read_dump(path, open_raw=open_beam_file):
        if isinstance(obj, titles.SiteInfo):
          lang = obj.lang
          yield beam.pvalue.TaggedOutput("siteinfo", (obj.wiki, obj))
          continue
        pages += 1
        if pages % 10000 == 0:
          logging.info("%s: %d pages read", path, pages)
        yield obj
    except dump_reader.DumpError as e:
      yield _dump_error(self, lang, path, e)
    self.count(lang, "pages/read", pages)  # also after an error: every page yielded counts
    logging.info("%s: %d pages read (%s)", path, pages, lang or "no siteinfo")


class _ReadDumpStreamsFn(CountingDoFn):
  """SplitFile + a byte range -> the RawPages of the multistream streams starting in it."""

  def process(self, split_file: SplitFile,
              tracker=beam.DoFn.RestrictionParam(_ByteRanges())):
    path, lang = split_file.path, split_file.site.lang
    index = _index(split_file.index_path, split_file.index_size)
    claims = _Claims(tracker)
    pages = 0
    try:
      with open_beam_file(path) as f:
        for stream_pages in multistream.pages_of_range(
            path, split_file.index_path, split_file.site, f, index,
            tracker.current_restriction().start, claims.claim):
          self.count("", "dump/streams_read")
          pages += len(stream_pages)
          yield from stream_pages
    except dump_reader.DumpError as e:
      yield _dump_error(self, lang, path, e)
    self.count(lang, "pages/read", pages)
    claims.finish()


class ReadWikipediaDumps(beam.PTransform):
  """File paths -> {'pages': RawPage, 'siteinfo': (wiki, SiteInfo), counts, dead_letter}."""

  def __init__(self, options: ReadOptions = ReadOptions()):
    super().__init__()
    self._options = options

  def expand(self, paths):
    plans = paths | "PlanReads" >> beam.ParDo(_PlanWikipediaReadFn(self._options)).with_outputs(
        "split", "siteinfo", COUNTS, main="whole")
    whole = plans.whole | "ReadWholeFiles" >> beam.ParDo(_ReadWholeDumpFn()).with_outputs(
        "siteinfo", COUNTS, DEAD_LETTER, main="pages")
    split = plans.split | "ReadStreams" >> beam.ParDo(_ReadDumpStreamsFn()).with_outputs(
        COUNTS, DEAD_LETTER, main="pages")
    # A whole file arrives as one element: reshuffle its pages so they are parsed in parallel.
    pages = ((whole.pages | "SpreadPages" >> beam.Reshuffle(), split.pages)
             | "AllPages" >> beam.Flatten())
    # A wiki may come in several files (split dumps): keep one SiteInfo per wiki.
    siteinfo = ((whole.siteinfo, plans.siteinfo) | "AllSiteInfo" >> beam.Flatten()
                | "GroupSiteInfo" >> beam.GroupByKey()
                | "OneSiteInfo" >> beam.MapTuple(lambda wiki, infos: (wiki, next(iter(infos)))))
    counts = (plans[COUNTS], whole[COUNTS], split[COUNTS]) | "ReadCounts" >> beam.Flatten()
    dead_letters = (whole[DEAD_LETTER], split[DEAD_LETTER]) | "ReadDead" >> beam.Flatten()
    return {"pages": pages, "siteinfo": siteinfo, COUNTS: counts, DEAD_LETTER: dead_letters}


# --------------------------------------------------------------------------------------------
# WikiData


def _line_source(path, label):
  return f"{path}:bz2 stream at byte {label[0]}, line {label[1] + 1}"


def _bz2_lines(path, f, start, stop, claim):
  """(source, line bytes) of the lines the range [start, stop) of a bz2 dump owns; the range
  that owns a stream cut off by the end of the file ends with (source, None)."""
  first = bz2_streams.find_stream_start(f, start, stop)
  if first is None or not claim(first):
    return
  for label, line, complete in bz2_streams.owned_lines(
      bz2_streams.iter_streams(f, first), lambda offset: offset == first or claim(offset),
      at_file_start=first == 0):
    yield _line_source(path, label), line if complete else None


class _PlanWikidataReadFn(CountingDoFn):

  def __init__(self, options: ReadOptions):
    self._options = options

  def process(self, path):
    if not self._options.split_reads:
      reason = _read_whole(path, SPLIT_READS_OFF)
    elif not _is_bz2(path):
      reason = _read_whole(path, NOT_BZ2, logging.WARNING,
                           "gzip and plain files cannot be read from the middle; WikiData's "
                           ".json.bz2 dumps can (many bz2 streams)")
    else:
      self.count("", "dump/read_split")
      yield beam.pvalue.TaggedOutput("split", SplitFile(
          path=path, start=0, size=_file_size(path), split_bytes=self._options.split_bytes))
      return
    self.count("", f"dump/read_whole/{reason}")
    yield path


class _ReadWholeLinesFn(CountingDoFn):
  """A WikiData dump read by one worker -> (source, line)."""

  def process(self, path):
    try:
      with open_beam_file(path) as f:
        if bz2_streams.is_bz2(f.read(3)):
          # Named as split reads name them, so both modes give the same dead letters.
          yield from _bz2_lines(path, f, 0, None, lambda offset: True)
          return
      with dump_reader.open_dump(path, open_beam_file) as raw:
        for line_no, line in enumerate(raw, start=1):
          yield f"{path}:{line_no}", line
    except (OSError, EOFError, bz2_streams.Bz2StreamError) as e:
      yield f"{path}: {e}", None


class _ReadLineStreamsFn(CountingDoFn):
  """SplitFile + a byte range -> (source, line) of the lines it owns."""

  def process(self, split_file: SplitFile,
              tracker=beam.DoFn.RestrictionParam(_ByteRanges())):
    claims = _Claims(tracker)
    try:
      with open_beam_file(split_file.path) as f:
        restriction = tracker.current_restriction()
        yield from _bz2_lines(split_file.path, f, restriction.start, restriction.stop,
                              claims.claim)
    except bz2_streams.Bz2StreamError as e:
      yield f"{split_file.path}: {e}", None
    claims.finish()


# Rejections after which an entity is still a node of the class graph (a class item).
_CLASS_NODE_REASONS = (wikidata.FILTERED_CLASS, wikidata.NO_WIKIPEDIA_SITELINK)


class _ParseWikidataFn(CountingDoFn):
  def process(self, element):
    source, raw = element
    if raw is None:  # the file is cut short or corrupt here
      self.count("", "dump/errors/truncated")
      yield dead("wikidata", "truncated", source, source, "the dump ends inside this line")
      return
    try:
      line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
      self.count("", "wikidata/read")
      self.count("", f"wikidata/skipped/{wikidata.BAD_JSON}")
      yield dead("wikidata", wikidata.BAD_JSON, source, raw[:60].decode("utf-8", "replace"),
                 f"not UTF-8: {e}")
      return
    for obj in wikidata.parse_line(line):
      self.count("", "wikidata/read")
      if isinstance(obj, wikidata.Item):
        self.count("", "wikidata/kept")
        yield beam.pvalue.TaggedOutput("classes", (obj.qid, (
            obj.subclass_of, wikidata.display_label(obj.labels))))
        yield obj
        continue
      if obj.reason in _CLASS_NODE_REASONS:
        yield beam.pvalue.TaggedOutput("classes", (obj.key, (obj.subclass_of, obj.label)))
      self.count("", f"wikidata/skipped/{obj.reason}")
      if obj.reason == wikidata.FILTERED_CLASS:
        yield beam.pvalue.TaggedOutput("filtered", obj)
      if obj.reason in (wikidata.FILTERED_CLASS, wikidata.BAD_JSON, wikidata.BAD_ENTITY):
        yield dead("wikidata", obj.reason, source, obj.key, obj.detail)


class ReadWikidata(beam.PTransform):
  """Dump paths -> {'items': Item, 'sitelinks': ((wiki, title), (qid, kept)), 'classes': (qid,
  (P279 values, label)) for every item of the dump, counts, dead}."""

  def __init__(self, options: ReadOptions = ReadOptions()):
    super().__init__()
    self._options = options

  def expand(self, paths):
    plans = paths | "PlanReads" >> beam.ParDo(_PlanWikidataReadFn(self._options)).with_outputs(
        "split", COUNTS, main="whole")
    whole = (plans.whole | "ReadWholeFiles" >> beam.ParDo(_ReadWholeLinesFn())
             | "SpreadLines" >> beam.Reshuffle())
    split = plans.split | "ReadStreams" >> beam.ParDo(_ReadLineStreamsFn())
    lines = (whole, split) | "AllLines" >> beam.Flatten()
    out = lines | "ParseEntities" >> beam.ParDo(_ParseWikidataFn()).with_outputs(
        "filtered", "classes", COUNTS, DEAD_LETTER, main="items")
    sitelinks = ((out.items, out.filtered) | "ItemsAndFiltered" >> beam.Flatten()
                 | "SitelinkRows" >> beam.FlatMap(sitelink_rows))
    counts = (plans[COUNTS], out[COUNTS]) | "WikidataCounts" >> beam.Flatten()
    return {"items": out.items, "sitelinks": sitelinks, "classes": out.classes,
            COUNTS: counts, DEAD_LETTER: out[DEAD_LETTER]}
