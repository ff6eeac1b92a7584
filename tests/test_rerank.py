"""The cross-attention reranker served and evaluated: `mel evaluate --reranker` (the "+CA"
system, mel.evaluation.systems.Reranked), `mel.load(..., reranker=DIR)` (full mode reranked,
mel.linking.linker) and bench/link.py's FLOP count of a reranked pair."""
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from conftest import ROOT, run_module
from mel import nil_threshold, towers
from mel.evaluation import evaluate, metrics, report as reports
from mel.evaluation.systems import rerank_predictions
from mel.linking import cli, linker as L
from test_link import ENTITIES, fake  # noqa: F401  (the fake linker fixture)


# ---------------------------------------------------------------------------------------------
# the order of a reranked list


def test_rerank_predictions_sorts_the_top_by_logit_and_keeps_the_rest():
  predictions = [["a", "b", "c", "d", "e"], ["x", "y"], []]
  logits = [np.array([0.1, 2.0, 0.1], np.float32), np.array([-1.0, -1.0]), np.zeros(0)]
  out = rerank_predictions(predictions, logits, 3)
  assert out[0] == ["b", "a", "c", "d", "e"]   # ties (a, c) keep the base's order
  assert out[1] == ["x", "y"] and out[2] == []
  ranks = metrics.gold_ranks(out, ["d", "y", "q"])
  assert ranks.tolist() == [4, 2, 0]           # beyond the top: unchanged
  with pytest.raises(ValueError, match="2 logits for 3 candidates"):
    rerank_predictions([["a", "b", "c"]], [np.zeros(2)], 3)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "holdout:x", "--mining_dir", "m", "--output", "o", "--rerank", "F"],
     "--rerank names the dual encoder a --reranker reranks: give --reranker"),
    (["--dataset", "holdout:x", "--mining_dir", "m", "--output", "o", "--reranker", "r"],
     "--reranker needs a --model_dir whose results it reranks"),
])
def test_rerank_flag_errors(argv, message, capsys):
  assert evaluate.main(argv) == 1
  assert message in capsys.readouterr().err


def test_rerank_top_must_be_positive(capsys):
  with pytest.raises(SystemExit) as exit:
    evaluate.main(["--dataset", "holdout:x", "--rerank_top", "0"])
  assert exit.value.code == 2 and "--rerank_top must be a positive integer" in (
      capsys.readouterr().err)
  assert cli.main(["--text", "x", "--lang", "en", "--rerank_top", "0"]) == 2


# ---------------------------------------------------------------------------------------------
# linking with a (fake) reranker


class FakeReranker:
  """Logits by entity text; records each call's pair count."""

  def __init__(self, logits, manifest=None):
    self.logits, self.calls = logits, []
    self.manifest = manifest or {"kind": "CA", "step": 60, "loss": "bce",
                                 "probability": "sigmoid(logit)", "max_seq_length": 64}

  @property
  def gives_probability(self):
    return self.manifest.get("probability") == "sigmoid(logit)"

  def __call__(self, titles, lefts, mentions, rights, descriptions):
    assert len(titles) == len(lefts) == len(mentions) == len(rights) == len(descriptions)
    self.calls.append(list(zip(mentions, descriptions)))
    return np.array([self.logits.get(d, -3.0) for d in descriptions], np.float32)


def reranked(linker, reranker, **options):
  return L.Linker(linker.encoder, linker.index, linker.entities, linker.dictionary,
                  entity_encoder=linker.entity_encoder, prior_weight=0.5, min_link_prob=0.1,
                  min_linked=2, reranker=reranker, **options)


def test_full_mode_reranks_its_top_by_the_rerankers_logits(fake):
  linker, _ = fake
  # full mode alone: E:paris_tx (1.075) before E:paris (0.831); the reranker prefers E:paris
  scorer = FakeReranker({ENTITIES["E:paris"]: 2.0, ENTITIES["E:paris_tx"]: -1.0})
  ca = reranked(linker, scorer, rerank_top=2)
  assert ca.thresholds == {"fast": L.DEFAULT_THRESHOLD, "full": L.DEFAULT_THRESHOLD,
                           "rerank": L.DEFAULT_RERANK_THRESHOLD}
  full = linker.link("Paris", "en")[0]
  out = ca.link("Paris", "en")[0]
  assert [c.entity_id for c in full.candidates[:2]] == ["E:paris_tx", "E:paris"]
  assert [c.entity_id for c in out.candidates[:2]] == ["E:paris", "E:paris_tx"]
  assert out.entity_id == "E:paris" and out.description == ENTITIES["E:paris"]
  assert out.score == pytest.approx(1 / (1 + np.exp(-2.0)))
  assert [c.rerank for c in out.candidates[:2]] == pytest.approx(
      [1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(1.0))])
  assert all(c.rerank is None for c in out.candidates[2:])   # beyond rerank_top
  assert all(0 <= c.rerank <= 1 for c in out.candidates[:2])
  # the candidates keep full mode's score, cosine and prior; the rest keeps full mode's order
  by_id = {c.entity_id: c for c in full.candidates}
  for c in out.candidates:
    assert (c.score, c.cosine, c.prior) == (by_id[c.entity_id].score, by_id[c.entity_id].cosine,
                                            by_id[c.entity_id].prior)
  assert [c.entity_id for c in out.candidates[2:]] == [c.entity_id for c in full.candidates[2:]]
  json.dumps(out.to_dict())
  assert out.to_dict()["candidates"][0]["rerank"] == out.candidates[0].rerank


def test_one_reranker_call_per_batch_and_fast_mode_never_reranks(fake):
  linker, _ = fake
  scorer = FakeReranker({})
  ca = reranked(linker, scorer, rerank_top=3, threshold=0.5)   # the fake linker's threshold
  text = "From Berlin to PARIS and Tokyo."
  out = ca.link(text, "en")
  assert len(out) == 3 and len(scorer.calls) == 1            # all mentions' pairs together
  assert len(scorer.calls[0]) == 3 * 3
  assert [m for m, _ in scorer.calls[0]] == ["Berlin"] * 3 + ["PARIS"] * 3 + ["Tokyo"] * 3
  assert all(m.is_nil and m.score < 0.5 for m in out)          # sigmoid(-3) < 0.5
  fast = ca.link(text, "en", fast=True)
  assert len(scorer.calls) == 1
  assert [m.to_dict() for m in fast] == [m.to_dict() for m in linker.link(text, "en", fast=True)]
  assert all(c.rerank is None for m in fast for c in m.candidates)
  # a threshold given applies to the reranker's probability too
  assert not ca.link("Berlin", "en", threshold=0.01)[0].is_nil
  assert reranked(linker, scorer, threshold=0.3).thresholds["rerank"] == 0.3


def test_load_names_a_bad_reranker_dir_and_refuses_a_dual_encoder(tmp_path):
  with pytest.raises(L.ModelNotFoundError, match=f"reranker {tmp_path / 'nowhere'}: no such"):
    L.load(str(tmp_path), reranker=str(tmp_path / "nowhere"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(L.ModelNotFoundError, match=r"empty/export/manifest.json: missing; train "
                     r"a reranker"):
    L.load(str(tmp_path), reranker=str(tmp_path / "empty"))
  dual = tmp_path / "dual"
  (dual / "export").mkdir(parents=True)
  (dual / "export" / "manifest.json").write_text('{"kind": "F", "step": 1}')
  with pytest.raises(ValueError, match=f"{dual} holds a 'F' model, not a reranker"):
    towers.reranker(str(dual))
  with pytest.raises(ValueError, match="not a reranker"):
    L.load(str(tmp_path), reranker=str(dual))


def test_load_takes_the_rerank_threshold_from_nil_json(fake, tmp_path, monkeypatch):
  linker, _ = fake
  parts = L.loading.Parts(linker.encoder, linker.index, linker.entities, linker.dictionary,
                          None, "description", None, "wordpiece")
  scorer = FakeReranker({})
  monkeypatch.setattr(L.loading, "read_parts", lambda *args: parts)
  monkeypatch.setattr(L.loading, "read_reranker", lambda path: scorer)
  (tmp_path / "export").mkdir()
  export = {"kind": "F", "step": 120, "embedding_dim": 8}
  (tmp_path / "export" / "manifest.json").write_text(json.dumps(export))
  default = L.load(str(tmp_path), reranker="CA")
  assert default.thresholds["rerank"] == 0.5 and "rerank: default 0.5" in (
      default.threshold_source)
  chosen_for = nil_threshold.reranker_of(scorer.manifest, "CA")
  nil_threshold.write(str(tmp_path), export, 0.7, {"dataset": "holdout:h"}, {}, [],
                      rerank={"threshold": 0.3, "top": 5, "reranker": chosen_for, "test": {},
                              "curve": []})
  chosen = L.load(str(tmp_path), reranker="CA")
  assert chosen.thresholds == {"fast": 0.7, "full": L.DEFAULT_THRESHOLD, "rerank": 0.3}
  assert L.load(str(tmp_path)).thresholds == {"fast": 0.7, "full": L.DEFAULT_THRESHOLD}
  scorer.manifest = {**scorer.manifest, "step": 120}           # another reranker
  with pytest.warns(UserWarning, match=r"another reranker \(step 60 -> 120\)"):
    other = L.load(str(tmp_path), reranker="CA")
  assert other.thresholds["rerank"] == 0.5


# ---------------------------------------------------------------------------------------------
# bench/link.py's FLOP count


def test_bench_reranker_pair_flops_by_hand():
  spec = importlib.util.spec_from_file_location("bench_link", ROOT / "bench" / "link.py")
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  # 2 layers, L = 64, H = 128, I = 512: per layer
  #   2 * 64 * (4 * 128^2 + 2 * 128 * 512) = 2 * 64 * 196,608 = 25,165,824
  #   + 2 * 2 * 64^2 * 128                 =                     2,097,152
  #   = 27,262,976; two layers 54,525,952 per pair.
  assert bench.reranker_pair_flops(num_layers=2, seq=64, hidden=128, intermediate=512) == (
      54_525_952)
  assert bench.reranker_pair_flops(1, 1, 1, 1) == 2 * (4 + 2) + 4


# ---------------------------------------------------------------------------------------------
# the mini reranker, end to end


@pytest.fixture(scope="module")
def serving(mini_model, mini_mining, tmp_path_factory):
  """A serving directory of the mini model (export, entities, exact index, dictionary)."""
  source, _ = mini_model
  target = tmp_path_factory.mktemp("ca_serving") / "model"
  target.mkdir()
  shutil.copytree(source / "export", target / "export")
  shutil.copy(source / "entities.tsv", target / "entities.tsv")
  shutil.copy(source / "config.yaml", target / "config.yaml")
  for args in (("encode", "--model_dir", target, "--output", target / "embeddings"),
               ("index", "--embeddings", target / "embeddings", "--output", target / "index",
                "--kind", "brute_force"),
               ("dictionary", "--mining_dir", mini_mining[0], "--output", target / "dictionary",
                "--no_progress")):
    result = run_module("mel", *args)
    assert result.returncode == 0, f"{args[0]}: {result.stderr[-3000:]}"
  return target


def entity_texts(model_dir) -> dict:
  with open(os.path.join(model_dir, "entities.tsv"), encoding="utf-8") as f:
    return dict(line.rstrip("\n").split("\t", 1) for line in f)


@pytest.mark.slow
def test_the_ca_system_reorders_the_dual_encoders_top_k(serving, mini_reranker, mini_mining):
  """Reranked's order, recomputed with the Reranker called directly on each query's pairs."""
  from mel.evaluation import datasets
  from mel.evaluation.systems import DualEncoder, Reranked
  queries, _ = datasets.load_dataset(
      f"holdout:{mini_mining[0]}/mentions/holdout-*.tfrecord.gz", 256, False)
  queries = queries[:40]
  base = DualEncoder("F", str(serving), progress=False)
  system = Reranked(base, str(mini_reranker[0]), top=3, progress=False)
  predictions = base.retrieve(queries, 10)
  out = system.rerank(queries, predictions)
  scorer, texts = towers.reranker(str(mini_reranker[0])), entity_texts(serving)
  moved = 0
  for q, before, after in zip(queries, predictions, out):
    logits = scorer.score(q.doc_title, q.left_context, q.mention, q.right_context,
                          [texts[e] for e in before[:3]])
    expected = [before[i] for i in sorted(range(len(logits)), key=lambda i: (-logits[i], i))]
    assert after[:3] == expected and after[3:] == before[3:]
    moved += after[0] != before[0]
  assert moved > 0   # the reranker changes some top-1s
  gold = [q.gold for q in queries]
  for k in (3, 10):
    assert metrics.recall_at(metrics.gold_ranks(out, gold), k) == metrics.recall_at(
        metrics.gold_ranks(predictions, gold), k)
  assert system.describe()["reranker_step"] == 60 and system.known(gold) == base.known(gold)


@pytest.mark.slow
def test_evaluate_and_link_with_the_mini_reranker(serving, mini_reranker, mini_mining, tmp_path):
  """`mel evaluate --reranker` (+CA system, NIL, nil.json's "rerank"), then `mel.load(...,
  reranker=)` with that threshold, on a copy of the serving directory."""
  model = tmp_path / "model"
  shutil.copytree(serving, model)
  reranker, mining = str(mini_reranker[0]), str(mini_mining[0])
  pattern = f"{mining}/mentions/holdout-*.tfrecord.gz"
  result = run_module("mel", "evaluate", "--model_dir", model, "--name", "F", "--dataset",
                      f"holdout:{pattern}", "--recall_at", "1,3,10", "--mining_dir", mining,
                      "--output", tmp_path / "eval", "--reranker", reranker, "--rerank_top", 3,
                      "--nil_fraction", 0.5, "--save_threshold", "--no_progress")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "F +CA R@1" in result.stdout and "| F +CA (sigmoid(reranker logit) of its top 3) |" in (
      result.stdout)
  report = json.loads((tmp_path / "eval" / reports.JSON_NAME).read_text(encoding="utf-8"))
  assert list(report["systems"]) == ["F", "F +CA", "alias table"]
  ca, de = report["systems"]["F +CA"], report["systems"]["F"]
  assert (ca["kind"], ca["base_system"], ca["rerank_top"], ca["reranker_step"],
          ca["reranker_loss"]) == ("reranked", "F", 3, 60, "bce")
  assert ca["reranker_dir"] == os.path.abspath(reranker)
  for key in ("micro", "macro", "language_macro"):
    for k in (3, 10):
      assert ca["results"][key][f"R@{k}"] == de["results"][key][f"R@{k}"]
  assert set(ca["results"]["languages"]) == set(de["results"]["languages"])
  assert report["nil"]["systems"] == ["F", "F +CA"]
  section = ca["nil"]
  assert section["score"] == nil_threshold.RERANK_SCORE and 0 < section["threshold"] < 1
  chosen = json.loads((model / "nil.json").read_text(encoding="utf-8"))
  assert chosen["rerank"]["threshold"] == section["threshold"]
  assert chosen["rerank"]["reranker"]["step"] == 60 and chosen["rerank"]["top"] == 3

  import mel
  plain = mel.load(str(model), min_linked=1, min_link_prob=0.01)
  linker = mel.load(str(model), reranker=reranker, rerank_top=3, min_linked=1,
                    min_link_prob=0.01)
  assert linker.thresholds["rerank"] == section["threshold"]
  from mel import records
  doc = next(d for d in records.read_output(mining, records.DOCUMENTS) if d.lang == "el")
  text = doc.text[:1500]
  out = linker.link(text, "el", title=doc.title)
  assert out
  scorer, c = towers.reranker(reranker), linker.context_chars
  for m in out:
    head = [x for x in m.candidates if x.rerank is not None]
    assert len(head) == min(3, len(m.candidates)) and m.score == head[0].rerank
    assert all(0 <= x.rerank <= 1 for x in head)
    logits = scorer.score(doc.title, text[max(0, m.start - c):m.start], m.text,
                          text[m.end:m.end + c], [x.description for x in head])
    assert np.all(np.diff(logits) <= 1e-6)     # best first by the reranker's logit
    assert [x.rerank for x in head] == pytest.approx(towers.probability(logits).tolist(),
                                                     abs=1e-5)
    assert m.is_nil == (m.score < section["threshold"])
  assert [m.to_dict() for m in linker.link(text, "el", fast=True)] == [
      m.to_dict() for m in plain.link(text, "el", fast=True)]
