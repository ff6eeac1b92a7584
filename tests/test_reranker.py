"""The cross-attention reranker (model.kind CA): the pair input layout, its losses worked out by
hand, the training loop in process, candidate batches, and `mel train` end to end (export of
raw strings, resume after SIGKILL) on the mini fixtures."""
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

from conftest import (DEMO_CONFIG, RERANKER_OVERRIDES, run_module, train_overrides,
                      write_negatives)
from mel import entity_table, towers
from mel.model_dir import ModelDir
from mel.modeling import losses
from mel.modeling.cross_encoder import CrossEncoder
from mel.training import configs, export, input_layout, tokenization, train
from mel.training.input_layout import InputBuilder
from mel.training.inputs import RerankerInputs

slow = pytest.mark.slow
CLS, SEP, E, END_E = 101, 102, 1, 2


def _ragged(*rows):
  return tf.ragged.constant([list(r) for r in rows], dtype=tf.int32, row_splits_dtype=tf.int64)


def _pairs(title, left, mention, right, description, length=16):
  out = input_layout.pair_inputs(
      _ragged(title), _ragged(left), _ragged(mention), _ragged(right), _ragged(description),
      cls_id=CLS, sep_id=SEP, mention_start_id=E, mention_end_id=END_E, max_seq_length=length,
      max_title_length=4)
  return {k: v.numpy()[0].tolist() for k, v in out.items()}


def test_pair_layout_a_long_description_keeps_half_the_sequence():
  # 16 pieces: the description keeps 16 // 2 - 1 = 7 (its first), the mention part the other
  # 8: [CLS] title [SEP] [E] mention [/E] [SEP] with no room left for context.
  out = _pairs([11, 12], [21, 22, 23], [31], [41, 42], range(51, 61))
  assert out["input_word_ids"] == [CLS, 11, 12, SEP, E, 31, END_E, SEP,
                                   51, 52, 53, 54, 55, 56, 57, SEP]
  assert out["input_type_ids"] == [0, 0, 0, 0, 2, 2, 2, 3] + [0] * 8
  assert out["input_mask"] == [1] * 16


def test_pair_layout_a_short_description_leaves_the_rest_to_the_context():
  # description 2 + [SEP]: the mention part has 13 pieces, 5 of them context, shared as the
  # mention layout shares it: left gets 5 // 2 = 2 (its last), right the other 3 (its first).
  out = _pairs([11, 12], [21, 22, 23], [31], [41, 42, 43], [51, 52])
  assert out["input_word_ids"] == [CLS, 11, 12, SEP, 22, 23, E, 31, END_E, 41, 42, 43, SEP,
                                   51, 52, SEP]
  assert out["input_type_ids"] == [0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 0, 0, 0]
  # shorter inputs are padded
  short = _pairs([11], [], [31], [], [51])
  assert short["input_word_ids"] == [CLS, 11, SEP, E, 31, END_E, SEP, 51, SEP] + [0] * 7
  assert short["input_mask"] == [1] * 9 + [0] * 7


LOGITS = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]]
MASK = [[True, True, False], [True, True, True]]


def test_candidate_bce_loss_by_hand():
  # softplus(-x) for the gold (label 1), softplus(x) for the others, averaged per mention:
  # row 0: (ln(1 + e^-2) + ln(1 + e^0)) / 2 = (0.126928 + 0.693147) / 2 = 0.410038
  # row 1: (ln(1 + e^-0.5) + ln(1 + e^1.5) + ln 2) / 3
  #        = (0.474077 + 1.701413 + 0.693147) / 3 = 0.956212
  got = losses.candidate_bce_loss(tf.constant(LOGITS), tf.constant(MASK)).numpy()
  np.testing.assert_allclose(got, [0.410038, 0.956212], atol=1e-5)


def test_candidate_softmax_loss_by_hand():
  # row 0: -ln(e^2 / (e^2 + e^0)) = ln(1 + e^-2) = 0.126928 (column 2 is masked)
  # row 1: ln(e^0.5 + e^1.5 + e^0) - 0.5 = ln(1.648721 + 4.481689 + 1) - 0.5
  #        = 1.964369 - 0.5 = 1.464369
  got = losses.candidate_softmax_loss(tf.constant(LOGITS), tf.constant(MASK)).numpy()
  np.testing.assert_allclose(got, [0.126928, 1.464369], atol=1e-5)


def test_gold_first_accuracy_counts_ties_as_misses():
  got = losses.gold_first_accuracy(
      tf.constant(LOGITS + [[1.0, 1.0, 5.0]]), tf.constant(MASK + [[True, True, False]]))
  assert got.numpy().tolist() == [1.0, 0.0, 0.0]


TINY_VOCAB = ["[PAD]", "[unused1]", "[unused2]"] + [f"[unused{i}]" for i in range(3, 100)] + [
    "[UNK]", "[CLS]", "[SEP]", "[MASK]", "city", "capital", "the", "is", "a", "big", "river",
    "paris", "tokyo", "kyiv", "dhaka", "country"] + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]


def _tiny_config(loss: str) -> configs.ExperimentConfig:
  return configs.ExperimentConfig(
      model=configs.ModelConfig(kind="CA", pooling="mean", encoder=configs.EncoderConfig(
          vocab_size=len(TINY_VOCAB), hidden_size=32, num_layers=1, num_attention_heads=2,
          intermediate_size=64, max_position_embeddings=32, dropout_rate=0.0,
          attention_dropout_rate=0.0, initializer_range=0.1)),
      data=configs.DataConfig(max_seq_length=32, max_title_length=4, batch_size=4,
                              random_negatives_per_mention=2),
      train=configs.TrainConfig(steps=1000, learning_rate=5e-3, warmup_fraction=0.0,
                                mixed_precision="float32", seed=1, reranker_loss=loss)
  ).validate()


def _tiny_batch(builder: InputBuilder) -> dict:
  """4 mentions, each with 3 candidates: its own city first, then two others."""
  words = ["paris", "tokyo", "kyiv", "dhaka"]
  titles, lefts, mentions, rights, texts = [], [], [], [], []
  for i, w in enumerate(words):
    for j in range(3):
      titles.append("city")
      lefts.append(f"the capital {w} is")
      mentions.append(w)
      rights.append("big")
      texts.append(f"{words[(i + j) % 4]} is a city")
  pairs = builder.pairs(*(tf.constant(x) for x in (titles, lefts, mentions, rights, texts)))
  return {"pairs": pairs, "candidate_mask": tf.constant([[True, True, True]] * 4)}


@pytest.mark.parametrize("loss", ["bce", "softmax"])
def test_training_loop_learns_to_put_the_gold_first(loss, tmp_path):
  import tensorflow_text  # noqa: F401
  config = _tiny_config(loss)
  strategy = tf.distribute.get_strategy()
  model, optimizer = train.build_model(config, strategy)
  assert isinstance(model, CrossEncoder)
  builder = InputBuilder(tokenization.Tokenizer(TINY_VOCAB), 32, 4)
  batch = _tiny_batch(builder)
  dataset = strategy.distribute_datasets_from_function(
      lambda _: tf.data.Dataset.from_tensors(batch).repeat())
  loop = train.build_train_loop(model, optimizer, strategy, config)
  iterator = iter(dataset)
  # Each description is the gold of one mention and a negative of two: only reading mention
  # and description together separates them. The loss starts at the constant scorer's (bce:
  # ln 3 - 2/3 ln 2 = 0.637; softmax: ln 3 = 1.099) and leaves it after ~50 steps (seeded).
  history = [loop(iterator, tf.constant(10)) for _ in range(15)]
  first, last = history[0], history[-1]
  assert set(first) == {"rerank_loss", "rerank_accuracy"}
  assert float(last["rerank_loss"]) < 0.3, [float(h["rerank_loss"]) for h in history]
  assert float(last["rerank_accuracy"]) == 1.0

  paths = ModelDir(str(tmp_path))
  entity_table.write([("Q1", "paris is a city")], paths.entities)
  manifest = export.export_reranker(model, builder, paths, step=60, loss=loss)
  assert manifest["kind"] == "CA" and manifest["loss"] == loss
  scorer = towers.reranker(str(tmp_path))
  assert scorer.gives_probability == (loss == "bce")
  got = scorer(["city"] * 3, ["the capital paris is"] * 3, ["paris"] * 3, ["big"] * 3,
               ["paris is a city", "tokyo is a city", "kyiv is a city"])
  expected = model({k: v[:3] for k, v in batch["pairs"].items()}).numpy()
  np.testing.assert_allclose(got, expected, atol=1e-5)
  assert got[0] > got[1:].max()


def test_config_checks_for_the_reranker():
  def check(**changes):
    values = {"model": {"kind": "CA"}, "data": {"random_negatives_per_mention": 2,
                                                "batch_size": 8}}
    for key, value in changes.items():
      section, name = key.split("__")
      values.setdefault(section, {})[name] = value
    return configs.from_dict(values)

  check()
  with pytest.raises(configs.ConfigError, match="reranker_loss"):
    check(train__reranker_loss="hinge")
  with pytest.raises(configs.ConfigError, match="needs candidates"):
    check(data__random_negatives_per_mention=0)
  with pytest.raises(configs.ConfigError, match="below data.batch_size"):
    check(data__batch_size=2)
  with pytest.raises(configs.ConfigError, match="mention_layout"):
    check(data__mention_layout="mention_only")
  with pytest.raises(configs.ConfigError, match="entity_entity_task"):
    check(train__entity_entity_task=True)


def test_a_dual_encoder_is_not_a_reranker(tmp_path):
  paths = ModelDir(str(tmp_path))
  os.makedirs(paths.export)
  with open(paths.export_manifest, "w") as f:
    json.dump({"kind": "F", "step": 1}, f)
  with pytest.raises(ValueError, match="not a reranker"):
    towers.reranker(str(tmp_path))


@slow
def test_candidate_batches(mini_mining, mini_vocab, tmp_path):
  negatives = tmp_path / "negatives-00000-of-00001.tfrecord.gz"
  write_negatives(mini_mining[0], negatives)
  table = tmp_path / "entities.tsv"
  entity_table.write_from_mining(str(mini_mining[0]), str(table))
  config = configs.load(str(DEMO_CONFIG), train_overrides(mini_mining[0], mini_vocab, **{
      **RERANKER_OVERRIDES, "data.hard_negatives": str(negatives),
      "data.hard_negatives_per_mention": 3, "data.random_negatives_per_mention": 2,
      "data.max_seq_length": 64}))
  tokenizer = tokenization.Tokenizer.from_file(str(mini_vocab))
  builder = InputBuilder.from_config(tokenizer, config.data)
  inputs = RerankerInputs(config, builder, str(table))
  assert inputs.num_candidates == 6
  batch = next(iter(inputs.dataset()))
  words = batch["pairs"]["input_word_ids"].numpy()
  assert words.shape == (8 * 6, 64)
  mask = batch["candidate_mask"].numpy()
  assert mask.shape == (8, 6) and mask[:, 0].all()
  # Odd mentions have 2 hard negatives: the third slot is padding, masked.
  assert 0 < (~mask[:, 3]).sum() < 8
  # Each row is [CLS] ... [E] mention [/E] ... [SEP] description [SEP]: a mention's 6 rows
  # read the same mention; the description follows the last right-context piece (segment 3).
  types = batch["pairs"]["input_type_ids"].numpy()
  mentions = [row[list(row).index(E) + 1:list(row).index(END_E)].tolist() for row in words]
  descriptions = [row[len(t) - list(t[::-1]).index(3):].tolist() for row, t in zip(words, types)]
  for b in range(8):
    assert all(m == mentions[b * 6] for m in mentions[b * 6:(b + 1) * 6])
  # The random candidates are the golds of the next mentions: mention b's first random pair
  # reads the description that mention b + 1's gold pair reads.
  for b in range(7):
    if mask[b, 4]:
      assert descriptions[b * 6 + 4] == descriptions[(b + 1) * 6]


@slow
def test_mel_train_reranker_exports_raw_string_scoring(mini_reranker):
  model_dir, result = mini_reranker
  assert "training CA" in result.stderr and "3 random" in result.stderr
  manifest = ModelDir(str(model_dir)).read_export_manifest()
  assert manifest["kind"] == "CA" and manifest["step"] == 60 and manifest["loss"] == "bce"
  scorer = towers.reranker(str(model_dir))
  rows = entity_table.read(str(ModelDir(str(model_dir)).entities))
  logits = scorer.score("", "The river ", "Danube", " flows east.", [t for _, t in rows[:70]])
  assert logits.shape == (70,) and logits.dtype == np.float32 and np.isfinite(logits).all()
  assert len(set(np.round(logits, 5).tolist())) > 1   # it reads the descriptions
  probabilities = towers.probability(logits)
  assert ((probabilities > 0) & (probabilities < 1)).all()


@slow
def test_reranker_resumes_after_sigkill(mini_mining, mini_vocab, tmp_path):
  model_dir = tmp_path / "killed"
  overrides = train_overrides(mini_mining[0], mini_vocab, **{
      **RERANKER_OVERRIDES, "train.steps": 400, "train.checkpoint_every": 20,
      "train.steps_per_loop": 5, "train.export": "false", "train.reranker_loss": "softmax"})
  cmd = [sys.executable, "-m", "mel.train", "--config", str(DEMO_CONFIG), "--model_dir",
         str(model_dir), "--params_override", overrides]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
  checkpoints = str(model_dir / "checkpoints")
  deadline = time.time() + 300
  while time.time() < deadline:
    latest = tf.train.latest_checkpoint(checkpoints)
    if latest and int(latest.rsplit("-", 1)[1]) >= 40:
      break
    assert process.poll() is None, process.stderr.read().decode()[-3000:]
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  process.stderr.close()
  killed_at = int(tf.train.latest_checkpoint(checkpoints).rsplit("-", 1)[1])
  assert 40 <= killed_at < 400
  result = run_module("mel.train", "--config", DEMO_CONFIG, "--model_dir", model_dir,
                      "--params_override", overrides)
  assert result.returncode == 0, result.stderr[-3000:]
  resumed = [line for line in result.stderr.splitlines() if "resumed from" in line]
  assert resumed and resumed[0].endswith(f"at step {killed_at}")
  summary = json.loads((model_dir / "train_summary.json").read_text())
  assert summary["step"] == 400 and summary["steps_this_run"] == 400 - killed_at
  assert math.isfinite(summary["final_metrics"]["rerank_loss"])
