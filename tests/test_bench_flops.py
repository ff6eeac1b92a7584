"""The benches' analytic FLOP counts (bench/train_step.py), checked against hand-worked numbers."""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import train_step  # noqa: E402


def test_e5_tower_flops_mean_pooling_no_projection():
  # One layer on 64 tokens at hidden 384, FFN 1536:
  #   2 * 64 * (4 * 384^2 + 2 * 384 * 1536) = 226,492,416 (QKV, output projection, FFN)
  #   + 2 * 2 * 64 * 64 * 384              =   6,291,456 (scores and context)
  #   = 232,783,872; mean pooling: all 12 layers full -> 2,793,406,464;
  #   + token-type one-hot 2 * 64 * 4 * 384 = 196,608; no projection Dense.
  model = train_step.model_config("e5")
  assert (model.pooling, model.projection, model.embedding_dim) == ("mean", False, 384)
  assert model.encoder.vocab_size == 250004
  assert train_step.model_tower_flops(model) == 2_793_603_072
  # A pair: two towers + its row of the [64, 64] logits (2 * 64 * 384), 3x for training.
  assert train_step.pair_flops(model, 64) == 3 * (2 * 2_793_603_072 + 2 * 64 * 384)
  assert train_step.pair_flops(model, 64) == 16_761_765_888


def test_cls_pooling_keeps_the_output_range_saving():
  model = train_step.model_config("b")
  enc = model.encoder
  cls = train_step.tower_flops(enc, 64, 300)
  mean = train_step.tower_flops(enc, 64, 300, pooling="mean")
  assert cls == 2_931_492_864
  assert mean > cls
  assert train_step.tower_flops(enc, 64, 300, pooling="mean", projection=False) == (
      mean - 2 * 768 * 300)
