"""`python -m mel.train` end to end on records mined from the shared mini dumps.

Smoke run (the loss goes down), export signatures on raw strings, resume after SIGKILL, Model E,
hard negatives, a second round started from the first one's weights.
"""
import json
import os
import signal
import subprocess
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from conftest import DEMO_CONFIG, run_module, train_overrides  # noqa: E402
from mel.training import configs, tokenization  # noqa: E402
from mel import entity_table, records, schema
from mel.training.inputs import TrainingInputs  # noqa: E402
from mel.training.input_layout import InputBuilder  # noqa: E402

pytestmark = pytest.mark.slow
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


def test_rerun_of_a_finished_run_trains_nothing(trained, mini_mining, mini_vocab):
  model_dir, _ = trained
  result = _train(model_dir, _overrides(mini_mining[0], mini_vocab))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "already at step 120 of 120" in result.stderr
  assert "exported" not in result.stderr


def test_a_different_model_in_the_same_dir_is_refused(trained, mini_mining, mini_vocab):
  model_dir, _ = trained
  result = _train(model_dir, _overrides(mini_mining[0], mini_vocab, **{"model.embedding_dim": 16}))
  assert result.returncode == 1
  assert "different model or input layout" in result.stderr


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


def _write_negatives(mining_dir, path, k=3):
  """MentionWithNegatives records: each training mention with k other entities."""
  entity_ids = sorted(e.entity_id for e in records.read_output(str(mining_dir), records.ENTITIES))
  mentions = list(records.read_output(str(mining_dir), records.MENTIONS_TRAIN))
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for n, m in enumerate(mentions):
      others = [e for e in entity_ids[n % 50:n % 50 + k + 1] if e != m.entity_id][:k - n % 2]
      fields = {name: getattr(m, name) for name in schema.Mention.FIELDS}
      writer.write(schema.MentionWithNegatives(**fields, negative_ids=tuple(others))
                   .to_example_bytes())
  return len(mentions)


def test_hard_negative_batches(mini_mining, mini_vocab, tmp_path):
  negatives = tmp_path / "negatives-00000-of-00001.tfrecord.gz"
  _write_negatives(mini_mining[0], negatives)
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


def test_second_round_starts_from_the_first_and_trains_on_hard_negatives(
    trained, mini_mining, mini_vocab, tmp_path):
  first_dir, _ = trained
  negatives = tmp_path / "negatives-00000-of-00001.tfrecord.gz"
  _write_negatives(mini_mining[0], negatives)
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
