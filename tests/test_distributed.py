"""Cross-replica negatives: 2 replicas see the global batch, exactly like one device.

The CPU is split into 2 logical devices, which must happen before TensorFlow initialises its
devices, so the check runs in a fresh interpreter.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, os
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mel.training import configs
    from mel.modeling.dual_encoder import build_dual_encoder

    config = configs.ModelConfig(kind="F", embedding_dim=8, scale=10.0,
        encoder=configs.EncoderConfig(vocab_size=60, hidden_size=16, num_layers=1,
            num_attention_heads=2, intermediate_size=32, dropout_rate=0.0,
            attention_dropout_rate=0.0, max_position_embeddings=16))
    rng = np.random.default_rng(0)
    B, P = 6, 4   # global batches: 3 mentions and 2 pairs per replica
    def inputs(n):
      ids = rng.integers(5, 60, size=(n, 8)).astype(np.int32)
      return {"input_word_ids": ids, "input_mask": np.ones_like(ids),
              "input_type_ids": rng.integers(0, 4, size=(n, 8)).astype(np.int32)}
    features = {"mentions": inputs(B), "entities": inputs(B),
                # entities 3 and 4 coincide: an accidental hit across the two replicas
                "entity_ids": np.array([1, 2, 3, 4, 4, 6], np.int32),
                "negatives": inputs(B), "negative_ids": np.array([9, 8, 7, 1, 11, 12], np.int32),
                "negative_mask": np.array([True, True, False, True, True, True]),
                "pairs_a": inputs(P), "pairs_b": inputs(P),
                "pair_ids": np.array([21, 22, 23, 21], np.int32)}

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
      tf.random.set_seed(3)
      model = build_dual_encoder(config)

    def total_loss(out):
      return 0.5 * (tf.reduce_sum(out["mention_entity_loss"]) / B
                    + tf.reduce_sum(out["entity_entity_loss"]) / P)

    # One device, the whole global batch.
    with tf.GradientTape() as tape:
      single = model.task_losses(tf.nest.map_structure(tf.constant, features))
      single_total = total_loss(single)
    single_grads = tape.gradient(single_total, model.trainable_variables)

    # Two replicas, half of every batch each (replica r takes rows r*n/2 .. (r+1)*n/2).
    def split(ctx):
      r = ctx.replica_id_in_sync_group
      def part(x):
        n = x.shape[0] // 2
        return tf.constant(x[r * n:(r + 1) * n])
      return tf.nest.map_structure(part, features)
    per_replica = strategy.experimental_distribute_values_from_function(split)

    def step(batch):
      with tf.GradientTape() as tape:
        out = model.task_losses(batch)
        loss = total_loss(out)
      grads = tape.gradient(loss, model.trainable_variables)
      return loss, out["mention_entity_loss"], out["entity_entity_loss"], grads

    @tf.function
    def run(batch):
      return strategy.run(step, args=(batch,))
    loss, me, ee, grads = run(per_replica)
    sum_ = lambda v: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
    dist_total = float(sum_(loss))
    dist_me = np.concatenate([t.numpy() for t in strategy.experimental_local_results(me)])
    dist_ee = np.concatenate([t.numpy() for t in strategy.experimental_local_results(ee)])
    grad_diff = 0.0
    grad_scale = 0.0
    for g_single, g_dist in zip(single_grads, grads):
      if g_single is None:
        continue
      g_sum = sum(tf.convert_to_tensor(t) for t in strategy.experimental_local_results(g_dist))
      grad_diff = max(grad_diff, float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g_single) - g_sum))))
      grad_scale = max(grad_scale, float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g_single)))))
    print(json.dumps({
        "single_total": float(single_total), "dist_total": dist_total,
        "single_me": single["mention_entity_loss"].numpy().tolist(), "dist_me": dist_me.tolist(),
        "single_ee": single["entity_entity_loss"].numpy().tolist(), "dist_ee": dist_ee.tolist(),
        "grad_diff": grad_diff, "grad_scale": grad_scale}))
""")


def test_two_replicas_match_one_device_over_the_global_batch():
  result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode == 0, result.stderr[-4000:]
  figures = json.loads(result.stdout.strip().splitlines()[-1])
  # Every mention's loss (its softmax over all 6 golds + 5 real hard negatives of both
  # replicas) is the same as on one device, and so are the total loss and the gradients.
  assert figures["dist_me"] == pytest.approx(figures["single_me"], rel=1e-5)
  assert figures["dist_ee"] == pytest.approx(figures["single_ee"], rel=1e-5)
  assert abs(figures["dist_total"] - figures["single_total"]) < 1e-5
  assert figures["grad_scale"] > 1e-4
  assert figures["grad_diff"] < 1e-5 * max(1.0, figures["grad_scale"])
