"""mel.evaluation: frequency bins (mel.bins), R@k, micro vs macro, reports, the CLI's flags; end
to end on the mini model."""
import json
import os
import shutil

import numpy as np
import pytest

from conftest import run_module
from mel import flags
from mel.bins import BIN_LABELS, frequency_bin
from mel.evaluation import evaluate, metrics, report as reports
from mel.evaluation.datasets import Query
from mel.evaluation.metrics import gold_ranks, recall_report
from mel.evaluation.systems import ALIAS_TABLE, DualEncoder


@pytest.mark.parametrize("count, expected", [
    (0, 0), (1, 1), (9, 1), (10, 2), (99, 2), (100, 3), (999, 3), (1_000, 4), (9_999, 4),
    (10_000, 5), (10_000_000, 5)])
def test_bin_edges(count, expected):
  assert frequency_bin(count) == expected


def test_negative_counts_are_an_error():
  with pytest.raises(ValueError):
    frequency_bin(-1)


def test_ranks_and_recall_on_hand_made_predictions():
  predictions = [["a", "b", "c"], ["b", "a"], [], ["c", "d", "e", "f"], ["x", "y"]]
  gold = ["a", "a", "a", "f", "q"]
  ranks = gold_ranks(predictions, gold)
  assert ranks.tolist() == [1, 2, 0, 4, 0]
  # Hits: R@1 {0}, R@2 {0, 1}, R@4 and beyond {0, 1, 3}; 5 queries.
  assert metrics.recall_at(ranks, 1) == pytest.approx(1 / 5)
  assert metrics.recall_at(ranks, 2) == pytest.approx(2 / 5)
  assert metrics.recall_at(ranks, 3) == pytest.approx(2 / 5)
  assert metrics.recall_at(ranks, 4) == metrics.recall_at(ranks, 100) == pytest.approx(3 / 5)
  assert metrics.recall_at(np.zeros(0, np.int64), 1) is None
  with pytest.raises(ValueError):
    gold_ranks(predictions, gold[:2])


def unbalanced():
  """11 queries: bin 0 two misses (de); bin 1 eight hits at rank 1 (4 en, 4 ja); bin 3 one
  hit at rank 5 (de). Bins 2, 4, 5 are empty."""
  ranks = [0, 0] + [1] * 8 + [5]
  bins = [0, 0] + [1] * 8 + [3]
  langs = ["de", "de"] + ["en"] * 4 + ["ja"] * 4 + ["de"]
  return np.array(ranks), bins, langs


def test_micro_and_macro_differ_on_an_unbalanced_case():
  report = recall_report(*unbalanced(), ks=[1, 10])
  assert report["queries"] == 11
  # micro: R@1 = 8/11 hits; R@10 = 9/11.
  assert report["micro"]["R@1"] == pytest.approx(8 / 11)
  assert report["micro"]["R@10"] == pytest.approx(9 / 11)
  # macro over the three non-empty bins: R@1 (0 + 1 + 0) / 3; R@10 (0 + 1 + 1) / 3.
  assert report["macro"]["R@1"] == pytest.approx(1 / 3)
  assert report["macro"]["R@10"] == pytest.approx(2 / 3)
  assert [row["queries"] for row in report["bins"]] == [2, 8, 0, 1, 0, 0]
  assert [row["bin"] for row in report["bins"]] == list(BIN_LABELS)
  assert report["bins"][2]["R@1"] is None
  assert report["empty_bins"] == ["[10, 100)", "[1k, 10k)", "[10k, +)"]


def test_per_language_figures():
  report = recall_report(*unbalanced(), ks=[1, 10])
  langs = report["languages"]
  assert {k: v["queries"] for k, v in langs.items()} == {"de": 3, "en": 4, "ja": 4}
  # de: the two bin-0 misses and the rank-5 hit.
  assert langs["de"]["R@1"] == 0.0 and langs["de"]["R@10"] == pytest.approx(1 / 3)
  assert langs["en"]["R@1"] == langs["ja"]["R@1"] == 1.0
  assert report["language_macro"]["R@1"] == pytest.approx(2 / 3)
  assert report["language_macro"]["R@10"] == pytest.approx((1 / 3 + 2) / 3)


class FakeSystem:
  """Answers from a fixed table: query id -> ranked ids."""

  def __init__(self, name, answers):
    self.name, self.answers = name, answers

  def describe(self):
    return {"kind": "fake"}

  def retrieve(self, queries, k):
    return [self.answers.get(q.query_id, [])[:k] for q in queries]

  def known(self, gold):
    return len(gold)


def _queries():
  return [Query(f"q{i}", lang, "T", "left", "m", "right", gold)
          for i, (lang, gold) in enumerate([("de", "Q1"), ("de", "Q2"), ("ja", "Q3")])]


def test_report_files_table_and_plots(tmp_path):
  systems = [FakeSystem("model", {"q0": ["Q1"], "q1": ["Q9", "Q2"], "q2": ["Q8"]}),
             FakeSystem("alias table", {"q0": ["Q9"], "q2": ["Q3"]})]
  dataset = {"kind": "test", "spec": "test:fake"}
  report = evaluate.evaluate(systems, _queries(), dataset, bins=[0, 2, 2], bins_source="test",
                             ks=[1, 10])
  model = report["systems"]["model"]["results"]
  assert model["micro"] == {"R@1": pytest.approx(1 / 3), "R@10": pytest.approx(2 / 3)}
  assert model["macro"]["R@1"] == pytest.approx((1 + 0) / 2)      # bin 0: 1/1; bin 2: 0/2
  alias = report["systems"]["alias table"]["results"]
  assert alias["micro"]["R@1"] == pytest.approx(1 / 3) and alias["no_candidates"] == 1
  assert report["bins"]["queries"] == [1, 0, 2, 0, 0, 0]

  paths = reports.write_report(report, str(tmp_path))
  for key in ("bin_plot", "language_plot"):
    with open(paths[key], "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  saved = json.loads((tmp_path / reports.JSON_NAME).read_text(encoding="utf-8"))
  assert saved["dataset"]["spec"] == "test:fake" and saved["k"] == [1, 10]
  assert saved["systems"]["model"]["results"]["micro"]["R@1"] == pytest.approx(1 / 3)
  table = (tmp_path / reports.MARKDOWN_NAME).read_text(encoding="utf-8")
  assert "| Bin | Queries | model R@1 | model R@10 | alias table R@1 | alias table R@10 |" in table
  assert "| [0, 1) | 1 | 1.000 | 1.000 | 0.000 | 0.000 |" in table
  assert "| [1, 10) | 0 | – | – | – | – |" in table
  assert "| micro-avg | 3 | 0.333 | 0.667 | 0.333 | 0.333 |" in table
  assert "| macro-avg |  | 0.500 | 0.750 | 0.250 | 0.250 |" in table
  assert "| ja | 1 | 0.000 | 0.000 | 1.000 | 1.000 |" in table
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


EVALUATION_MODULES = ("mel.evaluation.evaluate", "mel.evaluation.alias_table",
                      "mel.evaluation.metrics", "mel.evaluation.datasets",
                      "mel.evaluation.systems", "mel.evaluation.report", "mel.evaluation.nil")


def test_evaluation_imports_no_beam_and_no_training_code():
  """What evaluation imports (eagerly, and what its functions import: the index, the towers,
  the model dir, records, the Mewsli-9 reader, matplotlib), in a fresh interpreter."""
  import subprocess
  import sys
  code = ("import sys, " + ", ".join(EVALUATION_MODULES) + ", mel.retrieval, mel.towers, "
          "mel.retrieval.masked, mel.nil_threshold, "
          "mel.model_dir, mel.records, mel.anchors, mewsli9.reader, matplotlib, tqdm; "
          "print(sorted(m for m in sys.modules if m.split('.')[0] in "
          "('apache_beam', 'beam_pipelines', 'official', 'tensorflow') or "
          "m.startswith(('mel.training', 'mel.modeling', 'mel.retrieval.negatives', "
          "'mel.retrieval.encode'))))")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "[]"


def test_evaluation_sources_import_no_training_or_later_stage():
  """Function-level imports too: DualEncoder imports the towers only when it runs."""
  import ast
  import importlib
  banned = ("mel.training", "mel.modeling", "mel.retrieval.negatives", "mel.retrieval.encode",
            "apache_beam", "beam_pipelines", "mel.linking")
  for name in EVALUATION_MODULES:
    with open(importlib.import_module(name).__file__, encoding="utf-8") as f:
      tree = ast.parse(f.read())
    imported = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        imported.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom):
        imported.update(f"{node.module}.{a.name}" for a in node.names)
    assert not [m for m in imported if m.startswith(banned)], (name, sorted(imported))


def test_recall_at_parsing():
  assert flags.parse_cutoffs("100,1,10,1") == [1, 10, 100]
  for bad in ("", "0,1", "a"):
    with pytest.raises(ValueError, match="--recall_at"):
      flags.parse_cutoffs(bad)


@pytest.mark.parametrize("flag, message", [
    (["--recall_at", "1,x"], "--recall_at '1,x': expected comma-separated positive integers"),
    (["--k", "1,10"], "unrecognized arguments: --k"),          # renamed to --recall_at
    (["--batch_size", "0"], "--batch_size must be a positive integer"),
    (["--languages", "bn,BN"], "--languages 'bn,BN': not language codes (lower case, e.g. "
     "bn,mr): BN"),
])
def test_cli_flag_errors_name_the_flag(flag, message, capsys):
  with pytest.raises(SystemExit) as exit:     # argparse's usage error; `mel` returns its code
    evaluate.main(["--dataset", "holdout:nowhere-*", "--no_alias_table"] + flag)
  assert exit.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "nothing"], "--dataset 'nothing': expected holdout:GLOB or mewsli9:DIR"),
    (["--dataset", "holdout:x"], "--mining_dir is required without --model_dir"),
    (["--dataset", "holdout:x", "--mining_dir", "m"], "--output is required without --model_dir"),
    (["--dataset", "holdout:x", "--model_dir", "a", "--index", "i", "--index", "j"],
     "2 --index for 1 --model_dir"),
    (["--dataset", "holdout:x", "--model_dir", "a", "--name", "alias table"],
     "system names must be distinct"),
])
def test_run_errors_name_the_problem(argv, message, capsys):
  assert evaluate.main(argv) == 1
  assert message in capsys.readouterr().err


def test_the_mining_dir_defaults_to_the_model_config(tmp_path, capsys):
  """Without --mining_dir, the model's config.yaml names it (read by mel.model_dir)."""
  (tmp_path / "config.yaml").write_text("data:\n  mining_dir: ''\n", encoding="utf-8")
  assert evaluate.main(["--model_dir", str(tmp_path), "--dataset", "holdout:x"]) == 1
  assert "no data.mining_dir (pass --mining_dir)" in capsys.readouterr().err


def test_languages_keeps_only_their_queries_for_every_system(tmp_path, capsys):
  """--languages bn on a hand-made mining run, alias table only: bn's held-out mentions alone,
  answered from bn's own training anchors where bn saw the string."""
  from conftest import mined_mention, write_mined
  from mel import records
  mining = tmp_path / "mining"
  # "Dhaka" is linked to Q1 twice in en, to Q2 once in bn; "Kyiv" only in uk (Q3).
  write_mined(mining, records.MENTIONS_TRAIN, [
      mined_mention("en", 1, "Q1", "Dhaka"), mined_mention("en", 2, "Q1", "Dhaka"),
      mined_mention("bn", 3, "Q2", "Dhaka"), mined_mention("uk", 4, "Q3", "Kyiv")])
  write_mined(mining, records.MENTIONS_HOLDOUT, [
      mined_mention("bn", 5, "Q2", "Dhaka", split="holdout"),     # bn's own anchor: Q2
      mined_mention("bn", 6, "Q3", "Kyiv", split="holdout"),      # bn never saw it: pooled
      mined_mention("en", 7, "Q1", "Dhaka", split="holdout"),
      mined_mention("uk", 8, "Q3", "Kyiv", split="holdout")])
  (mining / "counts").mkdir()
  (mining / "counts" / "entity_counts-00000-of-00001.tsv").write_text("Q1\t2\nQ2\t1\nQ3\t1\n")
  holdout = f"holdout:{mining}/mentions/holdout-*.tfrecord.gz"
  argv = ["--mining_dir", str(mining), "--dataset", holdout, "--recall_at", "1,10",
          "--output", str(tmp_path / "eval"), "--no_progress"]
  assert evaluate.main(argv + ["--languages", "bn"]) == 0
  out = capsys.readouterr().out
  report = json.loads((tmp_path / "eval" / reports.JSON_NAME).read_text(encoding="utf-8"))
  assert report["dataset"]["languages"] == report["dataset"]["language_filter"] == ["bn"]
  assert report["dataset"]["queries"] == 2 and report["dataset"]["queries_all_languages"] == 4
  alias = report["systems"][ALIAS_TABLE]["results"]
  assert alias["queries"] == 2 and list(alias["languages"]) == ["bn"]
  assert alias["micro"]["R@1"] == 1.0          # pooled, "Dhaka" would be Q1 (2 en anchors)
  assert "Languages: only bn (--languages; 2 of the dataset's 4 queries)" in out
  assert "query language's own training anchors" in out
  assert "| bn | 2 |" in (tmp_path / "eval" / reports.MARKDOWN_NAME).read_text(encoding="utf-8")

  assert evaluate.main(argv) == 0                 # all languages: no filter recorded
  report = json.loads((tmp_path / "eval" / reports.JSON_NAME).read_text(encoding="utf-8"))
  assert report["dataset"]["languages"] == ["bn", "en", "uk"]
  assert "language_filter" not in report["dataset"] and "Languages: only" not in \
      capsys.readouterr().out
  assert evaluate.main(argv + ["--languages", "bn,mr"]) == 1
  assert "has no queries in mr (it has bn, en, uk)" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# end to end on the mini model


@pytest.fixture(scope="module")
def mini_index(mini_model, tmp_path_factory):
  """Exact index over the mini model's entity encodings (the two CLIs, run in-process)."""
  from mel.retrieval import build_index, encode as encode_entities   # the fixture builds one
  model_dir, _ = mini_model
  root = tmp_path_factory.mktemp("eval_index")
  assert encode_entities.main(["--model_dir", str(model_dir), "--output",
                               str(root / "embeddings")]) == 0
  assert build_index.main(["--embeddings", str(root / "embeddings"), "--output",
                           str(root / "index"), "--kind", "brute_force"]) == 0
  return root / "index"


@pytest.mark.slow
def test_evaluate_cli_on_the_mini_holdout(mini_model, mini_mining, mini_index, tmp_path):
  from mel import records
  from mel.evaluation.alias_table import AliasTable
  model_dir, mining = mini_model[0], str(mini_mining[0])
  pattern = f"{mining}/mentions/holdout-*.tfrecord.gz"
  result = run_module("mel", "evaluate", "--model_dir", model_dir, "--index", mini_index,
                      "--name", "F", "--dataset", f"holdout:{pattern}", "--recall_at", "1,5,20",
                      "--output", tmp_path / "eval")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| micro-avg |" in result.stdout and "| [1, 10) |" in result.stdout
  report = json.loads((tmp_path / "eval" / reports.JSON_NAME).read_text(encoding="utf-8"))

  # Which model, index and data produced the figures.
  model = report["systems"]["F"]
  assert model["model_dir"] == os.path.abspath(model_dir) and model["model_step"] == 120
  assert model["index"] == os.path.abspath(mini_index) and model["model_kind"] == "F"
  assert report["dataset"]["spec"] == f"holdout:{pattern}"
  assert [f["path"] for f in report["dataset"]["files"]] == sorted(
      os.path.abspath(p) for p in __import__("glob").glob(pattern))
  assert all(len(f["sha256"]) == 64 for f in report["dataset"]["files"])

  # Queries and bins, recomputed here from the records (not from the counts file).
  holdout = list(records.read_output(mining, records.MENTIONS_HOLDOUT))
  trained = {e.entity_id: e.mention_count for e in records.read_output(mining, records.ENTITIES)}
  expected_bins = np.bincount([frequency_bin(trained.get(m.entity_id, 0)) for m in holdout],
                              minlength=6)
  assert report["bins"]["queries"] == expected_bins.tolist()
  assert model["results"]["queries"] == len(holdout) > 100
  assert sum(row["queries"] for row in model["results"]["bins"]) == len(holdout)

  # The alias table's R@1, recomputed with a plain loop.
  table = AliasTable.from_mining(mining)
  hits = sum(table.candidates(m.mention, 1, m.lang) == [m.entity_id] for m in holdout)
  alias = report["systems"][ALIAS_TABLE]["results"]
  assert alias["micro"]["R@1"] == pytest.approx(hits / len(holdout))
  assert alias["bins"][0]["queries"] > 0
  assert alias["bins"][0]["R@20"] == 0.0   # entities never seen in training: no alias

  # The model: recall grows with k; every gold entity is in the index.
  micro = model["results"]["micro"]
  assert 0 < micro["R@1"] <= micro["R@5"] <= micro["R@20"] <= 1
  assert model["results"]["gold_known_to_system"] == len(holdout)
  for name in (reports.BIN_PLOT, reports.LANGUAGE_PLOT, reports.MARKDOWN_NAME):
    assert (tmp_path / "eval" / name).stat().st_size > 1000


@pytest.mark.slow
def test_an_index_of_another_model_is_refused(mini_model, mini_index, tmp_path):
  other = tmp_path / "index"
  shutil.copytree(mini_index, other)
  manifest = json.loads((other / "manifest.json").read_text())
  manifest["model"]["step"] += 1
  (other / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(ValueError, match="built from another model: its step"):
    DualEncoder("F", str(mini_model[0]), str(other))


@pytest.mark.slow
def test_evaluate_on_a_mewsli9_dataset(mini_model, mini_index, mini_mewsli9, tmp_path, capsys):
  """The Mewsli-9 path: the mini dumps extracted in Mewsli-9 format, evaluated in-process."""
  from mewsli9 import reader
  out, _ = mini_mewsli9
  dataset = reader.read_dataset(str(out))
  code = evaluate.main(["--model_dir", str(mini_model[0]), "--index", str(mini_index),
                        "--dataset", f"mewsli9:{out}", "--recall_at", "1,10", "--output",
                        str(tmp_path / "eval")])
  assert code == 0
  report = json.loads((tmp_path / "eval" / reports.JSON_NAME).read_text(encoding="utf-8"))
  results = report["systems"][os.path.basename(str(mini_model[0]))]["results"]
  assert results["queries"] == len(dataset.usable_mentions()) == report["dataset"]["queries"]
  assert set(results["languages"]) == {m.lang for m in dataset.mentions}
  assert report["dataset"]["problems"] == {}
  assert "| micro-avg |" in capsys.readouterr().out
  # The dataset's own bins (its freq_bin column) are an option; on a holdout they are refused.
  code = evaluate.main(["--model_dir", str(mini_model[0]), "--index", str(mini_index),
                        "--dataset", f"mewsli9:{out}", "--bins", "dataset", "--no_alias_table", "--no_progress",
                        "--output", str(tmp_path / "eval2")])
  report = json.loads((tmp_path / "eval2" / reports.JSON_NAME).read_text(encoding="utf-8"))
  assert code == 0 and "freq_bin column" in report["bins"]["source"]
  assert report["bins"]["queries"] == np.bincount([m.freq_bin for m in dataset.usable_mentions()],
                                                  minlength=6).tolist()


@pytest.mark.slow
def test_evaluate_nil_and_save_threshold_on_the_mini_holdout(mini_model, mini_mining,
                                                            mini_index, tmp_path):
  """`mel evaluate --nil_fraction 0.5 --save_threshold` on a copy of the mini model's export
  and entity table (nil.json goes into the model dir; the shared fixture stays as it is) with
  the exact index above."""
  from mel import nil_threshold
  from mel.evaluation import nil
  source, mining = mini_model[0], str(mini_mining[0])
  model = tmp_path / "model"
  shutil.copytree(source / "export", model / "export")
  shutil.copy(source / "entities.tsv", model / "entities.tsv")
  pattern = f"{mining}/mentions/holdout-*.tfrecord.gz"
  argv = ["--model_dir", str(model), "--index", str(mini_index), "--name", "F", "--mining_dir",
          mining, "--dataset", f"holdout:{pattern}", "--recall_at", "1,10", "--output",
          str(tmp_path / "eval"), "--no_progress"]
  assert evaluate.main(argv + ["--save_threshold"]) == 1   # without --nil_fraction
  assert not (model / "nil.json").exists()
  result = run_module("mel", "evaluate", *argv, "--nil_fraction", "0.5", "--nil_seed", "3",
                      "--save_threshold")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "NIL (--nil_fraction 0.5, --nil_seed 3)" in result.stdout
  assert f"{ALIAS_TABLE}: not in the NIL figures; it has no scores" in result.stdout
  report = json.loads((tmp_path / "eval" / reports.JSON_NAME).read_text(encoding="utf-8"))
  facts, section = report["nil"], report["systems"]["F"]["nil"]
  assert facts["systems"] == ["F"] and list(facts["skipped"]) == [ALIAS_TABLE]
  assert "nil" not in report["systems"][ALIAS_TABLE]

  # removal and split, recomputed from the records
  from mel import records
  holdout = list(records.read_output(mining, records.MENTIONS_HOLDOUT))
  golds = {m.entity_id for m in holdout}
  removed = set(nil.removed_entities(golds, 0.5, 3))   # every gold is in the index
  assert facts["gold_entities"] == facts["gold_entities_in_every_index"] == len(golds)
  assert facts["removed_entities"] == len(removed) == int(0.5 * len(golds) + 0.5)
  assert facts["queries_of_removed_entities"] == sum(m.entity_id in removed for m in holdout)
  assert (facts["calibration_queries"], facts["test_queries"]) == (
      (len(holdout) + 1) // 2, len(holdout) // 2)
  test = section["test"]
  assert test["queries"] == len(holdout) // 2 and 0 < test["out_of_kb"] < test["queries"]
  assert section["out_of_kb_removed"] == facts["queries_of_removed_entities"]
  for row in [test, section["calibration"]] + section["curve"]:
    assert all(row[k] is None or 0 <= row[k] <= 1 for k in (
        "accuracy", "nil_precision", "nil_recall", "linking_precision", "coverage"))
  assert len(section["curve"]) >= 21 and section["threshold"] in [
      r["threshold"] for r in section["curve"]]
  assert (tmp_path / "eval" / reports.NIL_PLOT).stat().st_size > 1000

  chosen = nil_threshold.read(str(model), json.loads(
      (model / "export" / "manifest.json").read_text()))
  assert chosen["threshold"] == section["threshold"] and chosen["test"] == test
  assert chosen["chosen_on"]["dataset"] == f"holdout:{pattern}"
  assert chosen["chosen_on"]["index"] == os.path.abspath(mini_index)
  assert chosen["model"]["step"] == 120
  print(f"mini model NIL: threshold {section['threshold']:.3f}, test {test}")
