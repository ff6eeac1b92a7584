"""Per-entity-balanced hard-negative selection (pure) and a mining round on a trained model."""
import collections
import json

import pytest
from hypothesis import given, settings, strategies as st

from conftest import DEMO_CONFIG, run_module, train_overrides
from mel import records, schema
from mel.retrieval.negatives import select_negatives, visiting_order

ENTITIES = [f"Q{i}" for i in range(12)]


@st.composite
def mining_inputs(draw):
  n = draw(st.integers(0, 40))
  gold = [draw(st.sampled_from(ENTITIES)) for _ in range(n)]
  candidates = [draw(st.lists(st.sampled_from(ENTITIES), max_size=8, unique=True))
                for _ in range(n)]
  positives = collections.Counter(gold)
  ratio = draw(st.integers(1, 3))
  max_per_mention = draw(st.integers(1, 5))
  return gold, candidates, dict(positives), ratio, max_per_mention


@settings(max_examples=300, deadline=None)
@given(mining_inputs(), st.integers(0, 3))
def test_balance_properties(inputs, seed):
  gold, candidates, positives, ratio, max_per_mention = inputs
  order = visiting_order([f"m{i}" for i in range(len(gold))], seed)
  negatives, used, skipped = select_negatives(order, candidates, gold, positives, ratio,
                                              max_per_mention)
  counted = collections.Counter(e for n in negatives for e in n)
  assert counted == collections.Counter(used)
  for entity_id, n in counted.items():
    assert n <= ratio * positives.get(entity_id, 0)      # never over its negative budget
  for g, c, n in zip(gold, candidates, negatives):
    assert g not in n                                   # the gold entity is never a negative
    assert len(n) <= max_per_mention and len(set(n)) == len(n)
    assert n == [e for e in c if e in n]                # kept in rank order
  again = select_negatives(order, candidates, gold, positives, ratio, max_per_mention)
  assert again.negatives == negatives and again.skipped_by_budget == skipped   # deterministic


def test_budget_worked_example():
  # Q1 has 1 positive, ratio 2: it may be a negative twice; the third mention to want it
  # (in visiting order) is refused and takes the next candidate instead.
  gold = ["Q1", "Q2", "Q2", "Q2"]
  candidates = [["Q1", "Q2"], ["Q1", "Q3"], ["Q1", "Q3"], ["Q1", "Q3"]]
  positives = {"Q1": 1, "Q2": 3, "Q3": 5}
  negatives, used, skipped = select_negatives([0, 1, 2, 3], candidates, gold, positives,
                                              ratio=2, max_per_mention=1)
  assert negatives == [["Q2"], ["Q1"], ["Q1"], ["Q3"]]
  assert used == {"Q2": 1, "Q1": 2, "Q3": 1} and skipped == 1


def test_entities_without_positives_are_never_negatives():
  negatives, used, skipped = select_negatives([0], [["Q9", "Q2"]], ["Q1"], {"Q2": 1}, 10, 5)
  assert negatives == [["Q2"]] and skipped == 1


def test_visiting_order_is_a_seeded_permutation():
  ids = [f"m{i}" for i in range(50)]
  a, b = visiting_order(ids, 0), visiting_order(ids, 1)
  assert sorted(a) == list(range(50)) and a != list(range(50)) and a != b
  assert visiting_order(ids, 0) == a


@pytest.mark.slow
def test_a_mining_round_on_the_mini_model(mini_model, mini_mining, mini_vocab, tmp_path):
  """encode entities -> ScaNN index -> mine negatives -> train round 2 from them."""
  model_dir, _ = mini_model
  embeddings_dir, index_dir, negatives_dir = (tmp_path / "emb", tmp_path / "index",
                                              tmp_path / "negatives")
  result = run_module("mel", "encode", "--model_dir", model_dir, "--output",
                      embeddings_dir)
  assert result.returncode == 0, result.stderr[-3000:]
  result = run_module("mel", "index", "--embeddings", embeddings_dir, "--output", index_dir,
                      "--kind", "scann")
  assert result.returncode == 0, result.stderr[-3000:]
  result = run_module("mel", "negatives", "--model_dir", model_dir, "--index", index_dir,
                      "--output", negatives_dir, "--k", 20, "--ratio", 10, "--num_shards", 2)
  assert result.returncode == 0, result.stderr[-3000:]
  summary = json.loads((negatives_dir / "summary.json").read_text())

  mentions = list(records.read_output(str(mini_mining[0]), records.MENTIONS_TRAIN))
  positives = {e.entity_id: e.mention_count
               for e in records.read_output(str(mini_mining[0]), records.ENTITIES)}
  mined = list(records.read_records(schema.MentionWithNegatives,
                                    str(negatives_dir / "negatives-*.tfrecord.gz")))
  assert sorted(m.mention_id for m in mined) == sorted(m.mention_id for m in mentions)
  used = collections.Counter(e for m in mined for e in m.negative_ids)
  assert sum(used.values()) == summary["negatives"] > 0
  for entity_id, n in used.items():
    assert n <= 10 * positives[entity_id]
  assert all(m.entity_id not in m.negative_ids for m in mined)
  assert summary["mentions"] == len(mentions) and 0 < summary["recall_at_k"] <= 1

  # The same round again is reused, not recomputed.
  again = run_module("mel", "negatives", "--model_dir", model_dir, "--index", index_dir,
                     "--output", negatives_dir, "--k", 20, "--ratio", 10, "--num_shards", 2)
  assert again.returncode == 0 and "already holds this round" in again.stderr

  round2 = tmp_path / "round2"
  result = run_module(
      "mel.train", "--config", DEMO_CONFIG, "--model_dir", round2, "--params_override",
      train_overrides(mini_mining[0], mini_vocab, **{
          "train.init_from_model_dir": model_dir, "train.steps": 10,
          "data.hard_negatives": negatives_dir / "negatives-*.tfrecord.gz",
          "data.hard_negatives_per_mention": 2}))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "2 hard negatives per mention" in result.stderr
