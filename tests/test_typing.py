"""The hierarchical typing model (model.typing): the type loss and counts by hand, the combined
score of the typed towers, their shapes and configs, the type vocabulary and targets, config
errors, and `mel train` with typing on the mini mining output with types (slow).
"""
import dataclasses
import json
import math
import os
import shutil

import mel  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import DEMO_CONFIG, ROOT, run_module, train_overrides, write_mined
from mel import records, schema
from mel.model_dir import ModelDir
from mel.modeling import losses
from mel.modeling.dual_encoder import build_dual_encoder
from mel.modeling.text_tower import pool
from mel.modeling.typed_dual_encoder import TypedDualEncoder
from mel.modeling.typed_tower import TypedTextTower
from mel.training import configs, train, type_task
from mel.training.input_layout import InputBuilder

slow = pytest.mark.slow


def test_type_loss_and_counts_by_hand_with_a_masked_pair():
  # BCE(x, y) = y softplus(-x) + (1 - y) softplus(x). Pair 0, targets (1, 1, 0):
  #   x=0, y=1: ln 2;  x=ln 3, y=1: ln(1 + 1/3) = ln(4/3);  x=-ln 3, y=0: ln(4/3)
  #   sum = ln 2 + 2 ln(4/3) = ln(32/9) = 1.26851.
  # Pair 1 has no types (mask False): loss 0, whatever its logits and targets.
  logits = tf.constant([[0.0, math.log(3.0), -math.log(3.0)], [1.0, 2.0, 3.0]])
  targets = tf.constant([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
  mask = tf.constant([True, False])
  loss = losses.multi_label_type_loss(logits, targets, mask).numpy()
  np.testing.assert_allclose(loss, [math.log(32 / 9), 0.0], rtol=1e-6)
  # Predicted (logit > 0) for pair 0: (no, yes, no) against gold (yes, yes, no):
  # 1 true positive, 0 false positives, 1 false negative; pair 1 counts nothing.
  tp, fp, fn = (x.numpy() for x in losses.multi_label_counts(logits, targets, mask))
  np.testing.assert_array_equal(tp, [1, 0])
  np.testing.assert_array_equal(fp, [0, 0])
  np.testing.assert_array_equal(fn, [1, 0])
  assert type_task.micro_f1(1, 0, 1) == pytest.approx(2 / 3)
  assert type_task.micro_f1(0, 0, 0) == 0.0


def _encoder(**extra) -> dict:
  values = dict(vocab_size=50, hidden_size=16, num_layers=1, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=16, dropout_rate=0.0,
                attention_dropout_rate=0.0, initializer_range=0.1)
  values.update(extra)
  return dataclasses.asdict(configs.EncoderConfig(**values))


def _inputs(batch: int, length: int = 8, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, 50, size=(batch, length)).astype(np.int32)
  lengths = rng.integers(3, length + 1, size=batch)
  mask = (np.arange(length)[None, :] < lengths[:, None]).astype(np.int32)
  return {"input_word_ids": tf.constant(ids * mask), "input_mask": tf.constant(mask),
          "input_type_ids": tf.zeros_like(tf.constant(ids))}


def _f_and_u(tower: TypedTextTower, inputs) -> tuple:
  """The tower's f and u computed layer by layer here, unit length (numpy [B, D] each)."""
  u = tower.encoder(inputs)["sequence_output"]
  mask = tower.attention_mask(u, inputs["input_mask"])
  t = u
  for block in tower.type_blocks:
    t = block([t, mask])
  f = (u + t) / 2
  for block in tower.task_blocks:
    f = block([f, mask])
  pooling = tower.get_config()["pooling"]
  f, u = pool(f, inputs["input_mask"], pooling), pool(u, inputs["input_mask"], pooling)
  if tower.projection is not None:
    f, u = tower.task_projection(f), tower.projection(u)
  f, u = f.numpy(), u.numpy()
  return (f / np.linalg.norm(f, axis=1, keepdims=True),
          u / np.linalg.norm(u, axis=1, keepdims=True))


@pytest.mark.parametrize("pooling,projection,dim", [("cls", True, 8), ("mean", False, 16)])
def test_the_vectors_dot_product_is_the_combined_score(pooling, projection, dim):
  mention = TypedTextTower(_encoder(), dim, pooling, projection, num_types=5, type_layers=2,
                           name="mention_tower")
  entity = TypedTextTower(_encoder(), dim, pooling, projection, num_types=5, name="entity_tower")
  m_inputs, e_inputs = _inputs(3, seed=1), _inputs(4, seed=2)
  m, m_types = mention.encode(m_inputs)
  e, e_types = entity.encode(e_inputs)
  assert m.shape == (3, 2 * dim) and e.shape == (4, 2 * dim) and mention.output_dim == 2 * dim
  assert m_types.shape == (3, 5) and e_types.shape == (4, 5)
  assert m.dtype == e_types.dtype == tf.float32
  np.testing.assert_allclose(np.linalg.norm(m.numpy(), axis=1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(mention(m_inputs).numpy(), m.numpy(), rtol=1e-6)
  f_m, u_m = _f_and_u(mention, m_inputs)
  f_e, u_e = _f_and_u(entity, e_inputs)
  # s(m, e) = f_m . f_e + u_m . u_e on unit f, u; the vectors' dot product is half of it, so
  # the in-batch logits (scale x cosine) are s at scale / 2.
  want = (f_m @ f_e.T + u_m @ u_e.T) / 2
  np.testing.assert_allclose(m.numpy() @ e.numpy().T, want, atol=1e-5)
  scale = 20.0
  _, logits = losses.in_batch_softmax_loss(m, e, tf.constant([0, 1, 2]), tf.constant([1, 2, 3]),
                                           tf.constant([1, 2, 3, 4]), scale)
  np.testing.assert_allclose(logits.numpy(), scale / 2 * (f_m @ f_e.T + u_m @ u_e.T), atol=1e-4)


def test_config_round_trips_of_the_typed_tower_and_dual_encoder():
  tower = TypedTextTower(_encoder(), 8, "mean", True, num_types=7, type_layers=2,
                         task_layers=3, name="mention_tower")
  tower(_inputs(2))
  config = tower.get_config()
  copy = TypedTextTower.from_config(config)
  copy(_inputs(2))
  assert copy.get_config() == config
  assert len(copy.type_blocks) == 2 and len(copy.task_blocks) == 3
  assert [w.shape for w in copy.weights] == [w.shape for w in tower.weights]
  # (unbuilt towers: Keras rebuilds a built model from its input shape, with float inputs)
  towers = [TypedTextTower(_encoder(), 8, "mean", True, num_types=7, name=name)
            for name in ("mention_tower", "entity_tower")]
  model = TypedDualEncoder(*towers, scale=10.0)
  restored = tf_keras.layers.deserialize(tf_keras.layers.serialize(model))
  assert isinstance(restored, TypedDualEncoder)
  assert isinstance(restored.entity_tower, TypedTextTower) and restored.scale == 10.0
  with pytest.raises(ValueError, match="num_types"):
    TypedTextTower(_encoder(), 8, num_types=0)


def _model_config(**typing) -> configs.ModelConfig:
  return configs.ModelConfig(
      kind="F", embedding_dim=8, encoder=configs.EncoderConfig(**_encoder()),
      typing=configs.TypingConfig(enabled=True, **typing))


def test_typed_task_losses_mask_pairs_without_types():
  model = build_dual_encoder(_model_config(num_types=3))
  assert isinstance(model, TypedDualEncoder)
  features = {"mentions": _inputs(4, seed=3), "entities": _inputs(4, seed=4),
              "entity_ids": tf.constant([1, 2, 3, 4]),
              "type_targets": tf.constant([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 0]],
                                          tf.float32),
              "type_mask": tf.constant([True, True, False, True])}
  out = {k: v.numpy() for k, v in model.task_losses(features).items()}
  for name in type_task.METRICS + ("mention_entity_loss", "mention_entity_accuracy"):
    assert out[name].shape == (4,), name
  np.testing.assert_array_equal(out["typed_pairs"], [1, 1, 0, 1])
  for side in type_task.SIDES:
    assert out[f"{side}_type_loss"][2] == 0.0 and (out[f"{side}_type_loss"][[0, 1, 3]] > 0).all()
  # every type of a typed pair is counted once: TP + FN = its gold types, TP + FP + FN <= 3
  np.testing.assert_array_equal(out["mention_type_tp"] + out["mention_type_fn"], [1, 2, 0, 2])
  summary = type_task.summarize({k: float(v.mean()) for k, v in out.items()})
  assert summary["typed_pair_fraction"] == 0.75
  assert 0 <= summary["entity_type_f1"] <= 1 and "entity_type_tp" not in summary


def _entity(entity_id: str, description: str, types=()) -> schema.Entity:
  return schema.Entity(
      entity_id=entity_id, qid=entity_id, description=description,
      description_lang="en" if description else "", description_source="wikidata"
      if description else "", mention_count=1, mention_counts={"en": 1}, sitelinks={},
      labels={"en": entity_id}, wikidata_descriptions={}, wikipedia_descriptions={},
      aliases={}, types=tuple(types))


def test_type_vocabulary_cut_and_targets(tmp_path):
  mining = tmp_path / "mining"
  write_mined(mining, records.ENTITIES, [
      _entity("Q1", "a city", ["Q515", "Q5"]), _entity("Q2", "a person", ["Q5"]),
      _entity("Q3", "a river", ["Q4022", "Q5"]), _entity("Q4", "", []),
      _entity("Q5", "another city", ["Q515"])])
  entity_types = type_task.read_entity_types(str(mining))
  assert entity_types["Q1"] == ("Q515", "Q5") and entity_types["Q4"] == ()
  # From the records: Q5 has 3 entities, Q515 2, Q4022 1 (below min_entities 2).
  vocabulary = type_task.choose_vocabulary(str(mining), entity_types, 10, 2)
  assert vocabulary == [("Q5", 3, "", ""), ("Q515", 2, "", "")]
  assert type_task.choose_vocabulary(str(mining), entity_types, 1, 1) == [("Q5", 3, "", "")]
  # The mining run's vocabulary file wins when present (its header line is skipped).
  path = mining / records.TYPE_VOCABULARY
  path.parent.mkdir()
  path.write_text("type_id\tentities\tsource\tlabel\nQ4022\t9\twikidata\triver\n"
                  "Q5\t3\twikidata\thuman\n")
  vocabulary = type_task.choose_vocabulary(str(mining), entity_types, 10, 2)
  assert vocabulary == [("Q4022", 9, "wikidata", "river"), ("Q5", 3, "wikidata", "human")]
  rows = type_task.entity_type_rows(entity_types, vocabulary)
  assert rows == [("Q1", [1]), ("Q2", [1]), ("Q3", [0, 1])]

  config = configs.ExperimentConfig()
  config.data.mining_dir = str(mining)
  config.model.typing.enabled = True
  model_dir = ModelDir(str(tmp_path / "model"))
  os.makedirs(model_dir.path)
  assert "2 types" in type_task.prepare(config, model_dir)
  assert config.model.typing.num_types == 2
  path.unlink()   # a rerun reads the model dir's own files back, not the mining run's
  config.model.typing.num_types = 0
  type_task.prepare(config, model_dir)
  assert config.model.typing.num_types == 2
  targets = type_task.TypeTargets(model_dir.entity_types, 2)(
      tf.constant(["Q3", "Q4", "Q1", "Q-unknown"]))
  np.testing.assert_array_equal(targets["type_targets"].numpy(),
                                [[1, 1], [0, 0], [0, 1], [0, 0]])
  np.testing.assert_array_equal(targets["type_mask"].numpy(), [True, False, True, False])

  # a vocabulary none of the entities' types is in (another mining run's): a clear error
  path.write_text("type_id\tentities\tsource\tlabel\ncat:xwiki:Other\t9\tcategory\tOther\n")
  fresh = ModelDir(str(tmp_path / "model2"))
  os.makedirs(fresh.path)
  config.model.typing.num_types = 0
  with pytest.raises(configs.ConfigError, match="no entity of .* has a type of its type "
                     "vocabulary"):
    type_task.prepare(config, fresh)


@pytest.mark.parametrize("override,message", [
    ("model.kind=E,train.entity_entity_task=false", "model.typing.enabled needs model.kind F"),
    ("model.kind=CA,train.entity_entity_task=false,data.random_negatives_per_mention=1",
     "model.typing.enabled needs model.kind F"),
    ("model.typing.max_types=0", "max_types, min_entities"),
    ("model.typing.type_layers=0", "type_layers"),
    ("train.type_loss_weight_entity=-1", "type_loss_weight"),
])
def test_config_errors(override, message):
  with pytest.raises(configs.ConfigError, match=message):
    configs.load(str(DEMO_CONFIG), "model.typing.enabled=true," + override)
  assert not configs.load(str(DEMO_CONFIG)).model.typing.enabled   # off by default


# ---------------------------------------------------------------------------------------------
# `mel train` with typing on the mini mining output, its entities given types (slow).


def _with_types(entity: schema.Entity) -> schema.Entity:
  """A type from the description's first word and one from its language; none without one."""
  if not entity.description:
    return dataclasses.replace(entity, types=())
  first = entity.description.split()[0].casefold()
  return dataclasses.replace(entity, types=(f"w:{first}", f"lang:{entity.description_lang}"))


@pytest.fixture(scope="module")
def typed_mining(mini_mining, tmp_path_factory):
  source = mini_mining[0]
  target = tmp_path_factory.mktemp("typed") / "mining"
  shutil.copytree(source, target)
  # the mined vocabulary names the mined types; these entities carry the ones made up here
  os.remove(target / records.TYPE_VOCABULARY)
  entities = [_with_types(e) for e in records.read_output(str(source), records.ENTITIES)]
  for path in tf.io.gfile.glob(records.pattern(str(target), records.ENTITIES)):
    os.remove(path)
  write_mined(target, records.ENTITIES, entities)
  return target


@slow
def test_mel_train_with_typing_writes_type_metrics_and_exports_the_combined_score(
    typed_mining, mini_vocab, tmp_path):
  import tensorflow_text  # noqa: F401  (registers the tokenizer ops the SavedModels use)
  model_dir = tmp_path / "model"
  overrides = train_overrides(typed_mining, mini_vocab, **{
      "train.steps": 40, "model.typing.enabled": "true", "model.typing.max_types": 50,
      "model.typing.min_entities": 2})
  result = run_module("mel.train", "--config", DEMO_CONFIG, "--model_dir", model_dir,
                      "--params_override", overrides)
  assert result.returncode == 0, result.stderr[-4000:]
  config = configs.load(str(model_dir / "config.yaml"))
  num_types = config.model.typing.num_types
  assert 8 < num_types <= 50   # 7 languages and the commonest first words
  assert f"type vocabulary: {num_types} types" in result.stderr and "F1 m" in result.stderr
  assert len((model_dir / "type_vocabulary.tsv").read_text().splitlines()) == num_types
  summary = json.loads((model_dir / "train_summary.json").read_text())
  final = summary["final_metrics"]
  for name in ("mention_type_loss", "entity_type_loss", "mention_type_f1", "entity_type_f1"):
    assert np.isfinite(final[name]), name
  assert 0 < final["typed_pair_fraction"] <= 1 and 0 <= final["mention_type_f1"] <= 1
  events = {}
  for path in tf.io.gfile.glob(str(model_dir / "train" / "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        events.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
  for tag in ("loss/mention_type", "loss/entity_type", "type_f1/mention", "type_f1/entity",
              "typing/typed_pair_fraction"):
    assert sorted(events[tag]) == [10, 20, 30, 40], tag
  # The summed BCE starts near num_types x ln 2 and falls as the classifiers learn.
  assert events["loss/entity_type"][40] < events["loss/entity_type"][10]

  manifest = json.loads((model_dir / "export" / "manifest.json").read_text())
  assert manifest["embedding_dim"] == 64   # f and u, 32 each
  mention = tf.saved_model.load(str(model_dir / "export" / "mention_encoder"))
  entity = tf.saved_model.load(str(model_dir / "export" / "entity_encoder"))
  titles, lefts = tf.constant(["Київ", "東京"]), tf.constant(["Столиця України — ", "日本の首都は"])
  mentions, rights = tf.constant(["Київ", "東京都"]), tf.constant([".", "です。"])
  descriptions = tf.constant(["столиця України", "日本の首都", "a river"])
  got_m = mention.signatures["serving_default"](
      title=titles, left=lefts, mention=mentions, right=rights)["embeddings"].numpy()
  got_e = entity.signatures["serving_default"](description=descriptions)["embeddings"].numpy()
  assert got_m.shape == (2, 64) and got_e.shape == (3, 64)
  np.testing.assert_allclose(np.linalg.norm(got_e, axis=1), 1.0, rtol=1e-5)

  # The in-process model from the checkpoint scores the same pairs the same.
  model = build_dual_encoder(config.model)
  tf.train.Checkpoint(model=model).read(
      tf.train.latest_checkpoint(str(model_dir / "checkpoints"))).expect_partial()
  builder = InputBuilder.from_config(train.load_tokenizer(config, ModelDir(str(model_dir))),
                                     config.data)
  want_m = model.mention_tower(builder.mentions(titles, lefts, mentions, rights))
  want_e = model.entity_tower(builder.entities(descriptions))
  np.testing.assert_allclose(got_m @ got_e.T, (want_m @ tf.transpose(want_e)).numpy(),
                             atol=1e-5)
  f_m, u_m = _f_and_u(model.mention_tower, builder.mentions(titles, lefts, mentions, rights))
  f_e, u_e = _f_and_u(model.entity_tower, builder.entities(descriptions))
  np.testing.assert_allclose(got_m @ got_e.T, (f_m @ f_e.T + u_m @ u_e.T) / 2, atol=1e-5)


@slow
def test_mel_train_with_typing_from_e5(typed_mining, tmp_path):
  """configs/demo_e5.yaml with typing: a 1-layer e5 encoder (mean pooling, no projection)
  under random T and f layers; the export serves 2 x 384-d vectors."""
  import tensorflow_text  # noqa: F401  (registers the SentencePiece ops the SavedModels use)
  model_dir = tmp_path / "model"
  values = {"data.mining_dir": typed_mining, "model.encoder.num_layers": 1,
            "data.batch_size": 4, "data.pairs_batch_size": 4, "train.steps": 2,
            "train.steps_per_loop": 1, "train.checkpoint_every": 2, "train.summary_every": 1,
            "data.shuffle_buffer": 100, "rounds.count": 0, "model.typing.enabled": "true"}
  result = run_module("mel", "train", "--config", ROOT / "configs" / "demo_e5.yaml",
                      "--model_dir", model_dir, "--params_override",
                      ",".join(f"{k}={v}" for k, v in values.items()))
  assert result.returncode == 0, result.stderr[-4000:]
  assert "1 of 12 layers" in result.stderr and "F1 m" in result.stderr
  manifest = json.loads((model_dir / "export" / "manifest.json").read_text())
  assert manifest["embedding_dim"] == 768 and manifest["tokenizer"] == "e5"
  entity = tf.saved_model.load(str(model_dir / "export" / "entity_encoder"))
  vectors = entity.signatures["serving_default"](
      description=tf.constant(["столиця України", "日本の首都"]))["embeddings"].numpy()
  assert vectors.shape == (2, 768)
  np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
  # u (the second half) is e5's own mean-pooled vector, normalised, scaled by 1/sqrt(2)
  np.testing.assert_allclose(np.linalg.norm(vectors[:, 384:], axis=1), math.sqrt(0.5),
                             rtol=1e-5)
