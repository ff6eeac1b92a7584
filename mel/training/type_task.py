"""The typing task's data and bookkeeping (model.typing; the model: mel.modeling.typed_tower).

The type vocabulary: the mining run's types/type_vocabulary.tsv (type_id, entities, source,
label; mel.records.TYPE_VOCABULARY) or, without that file, the types of its Entity records
counted here; types of fewer than model.typing.min_entities entities are left out, and the
model.typing.max_types of most entities (ties by id) are kept. mel train writes it into the
model dir once (its row is the classifiers' output index) with each entity's types as rows:
    type_vocabulary.tsv   type_id TAB entities TAB source TAB label     (row = type index)
    entity_types.tsv      entity_id TAB "3 17 42"                       (entities with a type)
A rerun reads both back, so the classifiers keep their meaning.

Training batches get each pair's gold-entity targets (type_targets, type_mask: TypeTargets);
the loop averages the per-pair losses and type counts, and summarize() turns the counts into
micro-F1 at probability 0.5 per side.
"""
import collections
import os
from typing import Dict, List, Tuple

import tensorflow as tf

from mel import records, schema
from mel.model_dir import ModelDir
from mel.training import configs

SIDES = ("mention", "entity")
LOSSES = tuple(f"{side}_type_loss" for side in SIDES)
COUNTS = tuple(f"{side}_type_{c}" for side in SIDES for c in ("tp", "fp", "fn"))
TYPED_PAIRS = "typed_pairs"
# What TypedDualEncoder.task_losses adds, averaged by the training loop.
METRICS = LOSSES + COUNTS + (TYPED_PAIRS,)
# summarize()'s names -> TensorBoard tags.
SUMMARY_NAMES = {"mention_type_loss": "loss/mention_type", "entity_type_loss": "loss/entity_type",
                 "mention_type_f1": "type_f1/mention", "entity_type_f1": "type_f1/entity",
                 "typed_pair_fraction": "typing/typed_pair_fraction"}

# (type_id, entities, source, label)
VocabularyRow = Tuple[str, int, str, str]


def metric_names(config: configs.ExperimentConfig) -> tuple:
  return METRICS if config.model.typing.enabled else ()


def weighted_loss(sums: dict, train_config: configs.TrainConfig):
  """The type terms of the objective: weight x each side's mean type loss (0 without typing)."""
  if LOSSES[0] not in sums:
    return 0.0
  return (train_config.type_loss_weight_mention * sums["mention_type_loss"]
          + train_config.type_loss_weight_entity * sums["entity_type_loss"])


def micro_f1(tp: float, fp: float, fn: float) -> float:
  """2 TP / (2 TP + FP + FN); 0 when there is nothing to count."""
  denominator = 2 * tp + fp + fn
  return 2 * tp / denominator if denominator > 0 else 0.0


def summarize(metrics: dict) -> dict:
  """The loop's means with the type counts replaced by each side's micro-F1 (the counts are
  means per pair: their ratio is the F1 of the pairs they were summed over) and typed_pairs
  named as the fraction of pairs whose entity had a type."""
  if TYPED_PAIRS not in metrics:
    return metrics
  out = {k: v for k, v in metrics.items() if k not in COUNTS and k != TYPED_PAIRS}
  for side in SIDES:
    out[f"{side}_type_f1"] = micro_f1(*(metrics[f"{side}_type_{c}"] for c in ("tp", "fp", "fn")))
  out["typed_pair_fraction"] = metrics[TYPED_PAIRS]
  return out


def progress(metrics: dict) -> str:
  """The typing part of a progress line ("" without typing)."""
  if "mention_type_f1" not in metrics:
    return ""
  return (f"  type loss m {metrics['mention_type_loss']:.3f} e {metrics['entity_type_loss']:.3f}"
          f" F1 m {metrics['mention_type_f1']:.3f} e {metrics['entity_type_f1']:.3f}")


# ---------------------------------------------------------------------------------------------
# The vocabulary and each entity's types.


def read_entity_types(mining_dir: str) -> Dict[str, Tuple[str, ...]]:
  """entity_id -> its type ids, from the mining run's Entity records (two fields parsed)."""
  spec = schema.Entity.feature_spec()
  spec = {"entity_id": spec["entity_id"], "types": spec["types"]}
  files = sorted(tf.io.gfile.glob(records.pattern(mining_dir, records.ENTITIES)))
  if not files:
    raise FileNotFoundError(f"no entity records in {mining_dir}")

  def parse(serialized):
    example = tf.io.parse_example(serialized, spec)
    # dense, "" padding the shorter rows (a type id is never empty)
    return example["entity_id"], tf.sparse.to_dense(example["types"], default_value="")

  ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1024).map(parse)
  out = {}
  for entity_ids, types in ds.as_numpy_iterator():
    for entity_id, ids in zip(entity_ids, types):
      out[entity_id.decode("utf-8")] = tuple(t.decode("utf-8") for t in ids if t)
  return out


def read_vocabulary(path: str) -> List[VocabularyRow]:
  """Rows of a type vocabulary TSV (a header line, or any line without a count, is skipped)."""
  rows = []
  with tf.io.gfile.GFile(path, "r") as f:
    for line in f:
      fields = line.rstrip("\n").split("\t")
      if len(fields) < 2 or not fields[1].strip().isdigit():
        continue
      fields += [""] * (4 - len(fields))
      rows.append((fields[0], int(fields[1]), fields[2], fields[3]))
  return rows


def choose_vocabulary(mining_dir: str, entity_types: Dict[str, Tuple[str, ...]],
                      max_types: int, min_entities: int) -> List[VocabularyRow]:
  """The mining run's vocabulary file, else the entity records' types counted; cut to the
  max_types of most entities with at least min_entities each."""
  path = os.path.join(mining_dir, records.TYPE_VOCABULARY)
  if tf.io.gfile.exists(path):
    rows = read_vocabulary(path)
  else:
    counts = collections.Counter(t for types in entity_types.values() for t in set(types))
    rows = [(type_id, n, "", "") for type_id, n in counts.items()]
  rows = sorted((r for r in rows if r[1] >= min_entities), key=lambda r: (-r[1], r[0]))
  return rows[:max_types]


def entity_type_rows(entity_types: Dict[str, Tuple[str, ...]],
                     vocabulary: List[VocabularyRow]) -> List[Tuple[str, List[int]]]:
  """(entity_id, its types' rows, ascending) for the entities with a type in the vocabulary."""
  index = {row[0]: i for i, row in enumerate(vocabulary)}
  out = []
  for entity_id in sorted(entity_types):
    rows = sorted({index[t] for t in entity_types[entity_id] if t in index})
    if rows:
      out.append((entity_id, rows))
  return out


def _write_lines(path: str, lines) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(tmp, "w") as f:
    for line in lines:
      f.write(line + "\n")
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _clean(text: str) -> str:
  return " ".join(str(text).replace("\t", " ").split())


def prepare(config: configs.ExperimentConfig, model_dir: ModelDir) -> str:
  """Fixes the type vocabulary and the entities' types in the model dir (once) and sets
  config.model.typing.num_types; returns a line saying what it holds."""
  typing = config.model.typing
  if tf.io.gfile.exists(model_dir.type_vocabulary) and tf.io.gfile.exists(model_dir.entity_types):
    vocabulary = read_vocabulary(model_dir.type_vocabulary)
    with tf.io.gfile.GFile(model_dir.entity_types, "r") as f:
      typed = sum(1 for line in f if line.strip())
    source = model_dir.type_vocabulary
  else:
    entity_types = read_entity_types(config.data.mining_dir)
    vocabulary = choose_vocabulary(config.data.mining_dir, entity_types, typing.max_types,
                                   typing.min_entities)
    if not vocabulary:
      raise configs.ConfigError(
          f"model.typing.enabled, but no type of {config.data.mining_dir}'s entities has "
          f"model.typing.min_entities={typing.min_entities} entities (Entity.types)")
    rows = entity_type_rows(entity_types, vocabulary)
    if not rows:
      raise configs.ConfigError(
          f"model.typing.enabled, but no entity of {config.data.mining_dir} has a type of its "
          f"type vocabulary ({len(vocabulary)} types; is {records.TYPE_VOCABULARY} from "
          f"another mining run?)")
    _write_lines(model_dir.type_vocabulary,
                 ("\t".join(_clean(x) for x in row) for row in vocabulary))
    _write_lines(model_dir.entity_types,
                 (f"{entity_id}\t{' '.join(map(str, ids))}" for entity_id, ids in rows))
    typed = len(rows)
    source = config.data.mining_dir
  if typing.num_types and typing.num_types != len(vocabulary):
    raise configs.ConfigError(f"model.typing.num_types={typing.num_types} but the type "
                              f"vocabulary has {len(vocabulary)} types")
  typing.num_types = len(vocabulary)
  return (f"type vocabulary: {len(vocabulary)} types (from {source}); {typed} entities have "
          "one of them")


class TypeTargets:
  """Each gold entity's multi-hot types, in tf.data (the model dir's entity_types.tsv)."""

  def __init__(self, entity_types_path: str, num_types: int):
    self.num_types = num_types
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(entity_types_path, tf.string, 0, tf.string, 1,
                                      delimiter="\t"), default_value="")

  def __call__(self, entity_ids) -> dict:
    """tf.string [B] -> {"type_targets": float32 [B, T], "type_mask": bool [B]}."""
    words = tf.strings.split(self.table.lookup(entity_ids))                   # ragged [B, None]
    rows = tf.strings.to_number(words.flat_values, tf.int64)                  # [N]
    batch = tf.shape(entity_ids, out_type=tf.int64)[0]
    positions = tf.stack([words.value_rowids(), rows], axis=1)                 # [N, 2]
    targets = tf.scatter_nd(positions, tf.ones_like(rows, tf.float32),
                            tf.stack([batch, tf.constant(self.num_types, tf.int64)]))
    return {"type_targets": tf.minimum(targets, 1.0), "type_mask": words.row_lengths() > 0}
