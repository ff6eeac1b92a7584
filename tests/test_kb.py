"""The growing knowledge base (mel.retrieval.kb, kb_changes, kb_entities, `mel kb`): additions,
replacements, removals, compaction, atomic generations under a concurrent reader, bad input;
the dictionary gaining added names; the trained mini model adding an entity it never saw and
linking it after a reload."""
import json
import os
import threading

import numpy as np
import pytest

from mel import manifest as manifests
from mel.linking import dictionary as dic
from mel.model_dir import ModelDir
from mel.retrieval import build_index_from_embeddings, embeddings, kb, kb_changes, kb_entities
from mel.retrieval.kb_entities import KBEntity, KBInputError

DIM = 8
BASE = [f"Q{i}" for i in range(1, 13)]   # 12 entities; vector of Q{i}: basis i-1 (+ noise)


def _vec(i: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed + i)
  v = np.zeros(DIM, np.float32)
  v[i % DIM] = 1.0
  v[(i + 1) % DIM] = 0.1 * (i // DIM)   # distinct directions beyond DIM entities
  v += noise * rng.standard_normal(DIM).astype(np.float32)
  return v / np.linalg.norm(v)


def _write_embeddings(path, ids, vectors, model) -> str:
  embeddings.write_shard(str(path), 0, list(ids), np.asarray(vectors, np.float32))
  embeddings.write_manifest(str(path), 1, model=model)
  return str(path)


@pytest.fixture
def model(tmp_path):
  """A model dir as mel encode + mel index leave it (no towers: vectors are given)."""
  root = tmp_path / "model"
  (root / "export").mkdir(parents=True)
  (root / "export" / "manifest.json").write_text(json.dumps({
      "kind": "F", "step": 7, "embedding_dim": DIM, "entity_input": "description",
      "tokenizer": "wordpiece", "entity_names": False}))
  (root / "entities.tsv").write_text("".join(f"{e}\tentity {e}\n" for e in BASE))
  directory = ModelDir(str(root))
  _write_embeddings(root / "embeddings", BASE, [_vec(i) for i in range(len(BASE))],
                    directory.identity())
  build_index_from_embeddings(str(root / "embeddings"), str(root / "index"),
                              kind="brute_force")
  return str(root)


def _entities(ids, description="new thing"):
  return [KBEntity(e, f"{description} {e}", f"{description} {e}", {"en": e.lower()}, {}, "")
          for e in ids]


def _encoded(tmp_path, model, ids, vectors, name="added", **model_changes):
  identity = {**ModelDir(model).tower_identity(), **model_changes}
  return _write_embeddings(tmp_path / name, ids, vectors, identity)


def _top(knowledge_base, vector, k=3):
  ids, scores = knowledge_base.index.search_ids(np.asarray([vector]), k)
  return ids[0], scores[0]


def test_generation_zero_is_the_model_as_indexed(model):
  base = kb.open_kb(model)
  assert base.generation == 0 and base.live_count == len(BASE)
  assert _top(base, _vec(3))[0][0] == "Q4"
  assert base.entities.texts_of(["Q4", "nope"]) == {"Q4": "entity Q4"}


def test_add_replace_remove_and_compact(model, tmp_path):
  new = _encoded(tmp_path, model, ["X1", "X2"], [_vec(20, 0.3), _vec(21, 0.3)])
  manifest = kb_changes.add(model, _entities(["X1", "X2"]), new, source="batch 1")
  assert manifest["generation"] == 1 and manifest["summary"]["added"] == 2
  g1 = kb.open_kb(model)
  assert g1.live_count == 14 and len(g1.segments) == 2
  assert _top(g1, _vec(20, 0.3))[0][0] == "X1"
  assert g1.entities.texts_of(["X1"]) == {"X1": "new thing X1"}
  assert g1.added["X1"].labels == {"en": "x1"}

  # adding an id already there is an error without replace, and changes nothing
  again = _encoded(tmp_path, model, ["Q2"], [_vec(30, 0.3)], name="q2")
  with pytest.raises(KBInputError, match=r"'Q2' is already in the knowledge base .*--replace"):
    kb_changes.add(model, _entities(["Q2"], "renamed"), again)
  assert kb.current_generation(model) == 1
  assert sorted(os.listdir(os.path.join(model, "kb", "changes"))) == ["00001"]

  # replacement: the new vector and text serve the id; the old row is masked
  kb_changes.add(model, _entities(["Q2"], "renamed"), again, replace=True)
  g2 = kb.open_kb(model)
  assert g2.live_count == 14
  top_old, _ = _top(g2, _vec(1), k=14)
  assert top_old.count("Q2") == 1 and top_old[0] != "Q2"    # the old vector no longer answers
  assert _top(g2, _vec(30, 0.3))[0][0] == "Q2"
  assert g2.entities.texts_of(["Q2"]) == {"Q2": "renamed Q2"}

  # removal
  kb_changes.remove(model, ["Q5", "X2"])
  g3 = kb.open_kb(model)
  assert g3.live_count == 12 and g3.removed == {"Q5", "X2"}
  everything, _ = _top(g3, _vec(4), k=20)
  assert len(everything) == 12 and "Q5" not in everything and "X2" not in everything
  assert "X2" not in g3.added and set(g3.index.live_ids()) == set(everything)

  # compaction: one segment, no masks, the same answers (exact search)
  queries = np.stack([_vec(i, 0.2, seed=99) for i in range(40)])
  before = g3.index.search_ids(queries, 5)
  kb_changes.compact(model)
  g4 = kb.open_kb(model)
  assert g4.generation == 4 and len(g4.segments) == 1 and not g4.masks
  assert g4.live_count == 12 and g4.manifest["base"]["path"] == "kb/bases/00004"
  after = g4.index.search_ids(queries, 5)
  assert after[0] == before[0]
  np.testing.assert_allclose(after[1], before[1], rtol=1e-6)
  assert set(g4.added) == {"X1", "Q2"} and g4.entities.texts_of(["Q2"]) == {"Q2": "renamed Q2"}
  # the generation before compaction is still readable; older changes are kept until the
  # next compaction (a reader may be loading them)
  assert os.path.isdir(os.path.join(model, "kb", "changes", "00003"))
  assert kb_changes.compact(model) is None                   # nothing to do


def test_bad_input_leaves_the_knowledge_base_unchanged(model, tmp_path):
  new = _encoded(tmp_path, model, ["X1"], [_vec(20)])
  kb_changes.add(model, _entities(["X1"]), new)
  before = open(kb.manifest_path(model)).read()

  with pytest.raises(KBInputError, match=r"'X1' appears twice \(records 1 and 2\)"):
    kb_changes.add(model, _entities(["X1", "X1"]), new)
  with pytest.raises(KBInputError, match=r"'Q99' is not in the knowledge base .*Nothing"):
    kb_changes.remove(model, ["Q1", "Q99"])
  with pytest.raises(KBInputError, match=r"'Q1' appears twice"):
    kb_changes.remove(model, ["Q1", "Q1"])
  for change, match in (({"step": 8}, "step 8"), ({"tokenizer": "e5"}, "tokenizer 'e5'"),
                        ({"kind": "E"}, "kind 'E'")):
    other = _encoded(tmp_path, model, ["X9"], [_vec(25)], name=f"other{len(change)}"
                     + list(change)[0], **change)
    with pytest.raises(KBInputError, match=f"embeddings of another model: {match}"):
      kb_changes.add(model, _entities(["X9"]), other)
  wide = _write_embeddings(tmp_path / "wide", ["X9"], np.ones((1, DIM + 1)),
                           {**ModelDir(model).tower_identity(), "embedding_dim": DIM + 1})
  with pytest.raises(KBInputError, match="embedding_dim"):
    kb_changes.add(model, _entities(["X9"]), wide)
  with pytest.raises(KBInputError, match=r"not those of the 1 entities"):
    kb_changes.add(model, _entities(["X8"]), _encoded(tmp_path, model, ["X9"], [_vec(25)],
                                                      name="mismatch"))
  assert open(kb.manifest_path(model)).read() == before
  assert kb.open_kb(model).live_count == 13


def test_jsonl_input_errors_name_the_record(tmp_path):
  path = tmp_path / "new.jsonl"

  def check(lines, match):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(KBInputError, match=match):
      kb_entities.read_jsonl(str(path))

  good = json.dumps({"id": "Q1", "description": "a thing"})
  check([good, json.dumps({"id": "Q1", "description": "again"})],
        r"new.jsonl: id 'Q1' appears twice \(records 1 and 2\)")
  check([good, json.dumps({"id": "Q2", "description": "  "})],
        r"new.jsonl:2 \(id 'Q2'\): empty or missing \"description\"")
  check([good, "{not json"], r"new.jsonl:2: not JSON")
  check([json.dumps({"description": "x"})], r"new.jsonl:1: \"id\" must be a non-empty")
  check([json.dumps({"id": "a\tb", "description": "x"})], r"tab or a line break")
  check([json.dumps({"id": "Q3", "description": "x", "labels": {"en": 3}})], r"\"labels\"")
  check([json.dumps({"id": "k:1", "description": "x", "qid": "Z1"})], r"\"qid\" must look")
  check([json.dumps({"id": "Q3", "description": "x", "colour": 1})], r"unknown field")
  entities = kb_entities.read_jsonl(str(_write(path, [
      {"id": "k:1", "description": "Atlas-7 is a satellite.", "labels": {"en": "Atlas-7"},
       "aliases": {"en": ["A7"]}, "qid": "Q7"}])), with_name=True)
  assert entities[0].text == "Atlas-7 — Atlas-7 is a satellite." or \
      entities[0].text == "Atlas-7 is a satellite."
  assert entities[0].qid == "Q7" and entities[0].names() == {"en": ["Atlas-7", "A7"]}


def _write(path, records):
  path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
  return path


def test_a_reader_sees_whole_generations_while_a_writer_commits(model, tmp_path):
  batches = []
  for n in range(8):
    ids = [f"N{n}a", f"N{n}b"]
    batches.append((_entities(ids), _encoded(tmp_path, model, ids,
                                             [_vec(40 + 2 * n, 0.3), _vec(41 + 2 * n, 0.3)],
                                             name=f"b{n}")))
  seen, errors, done = set(), [], threading.Event()

  def read():
    while not done.is_set():
      try:
        current = kb.open_kb(model, verify=True)
        g = current.generation
        expected = set(BASE) | {e for n in range(g) for e in (f"N{n}a", f"N{n}b")}
        live = set(current.index.live_ids())
        if live != expected or current.manifest.get("summary", {}).get(
            "entities", len(BASE)) != len(expected):
          errors.append((g, sorted(live ^ expected)))
        seen.add(g)
      except Exception as e:   # noqa: BLE001 -- any failure to read is the bug looked for
        errors.append(repr(e))

  readers = [threading.Thread(target=read) for _ in range(2)]
  for r in readers:
    r.start()
  for entities, vectors in batches:
    kb_changes.add(model, entities, vectors)
  done.set()
  for r in readers:
    r.join()
  assert not errors, errors[:3]
  assert kb.current_generation(model) == 8 and len(seen) >= 2


def test_a_corrupt_change_or_a_rebuilt_base_is_named(model, tmp_path):
  kb_changes.add(model, _entities(["X1"]), _encoded(tmp_path, model, ["X1"], [_vec(20)]))
  entities = os.path.join(model, "kb", "changes", "00001", "entities.tsv")
  with open(entities, "a", encoding="utf-8") as f:
    f.write("X2\textra\n")
  with pytest.raises(kb.KBError, match=r"changes/00001/entities.tsv: larger than written"):
    kb.open_kb(model)
  with open(entities, "w", encoding="utf-8") as f:
    f.write("X1\tnew thing X9\n")          # same size, other bytes
  with pytest.raises(kb.KBError, match="checksum"):
    kb.open_kb(model)
  with open(entities, "w", encoding="utf-8") as f:
    f.write("X1\tnew thing X1\n")
  kb.open_kb(model)
  with open(os.path.join(model, "entities.tsv"), "a", encoding="utf-8") as f:
    f.write("Q99\tlate\n")
  with pytest.raises(kb.KBError, match=r"entities.tsv changed since generation 1"):
    kb.open_kb(model)


def test_mel_kb_command(model, tmp_path):
  from mel.retrieval import kb_command
  ids = tmp_path / "ids.txt"
  ids.write_text("Q3\nQ4\n")
  assert kb_command.main(["remove", "--model_dir", model, "--ids", str(ids)]) == 0
  assert kb_command.main(["remove", "--model_dir", model, "--id", "Q3"]) == 1
  assert kb_command.main(["compact", "--model_dir", model, "--no_progress"]) == 0
  text = kb_command.describe(model)
  assert "generation 2, 10 entities live in 1 segment(s)" in text
  assert "remove" in text and "compact" in text


# ---------------------------------------------------------------------------------------------
# the dictionary


def test_the_dictionary_gains_added_names_and_drops_removed_entities():
  trained = dic.SurfaceDictionary({
      "en": {"paris": dic.FormStats("paris", 30, 60, (("E:paris_tx", 27), ("E:paris", 3))),
             "the": dic.FormStats("the", 1, 1000, (("E:the", 1),))}})
  grown = trained.grown([("E:paris_new", {"en": ["Paris"], "fr": ["Paris", "Lutèce"]}),
                         ("X:atlas", {"en": ["Atlas-7", "A7"]})], removed={"E:paris"})
  paris = grown.tables["en"]["paris"]
  assert paris.entities == (("E:paris_tx", 27), ("E:paris_new", 1))
  assert paris.linked == 31 and paris.declared == ("E:paris_new",)
  assert grown.prior("paris", "en") == pytest.approx({"E:paris_tx": 27 / 31,
                                                      "E:paris_new": 1 / 31})
  assert grown.tables["fr"]["lutèce"].entities == (("E:paris_new", 1),)
  # declared forms are spotted whatever the thresholds; "the" (link_prob 0.001) is not
  walk = grown.walk_table("en", min_link_prob=0.5, min_linked=100)
  assert "the" not in str(walk) and trained.tables["en"]["paris"].declared == ()
  from mel.linking.spotter import MentionDetector
  spots = MentionDetector(grown, 0.5, 100).detect("Atlas-7 flew over the city of Paris.", "en")
  assert [s.text for s in spots] == ["Atlas-7", "Paris"]


# ---------------------------------------------------------------------------------------------
# the trained mini model: an entity it never saw, added and linked after a reload


@pytest.mark.slow
def test_the_mini_model_links_an_added_entity_after_reload(mini_model, mini_mining, tmp_path):
  import shutil
  from conftest import run_module
  source, _ = mini_model
  target = tmp_path / "model"
  target.mkdir()
  shutil.copytree(source / "export", target / "export")
  for name in ("entities.tsv", "config.yaml"):
    shutil.copy(source / name, target / name)
  for args in (("encode", "--model_dir", target, "--no_progress"),
               ("index", "--model_dir", target, "--no_progress"),
               ("dictionary", "--mining_dir", mini_mining[0], "--output",
                target / "dictionary", "--no_progress")):
    result = run_module("mel", *args)
    assert result.returncode == 0, result.stderr[-3000:]
  new = _write(tmp_path / "new.jsonl", [
      {"id": "mykb:zorbulon", "description": "Zorbulon is a fictional moon of Neptune.",
       "labels": {"en": "Zorbulon", "uk": "Зорбулон"}, "qid": "Q999999999"}])
  code = f"""
import json, subprocess, sys
import mel
lk = mel.load({str(target)!r})
text = "Astronomers observed Zorbulon last night."
before = [m.entity_id for m in lk.link(text, "en", threshold=-1.0)]
r = subprocess.run([sys.executable, "-m", "mel", "kb", "add", "--model_dir", {str(target)!r},
                    "--entities", {str(new)!r}, "--no_progress"], capture_output=True, text=True)
assert r.returncode == 0, r.stderr
reloaded = lk.reload()
after = [(m.text, m.entity_id, m.qid) for m in lk.link(text, "en", threshold=-1.0)]
spans = [m.entity_id for m in lk.link(text, "en", spans=[(21, 29)], top_k=3, threshold=-1.0)]
print(json.dumps({{"before": before, "reloaded": reloaded, "after": after,
                  "spans": spans, "generation": lk.kb_generation}}))
"""
  import subprocess
  import sys
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  assert out["before"] == [] and out["reloaded"] and out["generation"] == 1
  # the new name is spotted (the dictionary gained it) and, with its span given, the entity
  # is a candidate: the mini model is small, so only presence is required, not rank 1
  assert ["Zorbulon", "mykb:zorbulon", "Q999999999"] in out["after"]


def test_model_e_cannot_encode_new_entities(model, tmp_path):
  from mel.retrieval import encode
  manifest_path = os.path.join(model, "export", "manifest.json")
  export = json.load(open(manifest_path))
  json.dump({**export, "kind": "E", "entity_input": "entity_id"}, open(manifest_path, "w"))
  entities = encode.read_entity_set(model, str(_write(tmp_path / "n.jsonl", [
      {"id": "Q77", "description": "a new thing"}])))
  with pytest.raises(ValueError, match="Model E .* cannot encode new entities"):
    encode.encode_entity_set(model, entities, str(tmp_path / "out"))
  with pytest.raises(ValueError, match="one of --entities"):
    encode.read_entity_set(model)


def test_an_added_segment_scans_as_many_points_as_the_base():
  import types
  from mel.retrieval import scann_params_for

  class Base:
    params = {"shard_kind": "scann"}

    def __len__(self):
      return 1_000_000

    def tree_leaves(self):
      return 1000, 4000         # 1,000 of 4,000 leaves of 250 points: 250,000 points a query

  fake = types.SimpleNamespace(segments=[types.SimpleNamespace(index=Base())],
                               live_count=1_000_000)
  small = kb_changes.segment_params(fake, 10_000)
  assert small["num_leaves"] == 100 and small["num_leaves_to_search"] == 100
  assert scann_params_for(10_000)["num_leaves_to_search"] == 20    # what it would have been
  assert small["reorder_dtype"] == "int8"                          # as the base's (>= 1M)
  large = kb_changes.segment_params(fake, 400_000)
  # 62.5% of 2,530 leaves: 250k points, above the default 20% (506)
  assert (large["num_leaves"], large["num_leaves_to_search"]) == (2530, 1582)
  assert kb_changes.segment_params(fake, 1000) == {"algorithm": "brute_force"}


def test_masked_search_is_exact_search_over_the_live_rows():
  from mel.retrieval import BruteForceIndex
  from mel.retrieval.masked import MaskedIndex
  rng = np.random.default_rng(3)
  vectors = rng.standard_normal((2000, 16)).astype(np.float32)
  queries = np.concatenate([vectors[:40] + 0.01, rng.standard_normal((40, 16))]).astype(
      np.float32)
  dead = rng.choice(2000, 600, replace=False)          # most queries must search again
  ids = [f"e{i}" for i in range(2000)]
  masked = MaskedIndex(BruteForceIndex.build(ids, vectors), dead)
  live = np.setdiff1d(np.arange(2000), dead)
  truth = BruteForceIndex.build([ids[i] for i in live], vectors[live])
  for k in (1, 10, 100):
    got_ids, got_scores = masked.search_ids(queries, k)
    want_ids, want_scores = truth.search_ids(queries, k)
    assert got_ids == want_ids
    np.testing.assert_allclose(got_scores, want_scores, rtol=1e-6)
  assert masked.live_count == 1400 and set(masked.live_ids()) == {ids[i] for i in live}
  # fewer live rows than k: the rest is padding
  tiny = MaskedIndex(BruteForceIndex.build(ids[:5], vectors[:5]), [0, 1, 2])
  rows, scores = tiny.search(queries[:2], 4)
  assert (rows[:, 2:] == -1).all() and np.isneginf(scores[:, 2:]).all()
  assert set(rows[:, :2].ravel().tolist()) == {3, 4}


@pytest.fixture
def scann_model(tmp_path):
  """A model dir whose index is a ScaNN tree (6,000 entities, clustered 16-d vectors)."""
  root = tmp_path / "scann_model"
  (root / "export").mkdir(parents=True)
  (root / "export" / "manifest.json").write_text(json.dumps({
      "kind": "F", "step": 1, "embedding_dim": 16, "entity_input": "description",
      "tokenizer": "wordpiece", "entity_names": False}))
  rng = np.random.default_rng(0)
  centres = rng.standard_normal((60, 16))
  vectors = centres[rng.integers(0, 60, 6000)] + 0.3 * rng.standard_normal((6000, 16))
  vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
  ids = [f"B{i}" for i in range(6000)]
  (root / "entities.tsv").write_text("".join(f"{e}\tbase {e}\n" for e in ids))
  _write_embeddings(root / "embeddings", ids, vectors, ModelDir(str(root)).identity())
  build_index_from_embeddings(str(root / "embeddings"), str(root / "index"), kind="scann")
  return str(root), centres


def test_readers_search_small_additions_in_the_base_tree(scann_model, tmp_path):
  model, centres = scann_model
  rng = np.random.default_rng(1)
  added = centres[rng.integers(0, 60, 300)] + 0.3 * rng.standard_normal((300, 16))
  added = (added / np.linalg.norm(added, axis=1, keepdims=True)).astype(np.float32)
  new_ids = [f"N{i}" for i in range(300)]
  kb_changes.add(model, _entities(new_ids), _encoded(tmp_path, model, new_ids, added))
  replaced = _encoded(tmp_path, model, ["N0"], [added[1]], name="n0")
  kb_changes.add(model, _entities(["N0"], "moved"), replaced, replace=True)
  index, current = kb.open_search_index(model)
  assert current.merged == 2 and index.kind == "masked" and len(index) == 6301
  assert current.live_count == 6300 and current.entities.texts_of(["N0"]) == {"N0": "moved N0"}
  separate = kb.open_kb(model)           # writers' view: three segments
  assert separate.merged == 0 and len(separate.segments) == 3
  # every added entity is found first from its own vector; N0 now lives at N1's vector
  top, _ = index.search_ids(added[1:], 2)
  assert all(t[0] == e or set(t) == {"N0", "N1"} for t, e in zip(top, new_ids[1:]))
  top, _ = index.search_ids(added[:1], 10)
  assert "N0" not in top[0]              # its old vector no longer answers for it
  assert set(index.live_ids()) == set(separate.index.live_ids())
  rows = index.search(added[5:6], 1)[0][0]
  assert current.entities[int(rows[0])] == ("N5", "new thing N5")


def test_nil_evaluation_counts_a_removed_entity_as_out_of_the_kb(model):
  import types
  from mel.evaluation import evaluate
  from mel.evaluation.datasets import Query
  kb_changes.remove(model, ["Q3"])
  index, _ = kb.open_search_index(model)
  system = types.SimpleNamespace(name="m", index=index, encode=None)
  queries = [Query(f"q{i}", "en", "", "", "x", "", gold) for i, gold in
             enumerate(["Q1", "Q2", "Q3", "Q4"])]
  plan = evaluate.plan_nil([system], queries, fraction=0.0, seed=0)
  assert set(plan["rows"]["m"]) == {"Q1", "Q2", "Q4"}   # Q3 cannot be returned: not held
  assert plan["facts"]["gold_entities_in_every_index"] == 3
