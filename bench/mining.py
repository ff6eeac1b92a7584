"""Benchmark: the mining pipeline against a bare mwparserfromhell loop over the same pages.

  python bench/mining.py [--dumps GLOB] [--wikidata PATH] [--runner FnApiRunner]

Measured in one process, in this order:
  1. baseline: read every dump with the same streaming reader and call mwparserfromhell.parse
     on each article (namespace 0, not a redirect) in a plain Python loop. This is the least
     work any mwparserfromhell-based miner does.
  2. per-page: the same loop calling mel.wikipedia.wikitext.parse_page (clean text, link
     offsets, accounting, description) instead of the bare parse.
  3. start-up: the pipeline on a one-page dump. This is the fixed cost of a run (importing
     TensorFlow and Beam's runner code, building the graph, ~40 stages, finalising empty
     shards), paid once per job whatever its size.
  4. pipeline: `beam run extract_mentions` end to end (all joins, outputs, summary), in-process,
     after the start-up run (so warm: imports done), on one core (FnApiRunner in memory);
  5. the same with one worker process per core (--direct_running_mode=multi_processing).
Prints articles/s and mentions/s for each and the ratios against the baseline (target for the
pipeline: >= 0.7), the cold figure (warm run + start-up) too, then projects the time and
core-hours for the full dumps of the 104 mBERT languages from the pipeline's per-core rate.
"""
import argparse
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
  start = time.perf_counter()
  n = chars = 0
  for _, page in _articles(paths):
    mwparserfromhell.parse(page.text)
    n += 1
    chars += len(page.text)
  return n, chars, time.perf_counter() - start


def per_page(paths):
  from mel.wikipedia import wikitext
  start = time.perf_counter()
  n = links = 0
  for site, page in _articles(paths):
    links += len(wikitext.parse_page(page.text, site).links)
    n += 1
  return n, links, time.perf_counter() - start


def pipeline(paths, wikidata, runner, extra=()):
  from beam_pipelines import extract_mentions
  with tempfile.TemporaryDirectory() as out:
    argv = [f"--wikipedia_dumps={','.join(paths)}", f"--output_dir={out}", f"--runner={runner}",
            *extra]
    if wikidata:
      argv.append(f"--wikidata_dump={wikidata}")
    start = time.perf_counter()
    summary = extract_mentions.run(argv)
    seconds = time.perf_counter() - start
  t = summary["totals"]
  return t["pages/article"], t.get("mentions/train", 0) + t.get("mentions/holdout", 0), seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dumps", default=str(SHARED / "wikipedia/excerpts/*.xml.bz2"))
  parser.add_argument("--wikidata", default=str(SHARED / "wikidata/entities.jsonl"))
  parser.add_argument("--runner", default="FnApiRunner")
  parser.add_argument("--startup_dump",
                      default=str(SHARED / "wikipedia/edge-cases/article-pear-0.10.xml"))
  args = parser.parse_args()
  paths = sorted(glob.glob(args.dumps))
  if not paths:
    sys.exit(f"no dumps match {args.dumps}")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  print(f"mining benchmark: {len(paths)} dumps, {os.cpu_count()} cores, runner {args.runner}")

  n, chars, t_base = baseline(paths)
  n2, links, t_page = per_page(paths)
  _, _, t_start = pipeline([args.startup_dump], "", args.runner)
  n3, mentions, t_pipe = pipeline(paths, args.wikidata, args.runner)
  workers = os.cpu_count() or 1
  n4, mentions4, t_multi = pipeline(paths, args.wikidata, args.runner, (
      "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"))
  assert n == n2 == n3 == n4 and mentions == mentions4, (n, n2, n3, n4, mentions, mentions4)

  rows = [("baseline: read + mwparserfromhell.parse", t_base, ""),
          ("per-page: read + wikitext.parse_page", t_page, f"{links / t_page:,.0f} links/s"),
          ("pipeline: beam run extract_mentions", t_pipe, f"{mentions / t_pipe:,.0f} mentions/s"),
          ("pipeline, cold (+ start-up of a 1-page run)", t_pipe + t_start,
           f"start-up {t_start:.1f} s"),
          (f"pipeline, {workers} worker processes (wall)", t_multi,
           f"{mentions / t_multi:,.0f} mentions/s")]
  print(f"\n{n:,} articles ({chars / n / 1000:.1f} k characters of wikitext on average), "
        f"{mentions:,} mentions\n")
  print(f"{'stage':<42} {'seconds':>8} {'articles/s':>11} {'ratio':>6}")
  for name, seconds, extra in rows:
    print(f"{name:<42} {seconds:>8.1f} {n / seconds:>11.1f} {t_base / seconds:>6.2f}  {extra}")
  ratio = t_base / t_pipe
  print(f"\npipeline / baseline, one core each = {ratio:.2f} (target >= 0.70): "
        f"{'met' if ratio >= 0.7 else 'NOT met'}")
  print(f"pipeline on {workers} worker processes / baseline on one core = {t_base / t_multi:.2f}")

  rate = n / t_pipe  # the local runner uses one core
  core_hours = ARTICLES_104 / rate / 3600
  print(f"\nprojection for the full dumps of the 104 mBERT languages (~{ARTICLES_104 / 1e6:.0f} M "
        f"articles; see ARTICLES_104):")
  print(f"  {core_hours:,.0f} core-hours at this machine's per-core rate "
        f"({rate:.1f} articles/s); e.g. {core_hours / 100:,.1f} h on 100 workers, "
        f"{core_hours / 1000:,.1f} h on 1,000. Excerpt articles average {chars / n / 1000:.1f} k "
        "characters, longer than a typical article, so this errs high.")


if __name__ == "__main__":
  main()
