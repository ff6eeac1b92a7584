"""Encodes every entity of a model dir, or any other entity set, with its exported entity tower.

    mel encode --model_dir M [--output E (default M/embeddings)] [--batch_size 256]
               [--shard_size 100000] [--overwrite] [--no_progress]
    mel encode --model_dir M --entities new.jsonl --output E    # a user's KB (JSON lines)
    mel encode --model_dir M --mining_dir D --output E          # another mining run's entities

The second and third forms encode entities the model never saw (Model F only: an entity is its
description), for `mel kb add --embeddings E` (mel.retrieval.kb); the texts are made as
training made them (mel.retrieval.kb_entities).

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
from typing import List

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
  """Writes the embeddings of every entity of the model's table to output (default
  model_dir/embeddings); returns the embeddings manifest."""
  directory = ModelDir(model_dir)
  identity = directory.identity()    # first: names the missing export before the table
  rows = entity_table.read(directory.entities)
  return encode_rows(model_dir, [r[0] for r in rows], [r[1] for r in rows],
                     output or directory.embeddings, identity, batch_size,
                     shard_size, overwrite, progress)


def read_entity_set(model_dir: str, entities: str = "", mining_dir: str = ""):
  """Entities to add to model_dir's knowledge base, from a JSON lines file or a mining run,
  their texts made as the model's training made them (mel.retrieval.kb_entities)."""
  from mel.retrieval import kb_entities
  with_name = kb_entities.with_name_of(model_dir)
  if bool(entities) == bool(mining_dir):
    raise ValueError("give one of --entities (JSON lines) and --mining_dir")
  if entities:
    return kb_entities.read_jsonl(entities, with_name)
  return kb_entities.from_mining(mining_dir, with_name)


def encode_entity_set(model_dir: str, entities, output: str, batch_size: int = 256,
                      shard_size: int = 100000, overwrite: bool = False,
                      progress: bool = True) -> dict:
  """Embeddings of entities outside the model's table (KBEntity list) with its entity tower;
  a killed run of the same entities resumes. Model E cannot: its entity table is learned."""
  from mel.retrieval import kb_entities
  directory = ModelDir(model_dir)
  identity = directory.tower_identity()
  if identity["entity_input"] != "description":
    raise ValueError(f"{model_dir} is a Model E (entity_input {identity['entity_input']!r}): "
                     "its entity vectors are a learned table and cannot encode new entities; "
                     "use a Model F")
  identity["entity_set_sha256"] = kb_entities.fingerprint(entities)
  return encode_rows(model_dir, [e.entity_id for e in entities], [e.text for e in entities],
                     output, identity, batch_size, shard_size, overwrite, progress)


def encode_rows(model_dir: str, ids: List[str], texts: List[str], output: str,
                identity: dict, batch_size: int = 256, shard_size: int = 100000,
                overwrite: bool = False, progress: bool = True) -> dict:
  """Encodes texts [N] (ids [N]) with the model's entity tower into output, resuming the
  shards a killed run of the same identity left; returns the embeddings manifest.

  identity: what the vectors depend on (the model's, plus the entity set's for added
  entities); a run of another identity in output is started over.
  """
  from tqdm import tqdm
  directory = ModelDir(model_dir)
  _prepare_output(output, identity, overwrite)
  manifest = _finished(output)
  if manifest is not None:
    return manifest
  argument = identity["entity_input"]          # "description" (Model F) or "entity_id" (E)
  tower = towers.EntityTower(directory.entity_encoder, argument)
  inputs = texts if argument == "description" else ids
  num_shards = max(1, -(-len(ids) // shard_size))
  done = sum(embeddings.shard_complete(output, i) for i in range(num_shards))
  bar = tqdm(total=len(ids), unit="entity", desc="encoding entities", disable=not progress,
             mininterval=5)
  started = time.time()
  for index in range(num_shards):
    lo, hi = index * shard_size, min((index + 1) * shard_size, len(ids))
    if embeddings.shard_complete(output, index):
      bar.update(hi - lo)
      continue
    vectors = []
    for start in range(lo, hi, batch_size):
      batch = inputs[start:min(start + batch_size, hi)]
      vectors.append(tower(batch))
      bar.update(len(batch))
    embeddings.write_shard(output, index, ids[lo:hi], np.concatenate(vectors))
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
               help="embeddings directory to write (default: MODEL_DIR/embeddings; required "
               "with --entities or --mining_dir)")
  parser.add_argument("--entities", default="", help="encode these entities instead of the "
                      "model's table: JSON lines {id, description, labels, aliases, qid} "
                      "(mel.retrieval.kb_entities)")
  flags.mining_dir(parser, help="encode another mining run's entities instead of the "
                   "model's table")
  flags.batch_size(parser)
  flags.shard_size(parser, 100000, help="entities per embeddings shard (default 100000)")
  flags.overwrite(parser, help="start over even when --output holds shards of this model")
  flags.no_progress(parser)
  args = parser.parse_args(argv)
  flags.require_positive(parser, args, "batch_size", "shard_size")
  if (args.entities or args.mining_dir) and not args.output:
    parser.error("--output is required with --entities or --mining_dir")
  try:
    if args.entities or args.mining_dir:
      entities = read_entity_set(args.model_dir, args.entities, args.mining_dir)
      encode_entity_set(args.model_dir, entities, args.output, args.batch_size,
                        args.shard_size, args.overwrite, progress=not args.no_progress)
    else:
      encode_entities(args.model_dir, args.output, args.batch_size, args.shard_size,
                      args.overwrite, progress=not args.no_progress)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"[mel encode] error: {e}", file=sys.stderr)
    return 1
  return 0
