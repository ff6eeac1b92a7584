"""`mel rounds`: round 0, then hard-negative rounds, each stage its own `mel <stage>` command."""
import json
import os

import pytest

from conftest import DEMO_CONFIG, run_module, train_overrides
from mel.training import configs, rounds

CONFIG = str(DEMO_CONFIG)


def _config(**overrides):
  values = ",".join(f"{k}={v}" for k, v in overrides.items())
  return configs.load(CONFIG, values)


def test_plan_chains_the_rounds(tmp_path):
  config = _config(**{"rounds.count": 2, "rounds.steps": 50, "rounds.top_k": 30,
                      "data.mining_dir": "M"})
  work = str(tmp_path)
  stages = rounds.plan(CONFIG, work, config, "data.mining_dir=M", tpu="local")
  modules = [module for _, module, _ in stages]
  one_round = ["encode", "index", "negatives", "train"]
  assert modules == ["train"] + one_round * 2 + ["encode", "index"]
  args = {i: dict(zip(a[::2], a[1::2])) for i, (_, _, a) in enumerate(stages)}
  assert args[0]["--model_dir"] == f"{work}/round0"
  assert args[0]["--params_override"] == "data.mining_dir=M" and args[0]["--tpu"] == "local"
  # Encoding and indexing write into the model dir (its embeddings/ and index/).
  assert stages[5][2] == ["--model_dir", f"{work}/round1"]
  assert stages[6][2] == ["--model_dir", f"{work}/round1", "--kind", "scann"]
  # Round 2 mines with round 1's model (and so its index), then trains from round 1 on those
  # negatives.
  assert args[7]["--model_dir"] == f"{work}/round1" and "--index" not in args[7]
  assert args[7]["--output"] == f"{work}/negatives_round2" and args[7]["--top_k"] == "30"
  assert (args[7]["--mining_dir"], args[7]["--ratio"], args[7]["--max_per_mention"],
          args[7]["--max_mentions"]) == ("M", "10", "10", "0")
  assert args[8]["--model_dir"] == f"{work}/round2"
  assert args[8]["--params_override"] == (
      f"data.mining_dir=M,train.steps=50,train.init_from_model_dir={work}/round1,"
      f"data.hard_negatives={work}/negatives_round2/negatives-*.tfrecord.gz")
  assert stages[10][2] == ["--model_dir", f"{work}/round2", "--kind", "scann"]


def test_no_rounds_is_round_0_and_its_index():
  stages = rounds.plan(CONFIG, "W", _config(**{"rounds.count": 0}), "")
  assert [module for _, module, _ in stages] == ["train", "encode", "index"]
  assert "--params_override" not in stages[0][2]


def test_distill_from_adds_negatives_teacher_and_a_distilled_round(tmp_path):
  config = _config(**{"rounds.count": 1, "rounds.steps": 50, "rounds.distill_from": "CA",
                      "rounds.distill_steps": 30, "data.hard_negatives_per_mention": 3,
                      "data.mining_dir": "M"})
  work = str(tmp_path)
  stages = rounds.plan(CONFIG, work, config, "data.mining_dir=M")
  modules = [module for _, module, _ in stages]
  assert modules == (["train", "encode", "index", "negatives", "train", "encode", "index"]
                     + ["negatives", "teacher", "train", "encode", "index"])
  args = {i: dict(zip(a[::2], a[1::2])) for i, (_, _, a) in enumerate(stages)}
  # The last round's own negatives (what a next round would mine), then the teacher's scores.
  assert args[7]["--model_dir"] == f"{work}/round1"
  assert args[7]["--output"] == f"{work}/negatives_round2"
  assert args[8] == {"--reranker": "CA",
                     "--negatives": f"{work}/negatives_round2/negatives-*.tfrecord.gz",
                     "--output": f"{work}/teacher_round1", "--per_mention": "3"}
  assert args[9]["--model_dir"] == f"{work}/round1_distilled"
  assert args[9]["--params_override"] == (
      f"data.mining_dir=M,train.steps=30,train.init_from_model_dir={work}/round1,"
      f"data.hard_negatives={work}/teacher_round1/teacher-*.tfrecord.gz,"
      "train.distillation_weight=1.0")
  assert stages[11][2] == ["--model_dir", f"{work}/round1_distilled", "--kind", "scann"]
  # The distilled round's overrides give a valid config: distillation from the teacher records.
  distilled = configs.load(CONFIG, args[9]["--params_override"])
  assert distilled.train.distillation_weight == 1.0 and distilled.train.steps == 30
  # A configured weight is used there, and the rounds before train without distillation.
  weighted = rounds.plan(CONFIG, work, config, "data.mining_dir=M", weight=0.25)
  assert weighted[9][2][-1].endswith(",train.distillation_weight=0.25")
  assert dict(zip(weighted[0][2][::2], weighted[0][2][1::2]))["--params_override"] == (
      "data.mining_dir=M,train.distillation_weight=0")
  assert "train.distillation_weight=0" in weighted[4][2][-1]
  # rounds.distill_steps 0: rounds.steps.
  config.rounds.distill_steps = 0
  assert "train.steps=50," in rounds.plan(CONFIG, work, config, "")[9][2][-1]


def test_a_configured_weight_is_read_apart_and_a_missing_reranker_stops_the_run(tmp_path):
  yaml_path = tmp_path / "c.yaml"
  yaml_path.write_text(open(CONFIG, encoding="utf-8").read()
                       + "\n# distillation\n")
  assert rounds.distillation_weight(str(yaml_path), "train.distillation_weight=0.5") == 0.5
  assert rounds.distillation_weight(str(yaml_path)) == 0.0
  with pytest.raises(configs.ConfigError, match="rounds.distill_from: .*not found"):
    rounds.run(str(yaml_path), str(tmp_path / "w"),
               f"rounds.distill_from={tmp_path}/none,train.distillation_weight=0.5")
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("override, message", [
    ("rounds.count=-1", "rounds.count must be >= 0"),
    ("rounds.top_k=0", "rounds.steps, rounds.top_k"),
    ("rounds.index_kind=faiss", "rounds.index_kind must be scann or brute_force"),
    ("rounds.count=1,data.hard_negatives_per_mention=0", "needs data.hard_negatives_per_mention"),
])
def test_bad_rounds_configs_are_refused(override, message):
  with pytest.raises(configs.ConfigError, match=message):
    configs.load(CONFIG, override)


def test_a_failing_stage_stops_the_chain_with_its_name(tmp_path):
  result = run_module("mel", "rounds", "--config", CONFIG, "--output", tmp_path / "w",
                      "--params_override", f"data.mining_dir={tmp_path}/none,"
                      f"data.vocab={tmp_path}/none.txt")
  assert result.returncode == 1
  assert "round 0: training from the config: `mel train` exited with status 1" in \
      result.stderr
  assert not (tmp_path / "w" / "round0" / "embeddings").exists()


@pytest.mark.slow
def test_one_hard_negative_round_on_the_mini_dumps(mini_mining, mini_vocab, tmp_path):
  work = tmp_path / "f_plus"
  overrides = train_overrides(mini_mining[0], mini_vocab, **{
      "train.steps": 40, "train.checkpoint_every": 20, "rounds.count": 1,
      "rounds.steps": 20, "rounds.top_k": 20, "data.hard_negatives_per_mention": 2})
  result = run_module("mel", "rounds", "--config", CONFIG, "--output", work,
                      "--params_override", overrides)
  assert result.returncode == 0, result.stderr[-4000:]
  round0, round1 = work / "round0", work / "round1"
  assert json.loads((round0 / "train_summary.json").read_text())["step"] == 40
  summary = json.loads((work / "negatives_round1" / "summary.json").read_text())
  assert summary["inputs"]["model_dir"] == str(round0) and summary["inputs"]["top_k"] == 20
  assert summary["negatives"] > 0
  assert f"initialised from weights of {round0}/checkpoints/ckpt-40" in result.stderr
  assert "2 hard negatives per mention" in result.stderr
  round1_config = configs.load(str(round1 / "config.yaml"))
  assert round1_config.train.steps == 20
  assert round1_config.train.init_from_model_dir == str(round0)
  assert json.loads((round1 / "train_summary.json").read_text())["step"] == 20
  index = json.loads((round1 / "index" / "manifest.json").read_text())
  assert index["model"]["model_dir"] == str(round1) and index["model"]["step"] == 20

  # The same command again: every stage finds its work done.
  index_mtime = os.path.getmtime(round1 / "index" / "manifest.json")
  again = run_module("mel", "rounds", "--config", CONFIG, "--output", work,
                     "--params_override", overrides)
  assert again.returncode == 0, again.stderr[-4000:]
  assert again.stderr.count("nothing to train") == 2
  assert "already holds this round; reused" in again.stderr
  assert again.stdout.count("reused (--overwrite rebuilds it)") == 2
  assert os.path.getmtime(round1 / "index" / "manifest.json") == index_mtime


@pytest.mark.slow
def test_a_distilled_round_after_round_0_on_the_mini_dumps(mini_mining, mini_vocab,
                                                          mini_reranker, tmp_path):
  work = tmp_path / "distilled"
  overrides = train_overrides(mini_mining[0], mini_vocab, **{
      "train.steps": 20, "train.checkpoint_every": 20, "rounds.count": 0,
      "rounds.top_k": 10, "rounds.max_mentions": 64, "rounds.distill_from": mini_reranker[0],
      "rounds.distill_steps": 20, "data.hard_negatives_per_mention": 2,
      "rounds.index_kind": "brute_force"})
  result = run_module("mel", "rounds", "--config", CONFIG, "--output", work,
                      "--params_override", overrides)
  assert result.returncode == 0, result.stderr[-4000:]
  assert "train.distillation_weight is 0: the distilled round uses 1.0" in result.stderr
  teacher = json.loads((work / "teacher_round0" / "summary.json").read_text())
  assert teacher["written"] == 64 and teacher["inputs"]["per_mention"] == 2
  distilled = work / "round0_distilled"
  config = configs.load(str(distilled / "config.yaml"))
  assert config.train.distillation_weight == 1.0
  assert config.train.init_from_model_dir == str(work / "round0")
  summary = json.loads((distilled / "train_summary.json").read_text())
  assert summary["step"] == 20 and "distillation_loss" in summary["final_metrics"]
  assert (distilled / "index" / "manifest.json").exists()
  again = run_module("mel", "rounds", "--config", CONFIG, "--output", work,
                     "--params_override", overrides)
  assert again.returncode == 0, again.stderr[-4000:]
  assert again.stderr.count("nothing to train") == 2
  assert "already holds these scores; reused" in again.stderr
