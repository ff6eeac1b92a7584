"""Teacher scores for distillation: a reranker's logits for each mention's candidates.

    mel teacher --reranker CA_DIR --negatives GLOB --output DIR [--max_mentions N]
                [--per_mention K] [--batch_size 64] [--num_shards 4] [--overwrite]
                [--no_progress]

Reads MentionWithNegatives records (`mel negatives`: a training mention and the dual
encoder's top candidates without the gold), keeps the first K negatives that the reranker's
entity table holds (default: all), scores (mention, gold) and (mention, each negative) with the
reranker's export (model.kind CA; entity texts from its entities.tsv) and writes
MentionWithTeacherScores records: teacher_logits = the gold's logit, then each kept negative's.
Training with train.distillation_weight > 0 reads them as data.hard_negatives (the dual encoder
learns the reranker's distribution over the candidates); `mel rounds` runs this stage when
rounds.distill_from names a reranker.

Records keep their input order (files sorted by name), so the output depends only on the
inputs; --max_mentions N scores the first N records (the mining order of `mel negatives` is a
seeded sample already). A mention whose gold entity the entity table lacks is skipped and
counted. DIR gets teacher-*.tfrecord.gz (records dealt round-robin) and summary.json (counts,
seconds, inputs); the directory is written under a temp name and renamed when complete. A rerun
with the same inputs (reranker and its export step, the negatives files' contents, K, N) reuses
it; --overwrite scores again.
"""
import json
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

from mel import entity_table, flags, records, schema, towers
from mel.files import atomic_directory, sha256_file
from mel.model_dir import ModelDir

SUMMARY = "summary.json"
SHARD_PATTERN = "teacher-{index:05d}-of-{count:05d}.tfrecord.gz"
GLOB = "teacher-*.tfrecord.gz"
PAIRS_PER_CALL = 16   # reranker batches handed over at once (the bar advances per call)


def log(message: str) -> None:
  print(f"[mel teacher] {message}", file=sys.stderr, flush=True)


def _inputs(reranker_dir: str, files: Sequence[str], per_mention: int,
            max_mentions: int) -> dict:
  """What the output depends on (compared on a rerun)."""
  return {"reranker": os.path.abspath(reranker_dir),
          "reranker_step": ModelDir(reranker_dir).export_step(),
          "negatives": [{"path": os.path.abspath(f), "sha256": sha256_file(f)} for f in files],
          "per_mention": per_mention, "max_mentions": max_mentions}


def _reuse(output: str, inputs: dict) -> Optional[dict]:
  path = os.path.join(output, SUMMARY)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    previous = json.load(f)
  return previous if previous.get("inputs") == inputs else None


def candidates(mentions, texts: Dict[str, str], per_mention: int, counts: dict) -> List[tuple]:
  """(mention, kept negative ids) per scorable mention; counts what was left out."""
  kept = []
  for m in mentions:
    if m.entity_id not in texts:
      counts["skipped"]["gold_not_in_entity_table"] += 1
      continue
    negatives = [e for e in m.negative_ids if e in texts]
    counts["negatives_not_in_entity_table"] += len(m.negative_ids) - len(negatives)
    if per_mention:
      counts["negatives_beyond_per_mention"] += max(len(negatives) - per_mention, 0)
      negatives = negatives[:per_mention]
    kept.append((m, negatives))
  return kept


def score(reranker, texts: Dict[str, str], kept: Sequence[tuple], progress: bool = True,
          batch_size: int = 64) -> List[List[float]]:
  """Per mention, the reranker's logits for [gold] + its negatives (Python floats)."""
  from tqdm import tqdm
  out = []
  with tqdm(total=len(kept), unit="mention", desc="teacher scores", disable=not progress,
            file=sys.stderr) as bar:
    start = 0
    while start < len(kept):
      # whole mentions, about PAIRS_PER_CALL reranker batches of pairs per call
      end, pairs = start, 0
      while end < len(kept) and (end == start or pairs < PAIRS_PER_CALL * batch_size):
        pairs += 1 + len(kept[end][1])
        end += 1
      columns = ([], [], [], [], [])
      for m, negatives in kept[start:end]:
        for entity_id in [m.entity_id, *negatives]:
          for column, value in zip(columns, (m.doc_title, m.left_context, m.mention,
                                             m.right_context, texts[entity_id])):
            column.append(value)
      logits = reranker(*columns)
      offset = 0
      for _, negatives in kept[start:end]:
        out.append([float(x) for x in logits[offset:offset + 1 + len(negatives)]])
        offset += 1 + len(negatives)
      bar.update(end - start)
      start = end
  return out


def write_shards(directory: str, records_out: Sequence[schema.MentionWithTeacherScores],
                 num_shards: int) -> List[str]:
  """Records dealt round-robin to num_shards gzip TFRecord files; their names."""
  import tensorflow as tf
  names = []
  for index in range(num_shards):
    name = SHARD_PATTERN.format(index=index, count=num_shards)
    with tf.io.TFRecordWriter(os.path.join(directory, name), options="GZIP") as writer:
      for record in records_out[index::num_shards]:
        writer.write(record.to_example_bytes())
    names.append(name)
  return names


def teacher_scores(reranker_dir: str, negatives: str, output: str, *, max_mentions: int = 0,
                   per_mention: int = 0, batch_size: int = 64, num_shards: int = 4,
                   overwrite: bool = False, progress: bool = True, reranker=None) -> dict:
  """Scores the candidates of the records matching `negatives`; returns the summary (also in
  <output>/summary.json). reranker: a callable as towers.Reranker (default: the export of
  reranker_dir, which must be a model.kind CA model dir)."""
  import tensorflow as tf
  started = time.time()
  files = sorted(tf.io.gfile.glob(negatives))
  if not files:
    raise FileNotFoundError(f"no hard-negative files match {negatives}")
  directory = ModelDir(reranker_dir)
  if reranker is None:
    reranker = towers.reranker(reranker_dir, max_batch=batch_size)   # ValueError unless CA
  inputs = _inputs(reranker_dir, files, per_mention, max_mentions)
  previous = None if overwrite else _reuse(output, inputs)
  if previous is not None:
    log(f"{output} already holds these scores; reused (--overwrite scores again)")
    return previous
  texts = dict(entity_table.read(directory.entities))
  mentions = []
  for m in records.read_records(schema.MentionWithNegatives, negatives):
    if max_mentions and len(mentions) == max_mentions:
      break
    mentions.append(m)
  counts = {"skipped": {"gold_not_in_entity_table": 0}, "negatives_not_in_entity_table": 0,
            "negatives_beyond_per_mention": 0}
  kept = candidates(mentions, texts, per_mention, counts)
  if not kept:
    raise ValueError(f"none of the {len(mentions)} records of {negatives} can be scored: "
                     f"their gold entities are not in {directory.entities}")
  logits = score(reranker, texts, kept, progress, batch_size)
  out = [schema.MentionWithTeacherScores(
      **{name: getattr(m, name) for name in schema.Mention.FIELDS},
      negative_ids=tuple(negatives), teacher_logits=tuple(row))
      for (m, negatives), row in zip(kept, logits)]
  pairs = sum(len(row) for row in logits)
  summary = {
      "inputs": inputs, "output": output, "read": len(mentions), "written": len(out),
      "skipped": counts["skipped"], "pairs_scored": pairs,
      "negatives_per_mention": pairs / len(out) - 1,
      "negatives_not_in_entity_table": counts["negatives_not_in_entity_table"],
      "negatives_beyond_per_mention": counts["negatives_beyond_per_mention"],
      "gold_scored_first": sum(1 for row in logits if all(row[0] > x for x in row[1:])
                               and len(row) > 1),
  }
  with atomic_directory(output) as tmp:
    summary["files"] = write_shards(tmp, out, num_shards)
    summary["seconds"] = round(time.time() - started, 1)
    with open(os.path.join(tmp, SUMMARY), "w", encoding="utf-8") as f:
      json.dump(summary, f, indent=2, sort_keys=True)
  return summary


def main(argv=None, prog: str = "mel teacher") -> int:
  parser = flags.parser(prog, __doc__)
  parser.add_argument("--reranker", required=True,
                      help="model dir of a trained reranker (model.kind CA)")
  parser.add_argument("--negatives", required=True,
                      help="glob of MentionWithNegatives records (`mel negatives` output)")
  flags.output(parser, help="directory for teacher-*.tfrecord.gz and summary.json")
  parser.add_argument("--max_mentions", type=int, default=0,
                      help="score only the first N records (default 0: all)")
  parser.add_argument("--per_mention", type=int, default=0,
                      help="negatives scored per mention, the first ones (default 0: all)")
  flags.batch_size(parser, default=64)
  parser.add_argument("--num_shards", type=int, default=4, help="output files (default 4)")
  flags.overwrite(parser, help="score again even when --output holds these scores")
  flags.no_progress(parser)
  args = parser.parse_args(argv)
  flags.require_positive(parser, args, "batch_size", "num_shards")
  for name in ("max_mentions", "per_mention"):
    if getattr(args, name) < 0:
      parser.error(f"--{name} must be >= 0 (0: all)")
  try:
    summary = teacher_scores(args.reranker, args.negatives, args.output,
                             max_mentions=args.max_mentions, per_mention=args.per_mention,
                             batch_size=args.batch_size, num_shards=args.num_shards,
                             overwrite=args.overwrite, progress=not args.no_progress)
  except (FileNotFoundError, ValueError, schema.SchemaError) as e:
    log(f"error: {e}")
    return 1
  skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped"].items() if v) or "none"
  log(f"{summary['read']} records read, {summary['written']} written "
      f"({summary['negatives_per_mention']:.2f} negatives per mention, {summary['pairs_scored']} "
      f"pairs scored; skipped: {skipped}); the reranker puts the gold first for "
      f"{summary['gold_scored_first']} -> {args.output}")
  return 0
