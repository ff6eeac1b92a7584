"""`mel train` from e5 (configs/demo_e5.yaml) on records mined from the shared mini dumps: a
two-step smoke run of a 1-layer tower, and a 0-step run that exports e5's own towers.

Both are slow (the mining fixture, e5's 250,004-row embedding tables, SavedModels of them).
"""
import json

import mel  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, run_module

slow = pytest.mark.slow
E5_CONFIG = str(ROOT / "configs" / "demo_e5.yaml")


def _overrides(mining_dir, **extra):
  values = {"data.mining_dir": mining_dir, "model.encoder.num_layers": 1,
            "data.max_seq_length": 32, "data.max_title_length": 8,
            "model.encoder.max_position_embeddings": 32, "data.batch_size": 4,
            "data.pairs_batch_size": 4, "train.steps": 2, "train.steps_per_loop": 1,
            "train.checkpoint_every": 2, "train.summary_every": 1, "data.shuffle_buffer": 100,
            "rounds.count": 0}
  values.update(extra)
  return ",".join(f"{k}={v}" for k, v in values.items())


def _train(model_dir, overrides):
  result = run_module("mel", "train", "--config", E5_CONFIG, "--model_dir", model_dir,
                      "--params_override", overrides)
  assert result.returncode == 0, result.stderr[-4000:]
  return result


def _load(model_dir):
  import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the SavedModels use)
  mention = tf.saved_model.load(str(model_dir / "export" / "mention_encoder"))
  entity = tf.saved_model.load(str(model_dir / "export" / "entity_encoder"))
  return mention.signatures["serving_default"], entity.signatures["serving_default"]


@slow
def test_a_smoke_run_from_e5_exports_towers_on_raw_strings(mini_mining, tmp_path):
  model_dir = tmp_path / "model"
  result = _train(model_dir, _overrides(mini_mining[0]))
  assert "step 2/2" in result.stderr
  assert "1 of 12 layers" in result.stderr
  assert (model_dir / "sentencepiece.model").is_file()
  assert not (model_dir / "vocab.txt").exists()
  manifest = json.loads((model_dir / "export" / "manifest.json").read_text())
  assert manifest["tokenizer"] == "e5" and manifest["step"] == 2, manifest
  assert manifest["embedding_dim"] == 384 and manifest["vocab_size"] == 250004, manifest

  mention, entity = _load(model_dir)
  got = mention(title=tf.constant(["Київ", "東京"]), left=tf.constant(["Столиця — ", "日本の首都は"]),
                mention=tf.constant(["Київ", "東京都"]), right=tf.constant([".", "です。"])
                )["embeddings"].numpy()
  descriptions = entity(description=tf.constant(["столиця України", "日本の首都"])
                        )["embeddings"].numpy()
  for vectors in (got, descriptions):
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


@slow
def test_zero_steps_exports_e5_itself(mini_mining, tmp_path, e5_engine):
  """train.steps 0 exports the initial towers: all 12 of e5's layers, computing the engine's
  passage embeddings."""
  model_dir = tmp_path / "model"
  _train(model_dir, _overrides(mini_mining[0], **{
      "model.encoder.num_layers": 12, "data.max_seq_length": 64, "data.max_title_length": 16,
      "model.encoder.max_position_embeddings": 64, "train.steps": 0}))
  manifest = json.loads((model_dir / "export" / "manifest.json").read_text())
  assert manifest["tokenizer"] == "e5" and manifest["step"] == 0, manifest
  _, entity = _load(model_dir)
  texts = ["Hong Kong is a special administrative region of China.",
           "Der Beatles waren eine britische Rockband aus Liverpool.",
           "香港是中华人民共和国的特别行政区。", "Київ — столиця України.",
           "도서는 글이나 그림을 묶은 것이다."]
  mine = entity(description=tf.constant(texts))["embeddings"].numpy()
  theirs = e5_engine.embed(texts, is_query=False)
  cosines = np.sum(mine * theirs, axis=1)
  assert cosines.min() >= 0.99, cosines
