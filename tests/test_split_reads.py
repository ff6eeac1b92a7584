"""Split dump reads: bz2 streams read from any start, Wikimedia multistream dumps through their
index, and the Beam readers, all against one sequential read of the same file."""
import bz2
import gzip
import io
import logging
import random
import shutil

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
import pytest

from beam_pipelines import read_dumps
from beam_pipelines import transforms
from beam_pipelines import wikidata
from mel.wikipedia import bz2_streams
from mel.wikipedia import dump_reader
from mel.wikipedia import multistream

from conftest import EXCERPTS


def _multistream_bz2(chunks):
  return b"".join(bz2.compress(c) for c in chunks)


def _ranges_read(f, size, cuts, read_range):
  """Reads [0, size) as the ranges between `cuts`, each with its own claims, as Beam would."""
  points = sorted({0, size, *cuts})
  out = []
  for start, stop in zip(points, points[1:]):
    out += read_range(f, start, lambda offset, start=start, stop=stop: start <= offset < stop)
  return out


def _lines_of_range(f, start, claim):
  first = bz2_streams.find_stream_start(f, start)
  assert first == bz2_streams.find_stream_start(f, start, limit=first + 1 if first else None)
  if first is None or not claim(first):
    return []
  streams = bz2_streams.iter_streams(f, first)
  return list(bz2_streams.owned_lines(streams, lambda o: o == first or claim(o), first == 0))


# --------------------------------------------------------------------------------------------
# bz2 streams and lines


def test_lines_of_any_set_of_ranges_equal_one_sequential_read():
  rng = random.Random(7)
  for _ in range(120):
    lines = [b"x" * rng.choice([0, 1, 9, 300]) + b"%d\n" % i for i in range(rng.randint(0, 30))]
    text = b"".join(lines)
    if text and rng.random() < 0.3:
      text = text[:-1]  # no newline at the end of the file
    # Streams cut at any byte, mid-line as a parallel compressor cuts its input; some empty,
    # and lines longer than a stream.
    cuts = sorted(rng.sample(range(len(text) + 1), min(len(text) + 1, rng.randint(0, 10))))
    chunks = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
    if rng.random() < 0.3:
      chunks.insert(rng.randint(0, len(chunks)), b"")
    blob = _multistream_bz2(chunks)
    f = io.BytesIO(blob)
    sequential = list(bz2_streams.owned_lines(bz2_streams.iter_streams(f, 0),
                                              lambda o: True, True))
    assert [line for _, line, _ in sequential] == text.splitlines(keepends=True)
    assert all(complete for _, _, complete in sequential)
    for _ in range(4):
      ranges = rng.sample(range(len(blob) + 1), min(len(blob) + 1, rng.randint(1, 8)))
      got = _ranges_read(f, len(blob), ranges, _lines_of_range)
      assert sorted(got) == sequential  # every line once, with the same label


def test_a_truncated_stream_is_reported_once_after_its_complete_lines():
  rng = random.Random(3)
  text = b"".join(b"%x\n" % rng.getrandbits(rng.choice([8, 200, 900])) for _ in range(3000))
  first = bz2.compress(text[:50000])
  second = bz2.compress(text[50000:], compresslevel=1)  # 100 kB blocks: some decompress
  cut = io.BytesIO(first + second[:len(second) * 2 // 3])
  size = len(first) + len(second) * 2 // 3
  lines = list(bz2_streams.owned_lines(bz2_streams.iter_streams(cut, 0), lambda o: True, True))
  assert [ok for _, _, ok in lines].count(False) == 1 and lines[-1][2] is False
  complete = [line for _, line, ok in lines if ok]
  assert complete == text.splitlines(keepends=True)[:len(complete)]
  assert len(complete) > text[:50000].count(b"\n") + 100
  for cuts in ([len(first)], [len(first) - 5, len(first) + 5], [10, len(first) + 1]):
    got = _ranges_read(cut, size, cuts, _lines_of_range)
    assert sorted(got) == lines


def test_a_truncated_stream_inside_a_long_line_is_reported_by_its_owner():
  rng = random.Random(5)
  long_line = b"%x" % rng.getrandbits(8 * 400_000)  # no newline in the last stream at all
  first = bz2.compress(b"a\nb\n" + long_line[:1000])
  second = bz2.compress(long_line[1000:], compresslevel=1)
  blob = first + second[:len(second) // 2]
  f = io.BytesIO(blob)
  for cuts in ([], [len(first)], [len(first) + 1]):
    got = _ranges_read(f, len(blob), cuts, _lines_of_range)
    assert [line for _, line, ok in got if ok] == [b"a\n", b"b\n"]
    assert [ok for _, _, ok in got].count(False) == 1, cuts


def test_a_false_stream_header_in_the_data_is_skipped():
  real = bz2.compress(b"a\nb\n")
  blob = b"junk BZh91AY&SY not a block at all " + real
  f = io.BytesIO(blob)
  assert bz2_streams.find_stream_start(f, 0) == blob.index(real)
  assert bz2_streams.find_stream_start(f, blob.index(real) + 1) is None
  with pytest.raises(bz2_streams.Bz2StreamError, match="byte 5"):
    bz2_streams.read_stream(f, 5)


# --------------------------------------------------------------------------------------------
# Multistream dumps and their index


@pytest.fixture(scope="module")
def multistream_dumps(multistream_excerpts):
  return multistream_excerpts.dumps


def _open(path):
  return open(path, "rb")


def _pages_of_range(dump, index_path, index, site):
  def read(f, start, claim):
    return [p for pages in multistream.pages_of_range(dump, index_path, site, f, index, start,
                                                      claim) for p in pages]
  return read


@pytest.mark.parametrize("name", EXCERPTS)
def test_split_reads_of_a_multistream_dump_equal_the_sequential_read(multistream_dumps, name):
  path, index_path, source = multistream_dumps[name]
  sequential = list(dump_reader.read_dump(path))
  original = list(dump_reader.read_dump(source))
  assert [(p.page_id, p.title, p.text) for p in sequential[1:]] == [
      (p.page_id, p.title, p.text) for p in original[1:]]
  index = multistream.read_index(index_path, _open)
  assert sum(s.pages for s in index) == len(sequential) - 1
  assert all(s.pages == 100 for s in index[:-1])
  with open(path, "rb") as f:
    site, first = multistream.read_header(path, f)
    assert site == sequential[0]
    multistream.check_index(path, index_path, site, f, index, first)
    size = f.seek(0, io.SEEK_END)
    read = _pages_of_range(path, index_path, index, site)
    rng = random.Random(name)
    for cuts in ([], [s.offset for s in index], rng.sample(range(first, size), 5)):
      assert _ranges_read(f, size, [first] + cuts, read) == sequential[1:]


def _truncated_copy(path, length, tmp_path):
  cut = tmp_path / "cut-multistream.xml.bz2"
  with open(path, "rb") as f:
    cut.write_bytes(f.read(length))
  return str(cut)


@pytest.mark.parametrize("where", ["inside the last stream", "at a stream start"])
def test_a_truncated_multistream_dump_gives_what_the_sequential_read_gives(
    multistream_dumps, tmp_path, where):
  path, index_path, _ = multistream_dumps["mrwiki-20230501-excerpt"]
  index = multistream.read_index(index_path, _open)
  length = index[-1].offset + 5000 if where.startswith("inside") else index[-2].offset
  cut = _truncated_copy(path, length, tmp_path)
  sequential = []
  with pytest.raises(dump_reader.DumpTruncatedError):
    for item in dump_reader.read_dump(cut):
      sequential.append(item)
  got = []
  with open(cut, "rb") as f:
    site, _ = multistream.read_header(cut, f)
    with pytest.raises(dump_reader.DumpTruncatedError, match="ends"):
      for pages in multistream.pages_of_range(cut, index_path, site, f, index,
                                              index[0].offset, lambda o: True):
        got += pages
  assert got == [p for p in sequential[1:]] and len(got) > 1500


def test_an_index_of_another_dump_is_stale(multistream_dumps):
  path, _, _ = multistream_dumps["elwiki-20230501-excerpt"]
  _, other_index, _ = multistream_dumps["viwiki-20230501-excerpt"]
  index = multistream.read_index(other_index, _open)
  with open(path, "rb") as f:
    site, first = multistream.read_header(path, f)
    with pytest.raises(multistream.StaleIndexError, match="viwiki"):
      multistream.check_index(path, other_index, site, f, index, first)


def test_an_index_missing_the_last_streams_is_stale(multistream_dumps, tmp_path):
  path, index_path, _ = multistream_dumps["ukwiki-20230501-excerpt"]
  index = multistream.read_index(index_path, _open)
  short = index[:-1]  # an older index: the dump has pages it does not list
  with open(path, "rb") as f:
    site, first = multistream.read_header(path, f)
    with pytest.raises(multistream.StaleIndexError, match="more than </mediawiki>"):
      multistream.check_index(path, index_path, site, f, short, first)
  bad = [multistream.IndexedStream(s.offset, s.pages, s.first_id + 1, s.last_id)
         for s in index]
  with open(path, "rb") as f, pytest.raises(multistream.StaleIndexError, match="lists 100"):
    multistream.check_index(path, index_path, site, f, bad, first)


def test_index_format_errors_name_the_line(tmp_path):
  with pytest.raises(multistream.IndexFormatError, match="line 2 is not offset"):
    multistream.parse_index(["600:10:A\n", "oops\n"], "idx")
  with pytest.raises(multistream.IndexFormatError, match="offset 500 comes after 600"):
    multistream.parse_index(["600:10:A\n", "500:11:B\n"], "idx")
  assert multistream.parse_index(["600:10:A: b\n", "600:12:C\n", "900:13:D\n"], "idx") == [
      multistream.IndexedStream(600, 2, 10, 12), multistream.IndexedStream(900, 1, 13, 13)]


# --------------------------------------------------------------------------------------------
# The Beam readers


def _pipeline():
  return BeamTestPipeline(runner="FnApiRunner")


def _counts(out):
  return (out[transforms.COUNTS] | "DumpCounts" >> beam.CombineGlobally(transforms.SumCounts())
          | beam.Map(lambda c: {k[1]: v for k, v in c.items() if k[1].startswith("dump/")}))


def test_read_wikipedia_dumps_splits_what_it_can_and_says_why_not(
    multistream_dumps, shared_data, tmp_path, caplog):
  el, _, _ = multistream_dumps["elwiki-20230501-excerpt"]
  vi, _, _ = multistream_dumps["viwiki-20230501-excerpt"]
  no_index = tmp_path / "jawiki-20230501-pages-articles-multistream.xml.bz2"
  shutil.copy(multistream_dumps["jawiki-20230501-excerpt"][0], no_index)
  stale = tmp_path / "mrwiki-20230501-pages-articles-multistream.xml.bz2"
  shutil.copy(multistream_dumps["mrwiki-20230501-excerpt"][0], stale)
  shutil.copy(multistream_dumps["bnwiki-20230501-excerpt"][1],
              multistream.index_path_for(str(stale)))
  gz = tmp_path / "uk.xml.gz"
  gz.write_bytes(gzip.compress(bz2.decompress(
      (shared_data / "wikipedia/mini/ukwiki-mini.xml.bz2").read_bytes())))
  paths = [el, vi, str(no_index), str(stale), str(gz)]
  expected = [(p.wiki, p.page_id, p.title, len(p.text)) for path in paths
              for p in list(dump_reader.read_dump(path))[1:]]
  caplog.set_level(logging.INFO)
  with _pipeline() as p:
    out = p | beam.Create(paths) | read_dumps.ReadWikipediaDumps(
        read_dumps.ReadOptions(split_bytes=40_000))
    assert_that(out["pages"] | beam.Map(lambda p: (p.wiki, p.page_id, p.title, len(p.text))),
                equal_to(expected), label="pages")
    assert_that(out["siteinfo"] | beam.Keys(), equal_to(["elwiki", "viwiki", "jawiki",
                                                          "mrwiki", "ukwiki"]), label="sites")
    assert_that(_counts(out), equal_to([{
        "dump/files": 5, "dump/read_split": 2, "dump/read_whole/no_index": 1,
        "dump/read_whole/index_does_not_match": 1, "dump/read_whole/not_bz2": 1,
        "dump/streams_read": 20}]), label="counts")
  log = caplog.text
  assert f"{no_index}: read whole by one worker (no_index)" in log
  assert f"{stale}: read whole by one worker (index_does_not_match)" in log


def test_a_truncated_split_dump_counts_the_error_and_keeps_every_complete_page(
    multistream_dumps, tmp_path):
  path, index_path, _ = multistream_dumps["viwiki-20230501-excerpt"]
  index = multistream.read_index(index_path, _open)
  cut = tmp_path / "viwiki-cut-multistream.xml.bz2"
  cut.write_bytes(open(path, "rb").read()[:index[-1].offset + 9000])
  shutil.copy(index_path, multistream.index_path_for(str(cut)))
  sequential = []
  with pytest.raises(dump_reader.DumpTruncatedError):
    for item in dump_reader.read_dump(str(cut)):
      sequential.append(item)
  with _pipeline() as p:
    out = p | beam.Create([str(cut)]) | read_dumps.ReadWikipediaDumps(
        read_dumps.ReadOptions(split_bytes=100_000))
    assert_that(out["pages"] | beam.Map(lambda p: p.page_id),
                equal_to([p.page_id for p in sequential[1:]]), label="pages")
    assert_that(out[transforms.DEAD_LETTER] | beam.Map(lambda d: '"truncated"' in d),
                equal_to([True]), label="dead")


@pytest.fixture(scope="module")
def wikidata_streams(multistream_excerpts):
  return multistream_excerpts.wikidata


def test_a_multistream_wikidata_dump_read_in_ranges_gives_the_same_items(
    wikidata_streams, shared_data):
  plain = str(shared_data / "wikidata/entities.jsonl")
  expected = []
  for line in open(plain, encoding="utf-8"):
    expected += [(o.qid, sorted(o.sitelinks.items())) for o in wikidata.parse_line(line)
                 if isinstance(o, wikidata.Item)]
  for options in (read_dumps.ReadOptions(split_bytes=20_000),
                  read_dumps.ReadOptions(split_reads=False)):
    with _pipeline() as p:
      out = p | beam.Create([wikidata_streams]) | read_dumps.ReadWikidata(options)
      assert_that(out["items"] | beam.Map(lambda i: (i.qid, sorted(i.sitelinks.items()))),
                  equal_to(expected), label="items")
      totals = out[transforms.COUNTS] | beam.CombineGlobally(transforms.SumCounts())
      assert_that(totals | beam.Map(lambda c: c[("", "wikidata/read")]), equal_to([23]),
                  label="read")


def _entities_in(path):
  with gzip.open(path, "rt", encoding="utf-8") as f:
    return sum(1 for line in f for _ in wikidata.parse_line(line))


def test_a_gzip_wikidata_dump_is_read_whole_with_a_log_line(shared_data, caplog):
  path = str(shared_data / "wikidata/raw/sample-dump-20150815.json.gz")
  caplog.set_level(logging.INFO)
  with _pipeline() as p:
    out = p | beam.Create([path]) | read_dumps.ReadWikidata()
    assert_that(_counts(out), equal_to([{"dump/read_whole/not_bz2": 1}]), label="counts")
    totals = out[transforms.COUNTS] | beam.CombineGlobally(transforms.SumCounts())
    assert_that(totals | beam.Map(lambda c: c[("", "wikidata/read")]),
                equal_to([_entities_in(path)]), label="read")
  assert f"{path}: read whole by one worker (not_bz2)" in caplog.text


def test_an_index_mismatch_found_while_reading_is_a_counted_dead_letter(multistream_dumps,
                                                                          tmp_path):
  """The plan checks the first, middle and last streams; a wrong entry elsewhere is found by the
  range that reads it, which stops there (one stream per range here): a counted dead letter."""
  path, index_path, _ = multistream_dumps["elwiki-20230501-excerpt"]
  index = multistream.read_index(index_path, _open)
  wrong = index[2]  # not one of the streams the plan checks (0, 4 or 5, 9 of 10)
  dump = tmp_path / "elwiki-multistream.xml.bz2"
  shutil.copy(path, dump)
  lines = bz2.decompress(open(index_path, "rb").read()).decode("utf-8").splitlines(True)
  lines = [f"{wrong.offset}:{wrong.first_id + 7}:X\n" if line.startswith(
      f"{wrong.offset}:{wrong.first_id}:") else line for line in lines]
  with bz2.open(multistream.index_path_for(str(dump)), "wt", encoding="utf-8") as f:
    f.writelines(lines)
  expected = [p.page_id for p in list(dump_reader.read_dump(path))[1:]
              if not wrong.first_id <= p.page_id <= wrong.last_id]
  with _pipeline() as p:
    out = p | beam.Create([str(dump)]) | read_dumps.ReadWikipediaDumps(
        read_dumps.ReadOptions(split_bytes=100_000))
    assert_that(out["pages"] | beam.Map(lambda p: p.page_id), equal_to(expected), label="pages")
    assert_that(out[transforms.DEAD_LETTER]
                | beam.Map(lambda d: ('"index_does_not_match"' in d, f"{wrong.first_id + 7}" in d)),
                equal_to([(True, True)]), label="dead")
    assert_that(_counts(out) | beam.Map(lambda c: (c["dump/read_split"],
                                                   c["dump/errors/index_does_not_match"])),
                equal_to([(1, 1)]), label="counts")
