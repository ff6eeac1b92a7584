"""Accuracy of `mel.link` on held-out mentions with their gold spans (fast and full mode).

  python bench/link_accuracy.py [--model_dir out/models/demo_f/round1]
      [--holdout 'out/mining/mentions/holdout-*.tfrecord.gz'] [--limit 0] [--json PATH]

Each held-out Mention record becomes one `Linker.link` call on its own text (left context +
mention + right context, the document title) with the gold span given, so spotting is out of
the measure and every query is linked. Per mode:

  accuracy@1   the top candidate is the gold entity (threshold ignored)
  linked       share of mentions whose best candidate's score (fast: cosine) reaches the
               mode's NIL threshold (the model's nil.json, else the default)
  precision    accuracy among the linked ones (what a caller keeping non-NIL links gets)

This is the figure behind the defaults in mel/linking/linker.py (prior weight, threshold),
not a retrieval evaluation: for binned R@k use `mel evaluate`.
"""
import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(linker, queries, fast: bool) -> dict:
  correct = linked = linked_correct = 0
  threshold = linker.thresholds["fast" if fast else "full"]
  started = time.time()
  for q in queries:
    text = q.left_context + q.mention + q.right_context
    start = len(q.left_context)
    (m,) = linker.link(text, q.lang, spans=[(start, start + len(q.mention))], top_k=1,
                       fast=fast, title=q.doc_title, threshold=float("-inf"))
    top = m.candidates[0].entity_id if m.candidates else None
    hit = top == q.gold
    correct += hit
    if m.candidates and m.candidates[0].score >= threshold:   # the linker's NIL rule
      linked += 1
      linked_correct += hit
  n = max(len(queries), 1)
  return {"queries": len(queries), "accuracy_at_1": correct / n, "linked": linked / n,
          "precision": linked_correct / max(linked, 1), "threshold": threshold,
          "threshold_source": linker.threshold_source,
          "seconds": round(time.time() - started, 1)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model_dir", default="out/models/demo_f/round1")
  parser.add_argument("--holdout", default="out/mining/mentions/holdout-*.tfrecord.gz")
  parser.add_argument("--limit", type=int, default=0, help="first N queries only (0 = all)")
  parser.add_argument("--json", default="")
  args = parser.parse_args(argv)

  import mel
  from mel.evaluation import datasets
  queries, _ = datasets.load_holdout(args.holdout)
  if args.limit:
    queries = queries[:args.limit]
  linker = mel.load(args.model_dir)
  results = {"model_dir": args.model_dir, "holdout": args.holdout}
  for mode, fast in (("fast", True), ("full", False)):
    r = measure(linker, queries, fast)
    results[mode] = r
    print(f"{mode}: {r['queries']} mentions, accuracy@1 {r['accuracy_at_1']:.3f}; at threshold "
          f"{r['threshold']:.3f} ({r['threshold_source']}): linked {r['linked']:.1%}, "
          f"precision {r['precision']:.3f} ({r['seconds']} s)", flush=True)
  if args.json:
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
      json.dump(results, f, indent=2)
    os.replace(tmp, args.json)
  return 0


if __name__ == "__main__":
  sys.exit(main())
