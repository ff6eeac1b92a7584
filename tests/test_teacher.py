"""`mel teacher` (a reranker's scores of mined candidates) and distillation training on them.

Fast tests score with a stand-in reranker; the slow ones use the mini fixtures' reranker (its
scores equal towers.reranker's) and train a distilled round from the mini Model F.
"""
import json
import math
import os

import mel  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import numpy as np
import pytest
import tensorflow as tf

from conftest import (DEMO_CONFIG, mined_mention, run_module, train_overrides, write_mined,
                      write_negatives)
from mel import entity_table, records, schema
from mel.model_dir import ModelDir
from mel.training import teacher


def _with_negatives(n, gold, negatives, mention=""):
  m = mined_mention("uk", n, gold, mention)
  return schema.MentionWithNegatives(**{k: getattr(m, k) for k in schema.Mention.FIELDS},
                                     negative_ids=tuple(negatives))


class FakeReranker:
  """logit = len(description) + 0.25 * len(mention): easy to predict; counts its calls."""

  def __init__(self):
    self.calls = 0

  def __call__(self, titles, lefts, mentions, rights, descriptions):
    self.calls += 1
    return np.array([len(d) + 0.25 * len(m) for m, d in zip(mentions, descriptions)],
                    np.float32)


@pytest.fixture
def fake_run(tmp_path):
  """A reranker model dir (entity table + export manifest) and negatives in two files."""
  reranker = tmp_path / "reranker"
  (reranker / "export").mkdir(parents=True)
  entity_table.write([("Q1", "a"), ("Q2", "bb"), ("Q3", "ccc"), ("Q4", "Київ — місто")],
                     str(ModelDir(str(reranker)).entities))
  (reranker / "export" / "manifest.json").write_text(json.dumps({"kind": "CA", "step": 7}))
  negatives = tmp_path / "negatives"
  write_mined(negatives, "negatives-a", [
      _with_negatives(1, "Q1", ["Q2", "Q9", "Q3", "Q4"], mention="Київ"),   # Q9: not in table
      _with_negatives(2, "Q9", ["Q1"])])                                      # gold unknown
  write_mined(negatives, "negatives-b", [_with_negatives(3, "Q4", []),
                                         _with_negatives(4, "Q2", ["Q4", "Q1"])])
  return str(reranker), str(negatives / "negatives-*.tfrecord.gz"), tmp_path / "teacher"


def _read(output):
  return list(records.read_records(schema.MentionWithTeacherScores,
                                   os.path.join(output, teacher.GLOB)))


def test_scores_follow_the_records_and_their_kept_negatives(fake_run):
  reranker, negatives, output = fake_run
  fake = FakeReranker()
  summary = teacher.teacher_scores(reranker, negatives, str(output), per_mention=2,
                                   num_shards=1, progress=False, reranker=fake)
  got = {r.mention_id: r for r in _read(output)}
  assert list(got) == ["ukwiki:1:0", "ukwiki:3:0", "ukwiki:4:0"]   # file order, Q9 skipped
  first = got["ukwiki:1:0"]
  # Q9 is not in the entity table: the first 2 known negatives are Q2 and Q3.
  assert first.negative_ids == ("Q2", "Q3")
  assert first.teacher_logits == (1 + 0.25 * 4, 2 + 1.0, 3 + 1.0)      # len("Київ") = 4
  assert got["ukwiki:3:0"].negative_ids == () and got["ukwiki:3:0"].teacher_logits == (
      len("Київ — місто") + 0.25 * 2,)
  assert got["ukwiki:4:0"].teacher_logits == (2.5, 12.5, 1.5)
  assert summary["read"] == 4 and summary["written"] == 3
  assert summary["skipped"] == {"gold_not_in_entity_table": 1}
  assert summary["negatives_not_in_entity_table"] == 1
  assert summary["negatives_beyond_per_mention"] == 1 and summary["pairs_scored"] == 7
  assert summary["gold_scored_first"] == 0 and summary["inputs"]["reranker_step"] == 7
  assert json.loads((output / "summary.json").read_text())["written"] == 3
  assert sorted(os.listdir(output)) == ["summary.json", "teacher-00000-of-00001.tfrecord.gz"]
  assert not [p for p in os.listdir(output.parent) if ".tmp-" in p or ".old-" in p]


def test_a_rerun_reuses_the_scores_unless_the_inputs_change(fake_run, tmp_path):
  reranker, negatives, output = fake_run
  fake = FakeReranker()
  first = teacher.teacher_scores(reranker, negatives, str(output), progress=False,
                                 reranker=fake)
  calls = fake.calls
  records_before = [r.to_json() for r in _read(output)]
  assert teacher.teacher_scores(reranker, negatives, str(output), progress=False,
                                reranker=fake) == first
  assert fake.calls == calls                                   # reused: nothing scored
  again = teacher.teacher_scores(reranker, negatives, str(output), progress=False,
                                 reranker=fake, overwrite=True)
  assert fake.calls > calls and [r.to_json() for r in _read(output)] == records_before
  assert again["written"] == first["written"] == 3
  assert again["negatives_per_mention"] == pytest.approx((3 + 0 + 2) / 3)   # all kept
  sample = teacher.teacher_scores(reranker, negatives, str(output), progress=False,
                                  reranker=fake, max_mentions=1)
  assert sample["read"] == 1 and [r.mention_id for r in _read(output)] == ["ukwiki:1:0"]


def test_the_command_reports_bad_inputs(fake_run, tmp_path, capsys):
  reranker, negatives, output = fake_run
  assert teacher.main(["--reranker", reranker, "--negatives", str(tmp_path / "none-*"),
                       "--output", str(output)]) == 1
  assert "no hard-negative files match" in capsys.readouterr().err
  (tmp_path / "reranker" / "export" / "manifest.json").write_text(json.dumps(
      {"kind": "F", "step": 1}))
  assert teacher.main(["--reranker", reranker, "--negatives", negatives,
                       "--output", str(output), "--no_progress"]) == 1
  assert "not a reranker" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    teacher.main(["--reranker", reranker, "--negatives", negatives, "--output", str(output),
                  "--per_mention", "-1"])
  assert not output.exists()


# ---------------------------------------------------------------------------------------------
# the mini fixtures: the reranker's own scores, and a distilled round


@pytest.fixture(scope="module")
def mini_teacher(mini_mining, mini_reranker, tmp_path_factory):
  """`mel teacher` with the mini reranker over 48 mentions' negatives: (output, result)."""
  work = tmp_path_factory.mktemp("teacher")
  negatives = work / "negatives-00000-of-00001.tfrecord.gz"
  write_negatives(mini_mining[0], negatives)
  output = work / "teacher"
  result = run_module("mel", "teacher", "--reranker", mini_reranker[0], "--negatives",
                      negatives, "--output", output, "--per_mention", 2, "--max_mentions", 48,
                      "--no_progress")
  assert result.returncode == 0, result.stderr[-3000:]
  return output, result


@pytest.mark.slow
def test_mel_teacher_gives_the_rerankers_own_logits(mini_teacher, mini_reranker):
  from mel import towers
  output, result = mini_teacher
  summary = json.loads((output / "summary.json").read_text())
  assert summary["read"] == 48 and summary["written"] == 48
  assert "48 records read, 48 written" in result.stderr
  scored = _read(output)
  assert [len(r.negative_ids) for r in scored[:4]] == [2, 2, 2, 2]
  texts = dict(entity_table.read(str(ModelDir(str(mini_reranker[0])).entities)))
  reranker = towers.reranker(str(mini_reranker[0]))
  for r in scored[:12]:
    want = reranker.score(r.doc_title, r.left_context, r.mention, r.right_context,
                          [texts[e] for e in (r.entity_id, *r.negative_ids)])
    np.testing.assert_allclose(r.teacher_logits, want, rtol=1e-5, atol=1e-5)
  assert len({r.teacher_logits[0] for r in scored}) > 1   # not a constant scorer


@pytest.mark.slow
def test_a_distilled_round_trains_and_exports(mini_teacher, mini_model, mini_mining,
                                              mini_vocab, tmp_path):
  from test_train import _scalars
  output, _ = mini_teacher
  model_dir = tmp_path / "distilled"
  result = run_module("mel.train", "--config", DEMO_CONFIG, "--model_dir", model_dir,
                      "--params_override", train_overrides(mini_mining[0], mini_vocab, **{
                          "train.init_from_model_dir": mini_model[0], "train.steps": 30,
                          "data.hard_negatives": output / teacher.GLOB,
                          "data.hard_negatives_per_mention": 2,
                          "train.distillation_weight": 1.0,
                          "train.distillation_temperature": 2.0}))
  assert result.returncode == 0, result.stderr[-4000:]
  assert "distilling the teacher's scores of them (weight 1, temperature 2)" in result.stderr
  assert "distillation " in result.stderr.split("step 30/30")[1].split("\n")[0]
  losses = _scalars(str(model_dir), "loss/distillation")
  assert sorted(losses) == [10, 20, 30]
  assert all(math.isfinite(v) and v >= 0 for v in losses.values()), losses
  summary = json.loads((model_dir / "train_summary.json").read_text())
  assert "distillation_loss" in summary["final_metrics"]
  assert ModelDir(str(model_dir)).export_step() == 30
