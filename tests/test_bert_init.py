"""Initialising towers from a google-research/bert TF1 checkpoint (and a TF2 one).

The tests write a tiny checkpoint with the variable names of the multi_cased_L-12_H-768_A-12
release (3 layers, hidden 16) and load its first 2 layers, the way the real 12-layer mBERT
gives its first 4.
"""
import dataclasses
import json
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from mel.training import configs  # noqa: E402
from mel.training import bert_init  # noqa: E402
from mel.modeling.text_tower import TextTower  # noqa: E402

VOCAB, HIDDEN, HEADS, INTER, LAYERS, POSITIONS = 40, 16, 2, 32, 3, 32


def _release_variables(rng):
  """name -> array, as in google-research/bert's bert_model.ckpt."""
  v = {
      "bert/embeddings/word_embeddings": rng.normal(size=(VOCAB, HIDDEN)),
      "bert/embeddings/token_type_embeddings": rng.normal(size=(2, HIDDEN)),
      "bert/embeddings/position_embeddings": rng.normal(size=(POSITIONS, HIDDEN)),
      "bert/embeddings/LayerNorm/gamma": rng.normal(size=(HIDDEN,)),
      "bert/embeddings/LayerNorm/beta": rng.normal(size=(HIDDEN,)),
      "bert/pooler/dense/kernel": rng.normal(size=(HIDDEN, HIDDEN)),
      "bert/pooler/dense/bias": rng.normal(size=(HIDDEN,)),
  }
  for i in range(LAYERS):
    p = f"bert/encoder/layer_{i}/"
    for name in ("query", "key", "value"):
      v[p + f"attention/self/{name}/kernel"] = rng.normal(size=(HIDDEN, HIDDEN))
      v[p + f"attention/self/{name}/bias"] = rng.normal(size=(HIDDEN,))
    v[p + "attention/output/dense/kernel"] = rng.normal(size=(HIDDEN, HIDDEN))
    v[p + "attention/output/dense/bias"] = rng.normal(size=(HIDDEN,))
    v[p + "attention/output/LayerNorm/gamma"] = rng.normal(size=(HIDDEN,))
    v[p + "attention/output/LayerNorm/beta"] = rng.normal(size=(HIDDEN,))
    v[p + "intermediate/dense/kernel"] = rng.normal(size=(HIDDEN, INTER))
    v[p + "intermediate/dense/bias"] = rng.normal(size=(INTER,))
    v[p + "output/dense/kernel"] = rng.normal(size=(INTER, HIDDEN))
    v[p + "output/dense/bias"] = rng.normal(size=(HIDDEN,))
    v[p + "output/LayerNorm/gamma"] = rng.normal(size=(HIDDEN,))
    v[p + "output/LayerNorm/beta"] = rng.normal(size=(HIDDEN,))
  return {k: a.astype(np.float32) for k, a in v.items()}


def write_tf1_checkpoint(prefix, values):
  """A name-based checkpoint as TF1's Saver writes it (bert_model.ckpt.index/.data-*)."""
  names = sorted(values)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                    tensors=[tf.constant(values[n]) for n in names])


@pytest.fixture(scope="module")
def tf1_release(tmp_path_factory):
  """A TF1 checkpoint dir like the mBERT release: bert_config.json + bert_model.ckpt.*"""
  root = tmp_path_factory.mktemp("multi_cased_tiny")
  values = _release_variables(np.random.default_rng(0))
  write_tf1_checkpoint(str(root / "bert_model.ckpt"), values)
  (root / "bert_config.json").write_text(json.dumps({
      "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
      "hidden_size": HIDDEN, "initializer_range": 0.02, "intermediate_size": INTER,
      "max_position_embeddings": POSITIONS, "num_attention_heads": HEADS,
      "num_hidden_layers": LAYERS, "type_vocab_size": 2, "vocab_size": VOCAB}))
  return root / "bert_model.ckpt", values


def _tower(num_layers=2, vocab=VOCAB, hidden=HIDDEN):
  config = configs.EncoderConfig(vocab_size=vocab, hidden_size=hidden, num_layers=num_layers,
                                 num_attention_heads=HEADS, intermediate_size=INTER,
                                 max_position_embeddings=16)
  tf_keras.utils.set_random_seed(0)   # the weights no checkpoint overwrites (projection)
  tower = TextTower(dataclasses.asdict(config), 8, name="mention_tower")
  seq = tf.zeros([1, 4], tf.int32)
  tower({"input_word_ids": seq, "input_mask": tf.ones_like(seq), "input_type_ids": seq})
  return tower


def test_format_detection(tf1_release, tmp_path):
  path, _ = tf1_release
  assert bert_init.checkpoint_format(str(path)) == "tf1"
  with pytest.raises(bert_init.CheckpointError, match="cannot read checkpoint"):
    bert_init.checkpoint_format(str(tmp_path / "missing.ckpt"))


def test_first_layers_and_embeddings_come_from_the_tf1_checkpoint(tf1_release):
  path, values = tf1_release
  tower = _tower()
  report = bert_init.initialize_from_checkpoint(tower.encoder, str(path))
  assert report["layers"] == 2 and report["checkpoint_layers"] == 3
  assert report["token_types"] == "2->4"
  enc = tower.encoder
  np.testing.assert_array_equal(enc._embedding_layer.embeddings.numpy(),
                                values["bert/embeddings/word_embeddings"])
  # mel uses 16 positions of the checkpoint's 32.
  np.testing.assert_array_equal(enc._position_embedding_layer.get_weights()[0],
                                values["bert/embeddings/position_embeddings"][:16])
  types = enc._type_embedding_layer.get_weights()[0]
  original = values["bert/embeddings/token_type_embeddings"]
  np.testing.assert_array_equal(types, np.stack([original[0], original[1], original[1],
                                                 original[1]]))
  gamma = [w for w in enc._embedding_norm_layer.weights if "gamma" in w.name][0]
  np.testing.assert_array_equal(gamma.numpy(), values["bert/embeddings/LayerNorm/gamma"])
  # The converter reshapes query kernels [H, H] to [H, heads, H / heads].
  for i in range(2):
    layer = enc.transformer_layers[i]
    query = [w for w in layer.weights if "query/kernel" in w.name][0].numpy()
    np.testing.assert_array_equal(
        query.reshape(HIDDEN, HIDDEN), values[f"bert/encoder/layer_{i}/attention/self/query/kernel"])
    ffn = [w for w in layer.weights if "intermediate" in w.name and "kernel" in w.name][0]
    np.testing.assert_array_equal(ffn.numpy(),
                                  values[f"bert/encoder/layer_{i}/intermediate/dense/kernel"])


def test_the_loaded_encoder_computes_like_the_checkpoint(tf1_release):
  """A tower of all 3 layers gives the converter's own encoder's [CLS] output."""
  path, _ = tf1_release
  tower = _tower(num_layers=3)
  bert_init.initialize_from_checkpoint(tower.encoder, str(path))
  from official.legacy.bert import configs as bert_configs
  config = bert_configs.BertConfig.from_json_file(str(path.parent / "bert_config.json"))
  source = bert_init._restore_source_encoder(str(path), config)
  ids = tf.constant([[1, 5, 7, 9, 2]], tf.int32)
  inputs = {"input_word_ids": ids, "input_mask": tf.ones_like(ids),
            "input_type_ids": tf.constant([[0, 0, 1, 1, 1]], tf.int32)}
  ours = tower.encoder(inputs, training=False)["sequence_output"][:, 0]
  theirs = source(inputs, training=False)[0][:, 0]   # V1 encoder: [sequence, pooled]
  np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


def test_a_tf2_encoder_checkpoint_loads_too(tf1_release, tmp_path):
  path, values = tf1_release
  from official.legacy.bert import configs as bert_configs
  config = bert_configs.BertConfig.from_json_file(str(path.parent / "bert_config.json"))
  source = bert_init._restore_source_encoder(str(path), config)
  saved = tf.train.Checkpoint(encoder=source).save(str(tmp_path / "tf2" / "ckpt"))
  (tmp_path / "tf2" / "bert_config.json").write_text((path.parent / "bert_config.json").read_text())
  assert bert_init.checkpoint_format(saved) == "tf2:encoder"
  tower = _tower()
  bert_init.initialize_from_checkpoint(tower.encoder, saved)
  np.testing.assert_array_equal(tower.encoder._embedding_layer.embeddings.numpy(),
                                values["bert/embeddings/word_embeddings"])


def test_mismatches_are_clear_errors(tf1_release, tmp_path):
  path, _ = tf1_release
  with pytest.raises(bert_init.CheckpointError, match="vocabulary gives"):
    bert_init.initialize_from_checkpoint(_tower(vocab=VOCAB + 1).encoder, str(path))
  with pytest.raises(bert_init.CheckpointError, match="has 4 layers"):
    bert_init.initialize_from_checkpoint(_tower(num_layers=4).encoder, str(path))
  lonely = tmp_path / "lonely"
  lonely.mkdir()
  with pytest.raises(bert_init.CheckpointError, match="bert_config.json"):
    bert_init.initialize_from_checkpoint(_tower().encoder, str(lonely / "bert_model.ckpt"))


@pytest.mark.slow
def test_the_paper_config_trains_from_a_release_shaped_checkpoint(mini_mining, tmp_path):
  """configs/model_f.yaml (4-layer mBERT-base towers) from a TF1 checkpoint with the real
  release's names and shapes (vocab 119,547, hidden 768, 12 heads, 512 positions, 2 token
  types; 4 layers instead of 12 to keep the test small), through `python -m mel.train`."""
  from conftest import ROOT, run_module
  release = tmp_path / "multi_cased_L-4_H-768_A-12"
  release.mkdir()
  vocab_size, hidden, inter = 119547, 768, 3072
  rng = np.random.default_rng(0)
  shapes = {"bert/embeddings/word_embeddings": (vocab_size, hidden),
            "bert/embeddings/token_type_embeddings": (2, hidden),
            "bert/embeddings/position_embeddings": (512, hidden),
            "bert/embeddings/LayerNorm/gamma": (hidden,), "bert/embeddings/LayerNorm/beta": (hidden,),
            "bert/pooler/dense/kernel": (hidden, hidden), "bert/pooler/dense/bias": (hidden,)}
  for i in range(4):
    p = f"bert/encoder/layer_{i}/"
    for name in ("attention/self/query", "attention/self/key", "attention/self/value",
                 "attention/output/dense"):
      shapes[p + name + "/kernel"], shapes[p + name + "/bias"] = (hidden, hidden), (hidden,)
    for name in ("attention/output/LayerNorm", "output/LayerNorm"):
      shapes[p + name + "/gamma"], shapes[p + name + "/beta"] = (hidden,), (hidden,)
    shapes[p + "intermediate/dense/kernel"], shapes[p + "intermediate/dense/bias"] = (
        (hidden, inter), (inter,))
    shapes[p + "output/dense/kernel"], shapes[p + "output/dense/bias"] = (inter, hidden), (hidden,)
  write_tf1_checkpoint(str(release / "bert_model.ckpt"), {
      name: (0.02 * rng.standard_normal(shape, dtype=np.float32)) for name, shape in shapes.items()})
  (release / "bert_config.json").write_text(json.dumps({
      "attention_probs_dropout_prob": 0.1, "directionality": "bidi", "hidden_act": "gelu",
      "hidden_dropout_prob": 0.1, "hidden_size": hidden, "initializer_range": 0.02,
      "intermediate_size": inter, "max_position_embeddings": 512, "num_attention_heads": 12,
      "num_hidden_layers": 4, "pooler_fc_size": 768, "pooler_num_attention_heads": 12,
      "pooler_num_fc_layers": 3, "pooler_size_per_head": 128, "pooler_type": "first_token_transform",
      "type_vocab_size": 2, "vocab_size": vocab_size}))
  from mel.training import tokenization
  filler = [f"fill{i}" for i in range(vocab_size - len(tokenization.RESERVED_TOKENS))]
  (release / "vocab.txt").write_text("\n".join(tokenization.RESERVED_TOKENS + filler) + "\n")

  model_dir = tmp_path / "model_f"
  result = run_module(
      "mel.train", "--config", ROOT / "configs" / "model_f.yaml", "--model_dir", model_dir,
      "--params_override",
      f"data.mining_dir={mini_mining[0]},train.init_checkpoint={release}/bert_model.ckpt,"
      "data.batch_size=4,data.pairs_batch_size=4,data.shuffle_buffer=10,train.steps=2,"
      "train.steps_per_loop=1,train.summary_every=1,train.export=false")
  assert result.returncode == 0, result.stderr[-3000:]
  assert ("initialised from 4 of 4 layers of " in result.stderr
          and "(token types 2->4)" in result.stderr)
  assert "step 2/2" in result.stderr
  assert (model_dir / "vocab.txt").read_text() == (release / "vocab.txt").read_text()
