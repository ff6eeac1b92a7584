"""Encodes every entity of a model dir with its exported entity tower.

    mel encode --model_dir M [--output E (default M/embeddings)] [--batch_size 256]
               [--shard_size 100000] [--overwrite] [--no_progress]

Reads the model dir's entity table (entities.tsv: ids and the texts the tower reads) and
export/entity_encoder (a SavedModel taking raw strings), and writes mel.retrieval.embeddings
shards. Each shard is written whole (temp + rename) and a rerun skips finished shards, so a
killed run resumes where it stopped; a run for another model (other export step or entity
table) starts over, and so does --overwrite. At scale the same step runs on Dataflow:
`beam run encode_entities` (RunInference).
"""
import json
import os
import shutil
import sys
import time

import numpy as np

from mel import entity_table, flags, towers
from mel.model_dir import ModelDir
from mel.retrieval import embeddings

RUN_FILE = "run.json"   # the identity of the model the shards in the output come from


def _prepare_output(output: str, identity: dict, overwrite: bool) -> None:
  """Empties output unless it holds shards of this model (run.json), then records the model."""
  run_path = os.path.join(output, RUN_FILE)
  if os.path.exists(run_path):
    with open(run_path, encoding="utf-8") as f:
      previous = json.load(f)
    if previous != identity or overwrite:
      print(f"[mel encode] {output} holds embeddings of another model or run; starting over",
            file=sys.stderr)
      shutil.rmtree(output)
  elif os.path.isdir(output) and os.listdir(output):
    if not overwrite:
      raise FileExistsError(f"{output} exists and holds no {RUN_FILE}; pass --overwrite")
    shutil.rmtree(output)
  os.makedirs(output, exist_ok=True)
  tmp = os.path.join(output, f".{RUN_FILE}.tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(identity, f, indent=2, sort_keys=True)
  os.replace(tmp, run_path)


def _finished(output: str):
  """The manifest of a finished run in output, or None (none yet, or of an older format: the
  shards are then reused and the manifest rewritten)."""
  try:
    return embeddings.read_manifest(output)
  except embeddings.EmbeddingsError:
    return None


def encode_entities(model_dir: str, output: str = "", batch_size: int = 256,
                    shard_size: int = 100000, overwrite: bool = False,
                    progress: bool = True) -> dict:
  """Writes the embeddings of every entity to output (default model_dir/embeddings); returns
  the embeddings manifest."""
  from tqdm import tqdm
  directory = ModelDir(model_dir)
  output = output or directory.embeddings
  identity = directory.identity()
  rows = entity_table.read(directory.entities)
  _prepare_output(output, identity, overwrite)
  manifest = _finished(output)
  if manifest is not None:
    return manifest
  argument = identity["entity_input"]          # "description" (Model F) or "entity_id" (E)
  tower = towers.EntityTower(directory.entity_encoder, argument)
  column = 1 if argument == "description" else 0
  num_shards = max(1, -(-len(rows) // shard_size))
  done = sum(embeddings.shard_complete(output, i) for i in range(num_shards))
  bar = tqdm(total=len(rows), unit="entity", desc="encoding entities", disable=not progress,
             mininterval=5)
  started = time.time()
  for index in range(num_shards):
    shard = rows[index * shard_size:(index + 1) * shard_size]
    if embeddings.shard_complete(output, index):
      bar.update(len(shard))
      continue
    vectors = []
    for start in range(0, len(shard), batch_size):
      batch = [row[column] for row in shard[start:start + batch_size]]
      vectors.append(tower(batch))
      bar.update(len(batch))
    embeddings.write_shard(output, index, [row[0] for row in shard], np.concatenate(vectors))
  bar.close()
  manifest = embeddings.write_manifest(output, num_shards, model=identity)
  print(f"[mel encode] {manifest['count']} entities x {manifest['dimension']} in "
        f"{num_shards} shard(s) ({done} reused) -> {output} in {time.time() - started:.1f}s",
        file=sys.stderr)
  return manifest


def main(argv=None, prog: str = "mel encode") -> int:
  parser = flags.parser(prog, __doc__)
  flags.model_dir(parser, help="model directory (mel train): its export and entity table")
  flags.output(parser, required=False,
               help="embeddings directory to write (default: MODEL_DIR/embeddings)")
  flags.batch_size(parser)
  flags.shard_size(parser, 100000, help="entities per embeddings shard (default 100000)")
  flags.overwrite(parser, help="start over even when --output holds shards of this model")
  flags.no_progress(parser)
  args = parser.parse_args(argv)
  flags.require_positive(parser, args, "batch_size", "shard_size")
  try:
    encode_entities(args.model_dir, args.output, args.batch_size, args.shard_size,
                    args.overwrite, progress=not args.no_progress)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"[mel encode] error: {e}", file=sys.stderr)
    return 1
  return 0
