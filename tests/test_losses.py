"""The in-batch softmax loss on tiny constants, and the dual encoder's two tasks."""
import math
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

from mel.training import configs  # noqa: E402
from mel.modeling import losses  # noqa: E402
from mel.modeling.dual_encoder import build_dual_encoder  # noqa: E402

# log(1 + e^-1): a query whose gold logit is 1 against one other candidate at logit 0.
LOG1P_EXP_MINUS_1 = math.log(1 + math.exp(-1))   # 0.31326...


def _loss(queries, candidates, labels, query_ids, candidate_ids, scale=1.0, mask=None):
  loss, logits = losses.in_batch_softmax_loss(
      tf.constant(queries, tf.float32), tf.constant(candidates, tf.float32),
      tf.constant(labels, tf.int32), tf.constant(query_ids, tf.int32),
      tf.constant(candidate_ids, tf.int32), scale,
      None if mask is None else tf.constant(mask))
  return loss.numpy(), logits.numpy()


def test_two_orthogonal_pairs():
  # q0 = c0 = [1, 0], q1 = c1 = [0, 1]: each query's logits are [1, 0] (gold first) or
  # [0, 1] (gold second), so each loss is -log(e / (e + 1)) = log(1 + e^-1).
  loss, _ = _loss([[1, 0], [0, 1]], [[1, 0], [0, 1]], [0, 1], [7, 8], [7, 8])
  np.testing.assert_allclose(loss, [LOG1P_EXP_MINUS_1] * 2, rtol=1e-6)


def test_scale_multiplies_cosines():
  # scale 5: logits [5, 0] -> loss log(1 + e^-5).
  loss, logits = _loss([[1, 0]], [[1, 0], [0, 1]], [0], [7], [7, 8], scale=5.0)
  np.testing.assert_allclose(logits, [[5, 0]], rtol=1e-6)
  np.testing.assert_allclose(loss, [math.log(1 + math.exp(-5))], rtol=1e-6)


def test_accidental_hit_is_masked():
  # q1 = [0, 1], gold c1 (id 8). c2 = [0.6, 0.8] is the same entity (id 8) in another column:
  # unmasked, q1's logits are [0, 1, 0.8] and the loss log(1 + e^-1 + e^-0.2) = 1.0337;
  # masked, c2 leaves q1's softmax and the loss is log(1 + e^-1) again. q0 (id 7) keeps c2.
  queries, candidates = [[1, 0], [0, 1]], [[1, 0], [0, 1], [0.6, 0.8]]
  loss, logits = _loss(queries, candidates, [0, 1], [7, 8], [7, 8, 8])
  np.testing.assert_allclose(loss[1], LOG1P_EXP_MINUS_1, rtol=1e-6)
  assert logits[1, 2] == losses.MASKED_LOGIT
  # q0's logits [1, 0, 0.6]: -log(e / (e + 1 + e^0.6))
  np.testing.assert_allclose(loss[0], math.log(1 + math.exp(-1) + math.exp(-0.4)), rtol=1e-6)
  unmasked, _ = _loss(queries, candidates, [0, 1], [7, 8], [7, 8, 9])
  np.testing.assert_allclose(unmasked[1], math.log(1 + math.exp(-1) + math.exp(-0.2)),
                             rtol=1e-6)


def test_the_gold_column_itself_is_never_masked():
  loss, logits = _loss([[1, 0]], [[1, 0], [1, 0]], [1], [7], [7, 7])
  assert logits[0, 1] == pytest.approx(1.0) and logits[0, 0] == losses.MASKED_LOGIT
  assert loss[0] == pytest.approx(0.0, abs=1e-6)


def test_padding_candidates_are_masked():
  loss, _ = _loss([[1, 0]], [[1, 0], [0, 1], [1, 0]], [0], [7], [7, 8, 9],
                  mask=[True, True, False])
  np.testing.assert_allclose(loss, [LOG1P_EXP_MINUS_1], rtol=1e-6)


def test_hard_negatives_join_the_candidate_set():
  gold = tf.constant([[1.0, 0.0], [0.0, 1.0]])
  negatives = tf.constant([[0.6, 0.8], [0.0, 0.0]])
  candidates, ids, mask, labels = losses.gather_candidates(
      gold, tf.constant([7, 8]), negatives, tf.constant([9, 0]), tf.constant([True, False]))
  np.testing.assert_allclose(candidates.numpy(), [[1, 0], [0, 1], [0.6, 0.8], [0, 0]])
  assert ids.numpy().tolist() == [7, 8, 9, 0]
  assert mask.numpy().tolist() == [True, True, True, False]
  assert labels.numpy().tolist() == [0, 1]
  # q0 = [1, 0]: logits [1, 0, 0.6] (the padding column is masked):
  # loss = log(1 + e^-1 + e^-0.4), larger than without the hard negative.
  loss, _ = losses.in_batch_softmax_loss(gold, candidates, labels, tf.constant([7, 8]), ids,
                                         1.0, mask)
  np.testing.assert_allclose(loss.numpy()[0], math.log(1 + math.exp(-1) + math.exp(-0.4)),
                             rtol=1e-6)


def test_accuracy():
  logits = tf.constant([[3.0, 1.0], [2.0, 1.0]])
  acc = losses.in_batch_accuracy(logits, tf.constant([0, 1]))
  assert acc.numpy().tolist() == [1.0, 0.0]


@pytest.fixture(autouse=True)
def _seeded():
  """The towers' initial weights and any dropout are the same in every run."""
  tf_keras.utils.set_random_seed(0)


def _tiny_model_config(kind="F"):
  return configs.ModelConfig(kind=kind, embedding_dim=8, scale=10.0, encoder=configs.EncoderConfig(
      vocab_size=50, hidden_size=16, num_layers=1, num_attention_heads=2, intermediate_size=32,
      dropout_rate=0.0, attention_dropout_rate=0.0, max_position_embeddings=16))


def _inputs(seed, n, length=8):
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, 50, size=(n, length)).astype(np.int32)
  return {"input_word_ids": tf.constant(ids), "input_mask": tf.ones_like(ids),
          "input_type_ids": tf.constant(rng.integers(0, 4, size=(n, length)).astype(np.int32))}


def test_entity_entity_task_uses_the_entity_tower():
  model = build_dual_encoder(_tiny_model_config())
  pairs_a, pairs_b = _inputs(2, 3), _inputs(3, 3)
  # Pair 2 is entity 5 again, described by exactly pair 0's query text: its column scores
  # the highest logit of pair 0's row (scale * cosine 1), so leaving it in pair 0's softmax
  # would raise that loss by at least log(1.5), whatever the weights.
  pairs_b = {k: tf.concat([v[:2], pairs_a[k][:1]], axis=0) for k, v in pairs_b.items()}
  features = {"mentions": _inputs(0, 4), "entities": _inputs(1, 4),
              "entity_ids": tf.constant([1, 2, 3, 4]),
              "pairs_a": pairs_a, "pairs_b": pairs_b,
              "pair_ids": tf.constant([5, 6, 5])}
  out = model.task_losses(features, training=False)
  assert out["mention_entity_loss"].shape == [4]
  a = model.entity_tower(features["pairs_a"])
  b = model.entity_tower(features["pairs_b"])
  want, _ = losses.in_batch_softmax_loss(a, b, tf.range(3), features["pair_ids"],
                                         features["pair_ids"], 10.0)
  np.testing.assert_allclose(out["entity_entity_loss"].numpy(), want.numpy(), rtol=1e-5)
  # Pairs 0 and 2 are one entity (5): each is masked out of the other's softmax.
  logits = 10.0 * tf.matmul(a, b, transpose_b=True).numpy().astype(np.float64)
  only_pair1 = -(logits[0, 0] - np.log(np.exp(logits[0, 0]) + np.exp(logits[0, 1])))
  with_pair2 = -(logits[0, 0] - np.log(np.exp(logits[0, :]).sum()))
  np.testing.assert_allclose(logits[0, 2], 10.0, rtol=1e-5)
  assert with_pair2 - only_pair1 > math.log(1.5) - 1e-6, "pair 2 must matter, by construction"
  # A small loss (~0.01) carries float32 rounding of its log-sum-exp at ~1e-5 relative.
  np.testing.assert_allclose(out["entity_entity_loss"].numpy()[0], only_pair1, rtol=1e-4,
                             atol=1e-6)


def test_model_e_scores_rows_of_its_table():
  model = build_dual_encoder(_tiny_model_config("E"), num_entities=6)
  features = {"mentions": _inputs(0, 3), "entities": tf.constant([0, 4, 5]),
              "entity_ids": tf.constant([10, 14, 15])}
  out = model.task_losses(features, training=False)
  rows = tf.math.l2_normalize(tf.gather(model.entity_tower.table.embeddings, [0, 4, 5]), -1)
  mentions = model.mention_tower(features["mentions"])
  want, _ = losses.in_batch_softmax_loss(mentions, rows, tf.range(3), features["entity_ids"],
                                         features["entity_ids"], 10.0)
  np.testing.assert_allclose(out["mention_entity_loss"].numpy(), want.numpy(), rtol=1e-5)
  assert "entity_entity_loss" not in out


def test_towers_output_unit_vectors_and_round_trip_their_config():
  model = build_dual_encoder(_tiny_model_config())
  vectors = model.mention_tower(_inputs(0, 5))
  assert vectors.shape == [5, 8]
  np.testing.assert_allclose(tf.norm(vectors, axis=-1).numpy(), np.ones(5), rtol=1e-5)
  config = model.mention_tower.get_config()
  clone = type(model.mention_tower).from_config(config)
  assert clone.get_config() == config


# Distillation by hand: 2 mentions x 3 candidates (gold first); mention 1's third is padding.
#   mention 0: student [0, 0, 0] -> q = (1/3, 1/3, 1/3)
#              teacher [ln 2, 0, 0] -> p = (2, 1, 1) / 4 = (1/2, 1/4, 1/4)
#              KL(p || q) = 1/2 ln(3/2) + 2 * 1/4 ln(3/4) = 1/2 ln(9/8) = 0.058892
#   mention 1: student [0, ln 3, (99)] -> q = (1/4, 3/4) over the two valid columns
#              teacher [ln 3, 0, (-5)] -> p = (3/4, 1/4)
#              KL = 3/4 ln 3 + 1/4 ln(1/3) = 1/2 ln 3 = 0.549306
# T = 2 divides the logits by 2 and multiplies the KL by 4:
#   mention 0: p = (sqrt2, 1, 1) / (2 + sqrt2), q uniform: 4 * sum p ln(3p) = 0.056882
#   mention 1: q = (1, sqrt3) / (1 + sqrt3), p = (sqrt3, 1) / (1 + sqrt3):
#              KL = (p0 - p1) ln sqrt3 = (sqrt3 - 1) / (sqrt3 + 1) * 1/2 ln 3; x 4 = 0.588745
_STUDENT = [[0.0, 0.0, 0.0], [0.0, math.log(3), 99.0]]
_TEACHER = [[math.log(2), 0.0, 0.0], [math.log(3), 0.0, -5.0]]
_MASK = [[True, True, True], [True, True, False]]
_R2, _R3 = math.sqrt(2), math.sqrt(3)
_P0_T2 = [_R2 / (2 + _R2), 1 / (2 + _R2), 1 / (2 + _R2)]


@pytest.mark.parametrize("temperature, want", [
    (1.0, [0.5 * math.log(9 / 8), 0.5 * math.log(3)]),
    (2.0, [4 * sum(p * math.log(3 * p) for p in _P0_T2),
           4 * (_R3 - 1) / (_R3 + 1) * 0.5 * math.log(3)]),
])
def test_distillation_loss_by_hand(temperature, want):
  got = losses.distillation_loss(tf.constant(_STUDENT), tf.constant(_TEACHER),
                                 tf.constant(_MASK), temperature)
  assert got.dtype == tf.float32
  np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
  np.testing.assert_allclose(want, [0.058892, 0.549306] if temperature == 1 else
                             [0.056882, 0.588745], atol=1e-6)   # the comment's figures


def test_distillation_gradients_reach_the_student_only():
  student, teacher = tf.Variable(_STUDENT), tf.Variable(_TEACHER)
  with tf.GradientTape(persistent=True) as tape:
    loss = tf.reduce_sum(losses.distillation_loss(student, teacher, tf.constant(_MASK), 1.0))
  assert tape.gradient(loss, teacher) is None
  grad = tape.gradient(loss, student).numpy()
  # d/ds T^2 KL(p || softmax(s / T)) = T (q - p): mention 1, (1/4 - 3/4, 3/4 - 1/4, padding 0)
  np.testing.assert_allclose(grad[1], [-0.5, 0.5, 0.0], atol=1e-6)
  np.testing.assert_allclose(grad[0], [1 / 3 - 1 / 2, 1 / 3 - 1 / 4, 1 / 3 - 1 / 4], atol=1e-6)
  # A student that already agrees with the teacher has nothing left to learn.
  same = losses.distillation_loss(tf.constant(_TEACHER), tf.constant(_TEACHER),
                                  tf.constant(_MASK), 3.0)
  np.testing.assert_allclose(same.numpy(), [0.0, 0.0], atol=1e-6)


def test_own_candidate_logits_pick_each_mentions_gold_and_negatives():
  # 2 replicas x B=2 mentions x K=2 negatives: columns g0 g1 g2 g3 | n00 n01 n10 n11 (replica
  # 0) | n20 n21 n30 n31 (replica 1). Replica 1's mentions are global mentions 2 and 3.
  logits = tf.constant([[float(10 * row + col) for col in range(12)] for row in range(2)])
  got = losses.own_candidate_logits(logits, tf.constant([2, 3]), 2).numpy()
  np.testing.assert_array_equal(got, [[2, 8, 9], [13, 20, 21]])
  one_replica = losses.own_candidate_logits(logits[:, :6], tf.constant([0, 1]), 2).numpy()
  np.testing.assert_array_equal(one_replica, [[0, 2, 3], [11, 14, 15]])


def test_dual_encoder_distils_its_in_batch_logits_for_the_own_candidates():
  model = build_dual_encoder(_tiny_model_config(), distillation_temperature=2.0)
  teacher = tf.constant([[3.0, 1.0, -1.0], [0.5, 2.0, 0.0], [1.0, 1.0, 1.0]])
  teacher_mask = tf.constant([[True, True, True], [True, True, False], [True, False, False]])
  features = {"mentions": _inputs(0, 3), "entities": _inputs(1, 3),
              "entity_ids": tf.constant([1, 2, 3]), "negatives": _inputs(2, 6),
              "negative_ids": tf.constant([4, 5, 6, 7, 8, 9]),
              "negative_mask": tf.constant([True, True, True, False, False, False]),
              "teacher_logits": teacher, "teacher_mask": teacher_mask}
  out = model.task_losses(features, training=False)
  assert out["distillation_loss"].shape == [3]
  mentions = model.mention_tower(features["mentions"])
  gold = model.entity_tower(features["entities"])
  negatives = tf.reshape(model.entity_tower(features["negatives"]), [3, 2, -1])
  student = 10.0 * tf.concat([tf.reduce_sum(mentions * gold, -1)[:, None],
                              tf.einsum("bd,bkd->bk", mentions, negatives)], axis=1)
  want = losses.distillation_loss(student, teacher, teacher_mask, 2.0)
  np.testing.assert_allclose(out["distillation_loss"].numpy(), want.numpy(), rtol=1e-5,
                             atol=1e-6)
  # Mention 2 has one valid candidate: nothing to distil.
  assert out["distillation_loss"].numpy()[2] == pytest.approx(0.0, abs=1e-6)
  # The temperature survives the config round trip; without teacher scores no such output.
  # (Towers are rebuilt unbuilt: Keras rebuilds a built tower from float inputs, which an
  # embedding lookup refuses; that is the towers' matter, not the temperature's.)
  config = model.get_config()
  for tower in ("mention_tower", "entity_tower"):
    config[tower] = {k: v for k, v in config[tower].items() if k != "build_config"}
  clone = type(model).from_config(config)
  assert clone.distillation_temperature == 2.0 and clone.scale == 10.0
  del features["teacher_logits"], features["teacher_mask"]
  assert "distillation_loss" not in model.task_losses(features, training=False)
