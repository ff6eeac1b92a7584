"""mel.evaluation.evaluate: frequency bins, R@k, micro vs macro, reports; end to end on the mini model."""
import json
import os
import shutil

import numpy as np
import pytest

from conftest import run_module
from mel.evaluation import evaluate
from mel.evaluation.evaluate import BIN_LABELS, Query, frequency_bin, gold_ranks, recall_report


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
  assert evaluate.recall_at(ranks, 1) == pytest.approx(1 / 5)
  assert evaluate.recall_at(ranks, 2) == pytest.approx(2 / 5)
  assert evaluate.recall_at(ranks, 3) == pytest.approx(2 / 5)
  assert evaluate.recall_at(ranks, 4) == evaluate.recall_at(ranks, 100) == pytest.approx(3 / 5)
  assert evaluate.recall_at(np.zeros(0, np.int64), 1) is None
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

  paths = evaluate.write_report(report, str(tmp_path))
  for key in ("bin_plot", "language_plot"):
    with open(paths[key], "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  saved = json.loads((tmp_path / evaluate.JSON_NAME).read_text(encoding="utf-8"))
  assert saved["dataset"]["spec"] == "test:fake" and saved["k"] == [1, 10]
  assert saved["systems"]["model"]["results"]["micro"]["R@1"] == pytest.approx(1 / 3)
  table = (tmp_path / evaluate.MARKDOWN_NAME).read_text(encoding="utf-8")
  assert "| Bin | Queries | model R@1 | model R@10 | alias table R@1 | alias table R@10 |" in table
  assert "| [0, 1) | 1 | 1.000 | 1.000 | 0.000 | 0.000 |" in table
  assert "| [1, 10) | 0 | – | – | – | – |" in table
  assert "| micro-avg | 3 | 0.333 | 0.667 | 0.333 | 0.333 |" in table
  assert "| macro-avg |  | 0.500 | 0.750 | 0.250 | 0.250 |" in table
  assert "| ja | 1 | 0.000 | 0.000 | 1.000 | 1.000 |" in table
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_evaluation_imports_no_beam_and_no_training_code():
  """What evaluation imports (eagerly or in its functions), in a fresh interpreter."""
  import subprocess
  import sys
  code = ("import sys, mel.evaluation.evaluate, mel.evaluation.alias_table, mel.retrieval.negatives, mel.retrieval.encode, "
          "mel.retrieval.index, mel.records, mel.training.configs, mewsli9.reader, matplotlib, tqdm; "
          "print(sorted(m for m in sys.modules if m.split('.')[0] in "
          "('apache_beam', 'beam_pipelines', 'official', 'tensorflow') or "
          "m.startswith(('mel.training.train', 'mel.modeling', 'mel.training.inputs'))))")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "[]"


def test_k_parsing():
  assert evaluate.parse_ks("100,1,10,1") == [1, 10, 100]
  for bad in ("", "0,1", "a"):
    with pytest.raises(ValueError):
      evaluate.parse_ks(bad)


# ---------------------------------------------------------------------------------------------
# end to end on the mini model


@pytest.fixture(scope="module")
def mini_index(mini_model, tmp_path_factory):
  """Exact index over the mini model's entity encodings (the two CLIs, run in-process)."""
  from mel.retrieval import build_index, encode as encode_entities
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
                      "--name", "F", "--dataset", f"holdout:{pattern}", "--k", "1,5,20",
                      "--output", tmp_path / "eval")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "| micro-avg |" in result.stdout and "| [1, 10) |" in result.stdout
  report = json.loads((tmp_path / "eval" / evaluate.JSON_NAME).read_text(encoding="utf-8"))

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
  alias = report["systems"][evaluate.ALIAS_TABLE]["results"]
  assert alias["micro"]["R@1"] == pytest.approx(hits / len(holdout))
  assert alias["bins"][0]["queries"] > 0
  assert alias["bins"][0]["R@20"] == 0.0   # entities never seen in training: no alias

  # The model: recall grows with k; every gold entity is in the index.
  micro = model["results"]["micro"]
  assert 0 < micro["R@1"] <= micro["R@5"] <= micro["R@20"] <= 1
  assert model["results"]["gold_known_to_system"] == len(holdout)
  for name in (evaluate.BIN_PLOT, evaluate.LANGUAGE_PLOT, evaluate.MARKDOWN_NAME):
    assert (tmp_path / "eval" / name).stat().st_size > 1000


@pytest.mark.slow
def test_an_index_of_another_model_is_refused(mini_model, mini_index, tmp_path):
  other = tmp_path / "index"
  shutil.copytree(mini_index, other)
  manifest = json.loads((other / "manifest.json").read_text())
  manifest["model"]["step"] += 1
  (other / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(ValueError, match="built from another model: its step"):
    evaluate.DualEncoder("F", str(mini_model[0]), str(other))


@pytest.mark.slow
def test_evaluate_on_a_mewsli9_dataset(mini_model, mini_index, mini_mewsli9, tmp_path, capsys):
  """The Mewsli-9 path: the mini dumps extracted in Mewsli-9 format, evaluated in-process."""
  from mewsli9 import reader
  out, _ = mini_mewsli9
  dataset = reader.read_dataset(str(out))
  code = evaluate.main(["--model_dir", str(mini_model[0]), "--index", str(mini_index),
                        "--dataset", f"mewsli9:{out}", "--k", "1,10", "--output",
                        str(tmp_path / "eval")])
  assert code == 0
  report = json.loads((tmp_path / "eval" / evaluate.JSON_NAME).read_text(encoding="utf-8"))
  results = report["systems"][os.path.basename(str(mini_model[0]))]["results"]
  assert results["queries"] == len(dataset.usable_mentions()) == report["dataset"]["queries"]
  assert set(results["languages"]) == {m.lang for m in dataset.mentions}
  assert report["dataset"]["problems"] == {}
  assert "| micro-avg |" in capsys.readouterr().out
  # The dataset's own bins (its freq_bin column) are an option; on a holdout they are refused.
  code = evaluate.main(["--model_dir", str(mini_model[0]), "--index", str(mini_index),
                        "--dataset", f"mewsli9:{out}", "--bins", "dataset", "--no_alias_table",
                        "--output", str(tmp_path / "eval2")])
  report = json.loads((tmp_path / "eval2" / evaluate.JSON_NAME).read_text(encoding="utf-8"))
  assert code == 0 and "freq_bin column" in report["bins"]["source"]
  assert report["bins"]["queries"] == np.bincount([m.freq_bin for m in dataset.usable_mentions()],
                                                  minlength=6).tolist()
