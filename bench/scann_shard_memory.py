"""Benchmark: peak memory of filling and saving one ScaNN shard from a shared tree.

  python bench/scann_shard_memory.py [--rows 5M] [--leaves 4000] [--sample 300k]

Trains a shared tree (ScannIndex.train_shared) on --sample points of the retrieval
benchmark's synthetic 300-d data, fills it with --rows rows (refill) and saves it, printing
RSS and the RSS high-water mark (VmHWM) after each step. What it showed (2026-12-03, 5M rows):
7.12 GB at 4,000 leaves (this script's defaults: RSS 2.79 GB filled, 6.37 GB saved) and
19.1 GB at 17,889 leaves (20M's tree; sample 400k; the same steps run from a scratch script),
nearly all of it in the save: the tree's leaves drive the build peak, not the shard's rows.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from retrieval import Synthetic, memory_status, parse_size  # bench/retrieval.py  # noqa: E402

from mel import retrieval  # noqa: E402


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--rows", default="5M")
  parser.add_argument("--leaves", type=int, default=4000)
  parser.add_argument("--sample", default="300k")
  parser.add_argument("--work_dir", default=tempfile.gettempdir())
  args = parser.parse_args(argv)
  n = parse_size(args.rows)
  gen = Synthetic(n)
  started = time.perf_counter()

  def report(step):
    rss, peak = memory_status()
    print(f"{step}: {time.perf_counter() - started:.0f} s, RSS {rss / 1e9:.2f} GB, "
          f"peak {peak / 1e9:.2f} GB", flush=True)

  params = {"num_leaves": args.leaves, "num_leaves_to_search": max(8, args.leaves // 33),
            "training_sample_size": parse_size(args.sample)}
  shard = retrieval.ScannIndex.train_shared(gen.id_shards, n, params=params)
  report(f"trained ({args.leaves} leaves)")
  shard.refill(gen.id_shards, n)
  report(f"filled ({n} rows)")
  path = os.path.join(args.work_dir, f"mel-shard-memory-{os.getpid()}")
  try:
    shard._write_into(path)
    report("saved")
  finally:
    shutil.rmtree(path, ignore_errors=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
