"""`python -m mel.train` end to end on records mined from the shared mini dumps (slow), and
the training loop in process on tiny towers.

Smoke run (the loss goes down), export signatures on raw strings, resume after SIGKILL, Model E,
hard negatives, a second round started from the first one's weights, bfloat16 training,
`mel vocab`.
"""
import json
import math
import os
import signal
import subprocess
import sys
import time

import mel  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import DEMO_CONFIG, run_module, train_overrides, write_negatives
from mel import entity_table, records
from mel.model_dir import ModelDir
from mel.training import configs, export, tokenization, train, vocabulary
from mel.training.inputs import TrainingInputs
from mel.training.input_layout import InputBuilder

slow = pytest.mark.slow
DEMO = str(DEMO_CONFIG)


def _overrides(mining, vocab, **extra):
  return train_overrides(mining, vocab, **extra)


def _train(model_dir, overrides, config=DEMO):
  return run_module("mel.train", "--config", config, "--model_dir", model_dir,
                    "--params_override", overrides)


def _scalars(model_dir, tag):
  """step -> value of one TensorBoard scalar."""
  out = {}
  for path in tf.io.gfile.glob(os.path.join(model_dir, "train", "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          out[event.step] = float(tf.make_ndarray(value.tensor))
  return out


@pytest.fixture(scope="module")
def trained(mini_model):
  return mini_model


@slow
def test_smoke_run_loss_goes_down(trained):
  model_dir, result = trained
  losses = _scalars(str(model_dir), "loss/mention_entity")
  assert sorted(losses) == list(range(10, 121, 10))
  first, last = np.mean([losses[10], losses[20]]), np.mean([losses[110], losses[120]])
  assert first > 2.5            # about ln(16) = 2.77 while the towers are random
  assert last < first - 0.5, losses
  pair_losses = _scalars(str(model_dir), "loss/entity_entity")
  assert pair_losses[120] < pair_losses[10]
  for tag in ("accuracy/mention_entity_in_batch", "learning_rate", "examples_per_second"):
    assert 120 in _scalars(str(model_dir), tag)
  assert "step 120/120" in result.stderr
  summary = json.loads((model_dir / "train_summary.json").read_text())
  assert summary["step"] == 120 and summary["steps_this_run"] == 120
  assert sorted(os.listdir(model_dir)) == sorted([
      "checkpoints", "config.yaml", "entities.tsv", "export", "train", "train_summary.json",
      "vocab.txt"])


@slow
def test_exported_towers_take_raw_strings_and_match_the_checkpoint(trained):
  import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModels use)
  model_dir, _ = trained
  manifest = json.loads((model_dir / "export" / "manifest.json").read_text())
  assert manifest["kind"] == "F" and manifest["step"] == 120 and manifest["embedding_dim"] == 32
  mention_encoder = tf.saved_model.load(str(model_dir / "export" / "mention_encoder"))
  entity_encoder = tf.saved_model.load(str(model_dir / "export" / "entity_encoder"))
  serve = mention_encoder.signatures["serving_default"]
  titles = tf.constant(["Київ", "東京"])
  lefts = tf.constant(["Столиця України — ", "日本の首都は"])
  mentions = tf.constant(["Київ", "東京都"])
  rights = tf.constant([".", "です。"])
  got = serve(title=titles, left=lefts, mention=mentions, right=rights)["embeddings"].numpy()
  assert got.shape == (2, 32)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), [1, 1], rtol=1e-5)
  entities = entity_encoder.signatures["serving_default"](
      description=tf.constant(["столиця України", ""]))["embeddings"].numpy()
  assert entities.shape == (2, 32)

  # The same vectors from the checkpoint through mel's own input builder.
  from mel.modeling.dual_encoder import build_dual_encoder
  config = configs.load(str(model_dir / "config.yaml"))
  model = build_dual_encoder(config.model)
  tf.train.Checkpoint(model=model).read(
      tf.train.latest_checkpoint(str(model_dir / "checkpoints"))).expect_partial()
  builder = InputBuilder(tokenization.Tokenizer.from_file(str(model_dir / "vocab.txt")))
  want = model.mention_tower(builder.mentions(titles, lefts, mentions, rights)).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@slow
def test_rerun_of_a_finished_run_trains_nothing(trained, mini_mining, mini_vocab):
  model_dir, _ = trained
  result = _train(model_dir, _overrides(mini_mining[0], mini_vocab))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "already at step 120 of 120" in result.stderr
  assert "exported" not in result.stderr


@slow
def test_a_different_model_in_the_same_dir_is_refused(trained, mini_mining, mini_vocab):
  model_dir, _ = trained
  result = _train(model_dir, _overrides(mini_mining[0], mini_vocab, **{"model.embedding_dim": 16}))
  assert result.returncode == 1
  assert "different model or input layout" in result.stderr


@slow
def test_resume_after_sigkill(mini_mining, mini_vocab, tmp_path):
  model_dir = tmp_path / "killed"
  overrides = _overrides(mini_mining[0], mini_vocab, **{
      "train.steps": 200, "train.checkpoint_every": 20, "train.steps_per_loop": 5,
      "train.entity_entity_task": "false", "train.export": "false"})
  cmd = [sys.executable, "-m", "mel.train", "--config", DEMO, "--model_dir", str(model_dir),
         "--params_override", overrides]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
  checkpoints = model_dir / "checkpoints"
  deadline = time.time() + 300
  while time.time() < deadline:
    if tf.train.latest_checkpoint(str(checkpoints)) and int(
        tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1]) >= 40:
      break
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  process.stderr.close()
  killed_at = int(tf.train.latest_checkpoint(str(checkpoints)).rsplit("-", 1)[1])
  assert 40 <= killed_at < 200

  result = _train(model_dir, overrides)
  assert result.returncode == 0, result.stderr[-3000:]
  resumed = [line for line in result.stderr.splitlines() if "resumed from" in line]
  assert resumed and resumed[0].endswith(f"at step {killed_at}")
  summary = json.loads((model_dir / "train_summary.json").read_text())
  assert summary["step"] == 200 and summary["steps_this_run"] == 200 - killed_at
  assert tf.train.latest_checkpoint(str(checkpoints)).endswith("ckpt-200")
  steps = sorted(_scalars(str(model_dir), "loss/mention_entity"))
  assert steps[-1] == 200 and all(s <= 200 for s in steps)


@slow
def test_model_e_trains_and_exports_an_id_signature(mini_mining, mini_vocab, tmp_path):
  model_dir = tmp_path / "model_e"
  result = _train(model_dir, _overrides(mini_mining[0], mini_vocab, **{
      "model.kind": "E", "train.entity_entity_task": "false", "train.steps": 20}))
  assert result.returncode == 0, result.stderr[-3000:]
  import tensorflow_text  # noqa: F401
  encoder = tf.saved_model.load(str(model_dir / "export" / "entity_encoder"))
  first_id = entity_table.read(str(model_dir / "entities.tsv"))[0][0]
  out = encoder.signatures["serving_default"](
      entity_id=tf.constant([first_id, "no-such-entity"]))["embeddings"].numpy()
  assert np.linalg.norm(out[0]) == pytest.approx(1.0, rel=1e-5)
  assert not out[1].any()


@slow
def test_hard_negative_batches(mini_mining, mini_vocab, tmp_path):
  negatives = tmp_path / "negatives-00000-of-00001.tfrecord.gz"
  write_negatives(mini_mining[0], negatives)
  table = tmp_path / "entities.tsv"
  entity_table.write_from_mining(str(mini_mining[0]), str(table))
  config = configs.load(DEMO, _overrides(mini_mining[0], mini_vocab, **{
      "data.hard_negatives": str(negatives), "data.hard_negatives_per_mention": 3,
      "train.entity_entity_task": "false"}))
  builder = InputBuilder(tokenization.Tokenizer.from_file(str(mini_vocab)))
  batch = next(iter(TrainingInputs(config, builder, str(table)).dataset()))
  assert batch["negatives"]["input_word_ids"].shape == (48, 64)
  mask = batch["negative_mask"].numpy().reshape(16, 3)
  # Mentions with an odd index have 2 negatives: the third slot is padding.
  assert mask[:, :2].all() and 0 < mask[:, 2].sum() < 16
  assert (batch["negatives"]["input_word_ids"].numpy()[~batch["negative_mask"].numpy()][:, 1]
          == 102).all()   # padding encodes as [CLS] [SEP] and is masked in the loss


@slow
def test_second_round_starts_from_the_first_and_trains_on_hard_negatives(
    trained, mini_mining, mini_vocab, tmp_path):
  first_dir, _ = trained
  negatives = tmp_path / "negatives-00000-of-00001.tfrecord.gz"
  write_negatives(mini_mining[0], negatives)
  model_dir = tmp_path / "round1"
  result = _train(model_dir, _overrides(mini_mining[0], mini_vocab, **{
      "train.init_from_model_dir": first_dir, "train.steps": 20,
      "data.hard_negatives": negatives, "data.hard_negatives_per_mention": 2}))
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"initialised from weights of {first_dir}/checkpoints/ckpt-120" in result.stderr
  assert "2 hard negatives per mention" in result.stderr
  losses = _scalars(str(model_dir), "loss/mention_entity")
  first_losses = _scalars(str(first_dir), "loss/mention_entity")
  # Started from trained weights, not from scratch (which begins near ln(16 + 32)).
  assert losses[10] < first_losses[10]


@slow
def test_build_vocab_writes_an_mbert_layout_vocabulary(mini_mining, mini_vocab, tmp_path):
  vocab = tokenization.load_vocab(str(mini_vocab))
  assert vocab[:104] == tokenization.RESERVED_TOKENS
  assert 2000 < len(vocab) <= 3000
  tokenizer = tokenization.Tokenizer(vocab)
  mentions = [m for _, m in zip(range(200), records.read_output(str(mini_mining[0]),
                                                                records.MENTIONS_TRAIN))]
  ids = tokenizer.tokenize(tf.constant([m.left_context + m.mention for m in mentions]))
  unknown = float(np.mean(ids.flat_values.numpy() == tokenizer.unk_id))
  assert unknown < 0.01   # learned from these texts: almost every word is covered
  result = run_module("mel", "vocab", "--mining_dir", tmp_path / "nothing", "--output",
                      tmp_path / "v.txt")
  assert result.returncode == 1 and "no files match" in result.stderr
  assert not (tmp_path / "v.txt").exists()


@slow
def test_bfloat16_run_trains_and_exports_float32_towers(mini_mining, mini_vocab, tmp_path):
  import tensorflow_text  # noqa: F401
  model_dir = tmp_path / "bf16"
  result = _train(model_dir, _overrides(mini_mining[0], mini_vocab, **{
      "train.mixed_precision": "bfloat16", "train.steps": 40}))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "training F in bfloat16" in result.stderr
  losses = _scalars(str(model_dir), "loss/mention_entity")
  assert sorted(losses) == [10, 20, 30, 40] and np.isfinite(list(losses.values())).all()
  assert np.isfinite(_scalars(str(model_dir), "loss/entity_entity")[40])
  assert ModelDir(str(model_dir)).read_export_manifest()["trained_precision"] == "bfloat16"
  mention = tf.saved_model.load(str(model_dir / "export" / "mention_encoder"))
  got = mention.signatures["serving_default"](
      title=tf.constant(["Київ"]), left=tf.constant(["Столиця — "]), mention=tf.constant(["Київ"]),
      right=tf.constant(["."]))["embeddings"]
  entity = tf.saved_model.load(str(model_dir / "export" / "entity_encoder"))
  descriptions = entity.signatures["serving_default"](
      description=tf.constant(["столиця України", ""]))["embeddings"]
  for vectors in (got, descriptions):
    assert vectors.dtype == tf.float32
    np.testing.assert_allclose(np.linalg.norm(vectors.numpy(), axis=1), 1.0, rtol=1e-5)


# The training loop in process, on tiny towers and a fixed batch (no mining run needed).
TINY_VOCAB = tokenization.RESERVED_TOKENS + list("abcdefghijklmnopqrstuvwxyz") + [
    "##" + c for c in "abcdefghijklmnopqrstuvwxyz"]


def _tiny_config(precision: str) -> configs.ExperimentConfig:
  # Initialiser range 0.1 and no warm-up, as in configs/demo_cpu.yaml and for its reason: a
  # random BERT at 0.02 gives every input nearly the same vector and the loss sits at ln(B).
  return configs.ExperimentConfig(
      model=configs.ModelConfig(kind="F", embedding_dim=8, encoder=configs.EncoderConfig(
          vocab_size=len(TINY_VOCAB), hidden_size=16, num_layers=1, num_attention_heads=2,
          intermediate_size=32, max_position_embeddings=16, dropout_rate=0.0,
          attention_dropout_rate=0.0, initializer_range=0.1)),
      data=configs.DataConfig(max_seq_length=16, max_title_length=4, batch_size=4,
                              pairs_batch_size=4),
      train=configs.TrainConfig(steps=1000, learning_rate=1e-2, warmup_fraction=0.0,
                                mixed_precision=precision, seed=1)).validate()


def _tiny_batch(builder: InputBuilder) -> dict:
  """4 mentions of 4 different entities and their descriptions (one fixed batch)."""
  words = ["paris", "tokyo", "kyiv", "dhaka"]
  return {"mentions": builder.mentions(tf.constant(["city"] * 4),
                                       tf.constant([f"the capital {w} is" for w in words]),
                                       tf.constant(words), tf.constant(["big"] * 4)),
          "entities": builder.entities(tf.constant([f"{w} is a city" for w in words])),
          "entity_ids": tf.constant([1, 2, 3, 4])}


def test_bfloat16_training_loop_and_export(tmp_path):
  import tensorflow_text  # noqa: F401
  config = _tiny_config("bfloat16")
  strategy = tf.distribute.get_strategy()
  model, optimizer = train.build_model(config, strategy)
  assert tf_keras.mixed_precision.global_policy().name == "float32"   # restored after building
  assert model.mention_tower.projection.compute_dtype == "bfloat16"
  assert {v.dtype for v in model.trainable_variables} == {tf.float32}
  builder = InputBuilder(tokenization.Tokenizer(TINY_VOCAB), 16, 4)
  batch = _tiny_batch(builder)
  dataset = strategy.distribute_datasets_from_function(
      lambda _: tf.data.Dataset.from_tensors(batch).repeat())
  loop = train.build_train_loop(model, optimizer, strategy, config)
  iterator = iter(dataset)
  losses = []
  for _ in range(6):
    out = loop(iterator, tf.constant(5))
    assert out["mention_entity_loss"].dtype == tf.float32
    losses.append(float(out["mention_entity_loss"]))
  assert np.isfinite(losses).all() and int(optimizer.iterations) == 30
  # One fixed batch of 4 pairs: the loss starts at ln(4) = 1.386 (random towers) and leaves
  # it after ~15 steps (seeded: 1.39, 1.38, 1.49, 1.02, 0.92, 0.85 on 2 CPU cores).
  assert abs(losses[0] - math.log(4)) < 0.05 and losses[-1] < math.log(4) - 0.3, losses

  paths = ModelDir(str(tmp_path))
  entity_table.write([("Q1", "paris is a city"), ("Q2", "tokyo is a city")], paths.entities)
  # The export serves a float32 copy of the bfloat16-trained towers (same weights).
  serving = train.float32_copy(config, model)
  assert serving.mention_tower.projection.compute_dtype == "float32"
  assert model.mention_tower.projection.compute_dtype == "bfloat16"
  manifest = export.export_towers(serving, builder, "F", paths, step=10,
                                  trained_precision="bfloat16")
  assert manifest["trained_precision"] == "bfloat16" and export.exported_step(paths) == 10
  mention = tf.saved_model.load(paths.mention_encoder).signatures["serving_default"]
  vectors = mention(title=tf.constant(["city"]), left=tf.constant(["the capital paris is"]),
                    mention=tf.constant(["paris"]), right=tf.constant(["big"]))["embeddings"]
  entity = tf.saved_model.load(paths.entity_encoder).signatures["serving_default"]
  descriptions = entity(description=tf.constant(["paris is a city", ""]))["embeddings"]
  for got in (vectors, descriptions):
    assert got.dtype == tf.float32
    np.testing.assert_allclose(np.linalg.norm(got.numpy(), axis=1), 1.0, rtol=1e-5)
  # The same tower as in training, up to the bfloat16 rounding of training's forward pass
  # (8-bit mantissa: ~4e-3 relative); the export computes in float32.
  np.testing.assert_allclose(vectors.numpy(), model.mention_tower(
      {k: v[:1] for k, v in batch["mentions"].items()}).numpy(), atol=1e-2)


def test_distillation_joins_the_loop_only_when_weighted():
  plain = _tiny_config("float32")
  assert train.metric_names(plain) == train.METRICS["F"]   # unchanged without distillation
  config = _tiny_config("float32")
  config.data.hard_negatives, config.data.hard_negatives_per_mention = "teacher-*", 1
  config.train.distillation_weight, config.train.distillation_temperature = 0.5, 2.0
  config.validate()
  assert train.metric_names(config) == train.METRICS["F"] + ("distillation_loss",)
  sums = {"mention_entity_loss": 1.0, "entity_entity_loss": 3.0, "distillation_loss": 0.4}
  assert train.objective(sums, config.train) == pytest.approx(1.0 + 0.5 * 0.4)
  config.train.entity_entity_task = True
  assert train.objective(sums, config.train) == pytest.approx(2.0 + 0.5 * 0.4)
  # Weighted heavily, the teacher's view (below: the negative, not the gold) wins.
  config.train.entity_entity_task, config.train.distillation_weight = False, 10.0
  strategy = tf.distribute.get_strategy()
  model, optimizer = train.build_model(config, strategy)
  assert model.distillation_temperature == 2.0
  builder = InputBuilder(tokenization.Tokenizer(TINY_VOCAB), 16, 4)
  batch = _tiny_batch(builder)
  # Each mention's one hard negative is the next mention's entity; the teacher prefers it.
  words = ["tokyo", "kyiv", "dhaka", "paris"]
  batch.update(negatives=builder.entities(tf.constant([f"{w} is a city" for w in words])),
               negative_ids=tf.constant([2, 3, 4, 1]), negative_mask=tf.constant([True] * 4),
               teacher_logits=tf.constant([[0.0, 3.0]] * 4),
               teacher_mask=tf.constant([[True, True]] * 4))
  dataset = strategy.distribute_datasets_from_function(
      lambda _: tf.data.Dataset.from_tensors(batch).repeat())
  loop = train.build_train_loop(model, optimizer, strategy, config)
  iterator = iter(dataset)
  values = [loop(iterator, tf.constant(5)) for _ in range(4)]
  distillation = [float(v["distillation_loss"]) for v in values]
  assert np.isfinite(distillation).all() and distillation[-1] < distillation[0], distillation
  line = train._progress_line(20, 20, {k: float(v) for k, v in values[-1].items()}, config)
  assert "distillation" in line
  assert train.SUMMARY_NAMES["distillation_loss"] == "loss/distillation"


def test_a_checkpoint_restores_in_the_other_precision(tmp_path):
  model, optimizer = train.build_model(_tiny_config("bfloat16"), tf.distribute.get_strategy())
  path = tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(tmp_path / "ckpt"))
  again, again_optimizer = train.build_model(_tiny_config("float32"),
                                             tf.distribute.get_strategy())
  assert again.mention_tower.projection.compute_dtype == "float32"
  tf.train.Checkpoint(model=again, optimizer=again_optimizer).restore(
      path).assert_existing_objects_matched()


def test_vocab_reuses_an_existing_output_unless_overwrite(tmp_path, capsys):
  path = tmp_path / "vocab.txt"
  path.write_text("".join(t + "\n" for t in TINY_VOCAB))
  before = path.read_text()
  missing = str(tmp_path / "no-mining")
  assert vocabulary.main(["--mining_dir", missing, "--output", str(path)]) == 0
  assert "reused (--overwrite learns it again)" in capsys.readouterr().err
  assert path.read_text() == before
  # --overwrite learns again: here from a mining run that does not exist, so it fails and
  # the existing file stays as it was.
  assert vocabulary.main(["--mining_dir", missing, "--output", str(path), "--overwrite"]) == 1
  assert "no files match" in capsys.readouterr().err and path.read_text() == before
  path.write_text("[PAD]\n")
  assert vocabulary.main(["--mining_dir", missing, "--output", str(path)]) == 1
  assert "--overwrite replaces it" in capsys.readouterr().err


def test_auto_precision_follows_the_hardware(tmp_path, monkeypatch):
  """"auto" is bfloat16 only where the hardware computes it: here the CPU's flags decide."""
  from mel.training import precision as train_lib   # (mel.training.train re-exports these)
  with_bf16 = tmp_path / "bf16"
  with_bf16.write_text("processor : 0\nflags : fpu sse2 avx512f avx512_bf16\n")
  without = tmp_path / "plain"
  without.write_text("processor : 0\nflags : fpu sse2 avx2\n")
  assert train_lib.cpu_has_bfloat16(str(with_bf16))
  assert not train_lib.cpu_has_bfloat16(str(without))
  assert not train_lib.cpu_has_bfloat16(str(tmp_path / "missing"))
  strategy = tf.distribute.get_strategy()
  assert train_lib.resolve_precision("float32", strategy) == "float32"
  assert train_lib.resolve_precision("bfloat16", strategy) == "bfloat16"
  monkeypatch.setattr(train_lib, "cpu_has_bfloat16", lambda: True)
  assert train_lib.resolve_precision("auto", strategy) == "bfloat16"
  monkeypatch.setattr(train_lib, "cpu_has_bfloat16", lambda: False)
  assert train_lib.resolve_precision("auto", strategy) == "float32"
