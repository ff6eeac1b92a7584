"""Vocabulary, tokenisation and the encoders' input layout, on multibyte text; configs."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from mel.training import configs, input_layout, tokenization  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIECES = (list("abcdefghijklmnopqrstuvwxyz") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
          + list("東京都は日本の首") + ["Київ", "##ська", "Україна", "বাংলা", "##দেশ", ".", ","])
VOCAB = tokenization.RESERVED_TOKENS + PIECES


@pytest.fixture(scope="module")
def tokenizer():
  return tokenization.Tokenizer(VOCAB)


def _ids(tokenizer, *pieces):
  return [VOCAB.index(p) for p in pieces]


def test_vocab_layout_matches_mbert():
  assert VOCAB[0] == "[PAD]" and VOCAB[1] == "[unused1]" and VOCAB[99] == "[unused99]"
  assert VOCAB[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]   # as in multi_cased vocab.txt


def test_tokenizer_is_cased_and_splits_cjk_characters(tokenizer):
  ids = tokenizer.tokenize(tf.constant(["東京都は日本の首都.", "Київська", "বাংলাদেশ", "Zz"]))
  assert ids[0].numpy().tolist() == _ids(tokenizer, *"東京都は日本の首都.")
  assert ids[1].numpy().tolist() == _ids(tokenizer, "Київ", "##ська")
  assert ids[2].numpy().tolist() == _ids(tokenizer, "বাংলা", "##দেশ")
  assert ids[3].numpy().tolist() == [tokenizer.unk_id]   # no lower-casing: "Z" is unknown
  assert (tokenizer.mention_start_id, tokenizer.mention_end_id) == (1, 2)
  assert (tokenizer.cls_id, tokenizer.sep_id) == (101, 102)


def test_vocab_errors(tmp_path):
  with pytest.raises(tokenization.VocabError, match="does not exist"):
    tokenization.load_vocab(str(tmp_path / "none.txt"))
  dup = tmp_path / "dup.txt"
  dup.write_text("[PAD]\na\na\n")
  with pytest.raises(tokenization.VocabError, match="lines 2 and 3"):
    tokenization.load_vocab(str(dup))
  with pytest.raises(tokenization.VocabError, match=r"lacks the token '\[unused1\]'"):
    tokenization.Tokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]"])


def _mention(tokenizer, title, left, mention, right, max_seq_length=16, max_title_length=4):
  builder = input_layout.InputBuilder(tokenizer, max_seq_length, max_title_length)
  out = builder.mentions(tf.constant([title]), tf.constant([left]), tf.constant([mention]),
                         tf.constant([right]))
  return {k: v.numpy()[0].tolist() for k, v in out.items()}


def test_mention_layout_segments_and_markers(tokenizer):
  out = _mention(tokenizer, "東京", "a b", "日本", "c", max_seq_length=16)
  E, SLASH_E, CLS, SEP = 1, 2, 101, 102
  want = [CLS, *_ids(tokenizer, "東", "京"), SEP, *_ids(tokenizer, "a", "b"),
          E, *_ids(tokenizer, "日", "本"), SLASH_E, *_ids(tokenizer, "c"), SEP]
  assert out["input_word_ids"][:len(want)] == want
  assert out["input_word_ids"][len(want):] == [0] * (16 - len(want))
  assert out["input_type_ids"][:len(want)] == [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3]
  assert out["input_mask"] == [1] * len(want) + [0] * (16 - len(want))


def test_title_takes_at_most_its_budget(tokenizer):
  out = _mention(tokenizer, "東京都は日本の首都", "", "a", "", max_seq_length=16,
                 max_title_length=4)
  assert out["input_word_ids"][:6] == [101, *_ids(tokenizer, *"東京都は"), 102]


def test_context_is_balanced_and_keeps_the_pieces_next_to_the_mention(tokenizer):
  # 16 - 5 specials - 0 title - 1 mention = 10 pieces of context: 5 left, 5 right.
  out = _mention(tokenizer, "", "a b c d e f g h", "Київ", "i j k l m n o p")
  ids = out["input_word_ids"]
  assert ids[2:7] == _ids(tokenizer, *"defgh")          # the last 5 left pieces
  assert ids[7:10] == [1, VOCAB.index("Київ"), 2]
  assert ids[10:15] == _ids(tokenizer, *"ijklm")        # the first 5 right pieces
  assert ids[15] == 102 and sum(out["input_mask"]) == 16


def test_a_short_side_gives_its_room_to_the_other(tokenizer):
  out = _mention(tokenizer, "", "a b c d e f g h i j k", "Київ", "z")
  ids = out["input_word_ids"]
  assert ids[2:11] == _ids(tokenizer, *"cdefghijk")     # 10 - 1 right = 9 left pieces
  assert ids[14] == VOCAB.index("z") and sum(out["input_mask"]) == 16


def test_an_overlong_mention_is_cut_and_the_markers_stay(tokenizer):
  out = _mention(tokenizer, "東", "a", "b c d e f g h i j k l m n o p q", "r")
  ids = out["input_word_ids"]
  assert ids[:4] == [101, VOCAB.index("東"), 102, 1]   # no room for context
  assert ids[-2:] == [2, 102] and len(ids) == 16 and 0 not in ids


def test_batch_of_mixed_lengths_and_empty_fields(tokenizer):
  builder = input_layout.InputBuilder(tokenizer, 12, 3)
  out = builder.mentions(tf.constant(["", "東京都は日本"]), tf.constant(["", "a"]),
                         tf.constant(["Київ", "বাংলাদেশ"]), tf.constant(["", ""]))
  assert out["input_word_ids"].shape == (2, 12) and out["input_word_ids"].dtype == tf.int32
  assert out["input_word_ids"].numpy()[0].tolist()[:6] == [101, 102, 1, VOCAB.index("Київ"), 2,
                                                           102]


def test_entity_layout(tokenizer):
  builder = input_layout.InputBuilder(tokenizer, 8, 2)
  out = builder.entities(tf.constant(["東京都は日本の首都.", ""]))
  ids = out["input_word_ids"].numpy()
  assert ids[0].tolist() == [101, *_ids(tokenizer, *"東京都は日本"), 102]
  assert ids[1].tolist() == [101, 102, 0, 0, 0, 0, 0, 0]
  assert not np.any(out["input_type_ids"].numpy())


def test_all_shipped_configs_load():
  names = sorted(f for f in os.listdir(os.path.join(ROOT, "configs")) if f.endswith(".yaml"))
  assert names == ["demo_cpu.yaml", "model_e.yaml", "model_f.yaml", "model_f_plus.yaml"]
  loaded = {n: configs.load(os.path.join(ROOT, "configs", n)) for n in names}
  for name in ("model_e.yaml", "model_f.yaml", "model_f_plus.yaml"):   # paper values (App. B)
    c = loaded[name]
    assert (c.data.batch_size, c.train.steps, c.train.learning_rate) == (8192, 500000, 1e-4)
    assert (c.model.encoder.num_layers, c.model.encoder.hidden_size) == (4, 768)
    assert c.train.warmup_fraction == 0.1 and c.model.embedding_dim == 300
  assert loaded["model_e.yaml"].model.kind == "E"
  assert loaded["model_f_plus.yaml"].train.entity_entity_task


def test_overrides_and_config_errors(tmp_path):
  path = os.path.join(ROOT, "configs", "demo_cpu.yaml")
  c = configs.load(path, "train.steps=7,data.batch_size=4,train.entity_entity_task=false")
  assert (c.train.steps, c.data.batch_size, c.train.entity_entity_task) == (7, 4, False)
  with pytest.raises(configs.ConfigError, match="unknown config key 'train.stepz'"):
    configs.load(path, "train.stepz=3")
  with pytest.raises(configs.ConfigError, match="train.steps must be int"):
    configs.load(path, "train.steps=many")
  with pytest.raises(configs.ConfigError, match="max_title_length must be at most a quarter"):
    configs.load(path, "data.max_title_length=17")
  with pytest.raises(configs.ConfigError, match="needs the description encoder"):
    configs.load(path, "model.kind=E")
  assert configs.load(path).train.mixed_precision == "auto"
  assert configs.ExperimentConfig().train.mixed_precision == "auto"   # the default everywhere
  assert configs.load(path, "train.mixed_precision=bfloat16").train.mixed_precision == "bfloat16"
  with pytest.raises(configs.ConfigError, match="train.mixed_precision must be one of"):
    configs.load(path, "train.mixed_precision=float16")
  bad = tmp_path / "bad.yaml"
  bad.write_text("model: [1, 2\n")
  with pytest.raises(configs.ConfigError, match="not valid YAML"):
    configs.load(str(bad))
