"""Training inputs: the mining pipeline's TFRecords -> batches of encoder inputs, in tf.data.

Only TF ops after the file list, so the same code runs in a TPU host's input pipeline.
Records are parsed with the schema module's feature_spec() (one definition for writer and
reader). Each global batch is split evenly across replicas (distribute_datasets_from_function).

A batch (per replica, B mentions, K hard negatives each, P entity pairs):
  mentions:  input dict int32 [B, L]   (title / left / [E] mention [/E] / right)
  entities:  Model F: input dict int32 [B, L] ([CLS] description [SEP]); Model E: rows [B]
  entity_ids: int32 [B], a hash of the gold entity id (accidental-hit masking)
  negatives, negative_ids [B*K], negative_mask bool [B*K]   (with hard negatives)
  teacher_logits float32 [B, 1+K], teacher_mask bool [B, 1+K]   (train.distillation_weight > 0:
             MentionWithTeacherScores records; the gold's logit, then each negative's; the
             mask is False where the negative is padding or not in the entity table)
  pairs_a, pairs_b: input dict int32 [P, L], pair_ids int32 [P]   (entity-entity task)
  type_targets float32 [B, T], type_mask bool [B]   (model.typing: the gold entity's multi-hot
             types; the mask is False where it has none in the vocabulary)

The reranker (model.kind CA; RerankerInputs), per replica, B mentions of C = 1 + K + R
candidates each (the gold first, K of the mention's hard negatives, R random entities):
  pairs: input dict int32 [B*C, L]   ([CLS] title [SEP] left [E] mention [/E] right [SEP]
                                      description [SEP]; mention b's candidates in rows b*C..)
  candidate_mask: bool [B, C]        (False: a missing negative, an entity not in the table,
                                      or an entity already among the mention's candidates)
The random entities are drawn as the positives are distributed (paper Sec. 5.5.2): the gold
entities of the next R mentions of the shuffled batch.

data.exclude_languages (leave-languages-out): mentions (or hard-negative records) in those
languages and entity pairs with either description in one of them are filtered out of the
record stream before the shuffle; the entity table, and so the index, keeps every entity.
"""
import json
import os
from typing import Optional

import tensorflow as tf

from mel.training import configs, type_task

from mel import entity_table, records, schema
from mel.training.input_layout import InputBuilder

# Entity ids are compared through a 31-bit hash (int32 runs everywhere, TPU included). Two
# different entities colliding in one batch only removes one negative from one softmax.
_ID_BUCKETS = 2**31 - 1


def entity_id_hash(ids):
  """tf.string [...] -> int32 [...]."""
  return tf.cast(tf.strings.to_hash_bucket_fast(ids, _ID_BUCKETS), tf.int32)


def _files(pattern: str, what: str):
  files = sorted(tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no {what} files match {pattern}")
  return files


def _records(files, input_context, seed: int, shuffle_buffer: int, keep=None):
  """Serialized examples from gzip TFRecord shards, sharded per input pipeline, shuffled.

  keep: a predicate on a serialized example, applied before the shuffle (left-out languages).
  """
  ds = tf.data.Dataset.from_tensor_slices(files)
  if input_context and input_context.num_input_pipelines > 1:
    if len(files) >= input_context.num_input_pipelines:
      ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  ds = ds.shuffle(len(files), seed=seed).repeat()
  ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
                     cycle_length=min(len(files), 8), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
  if keep is not None:
    ds = ds.filter(keep)
  return ds.shuffle(shuffle_buffer, seed=seed)


def _language_filter(excluded, fields):
  """A keep predicate: False when any of the language fields is an excluded language; None
  when nothing is excluded."""
  if not excluded:
    return None
  spec = {name: tf.io.FixedLenFeature([], tf.string, default_value="") for name in fields}
  excluded = tf.constant(list(excluded), tf.string)

  def keep(serialized):
    example = tf.io.parse_single_example(serialized, spec)
    langs = tf.stack([example[name] for name in fields])
    return tf.logical_not(tf.reduce_any(tf.equal(langs[:, None], excluded[None, :])))
  return keep


def excluded_mentions(config: configs.ExperimentConfig) -> dict:
  """{left-out language: its training mentions} from the mining run's language totals (None
  per language when the file is missing); ConfigError for a language the run does not hold or
  for leaving out all of them."""
  excluded = config.data.exclude_languages
  path = os.path.join(config.data.mining_dir, records.LANGUAGE_TOTALS)
  if not excluded or not tf.io.gfile.exists(path):
    return {lang: None for lang in excluded}
  with tf.io.gfile.GFile(path, "r") as f:
    totals = json.load(f)
  unknown = [lang for lang in excluded if lang not in totals]
  if unknown:
    raise configs.ConfigError(f"data.exclude_languages: {unknown} have no training mentions in "
                              f"{config.data.mining_dir} (it has {sorted(totals)})")
  if not set(totals) - set(excluded):
    raise configs.ConfigError(f"data.exclude_languages leaves out every language of "
                              f"{config.data.mining_dir}: nothing to train on")
  return {lang: int(totals[lang]) for lang in excluded}


class TrainingInputs:
  """Builds the training dataset of one experiment (see module docstring for the batch)."""

  def __init__(self, config: configs.ExperimentConfig, builder: InputBuilder,
               entity_table_path: str, entity_types_path: str = ""):
    self.config = config
    self.builder = builder
    self.entity_table_path = entity_table_path
    self.entity_types_path = entity_types_path   # model.typing (mel.training.type_task)
    if config.model.typing.enabled and not entity_types_path:
      raise ValueError("model.typing needs the model dir's entity types (entity_types_path)")
    self.with_negatives = bool(config.data.hard_negatives) and \
        config.data.hard_negatives_per_mention > 0
    self.with_teacher = self.with_negatives and config.train.distillation_weight > 0
    if self.with_negatives:
      self.mention_files = _files(config.data.hard_negatives, "hard-negative")
    else:
      self.mention_files = _files(records.pattern(config.data.mining_dir,
                                                  records.MENTIONS_TRAIN), "training mention")
    # Checked here, so a typo fails before training starts; train_summary.json records it.
    self.excluded = excluded_mentions(config)
    self.pair_files = None
    if config.train.entity_entity_task:
      self.pair_files = _files(records.pattern(config.data.mining_dir, records.ENTITY_PAIRS),
                               "entity pair")

  def _entity_features(self, ids, texts, rows):
    """Entity tower inputs for entity ids [N]."""
    if self.config.model.kind == "E":
      return tf.cast(tf.maximum(rows.lookup(ids), 0), tf.int32)
    return self.builder.entities(texts.lookup(ids))

  def _mentions(self, batch_size: int, input_context, seed: int):
    record_type = schema.MentionWithNegatives if self.with_negatives else schema.Mention
    if self.with_teacher:
      record_type = schema.MentionWithTeacherScores
    spec = record_type.feature_spec()
    wanted = ["doc_title", "left_context", "mention", "right_context", "entity_id"]
    if self.with_negatives:
      wanted.append("negative_ids")
    if self.with_teacher:
      wanted.append("teacher_logits")
    spec = {k: spec[k] for k in wanted}
    k = self.config.data.hard_negatives_per_mention
    texts = entity_table.text_lookup(self.entity_table_path)
    rows = entity_table.row_lookup(self.entity_table_path)
    types = None
    if self.config.model.typing.enabled:
      types = type_task.TypeTargets(self.entity_types_path, self.config.model.typing.num_types)

    def parse(serialized):
      example = tf.io.parse_single_example(serialized, spec)
      if self.with_negatives:
        negatives = tf.sparse.to_dense(example["negative_ids"], default_value="")[:k]
        example["negative_ids"] = tf.pad(negatives, [[0, k - tf.shape(negatives)[0]]])
        example["negative_ids"].set_shape([k])
      if self.with_teacher:
        # The gold's logit and the first k negatives' (the schema keeps them aligned).
        teacher = tf.sparse.to_dense(example["teacher_logits"])[:k + 1]
        example["teacher_mask"] = tf.sequence_mask(tf.shape(teacher)[0], k + 1)
        example["teacher_logits"] = tf.pad(teacher, [[0, k + 1 - tf.shape(teacher)[0]]])
        example["teacher_logits"].set_shape([k + 1])
      return example

    def known(example):
      # A mention whose entity is not in the table cannot be trained on; the table comes
      # from the same mining run, so this only drops records of a mismatched run.
      return rows.lookup(example["entity_id"]) >= 0

    def features(batch):
      out = {
          "mentions": self.builder.mentions(batch["doc_title"], batch["left_context"],
                                            batch["mention"], batch["right_context"]),
          "entities": self._entity_features(batch["entity_id"], texts, rows),
          "entity_ids": entity_id_hash(batch["entity_id"]),
      }
      if types is not None:
        out.update(types(batch["entity_id"]))
      if self.with_negatives:
        negative_ids = tf.reshape(batch["negative_ids"], [-1])                  # [B*K]
        out["negatives"] = self._entity_features(negative_ids, texts, rows)
        out["negative_ids"] = entity_id_hash(negative_ids)
        out["negative_mask"] = rows.lookup(negative_ids) >= 0
      if self.with_teacher:
        batch_size = tf.shape(batch["teacher_logits"])[0]
        candidates = tf.concat([tf.ones([batch_size, 1], tf.bool),
                                tf.reshape(out["negative_mask"], [batch_size, k])], axis=1)
        out["teacher_logits"] = batch["teacher_logits"]
        out["teacher_mask"] = tf.logical_and(batch["teacher_mask"], candidates)
      return out

    ds = _records(self.mention_files, input_context, seed, self.config.data.shuffle_buffer,
                  _language_filter(self.excluded, ["lang"]))
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).filter(known)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.map(features, num_parallel_calls=tf.data.AUTOTUNE)

  def _pairs(self, batch_size: int, input_context, seed: int):
    spec = schema.EntityPair.feature_spec()
    spec = {k: spec[k] for k in ("entity_id", "text_a", "text_b")}

    def features(batch):
      return {"pairs_a": self.builder.entities(batch["text_a"]),
              "pairs_b": self.builder.entities(batch["text_b"]),
              "pair_ids": entity_id_hash(batch["entity_id"])}

    ds = _records(self.pair_files, input_context, seed + 1, self.config.data.shuffle_buffer,
                  _language_filter(self.excluded, ["lang_a", "lang_b"]))
    ds = ds.batch(batch_size, drop_remainder=True)
    ds = ds.map(lambda s: tf.io.parse_example(s, spec), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(features, num_parallel_calls=tf.data.AUTOTUNE)

  def dataset(self, input_context: Optional[tf.distribute.InputContext] = None):
    """The per-replica dataset (global batches divided by the number of replicas)."""
    data, seed = self.config.data, self.config.train.seed
    replicas = input_context.num_replicas_in_sync if input_context else 1
    if input_context:
      seed += input_context.input_pipeline_id
    for name in ("batch_size", "pairs_batch_size"):
      if getattr(data, name) % replicas:
        raise ValueError(f"data.{name}={getattr(data, name)} is not divisible by the "
                         f"{replicas} replicas")
    ds = self._mentions(data.batch_size // replicas, input_context, seed)
    if self.pair_files:
      pairs = self._pairs(data.pairs_batch_size // replicas, input_context, seed)
      ds = tf.data.Dataset.zip((ds, pairs)).map(lambda m, p: {**m, **p})
    return ds.prefetch(tf.data.AUTOTUNE)


class RerankerInputs:
  """The reranker's training dataset (model.kind CA; batch layout in the module docstring).

  Candidates come from data.hard_negatives (MentionWithNegatives records, the dual encoder's
  candidates mined by `mel negatives`: data.hard_negatives_per_mention of them) and from the
  batch (data.random_negatives_per_mention); without hard negatives the mining run's training
  mentions are read and only random candidates are used.
  """

  def __init__(self, config: configs.ExperimentConfig, builder: InputBuilder,
               entity_table_path: str):
    self.config = config
    self.builder = builder
    self.entity_table_path = entity_table_path
    data = config.data
    self.with_negatives = bool(data.hard_negatives) and data.hard_negatives_per_mention > 0
    self.num_hard = data.hard_negatives_per_mention if self.with_negatives else 0
    self.num_random = data.random_negatives_per_mention
    self.num_candidates = 1 + self.num_hard + self.num_random
    if self.with_negatives:
      self.mention_files = _files(data.hard_negatives, "hard-negative")
    else:
      self.mention_files = _files(records.pattern(data.mining_dir, records.MENTIONS_TRAIN),
                                  "training mention")
    self.excluded = excluded_mentions(config)

  def _dataset(self, batch_size: int, input_context, seed: int):
    record_type = schema.MentionWithNegatives if self.with_negatives else schema.Mention
    spec = record_type.feature_spec()
    wanted = ["doc_title", "left_context", "mention", "right_context", "entity_id"]
    if self.with_negatives:
      wanted.append("negative_ids")
    spec = {k: spec[k] for k in wanted}
    k, r, c = self.num_hard, self.num_random, self.num_candidates
    texts = entity_table.text_lookup(self.entity_table_path)
    rows = entity_table.row_lookup(self.entity_table_path)

    def parse(serialized):
      example = tf.io.parse_single_example(serialized, spec)
      negatives = tf.zeros([0], tf.string)
      if self.with_negatives:
        negatives = tf.sparse.to_dense(example.pop("negative_ids"), default_value="")[:k]
      example["hard_ids"] = tf.pad(negatives, [[0, k - tf.shape(negatives)[0]]])
      example["hard_ids"].set_shape([k])
      return example

    def known(example):
      return rows.lookup(example["entity_id"]) >= 0

    def features(batch):
      gold = batch["entity_id"]                                               # [B]
      randoms = [tf.roll(gold, shift=-(i + 1), axis=0) for i in range(r)]     # R x [B]
      ids = tf.concat([gold[:, None], batch["hard_ids"]] + [x[:, None] for x in randoms],
                      axis=1)                                                 # [B, C]
      # a candidate equal to an earlier one of its row (the gold included) is masked
      same = tf.equal(ids[:, :, None], ids[:, None, :])                       # [B, C, C]
      earlier = tf.linalg.band_part(tf.ones([c, c], tf.bool), -1, 0)          # j <= i
      earlier = tf.logical_and(earlier, tf.logical_not(tf.eye(c, dtype=tf.bool)))
      repeated = tf.reduce_any(tf.logical_and(same, earlier[None]), axis=2)   # [B, C]
      mask = tf.logical_and(rows.lookup(ids) >= 0, tf.logical_not(repeated))

      def each(values):                                                       # [B] -> [B*C]
        return tf.reshape(tf.repeat(values[:, None], c, axis=1), [-1])

      pairs = self.builder.pairs(each(batch["doc_title"]), each(batch["left_context"]),
                                 each(batch["mention"]), each(batch["right_context"]),
                                 texts.lookup(tf.reshape(ids, [-1])))
      return {"pairs": pairs, "candidate_mask": mask}

    ds = _records(self.mention_files, input_context, seed, self.config.data.shuffle_buffer,
                  _language_filter(self.excluded, ["lang"]))
    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).filter(known)
    ds = ds.batch(batch_size, drop_remainder=True)
    return ds.map(features, num_parallel_calls=tf.data.AUTOTUNE)

  def dataset(self, input_context: Optional[tf.distribute.InputContext] = None):
    """The per-replica dataset (global batches divided by the number of replicas)."""
    seed = self.config.train.seed
    replicas = input_context.num_replicas_in_sync if input_context else 1
    if input_context:
      seed += input_context.input_pipeline_id
    if self.config.data.batch_size % replicas:
      raise ValueError(f"data.batch_size={self.config.data.batch_size} is not divisible by "
                       f"the {replicas} replicas")
    return self._dataset(self.config.data.batch_size // replicas, input_context,
                         seed).prefetch(tf.data.AUTOTUNE)
