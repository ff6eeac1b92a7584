"""Encodes every entity of a model dir with its exported entity tower.

    python -m mel.retrieval.encode --model_dir out/models/demo_f/round0 --output out/models/demo_f/round0/embeddings \
        [--batch_size 256] [--shard_size 100000]

Reads the model dir's entity table (entities.tsv: ids and the texts the tower reads) and
export/entity_encoder (a SavedModel taking raw strings), and writes mel.retrieval.embeddings shards. Each
shard is written whole (temp + rename) and a rerun skips finished shards, so a killed run
resumes where it stopped; a run for another model (other export step or entity table) starts
over. At scale the same step runs on Dataflow: `beam run encode_entities` (RunInference).
"""
import argparse
import json
import os
import shutil
import sys
import time


import numpy as np

from mel.retrieval import embeddings

from mel import entity_table, files

EXPORT_DIR = "export"
ENTITY_ENCODER = "entity_encoder"
EXPORT_MANIFEST = "manifest.json"
RUN_FILE = "run.json"


def model_identity(model_dir: str) -> dict:
  """What the embeddings depend on: the export's manifest and the entity table's checksum."""
  manifest_path = os.path.join(model_dir, EXPORT_DIR, EXPORT_MANIFEST)
  if not os.path.exists(manifest_path):
    raise FileNotFoundError(f"{manifest_path} not found: train (and export) the model first "
                            "with `python -m mel.train`")
  with open(manifest_path, encoding="utf-8") as f:
    export_manifest = json.load(f)
  table = os.path.join(model_dir, entity_table.FILENAME)
  return {"model_dir": os.path.abspath(model_dir), "kind": export_manifest["kind"],
          "step": export_manifest["step"], "embedding_dim": export_manifest["embedding_dim"],
          "entity_input": export_manifest["entity_input"],
          "entity_table_sha256": files.sha256_file(table)}


def load_entity_encoder(model_dir: str):
  """The exported entity tower's serving function: strings [B] -> {"embeddings": [B, D]}."""
  import tensorflow as tf
  import tensorflow_text  # noqa: F401  (registers the tokenizer ops of the SavedModel)
  module = tf.saved_model.load(os.path.join(model_dir, EXPORT_DIR, ENTITY_ENCODER))
  return module.signatures["serving_default"]


def _prepare_output(output: str, identity: dict, overwrite: bool) -> None:
  run_path = os.path.join(output, RUN_FILE)
  if os.path.exists(run_path):
    with open(run_path, encoding="utf-8") as f:
      previous = json.load(f)
    if previous != identity or overwrite:
      print(f"[mel.retrieval.encode] {output} holds embeddings of another model or run; "
            "starting over", file=sys.stderr)
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


def encode_entities(model_dir: str, output: str, batch_size: int = 256,
                    shard_size: int = 100000, overwrite: bool = False,
                    progress: bool = True) -> dict:
  """Writes the embeddings of every entity; returns the embeddings manifest."""
  import tensorflow as tf
  from tqdm import tqdm
  identity = model_identity(model_dir)
  rows = entity_table.read(os.path.join(model_dir, entity_table.FILENAME))
  _prepare_output(output, identity, overwrite)
  if os.path.exists(os.path.join(output, embeddings.MANIFEST)):
    return embeddings.read_manifest(output)
  encoder = load_entity_encoder(model_dir)
  argument = identity["entity_input"]          # "description" (Model F) or "entity_id" (E)
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
      vectors.append(encoder(**{argument: tf.constant(batch)})["embeddings"].numpy())
      bar.update(len(batch))
    embeddings.write_shard(output, index, [row[0] for row in shard], np.concatenate(vectors))
  bar.close()
  manifest = embeddings.write_manifest(output, num_shards, model=identity)
  print(f"[mel.retrieval.encode] {manifest['count']} entities x {manifest['dimension']} in "
        f"{num_shards} shard(s) ({done} reused) -> {output} in {time.time() - started:.1f}s",
        file=sys.stderr)
  return manifest


def main(argv=None, prog: str = "mel encode") -> int:
  parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
  parser.add_argument("--model_dir", required=True)
  parser.add_argument("--output", required=True, help="embeddings directory to write")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--shard_size", type=int, default=100000)
  parser.add_argument("--overwrite", action="store_true")
  args = parser.parse_args(argv)
  if args.batch_size < 1 or args.shard_size < 1:
    parser.error("--batch_size and --shard_size must be positive")
  try:
    encode_entities(args.model_dir, args.output, args.batch_size, args.shard_size,
                    args.overwrite)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"[mel.retrieval.encode] error: {e}", file=sys.stderr)
    return 1
  return 0

