"""Benchmark: the mining pipeline against a bare mwparserfromhell loop over the same pages.

  python bench/mining.py [--dumps GLOB] [--wikidata PATH] [--runner FnApiRunner] [--repeats N]

Measured in one process, in this order:
  1. baseline: read every dump with the same streaming reader and call mwparserfromhell.parse
     on each article (namespace 0, not a redirect) in a plain Python loop. This is the least
     work any mwparserfromhell-based miner does.
  2. per-page: the same loop calling mel.wikipedia.wikitext.parse_page (clean text, link
     offsets, accounting, description) instead of the bare parse.
  3. split-read rates: the dumps rewritten as Wikimedia multistream dumps with their index (100
     pages a stream; not timed), then read through the split reader one stream at a time (pages
     and compressed MB per second of one core), against the sequential reader on the same
     files; the WikiData file as a bz2 of many streams, read in ranges and parsed per line.
  4. start-up: the pipeline on a one-page dump. This is the fixed cost of a run (importing
     TensorFlow and Beam's runner code, building the graph, ~40 stages, finalising empty
     shards), paid once per job whatever its size.
  5. pipeline: `beam run extract_mentions` end to end (all joins, outputs, summary), in-process,
     after the start-up run (so warm: imports done), on one core (FnApiRunner in memory), on
     the original dumps (each read whole) and on the multistream copies (split reads);
  6. the split-read pipeline with one worker process per core (--direct_running_mode=
     multi_processing), checked record for record against 5.
The loops freeze the heap first (gc.freeze), as the pipeline's workers do: after TensorFlow
and Beam are imported, each full garbage collection walks their objects, which made the same
loop ~1.9x slower, so without it the order of the rows would decide their ratios.
Prints articles/s and mentions/s for each and the ratios against the baseline (target for the
pipeline: >= 0.7 core for core), the cold figure (warm run + start-up) too, then projects the
core-hours and the wall time on N Dataflow workers for the full dumps of the 104 mBERT
languages and WikiData from the rates measured in this run. --repeats runs 5 and 6 again and
prints the spread.
"""
import argparse
import bz2
import gc
import glob
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"

# Content pages (namespace-0 articles) of the 104 mBERT-language Wikipedias: about 60 million,
# the sum of the "articles" column of meta.wikimedia.org/wiki/List_of_Wikipedias for those
# languages around the paper's dumps and later (English ~6.6 M, Cebuano ~6.1 M, German ~2.8 M,
# Swedish ~2.6 M, French ~2.5 M, Dutch ~2.1 M, Russian ~1.9 M, Spanish ~1.9 M, Italian ~1.8 M,
# Polish ~1.6 M, Japanese ~1.4 M, Chinese ~1.4 M, Vietnamese ~1.3 M, Waray ~1.3 M, Ukrainian
# ~1.3 M, Arabic ~1.2 M, Portuguese ~1.1 M, the other 87 ~ 18 M together). Approximate: use
# your dumps' counts for a budget. Redirects and other namespaces are read but not parsed.
ARTICLES_104 = 60_000_000
# WikiData's JSON dump (latest-all.json.bz2): ~115 M entities, ~1.5 TB of JSON decompressed
# (~95 GB as bz2) around 2025. Approximate, as above: use your dump's size.
WIKIDATA_JSON_BYTES = 1.5e12


def _articles(paths):
  from mel.wikipedia import dump_reader
  for path in paths:
    site = None
    for item in dump_reader.read_dump(path):
      if site is None:
        site = item
        continue
      if item.ns == 0 and not item.redirect:
        yield site, item


def baseline(paths):
  import mwparserfromhell
  gc.freeze()  # as the pipeline's workers do (transforms.freeze_heap): see the docstring
  start = time.perf_counter()
  n = chars = 0
  for _, page in _articles(paths):
    mwparserfromhell.parse(page.text)
    n += 1
    chars += len(page.text)
  return n, chars, time.perf_counter() - start


def per_page(paths):
  from mel.wikipedia import wikitext
  gc.freeze()
  start = time.perf_counter()
  n = links = 0
  for site, page in _articles(paths):
    links += len(wikitext.parse_page(page.text, site).links)
    n += 1
  return n, links, time.perf_counter() - start


def pipeline(paths, wikidata, runner, extra=()):
  """(articles, mentions, seconds, records) of one `beam run extract_mentions`."""
  from beam_pipelines import extract_mentions
  from mel import records
  with tempfile.TemporaryDirectory() as out:
    argv = [f"--wikipedia_dumps={','.join(paths)}", f"--output_dir={out}", f"--runner={runner}",
            *extra]
    if wikidata:
      argv.append(f"--wikidata_dump={wikidata}")
    start = time.perf_counter()
    summary = extract_mentions.run(argv)
    seconds = time.perf_counter() - start
    kept = {name: sorted(r.to_json() for r in records.read_output(out, name))
            for name in (records.MENTIONS_TRAIN, records.MENTIONS_HOLDOUT, records.ENTITIES,
                         records.ENTITY_PAIRS, records.DOCUMENTS)}
  t = summary["totals"]
  return (t["pages/article"], t.get("mentions/train", 0) + t.get("mentions/holdout", 0),
          seconds, kept)


def make_split_inputs(paths, wikidata, folder):
  """Multistream copies of the dumps (with index) and WikiData as a bz2 of many streams."""
  from mel.wikipedia import multistream
  out = []
  for path in paths:
    name = os.path.basename(path).split(".xml")[0]
    dump = os.path.join(folder, f"{name}-multistream.xml.bz2")
    multistream.write_multistream(path, dump, multistream.index_path_for(dump))
    out.append(dump)
  wd = ""
  if wikidata:
    with open(wikidata, "rb") as f:
      text = f.read()
    wd = os.path.join(folder, "wikidata-latest-all.json.bz2")
    with open(wd, "wb") as f:  # 64 kB of JSON a stream, cut mid-line as parallel bzip2 cuts
      for i in range(0, len(text), 64 << 10):
        f.write(bz2.compress(text[i:i + (64 << 10)]))
  return out, wd


def split_read_rates(dumps, wikidata):
  """Per-core rates of the split readers, stream by stream, and of the sequential reader."""
  from beam_pipelines import wikidata as wikidata_lib
  from mel.wikipedia import bz2_streams, dump_reader, multistream
  compressed = sum(os.path.getsize(d) for d in dumps)
  start = time.perf_counter()
  pages = 0
  for dump in dumps:
    index_path = multistream.index_path_for(dump)
    index = multistream.read_index(index_path, lambda p: open(p, "rb"))
    with open(dump, "rb") as f:
      site, first = multistream.read_header(dump, f)
      for stream in index:  # one range per stream: the most a runner can split
        owned = stream.offset
        for got in multistream.pages_of_range(dump, index_path, site, f, index, owned,
                                              lambda o, owned=owned: o == owned):
          pages += len(got)
  t_split = time.perf_counter() - start
  start = time.perf_counter()
  pages_seq = sum(1 for d in dumps for _ in dump_reader.read_dump(d)) - len(dumps)
  t_seq = time.perf_counter() - start
  assert pages == pages_seq, (pages, pages_seq)
  wd = None
  if wikidata:
    size = os.path.getsize(wikidata)
    with open(wikidata, "rb") as f:
      json_bytes = entities = 0
      start = time.perf_counter()
      ranges = list(range(0, size, max(1, size // 8))) + [size]
      for a, b in zip(ranges, ranges[1:]):
        first = bz2_streams.find_stream_start(f, a)
        if first is None or first >= b:
          continue
        for _, line, _ in bz2_streams.owned_lines(
            bz2_streams.iter_streams(f, first), lambda o, a=a, b=b: a <= o < b, first == 0):
          json_bytes += len(line)
          entities += sum(1 for _ in wikidata_lib.parse_line(line.decode("utf-8")))
      t_wd = time.perf_counter() - start
    wd = (entities, json_bytes, t_wd)
  return pages, compressed, t_split, t_seq, wd


def _spread(values, digits=1):
  low, high = f"{min(values):.{digits}f}", f"{max(values):.{digits}f}"
  return low if low == high else f"{low}-{high}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dumps", default=str(SHARED / "wikipedia/excerpts/*.xml.bz2"))
  parser.add_argument("--wikidata", default=str(SHARED / "wikidata/entities.jsonl"))
  parser.add_argument("--runner", default="FnApiRunner")
  parser.add_argument("--startup_dump",
                      default=str(SHARED / "wikipedia/edge-cases/article-pear-0.10.xml"))
  parser.add_argument("--repeats", type=int, default=1,
                      help="runs of each pipeline row (the spread is printed)")
  parser.add_argument("--dataflow_workers", default="10,100,1000",
                      help="worker counts for the wall-time projection")
  parser.add_argument("--cores_per_worker", type=int, default=4)
  args = parser.parse_args()
  paths = sorted(glob.glob(args.dumps))
  if not paths:
    sys.exit(f"no dumps match {args.dumps}")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  cores = os.cpu_count() or 1
  print(f"mining benchmark: {len(paths)} dumps, {cores} cores, runner {args.runner}")

  with tempfile.TemporaryDirectory() as folder:
    split_dumps, split_wd = make_split_inputs(paths, args.wikidata, folder)
    pages, compressed, t_split_read, t_seq_read, wd = split_read_rates(split_dumps, split_wd)
    _, _, t_start, _ = pipeline([args.startup_dump], "", args.runner)
    base, page, whole, split, multi = [], [], [], [], []
    for _ in range(args.repeats):  # each pipeline row is paired with a baseline run of its own
      n, chars, t = baseline(paths)
      base.append(t)
      n2, links, t = per_page(paths)
      page.append(t)
      n3, mentions, t, kept_whole = pipeline(paths, args.wikidata, args.runner)
      whole.append(t)
      n4, mentions4, t, kept_split = pipeline(split_dumps, split_wd, args.runner)
      split.append(t)
      n5, mentions5, t, kept_multi = pipeline(split_dumps, split_wd, args.runner, (
          "--direct_running_mode=multi_processing", f"--direct_num_workers={cores}"))
      multi.append(t)
      assert n == n2 == n3 == n4 == n5 and mentions == mentions4 == mentions5, (
          n, n2, n3, n4, n5, mentions, mentions4, mentions5)
      assert kept_split == kept_multi, "multi-process records differ from one process"
      for name in kept_whole:  # the same records, but for the dump file names they carry
        assert len(kept_whole[name]) == len(kept_split[name]), name

  def ratios(times):
    return [b / t for b, t in zip(base, times)]

  t_split, t_multi = min(split), min(multi)
  rows = [("baseline: read + mwparserfromhell.parse", base, ""),
          ("per-page: read + wikitext.parse_page", page, f"{links / min(page):,.0f} links/s"),
          ("pipeline, dumps read whole", whole, f"{mentions / min(whole):,.0f} mentions/s"),
          ("pipeline, split reads (multistream)", split, f"{mentions / t_split:,.0f} mentions/s"),
          ("pipeline, split reads, cold (+ start-up)", [t + t_start for t in split],
           f"start-up {t_start:.1f} s"),
          (f"pipeline, split reads, {cores} processes (wall)", multi,
           f"{mentions / t_multi:,.0f} mentions/s")]
  print(f"\n{n:,} articles ({chars / n / 1000:.1f} k characters of wikitext on average), "
        f"{mentions:,} mentions; {args.repeats} run(s) of every row: seconds and ratios to the "
        "baseline of the same run, as ranges\n")
  print(f"{'stage':<46} {'seconds':>10} {'articles/s':>11} {'ratio':>10}")
  for name, times, extra in rows:
    print(f"{name:<46} {_spread(times):>10} {n / min(times):>11.1f} "
          f"{_spread(ratios(times), 2):>10}  {extra}")
  for label, times in (("read whole", whole), ("split reads", split)):
    print(f"pipeline ({label}) / baseline, one core each = {_spread(ratios(times), 2)} "
          f"(target >= 0.70): {'met' if min(ratios(times)) >= 0.7 else 'NOT met'}")
  print(f"pipeline on {cores} worker processes / baseline on one core = "
        f"{_spread(ratios(multi), 2)}; records equal to the one-process run")

  mb = compressed / 1e6
  print(f"\nsplit reads, one core: {pages / t_split_read:,.0f} pages/s, "
        f"{mb / t_split_read:.1f} MB/s of bz2 (one range per 100-page stream); the sequential "
        f"reader on the same files: {pages / t_seq_read:,.0f} pages/s, {mb / t_seq_read:.1f} MB/s")
  if wd:
    entities, json_bytes, t_wd = wd
    print(f"WikiData split read + parse, one core: {entities / t_wd:,.0f} entities/s, "
          f"{json_bytes / 1e6 / t_wd:.1f} MB/s of JSON ({entities} entities, "
          f"{json_bytes / entities / 1000:.0f} kB each)")

  wiki_core_h = ARTICLES_104 / (n / t_split) / 3600
  print(f"\nprojection for the full dumps (~{ARTICLES_104 / 1e6:.0f} M articles of the 104 mBERT "
        f"languages, see ARTICLES_104; WikiData ~{WIKIDATA_JSON_BYTES / 1e12:.1f} TB of JSON):")
  print(f"  Wikipedia: {wiki_core_h:,.0f} core-hours at the split-read pipeline's per-core rate "
        f"({n / t_split:.1f} articles/s). Excerpt articles average {chars / n / 1000:.1f} k "
        "characters, longer than a typical article, so this errs high.")
  total_core_h = wiki_core_h
  if wd:
    wd_core_h = WIKIDATA_JSON_BYTES / (json_bytes / t_wd) / 3600
    total_core_h += wd_core_h
    print(f"  WikiData: {wd_core_h:,.0f} core-hours to read and parse it at "
          f"{json_bytes / 1e6 / t_wd:.1f} MB/s per core. Read whole (gzip, or before split "
          f"reads), that file alone takes {wd_core_h:,.0f} h on one worker whatever the "
          "pool's size.")
  print(f"  wall time with split reads on N Dataflow workers of {args.cores_per_worker} cores "
        "(compute only, at this machine's per-core rates; shuffles and start-up not counted):")
  for workers in [int(w) for w in args.dataflow_workers.split(",")]:
    hours = total_core_h / (workers * args.cores_per_worker)
    print(f"    {workers:>5} workers: {hours:7.1f} h")


if __name__ == "__main__":
  main()
