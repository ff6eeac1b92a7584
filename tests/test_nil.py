"""NIL: the threshold chosen on held-out queries (mel.evaluation.nil), worked by hand; the removed
entities and the calibration half; nil.json (mel.nil_threshold); `mel evaluate --nil_fraction`
on fake systems (end to end on the mini model: tests/test_evaluate.py)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mel import nil_threshold
from mel.anchors import AnchorCounts
from mel.evaluation import evaluate, nil, report as reports
from mel.evaluation.datasets import Query
from mel.evaluation.systems import full_top1_without, top1_without
from mel.retrieval import BruteForceIndex

INF = float("inf")

# Six calibration queries, best cosine first:
#   a 0.9 in-KB, top-1 right      b 0.8 in-KB, top-1 wrong     c 0.7 out-of-KB
#   d 0.6 in-KB, top-1 right      e 0.5 out-of-KB              f no candidate, out-of-KB
COSINES = [0.9, 0.8, 0.7, 0.6, 0.5, -INF]
CORRECT = [True, False, False, True, False, False]
IN_KB = [True, True, False, True, False, False]


def test_the_threshold_with_the_best_accuracy_ties_to_the_lowest():
  # accuracy = (right among cosine >= u) + (out-of-KB below u), per cut u:
  #   u=0.5: {a, d} + {f} = 3      u=0.6: {a, d} + {e, f} = 4     u=0.7: {a} + {e, f} = 3
  #   u=0.8: {a} + {c, e, f} = 4   u=0.9: {a} + {c, e, f} = 4     none: {c, e, f} = 3
  # Three cuts reach 4/6; the lowest (0.6) links the most. Its threshold is the midpoint to the
  # next lower cosine: (0.5 + 0.6) / 2.
  threshold, accuracy = nil.choose_threshold(COSINES, CORRECT, IN_KB)
  assert threshold == pytest.approx(0.55) and accuracy == pytest.approx(4 / 6)


def test_the_lowest_and_the_link_none_cuts():
  # every query right: link all, at the lowest cosine itself (nothing lower to go half-way to)
  assert nil.choose_threshold([0.3, 0.7], [True, True], [True, True]) == (0.3, 1.0)
  # every query out-of-KB: link none, just above the highest cosine
  threshold, accuracy = nil.choose_threshold([0.3, 0.4], [False, False], [False, False])
  assert threshold == pytest.approx(0.4 + nil.NONE_MARGIN) and accuracy == 1.0
  with pytest.raises(ValueError, match="no calibration query has a candidate"):
    nil.choose_threshold([-INF], [False], [False])


def test_figures_at_a_threshold():
  # At 0.55: linked a, b, c, d; abstained e, f (both out-of-KB).
  f = nil.figures(COSINES, CORRECT, IN_KB, 0.55)
  assert (f["queries"], f["in_kb"], f["out_of_kb"], f["linked"], f["abstained"]) == (6, 3, 3, 4, 2)
  assert f["accuracy"] == pytest.approx(4 / 6)          # right {a, d} + abstained out {e, f}
  assert f["nil_precision"] == 1.0                      # e, f of the abstained e, f
  assert f["nil_recall"] == pytest.approx(2 / 3)        # c (0.7) was linked
  assert f["linking_precision"] == pytest.approx(2 / 4)  # a, d of a, b, c, d
  assert f["coverage"] == 1.0                           # a, b, d: every in-KB query linked
  # a query without candidates is never linked, whatever the threshold
  lowest = nil.figures(COSINES, CORRECT, IN_KB, -1.0)
  assert lowest["abstained"] == 1 and lowest["nil_precision"] == 1.0
  # nothing linked, nothing abstained, no out-of-KB: None, not a division by zero
  none = nil.figures(COSINES, CORRECT, IN_KB, 2.0)
  assert none["linking_precision"] is None and none["coverage"] == 0.0
  assert none["accuracy"] == pytest.approx(3 / 6)
  all_linked = nil.figures([0.9, 0.4], [True, False], [True, True], 0.0)
  assert all_linked["nil_precision"] is None and all_linked["nil_recall"] is None


def test_the_section_chooses_on_calibration_and_reports_on_test():
  # Two test queries either side of the chosen 0.55: g 0.56 in-KB right, h 0.54 out-of-KB. The
  # midpoint links g and abstains h: every test figure is 1 (the cut's own 0.6 would miss g).
  cosines = COSINES + [0.56, 0.54]
  correct = CORRECT + [True, False]
  in_kb = IN_KB + [True, False]
  calibration = [True] * 6 + [False] * 2
  section = nil.nil_section(cosines, correct, in_kb, calibration, points=3)
  assert section["threshold"] == pytest.approx(0.55) and section["tie_rule"] == nil.TIE_RULE
  assert section["calibration"]["accuracy"] == pytest.approx(4 / 6)
  test = section["test"]
  assert (test["queries"], test["linked"], test["abstained"]) == (2, 1, 1)
  assert all(test[key] == 1.0 for key in ("accuracy", "nil_precision", "nil_recall",
                                           "linking_precision", "coverage"))
  # the curve: 3 points across the test cosines [0.54, 0.56], and the chosen threshold
  thresholds = [row["threshold"] for row in section["curve"]]
  assert thresholds == sorted(thresholds) and section["threshold"] in thresholds
  assert thresholds[0] == 0.54 and thresholds[-1] == 0.56 and len(thresholds) in (3, 4)
  assert section["curve"][0]["linked"] == 2 and section["curve"][-1]["linked"] == 1
  with pytest.raises(ValueError, match="differ in length"):
    nil.nil_section(cosines, correct, in_kb, calibration[:-1])
  with pytest.raises(ValueError, match="correct whose gold is not in the index"):
    nil.nil_section([0.9], [True], [False], [True])


def test_removed_entities_are_drawn_by_seed_and_id():
  ids = ["Q1", "Q2", "Q3", "Q4", "Q5"]
  # sha256 of "seed<TAB>entity<TAB>id": fixed on every machine and in every process
  assert nil.removed_entities(ids, 0.5, seed=0) == ["Q2", "Q4", "Q5"]    # 2.5 rounds up to 3
  assert nil.removed_entities(ids, 0.4, seed=0) == ["Q4", "Q5"]          # the first two drawn
  assert nil.removed_entities(ids, 0.5, seed=1) == ["Q2", "Q3", "Q4"]
  assert nil.removed_entities(ids[::-1] + ids, 0.5, seed=0) == ["Q2", "Q4", "Q5"]
  assert nil.removed_entities(ids, 0.0, seed=0) == []
  with pytest.raises(ValueError, match=r"in \[0, 1\]"):
    nil.removed_entities(ids, 1.5, seed=0)
  code = ("from mel.evaluation import nil; "
          "print(nil.removed_entities(['Q1', 'Q2', 'Q3', 'Q4', 'Q5'], 0.5, 0))")
  for hash_seed in ("1", "2"):   # not Python's salted hash()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONHASHSEED": hash_seed})
    assert out.stdout.strip() == "['Q2', 'Q4', 'Q5']", out.stderr


def test_the_calibration_half_is_drawn_by_query_id():
  ids = [f"q{i}" for i in range(6)]
  assert nil.calibration_half(ids, seed=0).tolist() == [True, False, False, True, False, True]
  assert nil.calibration_half(ids, seed=1).tolist() == [False, True, False, True, False, True]
  # the same queries are in it whatever their order
  order = [4, 1, 5, 0, 3, 2]
  assert nil.calibration_half([ids[i] for i in order], 0).tolist() == \
      [nil.calibration_half(ids, 0)[i] for i in order]
  assert nil.calibration_half(ids[:5], 0).sum() == 3    # odd counts round up
  assert nil.calibration_half([], 0).tolist() == []


def test_top1_without_never_returns_a_removed_entity():
  eye = np.eye(3, dtype=np.float32)
  index = BruteForceIndex.build(["E0", "E1", "E2"], eye)
  queries = np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, -1]], np.float32)
  assert index.search_ids(queries[:1], 1)[0] == [["E0"]]
  ids, cosines = top1_without(index, queries, dead_rows=[0])
  # query 0 was nearest E0 (cosine 1): without it, E1 at 0.5; query 2 is opposite to E2 and
  # orthogonal to E1: the tie at cosine 0 goes to the lower row (mel.retrieval.select_top_k)
  assert ids == ["E1", "E1", "E1"]
  assert cosines.tolist() == pytest.approx([0.5, 1.0, 0.0])
  gone = top1_without(index, queries, dead_rows=[0, 1, 2])
  assert gone[0] == [None, None, None] and np.isneginf(gone[1]).all()


# ---------------------------------------------------------------------------------------------
# nil.json


def _export(tmp_path, step=120):
  (tmp_path / "export").mkdir(exist_ok=True)
  manifest = {"kind": "F", "step": step, "embedding_dim": 8, "entity_input": "description"}
  (tmp_path / "export" / "manifest.json").write_text(json.dumps(manifest))
  return manifest


def test_nil_json_round_trip(tmp_path):
  export = _export(tmp_path)
  assert nil_threshold.read(str(tmp_path), export) is None   # absent
  chosen_on = {"dataset": "holdout:x", "queries": 8, "calibration_queries": 4,
               "nil_fraction": 0.5, "seed": 0}
  path = nil_threshold.write(str(tmp_path), export, 0.55, chosen_on, {"accuracy": 1.0},
                             [{"threshold": 0.5}])
  assert path == str(tmp_path / "nil.json") and not [p for p in os.listdir(tmp_path)
                                                      if ".tmp-" in p]
  content = nil_threshold.read(str(tmp_path), export)
  assert content["format"] == "mel-nil/1" and content["threshold"] == 0.55
  assert content["score"] == "cosine" and content["chosen_on"] == chosen_on
  assert content["model"] == {"kind": "F", "step": 120, "embedding_dim": 8}
  assert content["test"] == {"accuracy": 1.0} and content["curve"] == [{"threshold": 0.5}]
  assert nil_threshold.describe(content) == ("nil.json chosen on holdout:x (4 calibration "
                                             "queries, nil_fraction 0.5, seed 0)")
  with pytest.raises(ValueError, match="not a finite number"):
    nil_threshold.write(str(tmp_path), export, float("nan"), chosen_on, {}, [])


def test_a_threshold_of_another_export_is_stale(tmp_path):
  export = _export(tmp_path)
  nil_threshold.write(str(tmp_path), export, 0.55, {"dataset": "d"}, {}, [])
  with pytest.warns(nil_threshold.StaleThresholdWarning,
                    match=r"nil.json is stale: .*step 120 -> 240.*mel evaluate"):
    assert nil_threshold.read(str(tmp_path), {**export, "step": 240}) is None


@pytest.mark.parametrize("text, message", [
    ("{not json", "unreadable"),
    ('["mel-nil/1"]', "format 'list', expected 'mel-nil/1'"),
    ('{"format": "mel-nil/0", "threshold": 0.5}', "format 'mel-nil/0'"),
    ('{"format": "mel-nil/1", "threshold": "0.5", "model": {}}', "threshold '0.5' is not"),
    ('{"format": "mel-nil/1", "threshold": NaN, "model": {}}', "threshold nan is not"),
    ('{"format": "mel-nil/1", "threshold": 0.5}', "no 'model' object"),
    ('{"format": "mel-nil/1", "threshold": 0.5, "score": "score", "model": {}}',
     "a threshold on 'score'"),
])
def test_a_malformed_nil_json_is_an_error_naming_it(tmp_path, text, message):
  export = _export(tmp_path)
  (tmp_path / "nil.json").write_text(text)
  with pytest.raises(ValueError, match=rf"nil.json: .*{message}"):
    nil_threshold.read(str(tmp_path), export)


# ---------------------------------------------------------------------------------------------
# `mel evaluate --nil_fraction` on fake systems

DIM = 4
ENTITY_IDS = ["E0", "E1", "E2", "E3"]


class FakeDualEncoder:
  """A scored system: fixed query vectors by mention text, an exact index over unit vectors."""

  def __init__(self, name, model_dir="", index_path=""):
    self.name, self.model_dir, self.index_path = name, model_dir, index_path
    self.index = BruteForceIndex.build(ENTITY_IDS, np.eye(DIM, dtype=np.float32))
    self.encoded = 0

  def describe(self):
    return {"kind": "dual_encoder"}

  def encode(self, queries):
    """Mention "E1" -> E1's vector; "E1~E2" -> 0.8 E1 + 0.6 E2: nearest E1 (cosine 0.8),
    and E2 (0.6) once E1 is removed."""
    self.encoded += 1
    out = np.zeros((len(queries), DIM), np.float32)
    for row, q in enumerate(queries):
      first, _, second = q.mention.partition("~")
      out[row, ENTITY_IDS.index(first)] = 0.8 if second else 1.0
      if second:
        out[row, ENTITY_IDS.index(second)] = 0.6
    return out

  def search(self, vectors, k):
    return self.index.search_ids(vectors, k)[0]

  def retrieve(self, queries, k):
    return self.search(self.encode(queries), k)

  def known(self, gold):
    return sum(g in ENTITY_IDS for g in gold)


class FakeAliasTable:
  name = "alias table"

  def describe(self):
    return {"kind": "alias_table"}

  def retrieve(self, queries, k):
    return [[q.gold] for q in queries]

  def known(self, gold):
    return len(gold)


def _queries():
  """Eight queries: two per entity E0..E3, the second of each a near miss (0.8 / 0.6)."""
  rows = [("E0", "E0"), ("E0", "E0~E1"), ("E1", "E1"), ("E1", "E1~E2"), ("E2", "E2"),
          ("E2", "E2~E3"), ("E3", "E3"), ("E3", "E3~E0")]
  return [Query(f"q{i}", "en", "T", "", mention, "", gold)
          for i, (gold, mention) in enumerate(rows)]


def test_evaluate_adds_the_nil_sections(tmp_path):
  queries = _queries()
  system = FakeDualEncoder("model")
  anchors = AnchorCounts.from_mentions([(q.lang, q.mention, q.gold) for q in queries])
  report = evaluate.evaluate([system, FakeAliasTable()], queries, {"spec": "test:fake"},
                             bins=[0] * 8, bins_source="test", ks=[1], nil_fraction=0.5,
                             nil_seed=0, anchors=anchors)
  assert system.encoded == 1   # one tower pass for the recall and the NIL search
  facts = report["nil"]
  removed = nil.removed_entities(ENTITY_IDS, 0.5, 0)
  assert facts["removed_entities"] == 2 and facts["removed_examples"] == removed
  assert facts["queries_of_removed_entities"] == 4
  assert facts["systems"] == ["model"] and "alias table" in facts["skipped"]
  assert (facts["calibration_queries"], facts["test_queries"]) == (4, 4)
  assert "nil" not in report["systems"]["alias table"]
  # the same figures as the pure functions, on the top-1 searched without the removed entities
  section = report["systems"]["model"]["nil"]
  vectors = system.encode(queries)
  top, cosines = top1_without(system.index, vectors, [ENTITY_IDS.index(e) for e in removed])
  assert not set(top) & set(removed)
  in_kb = [q.gold not in removed for q in queries]
  correct = [t == q.gold for t, q in zip(top, queries)]
  calibration = nil.calibration_half([q.query_id for q in queries], 0)
  expected = nil.nil_section(cosines, correct, in_kb, calibration)
  assert {k: section[k] for k in expected} == expected
  assert section["out_of_kb_removed"] == 4 and section["out_of_kb_not_indexed"] == 0
  # recall is measured on the whole index, as without --nil_fraction
  assert report["systems"]["model"]["results"]["micro"]["R@1"] == 1.0

  paths = reports.write_report(report, str(tmp_path))
  with open(paths["nil_plot"], "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  table = (tmp_path / reports.MARKDOWN_NAME).read_text(encoding="utf-8")
  assert "NIL (--nil_fraction 0.5, --nil_seed 0): 2 of 4 gold entities taken out" in table
  assert ("| System | Threshold | Accuracy | NIL precision | NIL recall | Linking precision "
          "| Coverage |") in table
  assert f"| model, fast (cosine) | {section['threshold']:.3f} | " in table
  assert "(chosen)" in table
  full = section["full"]
  assert f"| model, full (cosine + 0.5 x prior) | {full['threshold']:.3f} | " in table
  # full mode: each mention text is its gold's only anchor text here, so the prior is 1 for
  # the gold and the removed entities' prior is gone: scores = cosine + 0.5 on in-KB queries
  top, scores = full_top1_without(system.index, vectors, [ENTITY_IDS.index(e) for e in removed],
                                  queries, anchors, set(removed))
  expected_full = nil.nil_section(scores, [t == q.gold for t, q in zip(top, queries)], in_kb,
                                  calibration)
  assert {k: full[k] for k in expected_full} == expected_full
  assert all(scores[i] == pytest.approx(cosines[i] + 0.5) for i in range(8) if in_kb[i])
  assert "alias table: not in the NIL figures; it has no scores to threshold" in table
  assert "|---|---:|---:|---:|---:|---:|---:|\n| model, fast (cosine) |" in table
  saved = json.loads((tmp_path / reports.JSON_NAME).read_text(encoding="utf-8"))
  assert saved["systems"]["model"]["nil"]["threshold"] == section["threshold"]
  assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]

  # --save_threshold: nil.json of the model dir, read back as the linker reads it
  model_dir = tmp_path / "model"
  model_dir.mkdir()
  export = _export(model_dir)
  system.model_dir, system.index_path = str(model_dir), str(tmp_path / "index")
  (path,) = evaluate.save_thresholds(report, [system, FakeAliasTable()])
  chosen = nil_threshold.read(str(model_dir), export)
  assert path == str(model_dir / "nil.json") and chosen["threshold"] == section["threshold"]
  assert chosen["chosen_on"]["dataset"] == "test:fake" and chosen["chosen_on"]["seed"] == 0
  assert chosen["chosen_on"]["calibration_queries"] == 4 and chosen["test"] == section["test"]
  assert chosen["curve"] == section["curve"]
  assert chosen["full"]["threshold"] == full["threshold"] and chosen["full"]["prior_weight"] == 0.5
  assert nil_threshold.thresholds(chosen, 0.5) == {"fast": section["threshold"],
                                                   "full": full["threshold"]}
  with pytest.warns(nil_threshold.StaleThresholdWarning, match="prior weight 0.5"):
    assert nil_threshold.thresholds(chosen, 0.3) == {"fast": section["threshold"]}


def test_full_mode_top1_adds_the_prior_and_drops_removed_entities():
  # "E1~E2": cosines E1 0.8, E2 0.6; anchors of that text: E1 twice, E2 once
  anchors = AnchorCounts.from_mentions([("en", "E1~E2", "E1"), ("en", "E1~E2", "E1"),
                                        ("en", "E1~E2", "E2"), ("en", "E0", "E0")])
  system = FakeDualEncoder("model")
  queries = [Query("a", "en", "", "", "E1~E2", "", "E1"), Query("b", "en", "", "", "E0", "", "E0"),
             Query("c", "en", "", "", "E3", "", "E3")]
  vectors = system.encode(queries)
  top, scores = full_top1_without(system.index, vectors, [], queries, anchors, set())
  assert top == ["E1", "E0", "E3"]
  np.testing.assert_allclose(scores, [0.8 + 0.5 * 2 / 3, 1.0 + 0.5, 1.0], rtol=1e-6)
  # E1 removed: its row is masked and its prior gone (not renormalised, as the linker's
  # dictionary drops it): E2 0.6 + 0.5 x 1/3
  top, scores = full_top1_without(system.index, vectors, [1], queries, anchors, {"E1"})
  assert top[0] == "E2" and scores[0] == pytest.approx(0.6 + 0.5 / 3)


@pytest.mark.parametrize("argv, message", [
    (["--save_threshold"], "--save_threshold needs --nil_fraction F > 0"),
    (["--save_threshold", "--nil_fraction", "0"], "--save_threshold needs --nil_fraction"),
    (["--nil_fraction", "0.5", "--mining_dir", "m", "--output", "o"],
     "--nil_fraction needs a --model_dir"),
])
def test_nil_flag_errors(argv, message, capsys):
  assert evaluate.main(["--dataset", "holdout:x"] + argv) == 1
  assert message in capsys.readouterr().err


def test_nil_fraction_out_of_range_is_a_usage_error(capsys):
  with pytest.raises(SystemExit) as exit:
    evaluate.main(["--dataset", "holdout:x", "--nil_fraction", "1"])
  assert exit.value.code == 2 and "--nil_fraction must be in [0, 1)" in capsys.readouterr().err
