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
  assert names == ["demo_cpu.yaml", "demo_e5.yaml", "demo_reranker.yaml", "model_ca.yaml",
                   "model_e.yaml", "model_f.yaml", "model_f_plus.yaml"]
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


def test_exclude_languages_parsing(tmp_path):
  path = os.path.join(ROOT, "configs", "demo_cpu.yaml")
  assert configs.load(path).data.exclude_languages == []
  assert configs.load(path, "data.exclude_languages=bn").data.exclude_languages == ["bn"]
  c = configs.load(path, "data.exclude_languages=bn+mr+bn,train.steps=5")
  assert c.data.exclude_languages == ["bn", "mr"] and c.train.steps == 5
  assert configs.load(path, "data.exclude_languages=").data.exclude_languages == []
  assert configs.load(path, "data.exclude_languages='no'").data.exclude_languages == ["no"]
  listed = tmp_path / "listed.yaml"
  listed.write_text("data:\n  exclude_languages: [bn, zh-yue]\n")
  loaded = configs.load(str(listed))
  assert loaded.data.exclude_languages == ["bn", "zh-yue"]
  assert configs.from_dict(configs.to_dict(loaded)) == loaded     # config.yaml round trip
  assert "exclude_languages:\n  - bn\n" in configs.dump(loaded)
  with pytest.raises(configs.ConfigError, match="is not key=value .list items are joined by"):
    configs.load(path, "data.exclude_languages=bn,mr")
  with pytest.raises(configs.ConfigError, match="quote them"):
    configs.load(path, "data.exclude_languages=no")                 # YAML's boolean
  with pytest.raises(configs.ConfigError, match="empty item"):
    configs.load(path, "data.exclude_languages=bn++mr")
  with pytest.raises(configs.ConfigError, match=r"not language codes .*\['BN', 'b n'\]"):
    configs.load(path, "data.exclude_languages=BN+b n")
  listed.write_text("data:\n  exclude_languages: {bn: 1}\n")
  with pytest.raises(configs.ConfigError, match="must be a list of strings"):
    configs.load(str(listed))


# ---------------------------------------------------------------------------------------------
# leave-languages-out: the excluded languages' records never reach a batch


def _leave_out_run(tmp_path, hard_negatives: bool):
  """A hand-made mining run: en, uk, bn mentions of distinct entities (4 each, twice), pairs
  in every language combination, language totals; the entity table; a config leaving out bn."""
  import json
  from conftest import mined_mention, write_mined
  from mel import entity_table, records, schema
  entities = {"en": ["Q1", "Q2", "Q3", "Q4"], "uk": ["Q5", "Q6", "Q7", "Q8"],
              "bn": ["Q9", "Q10", "Q11", "Q12"]}
  mentions = [mined_mention(lang, 10 * i + j, e) for i in range(2)
              for lang, ids in entities.items() for j, e in enumerate(ids)]
  mining = tmp_path / "mining"
  write_mined(mining, records.MENTIONS_TRAIN, mentions)
  pairs = [("Q1", "en", "uk"), ("Q5", "uk", "en"), ("Q2", "en", "bn"), ("Q9", "bn", "uk"),
           ("Q6", "uk", "bn")]
  write_mined(mining, records.ENTITY_PAIRS, [
      schema.EntityPair(entity_id=e, lang_a=a, text_a=f"{a} a", lang_b=b, text_b=f"{b} b")
      for e, a, b in pairs])
  (mining / "counts").mkdir()
  (mining / records.LANGUAGE_TOTALS).write_text(json.dumps({"bn": 8, "en": 8, "uk": 8}))
  table = tmp_path / "entities.tsv"
  entity_table.write(sorted((e, f"{e} text") for ids in entities.values() for e in ids),
                     str(table))
  overrides = {"data.mining_dir": str(mining), "data.batch_size": 4, "data.pairs_batch_size": 2,
               "data.shuffle_buffer": 64, "data.max_seq_length": 16,
               "data.max_title_length": 4, "data.exclude_languages": "bn",
               "train.entity_entity_task": "true"}
  if hard_negatives:
    negatives = write_mined(tmp_path / "negatives", "negatives", [
        schema.MentionWithNegatives(**{k: getattr(m, k) for k in schema.Mention.FIELDS},
                                    negative_ids=("Q4",) if m.entity_id != "Q4" else ("Q3",))
        for m in mentions])
    overrides.update({"data.hard_negatives": negatives, "data.hard_negatives_per_mention": 1})
  config = configs.from_dict(configs.apply_overrides(
      {}, ",".join(f"{k}={v}" for k, v in overrides.items())))
  return config, str(table), entities


@pytest.mark.parametrize("hard_negatives", [False, True])
def test_left_out_languages_never_reach_a_batch(tmp_path, tokenizer, hard_negatives):
  from mel.training.inputs import TrainingInputs, entity_id_hash
  config, table, entities = _leave_out_run(tmp_path, hard_negatives)
  builder = input_layout.InputBuilder(tokenizer, 16, 4)
  inputs = TrainingInputs(config, builder, table)
  assert inputs.excluded == {"bn": 8}
  seen, pairs = set(), set()
  for batch in inputs.dataset().take(24):          # 96 mentions: each of the 16 kept ones
    seen.update(batch["entity_ids"].numpy().tolist())
    pairs.update(batch["pair_ids"].numpy().tolist())
    assert ("negatives" in batch) == hard_negatives
  hashes = lambda ids: set(entity_id_hash(tf.constant(ids)).numpy().tolist())  # noqa: E731
  assert seen == hashes(entities["en"] + entities["uk"])
  assert pairs == hashes(["Q1", "Q5"])              # pairs with a bn side are left out
  # Nothing left out: the bn records are there (the filter above is not vacuous).
  config.data.exclude_languages = []
  everything = TrainingInputs(config, builder, table).dataset().take(24)
  assert hashes(entities["bn"]) <= {i for b in everything for i in b["entity_ids"].numpy()}


def test_leaving_out_an_unknown_or_every_language_is_an_error(tmp_path, tokenizer):
  from mel.training.inputs import TrainingInputs
  config, table, _ = _leave_out_run(tmp_path, False)
  builder = input_layout.InputBuilder(tokenizer, 16, 4)
  config.data.exclude_languages = ["bn", "xx"]
  with pytest.raises(configs.ConfigError, match=r"\['xx'\] have no training mentions"):
    TrainingInputs(config, builder, table)
  config.data.exclude_languages = ["bn", "en", "uk"]
  with pytest.raises(configs.ConfigError, match="leaves out every language"):
    TrainingInputs(config, builder, table)


# ---------------------------------------------------------------------------------------------
# distillation: the config's rules, and teacher scores in a batch


@pytest.mark.parametrize("override, message", [
    ("train.distillation_weight=1", "needs model.kind F and data.hard_negatives"),
    ("train.distillation_weight=1,model.kind=E,train.entity_entity_task=false,"
     "data.hard_negatives=x", "needs model.kind F and data.hard_negatives"),
    ("train.distillation_weight=1,data.hard_negatives=x,data.hard_negatives_per_mention=0",
     "needs data.hard_negatives_per_mention >= 1"),
    ("train.distillation_weight=-1", "distillation_weight must be >= 0"),
    ("train.distillation_temperature=0", "distillation_temperature > 0"),
    ("rounds.distill_steps=-1", "rounds.distill_steps must be >= 0"),
    ("rounds.distill_from=R,model.kind=E,train.entity_entity_task=false",
     "rounds.distill_from distils a reranker into Model F"),
    ("rounds.distill_from=R,data.hard_negatives_per_mention=0,rounds.count=0",
     "rounds.distill_from distils a reranker into Model F"),
])
def test_distillation_config_errors(override, message):
  with pytest.raises(configs.ConfigError, match=message):
    configs.load(os.path.join(ROOT, "configs", "demo_cpu.yaml"), override)


def test_teacher_scores_reach_the_batch_padded_and_masked(tmp_path, tokenizer):
  from conftest import mined_mention, write_mined
  from mel import entity_table, schema
  from mel.training.inputs import TrainingInputs, entity_id_hash
  table = tmp_path / "entities.tsv"
  entity_table.write([(f"Q{i}", f"text {i}") for i in range(1, 9)], str(table))
  # gold, negatives (Q99 is not in the table), teacher logits: gold first, then each negative
  rows = {"Q1": (("Q2", "Q3", "Q4"), (5.0, 1.0, 2.0, 3.0)),   # 3 negatives, K = 2 kept
          "Q2": (("Q99", "Q3"), (4.0, 0.5, -1.0)),           # an unknown negative: masked
          "Q3": (("Q1",), (2.0, 1.5)),                       # one negative: padding after
          "Q4": ((), (7.0,))}                                # none: only the gold
  records = [schema.MentionWithTeacherScores(
      **{k: getattr(mined_mention("en", n, gold), k) for k in schema.Mention.FIELDS},
      negative_ids=negatives, teacher_logits=logits)
      for n, (gold, (negatives, logits)) in enumerate(rows.items())]
  path = write_mined(tmp_path / "teacher", "teacher", records)
  overrides = {"data.mining_dir": str(tmp_path), "data.batch_size": 4, "data.shuffle_buffer": 8,
               "data.max_seq_length": 16, "data.max_title_length": 4,
               "train.entity_entity_task": "false", "data.hard_negatives": path,
               "data.hard_negatives_per_mention": 2, "train.distillation_weight": 1}
  config = configs.from_dict(configs.apply_overrides(
      {}, ",".join(f"{k}={v}" for k, v in overrides.items())))
  inputs = TrainingInputs(config, input_layout.InputBuilder(tokenizer, 16, 4), str(table))
  order = {h: g for g, h in zip(rows, entity_id_hash(tf.constant(list(rows))).numpy())}
  got = {}
  for batch in inputs.dataset().take(6):   # the records repeat, shuffled: each is seen
    assert batch["teacher_logits"].dtype == tf.float32
    assert batch["teacher_logits"].shape == (4, 3)
    got.update({order[h]: (logits.tolist(), mask.tolist()) for h, logits, mask in zip(
        batch["entity_ids"].numpy(), batch["teacher_logits"].numpy(),
        batch["teacher_mask"].numpy())})
  assert got == {"Q1": ([5.0, 1.0, 2.0], [True, True, True]),
                 "Q2": ([4.0, 0.5, -1.0], [True, False, True]),
                 "Q3": ([2.0, 1.5, 0.0], [True, True, False]),
                 "Q4": ([7.0, 0.0, 0.0], [True, False, False])}
  # Without distillation the same records train as plain hard negatives.
  config.train.distillation_weight = 0
  plain = next(iter(TrainingInputs(config, input_layout.InputBuilder(tokenizer, 16, 4),
                                   str(table)).dataset()))
  assert "teacher_logits" not in plain and "negatives" in plain
