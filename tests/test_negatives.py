"""Per-entity-balanced hard-negative selection (pure) and a mining round on a trained model."""
import collections
import json
import types

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import DEMO_CONFIG, run_module, train_overrides
from mel import records, schema, towers
from mel.retrieval import BruteForceIndex, negatives as mining
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
                      "--output", negatives_dir, "--top_k", 20, "--ratio", 10, "--num_shards", 2)
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
                     "--output", negatives_dir, "--top_k", 20, "--ratio", 10, "--num_shards", 2)
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


def fake_mention(i, entity_id):
  return schema.Mention(
      mention_id=f"enwiki:1:{i}", lang="en", wiki="enwiki", doc_id=1, doc_title="Doc",
      left_context="", mention=f"m{i}", right_context="", start=0, end=2,
      target_title=entity_id, entity_id=entity_id, qid=entity_id, split="train")


class FakeMentionTower:
  """Stands in for the exported mention tower: mention i -> basis vector of its gold entity
  mixed with the next entity's, so retrieval ranks gold first and a neighbour second."""
  made = []

  def __init__(self, model_dir):
    FakeMentionTower.made.append(model_dir)

  def encode(self, mentions, batch_size=256, progress=True):
    vectors = np.zeros((len(mentions), 4), np.float32)
    for row, m in enumerate(mentions):
      gold = int(m.entity_id[1:])
      vectors[row, gold] = 1.0
      vectors[row, (gold + 1) % 4] = 0.5
    return vectors


@pytest.fixture
def fake_round(tmp_path, monkeypatch):
  """A model dir (config naming its mining run, export step, index/) whose towers and mining
  run are stand-ins: (model dir, mining dir)."""
  model_dir, mining_dir = tmp_path / "model", str(tmp_path / "mining")
  (model_dir / "export").mkdir(parents=True)
  (model_dir / "config.yaml").write_text(f"data:\n  mining_dir: {mining_dir}\n")
  (model_dir / "export" / "manifest.json").write_text(json.dumps({"step": 5}))
  entity_ids = [f"Q{i}" for i in range(4)]
  BruteForceIndex.build(entity_ids, np.eye(4, dtype=np.float32)).save(str(model_dir / "index"))
  mentions = [fake_mention(i, entity_ids[i % 4]) for i in range(8)]
  read = []

  def read_output(directory, name):
    read.append(directory)
    if name == records.MENTIONS_TRAIN:
      return iter(mentions)
    return iter(types.SimpleNamespace(entity_id=e, mention_count=2) for e in entity_ids)
  monkeypatch.setattr(records, "read_output", read_output)
  monkeypatch.setattr(towers, "mention_tower", FakeMentionTower)
  FakeMentionTower.made.clear()
  return model_dir, mining_dir, read


def test_negatives_defaults_from_the_model_dir(fake_round, tmp_path, capsys):
  model_dir, mining_dir, read = fake_round
  output = tmp_path / "negatives"
  assert mining.main(["--model_dir", str(model_dir), "--output", str(output), "--top_k", "2",
                      "--num_shards", "1", "--no_progress"]) == 0
  assert read == [mining_dir, mining_dir]           # config.yaml's data.mining_dir
  assert FakeMentionTower.made == [str(model_dir)]
  summary = json.loads((output / "summary.json").read_text())
  assert summary["inputs"]["index"] == str(model_dir / "index")   # MODEL_DIR/index
  assert summary["inputs"]["model_step"] == 5 and summary["inputs"]["top_k"] == 2
  assert summary["recall_at_k"] == 1.0 and summary["negatives"] == 8   # the neighbour each
  mined = list(records.read_records(schema.MentionWithNegatives,
                                    str(output / "negatives-*.tfrecord.gz")))
  assert sorted((m.entity_id, m.negative_ids) for m in mined) == sorted(
      (f"Q{i % 4}", (f"Q{(i + 1) % 4}",)) for i in range(8))
  # the same round is reused; --overwrite mines it again
  assert mining.main(["--model_dir", str(model_dir), "--output", str(output), "--top_k", "2",
                      "--num_shards", "1", "--no_progress"]) == 0
  assert "already holds this round" in capsys.readouterr().err
  assert len(FakeMentionTower.made) == 1
  assert mining.main(["--model_dir", str(model_dir), "--output", str(output), "--top_k", "2",
                      "--num_shards", "1", "--no_progress", "--overwrite"]) == 0
  assert "already holds this round" not in capsys.readouterr().err
  assert len(FakeMentionTower.made) == 2


def test_negatives_flags_are_checked(capsys):
  with pytest.raises(SystemExit) as e:
    mining.main(["--model_dir", "M", "--output", "N", "--top_k", "0"])
  assert e.value.code == 2 and "--top_k must be a positive integer" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    mining.main(["--model_dir", "M", "--output", "N", "--k", "5"])
  assert e.value.code == 2   # renamed: --top_k


def test_max_mentions_mines_a_seeded_sample(fake_round, tmp_path, capsys):
  model_dir, _, _ = fake_round
  output = tmp_path / "negatives"
  args = ["--model_dir", str(model_dir), "--output", str(output), "--top_k", "2",
          "--num_shards", "1", "--no_progress", "--max_mentions", "3"]
  assert mining.main(args) == 0
  assert "3 mentions (a sample of 8)" in capsys.readouterr().err
  summary = json.loads((output / "summary.json").read_text())
  assert (summary["mentions"], summary["mentions_read"]) == (3, 8)
  assert summary["inputs"]["max_mentions"] == 3
  mined = list(records.read_records(schema.MentionWithNegatives,
                                    str(output / "negatives-*.tfrecord.gz")))
  first = mining.visiting_order([fake_mention(i, "Q0").mention_id for i in range(8)], 0)[:3]
  assert sorted(m.mention_id for m in mined) == sorted(
      fake_mention(i, "Q0").mention_id for i in first)
  with pytest.raises(SystemExit):
    mining.main(args[:-1] + ["-1"])
