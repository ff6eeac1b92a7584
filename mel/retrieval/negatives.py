"""Hard-negative mining with per-entity label balance (paper Sec. 5.2.4).

    mel negatives --model_dir M --output N [--index I (default M/index)] [--mining_dir D]
                  [--top_k 100] [--ratio 10] [--max_per_mention 10] [--seed 0]
                  [--max_mentions 0]
                  [--batch_size 256] [--num_shards 4] [--overwrite] [--no_progress]

Encodes the training mentions with the model's exported mention tower, retrieves the top k
entities from the index, drops the gold entity, and keeps negatives under a per-entity budget:
no entity is a negative more than `ratio` times its own number of training mentions (the
paper mines "up to 10 negatives per positive", so a rare entity cannot flood the data as a
negative). Mentions are visited in a seeded hash order and candidates in rank order, so the
result is deterministic. Every training mention is written (with its negatives, possibly none)
as a MentionWithNegatives record, in that seeded order (not grouped by language as the mining
output is); the next training round reads these files in place of the mentions
(`data.hard_negatives`). The mining run defaults to the one the model was trained on (its
config's data.mining_dir). A rerun with the same inputs (model and export step, index, mining
run, parameters) reuses the round written last (summary.json); --overwrite mines it again.
"""
import collections
import json
import os
import sys
import time
from typing import Dict, List, Mapping, NamedTuple, Sequence

import numpy as np

from mel import flags, records, schema, towers
from mel.model_dir import ModelDir

SUMMARY = "summary.json"
SHARD_PATTERN = "negatives-{index:05d}-of-{count:05d}.tfrecord.gz"


def visiting_order(mention_ids: Sequence[str], seed: int) -> List[int]:
  """Indices of the mentions in a seeded, stable hash order (not file order)."""
  import hashlib

  def key(i):
    digest = hashlib.blake2b(f"{seed}:{mention_ids[i]}".encode("utf-8"), digest_size=8)
    return (digest.digest(), mention_ids[i])
  return sorted(range(len(mention_ids)), key=key)


class Selection(NamedTuple):
  negatives: List[List[str]]
  used: Dict[str, int]
  skipped_by_budget: int


def select_negatives(order: Sequence[int], candidates: Sequence[Sequence[str]],
                     gold: Sequence[str], positives: Mapping[str, int], ratio: int,
                     max_per_mention: int) -> "Selection":
  """Balanced negatives per mention.

  Args:
    order: the order in which mentions claim negatives.
    candidates: per mention, retrieved entity ids, best first.
    gold: per mention, its gold entity id.
    positives: entity id -> training mentions (its positives); absent = 0.
    ratio: an entity is a negative at most ratio * positives times.
    max_per_mention: negatives kept per mention.
  Returns:
    Selection(negatives per mention, best first; entity id -> times used as a negative;
    candidates passed over because their entity had used up its budget).
  """
  used = collections.Counter()
  skipped = 0
  negatives = [[] for _ in candidates]
  for i in order:
    chosen = negatives[i]
    for entity_id in candidates[i]:
      if len(chosen) >= max_per_mention:
        break
      if entity_id == gold[i] or entity_id in chosen:
        continue
      if used[entity_id] >= ratio * positives.get(entity_id, 0):
        skipped += 1
        continue
      chosen.append(entity_id)
      used[entity_id] += 1
  return Selection(negatives, dict(used), skipped)


def _write_shards(output: str, mentions, negatives, order: Sequence[int],
                  num_shards: int) -> List[str]:
  """Writes the mentions in `order` (a seeded permutation), dealt round-robin to the shards.

  Not in input order: the mining output is grouped by language, and a round that reads less
  than an epoch through a shuffle buffer smaller than a shard would otherwise never see the
  end of each shard (measured on the demo: the last language's R@1 fell from 0.84 to 0.57).
  """
  import tensorflow as tf
  os.makedirs(output, exist_ok=True)
  paths = []
  for index in range(num_shards):
    path = os.path.join(output, SHARD_PATTERN.format(index=index, count=num_shards))
    tmp = os.path.join(output, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with tf.io.TFRecordWriter(tmp, options="GZIP") as writer:
      for i in order[index::num_shards]:
        m = mentions[i]
        fields = {name: getattr(m, name) for name in schema.Mention.FIELDS}
        writer.write(schema.MentionWithNegatives(**fields, negative_ids=tuple(negatives[i]))
                     .to_example_bytes())
    os.replace(tmp, path)
    paths.append(path)
  return paths


def mine_negatives(model_dir: str, output: str, *, index_path: str = "", mining_dir: str = "",
                   top_k: int = 100, ratio: int = 10, max_per_mention: int = 10, seed: int = 0,
                   max_mentions: int = 0, batch_size: int = 256, num_shards: int = 4,
                   overwrite: bool = False,
                   progress: bool = True) -> dict:
  """Runs one mining round; returns the summary (also written to <output>/summary.json).

  index_path defaults to model_dir/index, mining_dir to the model's config's data.mining_dir.
  max_mentions > 0 mines only that many training mentions, the first ones in the seeded
  visiting order (a uniform sample); the next round then trains on those only.
  """
  from mel import retrieval
  started = time.time()
  directory = ModelDir(model_dir)
  index_path = index_path or directory.index
  mining_dir = mining_dir or directory.mining_dir()
  inputs = {"model_dir": os.path.abspath(model_dir), "model_step": directory.export_step(),
            "index": os.path.abspath(index_path), "mining_dir": mining_dir, "top_k": top_k,
            "ratio": ratio, "max_per_mention": max_per_mention, "seed": seed}
  if max_mentions:
    inputs["max_mentions"] = max_mentions
  summary_path = os.path.join(output, SUMMARY)
  if not overwrite and os.path.exists(summary_path):
    with open(summary_path, encoding="utf-8") as f:
      previous = json.load(f)
    if previous.get("inputs") == inputs:
      print(f"[mel negatives] {output} already holds this round; reused (--overwrite mines "
            "it again)", file=sys.stderr)
      return previous
  mentions = list(records.read_output(mining_dir, records.MENTIONS_TRAIN))
  mentions_read = len(mentions)
  if max_mentions and max_mentions < len(mentions):
    sample = visiting_order([m.mention_id for m in mentions], seed)[:max_mentions]
    mentions = [mentions[i] for i in sorted(sample)]
  positives = {e.entity_id: e.mention_count
               for e in records.read_output(mining_dir, records.ENTITIES)}
  index = retrieval.load_index(index_path)
  vectors = towers.mention_tower(model_dir).encode(mentions, batch_size, progress)
  if len(mentions) and vectors.shape[1] != index.dimension:
    raise ValueError(f"mention vectors have dimension {vectors.shape[1]}, the index "
                     f"{index_path} has {index.dimension}: built from another model?")
  candidates = []
  for start in range(0, len(mentions), 1024):
    candidates.extend(index.search_ids(vectors[start:start + 1024], top_k)[0])
  gold = [m.entity_id for m in mentions]
  order = visiting_order([m.mention_id for m in mentions], seed)
  negatives, used, skipped = select_negatives(order, candidates, gold, positives, ratio,
                                              max_per_mention)
  # Paths are written first and the summary last: its presence means the round is complete.
  for stale in os.listdir(output) if os.path.isdir(output) else []:
    if stale.startswith("negatives-") or stale == SUMMARY:
      os.remove(os.path.join(output, stale))
  paths = _write_shards(output, mentions, negatives, order, num_shards)

  gold_retrieved = sum(1 for g, c in zip(gold, candidates) if g in c)
  counts = [len(n) for n in negatives]
  summary = {
      "inputs": inputs, "output": output, "files": [os.path.basename(p) for p in paths],
      "mentions": len(mentions),
      "mentions_read": mentions_read,
      "mentions_with_negatives": sum(1 for n in counts if n),
      "negatives": int(sum(counts)),
      "negatives_per_mention": {"mean": float(np.mean(counts)) if counts else 0.0,
                                "max": int(max(counts)) if counts else 0},
      "gold_in_top_k": gold_retrieved,
      "recall_at_k": gold_retrieved / len(mentions) if mentions else 0.0,
      "candidates_skipped_by_budget": skipped,
      "entities_used_as_negatives": len(used),
      "entities_at_budget": sum(1 for e, n in used.items() if n >= ratio * positives.get(e, 0)),
      "seconds": round(time.time() - started, 1),
  }
  tmp = os.path.join(output, f".{SUMMARY}.tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  os.replace(tmp, summary_path)
  return summary


def main(argv=None, prog: str = "mel negatives") -> int:
  parser = flags.parser(prog, __doc__)
  flags.model_dir(parser, help="model whose mention tower encodes the training mentions")
  parser.add_argument("--index", default="",
                      help="index of that model's entity encodings (default: MODEL_DIR/index)")
  flags.output(parser, help="directory for negatives-*.tfrecord.gz and summary.json")
  flags.mining_dir(parser)
  flags.top_k(parser, 100, help="entities retrieved per mention (default 100)")
  parser.add_argument("--ratio", type=int, default=10,
                      help="an entity is a negative at most ratio x its training mentions "
                      "(default 10)")
  parser.add_argument("--max_per_mention", type=int, default=10,
                      help="negatives kept per mention (default 10)")
  parser.add_argument("--seed", type=int, default=0, help="seed of the visiting order")
  parser.add_argument("--max_mentions", type=int, default=0,
                      help="mine only this many training mentions, a seeded sample (default 0: "
                      "all); the next round trains on those")
  flags.batch_size(parser)
  parser.add_argument("--num_shards", type=int, default=4, help="output files (default 4)")
  flags.overwrite(parser, help="mine again even when --output holds this round")
  flags.no_progress(parser)
  args = parser.parse_args(argv)
  flags.require_positive(parser, args, "top_k", "ratio", "max_per_mention", "batch_size",
                         "num_shards")
  if args.max_mentions < 0:
    parser.error("--max_mentions must be >= 0 (0: all)")
  try:
    summary = mine_negatives(
        args.model_dir, args.output, index_path=args.index, mining_dir=args.mining_dir,
        top_k=args.top_k, ratio=args.ratio, max_per_mention=args.max_per_mention,
        seed=args.seed, max_mentions=args.max_mentions, batch_size=args.batch_size, num_shards=args.num_shards,
        overwrite=args.overwrite, progress=not args.no_progress)
  except (FileNotFoundError, ValueError) as e:
    print(f"[mel negatives] error: {e}", file=sys.stderr)
    return 1
  print(f"[mel negatives] {summary['mentions']} mentions"
        + (f" (a sample of {summary.get('mentions_read')})"
           if summary.get("mentions_read", summary["mentions"]) != summary["mentions"] else "")
        + f", {summary['negatives']} "
        f"negatives ({summary['negatives_per_mention']['mean']:.2f} per mention; "
        f"{summary['mentions_with_negatives']} mentions have some); gold in top {args.top_k}: "
        f"{summary['recall_at_k']:.3f}; {summary['candidates_skipped_by_budget']} candidates "
        f"skipped by the per-entity budget -> {args.output}", file=sys.stderr)
  return 0
