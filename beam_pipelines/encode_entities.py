"""Beam: a model dir's entity table -> entity embeddings (mel.retrieval.embeddings shards), on any runner.

    beam run encode_entities --model_dir DIR --output DIR [--num_shards N] [--batch_size 256]

The same step as `mel encode`, for Dataflow: Beam's RunInference with a TensorFlow model handler
(TFModelHandlerTensor, loading the exported entity tower, which takes raw strings, with
mel.towers). Entities go to shards by a stable hash of their id and are sorted by id within a
shard; shard files are written through Beam's file systems (local or gs://) and the manifest
(mel.retrieval.embeddings, entries from mel.manifest.bytes_entry) is written last: its presence
means the run completed. Counts: lines read = entities encoded + lines rejected (to
dead_letter.jsonl, with the reason).
"""
import argparse
import functools
import json
import logging
import time
from typing import Any, Iterable, List, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference
from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines.splits import stable_hash
from mel import manifest
from mel.model_dir import ModelDir
from mel.retrieval import embeddings

DEAD_LETTER = "dead_letter.jsonl"


def parse_table_line(line: str):
  """'<entity_id>\\t<text>' -> (entity_id, text), or ValueError."""
  parts = line.split("\t")
  if len(parts) != 2 or not parts[0]:
    raise ValueError("not 'entity_id<TAB>text'")
  return parts[0], parts[1]


def encode_batch(model, batch: Sequence[Any], inference_args, model_id=None, *,
                 argument: str) -> Iterable[PredictionResult]:
  """RunInference's inference_fn: the entity tower over a batch of strings [B] -> [B, D]."""
  from mel import towers
  vectors = towers.EntityTower(module=model, argument=argument)(list(batch))
  return [PredictionResult(x, v, model_id) for x, v in zip(batch, vectors)]


class EntityEncoderHandler(TFModelHandlerTensor):
  """TFModelHandlerTensor for mel's exported entity tower (a tf.Module SavedModel, not Keras)."""

  def __init__(self, model_dir: str, argument: str, max_batch_size: int = 256):
    super().__init__(
        model_uri=ModelDir(model_dir).entity_encoder,
        inference_fn=functools.partial(encode_batch, argument=argument),
        min_batch_size=1, max_batch_size=max_batch_size)

  def load_model(self):
    from mel import towers
    return towers.load_saved_model(self._model_uri)


class ParseTable(beam.DoFn):
  BAD = "bad"

  def __init__(self, source: str):
    self.source = source

  def process(self, line):
    try:
      yield parse_table_line(line)
    except ValueError as e:
      yield beam.pvalue.TaggedOutput(self.BAD, json.dumps(
          {"stage": "entity_table", "reason": "bad_line", "source": self.source,
           "key": line[:200], "detail": str(e), "count": 1}, ensure_ascii=False))


def _write(path: str, data: bytes) -> None:
  tmp = f"{path}.tmp"
  with FileSystems.create(tmp) as f:
    f.write(data)
  FileSystems.rename([tmp], [path])


def write_shard(output: str, index: int, ids: List[str], vectors: np.ndarray) -> dict:
  """Writes one embeddings shard under output; returns {"shard": its manifest entry, "files":
  {name: {"bytes", "sha256"}}, "dimension": D}."""
  files = embeddings.shard_files(index, ids, vectors)
  for name, data in files.items():
    _write(FileSystems.join(output, name), data)
  return {"shard": embeddings.shard_entry(index, len(ids)),
          "files": {name: manifest.bytes_entry(data) for name, data in files.items()},
          "dimension": int(vectors.shape[1])}


class WriteShard(beam.DoFn):
  """(shard index, [(entity_id, vector)]) -> the shard's files; yields what write_shard says."""

  def __init__(self, output: str):
    self.output = output

  def process(self, element):
    index, items = element
    items = sorted(items)
    vectors = np.stack([vector for _, vector in items]).astype(np.float32)
    yield write_shard(self.output, index, [entity_id for entity_id, _ in items], vectors)


def write_manifest(written: List[dict], output: str, num_shards: int, model: dict,
                   lines_read: int, rejected: int) -> dict:
  """Writes empty files for the shards no entity hashed to, then the manifest; returns it."""
  dimensions = {w["dimension"] for w in written}
  if len(dimensions) > 1:
    raise ValueError(f"shards disagree on the dimension: {sorted(dimensions)}")
  dimension = dimensions.pop() if dimensions else 0
  # Every shard index gets a file, even an empty one, so readers see a dense range.
  present = {w["shard"]["vectors"] for w in written}
  written = written + [write_shard(output, index, [], np.zeros([0, dimension], np.float32))
                       for index in range(num_shards)
                       if embeddings.shard_names(index)[0] not in present]
  files = {name: entry for w in written for name, entry in w["files"].items()}
  result = embeddings.make_manifest([w["shard"] for w in written], files, dimension, model)
  result["counts"] = {"lines_read": lines_read, "encoded": result["count"],
                      "rejected": rejected}
  _write(FileSystems.join(output, embeddings.MANIFEST),
         json.dumps(result, indent=2, sort_keys=True).encode("utf-8"))
  return result


def build_pipeline(pipeline, model_dir: str, output: str, num_shards: int, batch_size: int,
                   model: dict):
  table = ModelDir(model_dir).entities
  lines = pipeline | "ReadEntityTable" >> beam.io.ReadFromText(table)
  parsed = lines | "Parse" >> beam.ParDo(ParseTable(table)).with_outputs(
      ParseTable.BAD, main="entities")
  argument = model["entity_input"]
  column = 1 if argument == "description" else 0
  handler = KeyedModelHandler(EntityEncoderHandler(model_dir, argument, batch_size))
  shards = (
      parsed.entities
      | "TowerInput" >> beam.Map(lambda row: (row[0], row[column]))
      | "Encode" >> RunInference(handler)
      | "ByShard" >> beam.Map(lambda kv: (stable_hash(kv[0]) % num_shards,
                                          (kv[0], kv[1].inference)))
      | "GroupShards" >> beam.GroupByKey()
      | "WriteShards" >> beam.ParDo(WriteShard(output)))
  _ = parsed[ParseTable.BAD] | "DeadLetter" >> beam.io.WriteToText(
      FileSystems.join(output, DEAD_LETTER), shard_name_template="")
  lines_read = lines | "CountLines" >> beam.combiners.Count.Globally()
  rejected = parsed[ParseTable.BAD] | "CountRejected" >> beam.combiners.Count.Globally()
  return (shards
          | "AllShards" >> beam.combiners.ToList()
          | "Manifest" >> beam.Map(write_manifest, output, num_shards, model,
                                   beam.pvalue.AsSingleton(lines_read),
                                   beam.pvalue.AsSingleton(rejected)))


def run(argv: Optional[List[str]] = None) -> dict:
  parser = argparse.ArgumentParser(prog="beam run encode_entities",
                                   description=__doc__.split("\n")[0])
  parser.add_argument("--model_dir", required=True, help="a `mel train` model dir")
  parser.add_argument("--output", required=True, help="embeddings directory (local or gs://)")
  parser.add_argument("--num_shards", type=int, default=0,
                      help="0: one shard per 100,000 entities")
  parser.add_argument("--batch_size", type=int, default=256)
  args, beam_args = parser.parse_known_args(argv)
  from mel import entity_table
  directory = ModelDir(args.model_dir)
  model = directory.identity()
  count = entity_table.count(directory.entities)
  num_shards = args.num_shards or max(1, -(-count // 100000))
  if not any(a.startswith("--runner") for a in beam_args):
    beam_args.append("--runner=FnApiRunner")   # local and offline (see README: Runners)
  started = time.time()
  if not FileSystems.exists(args.output):
    FileSystems.mkdirs(args.output)
  with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
    build_pipeline(pipeline, args.model_dir, args.output, num_shards, args.batch_size, model)
  with FileSystems.open(FileSystems.join(args.output, embeddings.MANIFEST)) as f:
    result = json.loads(f.read().decode("utf-8"))
  counts = result["counts"]
  ok = counts["lines_read"] == counts["encoded"] + counts["rejected"]
  logging.info("encode_entities: %d lines read = %d encoded + %d rejected [%s] in %.1fs -> %s",
               counts["lines_read"], counts["encoded"], counts["rejected"],
               "ok" if ok else "MISMATCH", time.time() - started, args.output)
  print(f"encode_entities: {counts['lines_read']} lines read = {counts['encoded']} encoded + "
        f"{counts['rejected']} rejected [{'ok' if ok else 'MISMATCH'}]; {num_shards} shard(s) "
        f"-> {args.output}")
  return {"checks": {"lines": {"ok": ok}}, "manifest": result}
