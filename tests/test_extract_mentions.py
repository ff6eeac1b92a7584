"""End to end: `beam run extract_mentions` on the shared mini dumps and the edge-case dumps."""
import collections
import json
import os
import shutil
import subprocess
import sys

import pytest

from mel import records

pytestmark = pytest.mark.slow


def _beam(*args, cwd=None):
  cmd = [sys.executable, "-m", "beam_pipelines.cli", *args]
  return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=900,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.fixture(scope="module")
def mini_run(mini_mining):
  return mini_mining


def _all(out, name):
  return list(records.read_output(str(out), name))


def test_summary_accounts_for_every_page_and_link(mini_run):
  out, result = mini_run
  summary = records.read_summary(str(out))
  assert all(check["ok"] for check in summary["checks"].values()), summary["checks"]
  totals = summary["totals"]
  assert totals["dump/files"] == 7 and totals["pages/read"] == 615  # 94+46+124+40+162+38+111
  assert totals["pages/article"] == 7 * 25
  assert set(summary["by_language"]) == {"bn", "el", "en", "ja", "mr", "uk", "vi"}
  assert totals["wikidata/read"] == 23 and totals["wikidata/kept"] == 17
  assert "extract_mentions summary" in result.stdout and "[ok]" in result.stdout
  assert (out / records.SUMMARY_TXT).read_text(encoding="utf-8").startswith(
      "extract_mentions summary")


def test_mention_offsets_point_at_anchors_in_clean_text(mini_run):
  out, _ = mini_run
  docs = {(d.wiki, d.doc_id): d for d in _all(out, records.DOCUMENTS)}
  mentions = _all(out, records.MENTIONS_TRAIN) + _all(out, records.MENTIONS_HOLDOUT)
  assert len(mentions) > 400
  for m in mentions:
    text = docs[(m.wiki, m.doc_id)].text
    assert text[m.start:m.end] == m.mention
    assert text[max(0, m.start - 256):m.start] == m.left_context
    assert text[m.end:m.end + 256] == m.right_context
  assert {m.lang for m in mentions} == {"bn", "el", "en", "ja", "mr", "uk", "vi"}


def test_wikidata_resolves_pages_to_qids(mini_run):
  out, _ = mini_run
  mentions = _all(out, records.MENTIONS_TRAIN) + _all(out, records.MENTIONS_HOLDOUT)
  hong_kong = [m for m in mentions if m.entity_id == "Q8646"]
  assert any(m.lang == "vi" and m.target_title == "Hồng Kông" for m in hong_kong)
  assert all(m.qid == "Q8646" for m in hong_kong)
  page_only = [m for m in mentions if not m.qid]
  assert page_only and all(m.entity_id == f"{m.wiki}:{m.target_title}" for m in page_only)


def test_splits_are_disjoint_by_document_and_counts_match(mini_run):
  out, _ = mini_run
  train, holdout = _all(out, records.MENTIONS_TRAIN), _all(out, records.MENTIONS_HOLDOUT)
  train_docs = {(m.wiki, m.doc_id) for m in train}
  holdout_docs = {(m.wiki, m.doc_id) for m in holdout}
  assert holdout and not train_docs & holdout_docs
  documents = {(d.wiki, d.doc_id): d.split for d in _all(out, records.DOCUMENTS)}
  assert all(documents[k] == "holdout" for k in holdout_docs)
  per_lang = collections.Counter(m.lang for m in holdout)
  summary = records.read_summary(str(out))
  for lang, n in per_lang.items():
    assert n == summary["by_language"][lang]["mentions/holdout"]
    # Whole documents until >= 30, capped at half of the language's mentions.
    lang_total = n + summary["by_language"][lang].get("mentions/train", 0)
    assert n <= 0.5 * lang_total


def test_entities_counts_and_pairs(mini_run):
  out, _ = mini_run
  entities = {e.entity_id: e for e in _all(out, records.ENTITIES)}
  train = _all(out, records.MENTIONS_TRAIN)
  assert all(m.entity_id in entities for m in train)
  expected = collections.Counter(m.entity_id for m in train)
  for entity_id, entity in entities.items():
    assert entity.mention_count == expected.get(entity_id, 0)
  hong_kong = entities["Q8646"]
  assert hong_kong.sitelinks["viwiki"] == "Hồng Kông" and hong_kong.description
  # Q8646's pages are not in the minis, so its description comes from WikiData.
  assert hong_kong.description_source == "wikidata"
  with open(out / records.LANGUAGE_TOTALS) as f:
    assert json.load(f) == dict(collections.Counter(m.lang for m in train))
  pairs = _all(out, records.ENTITY_PAIRS)
  assert pairs and all(p.entity_id in entities and p.lang_a != p.lang_b for p in pairs)
  assert max(collections.Counter(p.entity_id for p in pairs).values()) <= 5
  rows = (out / "counts").glob("entity_counts-*.tsv")
  assert sum(len(r.read_text(encoding="utf-8").splitlines()) - 1 for r in rows) == len(entities)


def test_entity_types_and_their_vocabulary(mini_run):
  out, _ = mini_run
  entities = {e.entity_id: e for e in _all(out, records.ENTITIES)}
  # Q571 book: P31 'Q121132955' is not in entities.jsonl, so it stays unexpanded.
  assert entities["Q571"].types == ("Q121132955",)
  assert entities["Q8646"].types == ("Q3373417", "Q486972", "Q515", "Q779415")
  assert entities["bnwiki:ঢাকা"].types == ("cat:bnwiki:বাংলাদেশের শহর",)
  vocabulary = records.read_type_vocabulary(str(out))
  carried = collections.Counter(t for e in entities.values() for t in e.types)
  assert {v.type_id: v.entities for v in vocabulary} == dict(carried)
  assert all(v.entities >= 3 for v in vocabulary if v.source == "category")
  assert vocabulary[0] == records.TypeEntry("Q5", 7, "wikidata", "")
  summary = records.read_summary(str(out))
  t = summary["totals"]
  assert summary["checks"]["types"]["ok"]
  assert (t["entities/types/wikidata"] + t["entities/types/category"] + t["entities/types/none"]
          == t["entities/emitted"])
  assert t["entities/types/wikidata"] == sum(1 for e in entities.values() if e.qid)
  assert t["types/wikidata/p31_classes"] == t["types/wikidata/p31_classes_not_in_dump"] > 0
  assert t["types/category/dropped"] > t["types/category/kept"] > 0
  assert summary["config"]["type_superclass_steps"] == 2


def test_dead_letters_match_the_counted_rejections(mini_run):
  out, _ = mini_run
  summary = records.read_summary(str(out))
  dead = collections.Counter()
  for d in records.read_dead_letters(str(out)):
    dead[(d.stage, d.reason)] += d.count
  link_reasons = [r for s, r in dead if s == "link"]
  assert "target_has_no_page" in link_reasons
  for reason in link_reasons:
    assert summary["totals"][f"links/skipped/{reason}"] == dead[("link", reason)]
  assert dead[("link", "target_has_no_page")] > 1000


def test_rerun_reuses_a_completed_run(mini_run, shared_data):
  out, _ = mini_run
  before = (out / records.SUMMARY_JSON).stat().st_mtime
  result = _beam("run", "extract_mentions",
                 f"--wikipedia_dumps={shared_data}/wikipedia/mini/*.xml.bz2",
                 f"--wikidata_dump={shared_data}/wikidata/entities.jsonl",
                 f"--output_dir={out}", "--holdout_per_language=30")
  assert result.returncode == 0
  assert "already holds a completed run" in result.stdout
  assert (out / records.SUMMARY_JSON).stat().st_mtime == before


def test_edge_case_dumps_and_excluded_titles(shared_data, tmp_path):
  edge = shared_data / "wikipedia/edge-cases"
  exclude = tmp_path / "exclude.txt"
  exclude.write_text("# TR2016-style test pages\nenwiki\tBrahui language\nУкраїна\n",
                     encoding="utf-8")
  out = tmp_path / "out"
  result = _beam("run", "extract_mentions",
                 f"--wikipedia_dumps={edge}/bgwiki-3pages-utf16le-crlf.xml.bz2,"
                 f"{edge}/ukwiki-truncated-midpage.xml.xz,{edge}/enwiki-table-markup.xml.bz2",
                 f"--output_dir={out}", f"--exclude_titles={exclude}")
  assert result.returncode == 0, result.stderr[-3000:]
  summary = records.read_summary(str(out))
  totals, by_lang = summary["totals"], summary["by_language"]
  assert all(check["ok"] for check in summary["checks"].values())
  assert totals["dump/errors/truncated"] == 1
  assert by_lang["uk"]["pages/read"] == 532 and by_lang["bg"]["pages/read"] == 3
  assert by_lang["en"]["pages/read"] == 5
  dead = [d for d in records.read_dead_letters(str(out)) if d.stage == "dump"]
  assert len(dead) == 1 and dead[0].reason == "truncated"
  assert dead[0].source.endswith("ukwiki-truncated-midpage.xml.xz")
  assert "532 complete pages" in dead[0].detail
  assert totals["links/skipped/excluded_document"] > 0
  mentions = _all(out, records.MENTIONS_TRAIN) + _all(out, records.MENTIONS_HOLDOUT)
  assert not [m for m in mentions if m.doc_title in ("Brahui language", "Україна")]
  # The UTF-16 bg dump: one article (its link targets are not in this 3-page dump) and two
  # project-namespace pages.
  assert by_lang["bg"]["pages/article"] == 1
  assert by_lang["bg"]["pages/skipped/non_article_namespace"] == 2
  assert by_lang["bg"]["links/found"] > 50
  assert any(m.lang == "uk" for m in mentions)


def test_cli_errors_and_help(tmp_path):
  result = _beam("run", "extract_mentions", "--wikipedia_dumps=/nonexistent/*.bz2",
                 f"--output_dir={tmp_path}")
  assert result.returncode == 1
  assert "no file matches '/nonexistent/*.bz2'" in result.stderr
  listing = _beam("run", "--help")
  assert listing.returncode == 0 and "extract_mentions" in listing.stdout
  unknown = _beam("run", "nope")
  assert unknown.returncode == 2 and "unknown pipeline 'nope'" in unknown.stderr
  flags = _beam("run", "extract_mentions", "--help")
  assert flags.returncode == 0 and "--wikidata_dump" in flags.stdout
  assert "--type_superclass_steps" in flags.stdout and "--min_category_entities" in flags.stdout
  negative = _beam("run", "extract_mentions", f"--wikipedia_dumps={tmp_path}/x.xml",
                   f"--output_dir={tmp_path}", "--type_superclass_steps=-1")
  assert negative.returncode == 2 and "--type_superclass_steps must be >= 0" in negative.stderr
  if shutil.which("beam"):
    assert subprocess.run(["beam", "run", "--help"], capture_output=True).returncode == 0


def test_a_replaced_input_is_not_reused(shared_data, tmp_path):
  dump = tmp_path / "dump.xml.bz2"
  shutil.copy(shared_data / "wikipedia/mini/ukwiki-mini.xml.bz2", dump)
  out = tmp_path / "out"
  args = ("run", "extract_mentions", f"--wikipedia_dumps={dump}", f"--output_dir={out}")
  assert _beam(*args).returncode == 0
  assert "already holds a completed run" in _beam(*args).stdout
  shutil.copy(shared_data / "wikipedia/mini/mrwiki-mini.xml.bz2", dump)  # same path, new data
  rerun = _beam(*args)
  assert rerun.returncode == 0 and "already holds" not in rerun.stdout
  assert set(records.read_summary(str(out))["by_language"]) == {"mr"}


def _everything(out):
  kept = {name: sorted(r.to_json() for r in _all(out, name))
          for name in (records.MENTIONS_TRAIN, records.MENTIONS_HOLDOUT, records.ENTITIES,
                       records.ENTITY_PAIRS, records.DOCUMENTS)}
  kept["dead letters"] = sorted(d.to_json() for d in records.read_dead_letters(str(out)))
  totals = records.read_summary(str(out))["totals"]
  kept["totals"] = {k: v for k, v in totals.items()  # all but how the files were read
                    if not k.startswith(("dump/read", "dump/streams"))}
  return kept, totals


def test_split_reads_on_two_worker_processes_equal_one_whole_read(multistream_excerpts,
                                                                   tmp_path):
  """All seven excerpts as multistream dumps + WikiData in many bz2 streams: read whole in
  one process, and split into ~300 kB ranges across two worker processes (FnApiRunner
  multi_processing), record for record."""
  inputs = [f"--wikipedia_dumps={multistream_excerpts.folder}/*multistream*",
            f"--wikidata_dump={multistream_excerpts.wikidata}"]
  whole = _beam("run", "extract_mentions", *inputs, f"--output_dir={tmp_path / 'whole'}",
                "--no_split_reads")
  assert whole.returncode == 0, whole.stderr[-3000:]
  split = _beam("run", "extract_mentions", *inputs, f"--output_dir={tmp_path / 'split'}",
                "--split_bytes=300000", "--direct_running_mode=multi_processing",
                "--direct_num_workers=2")
  assert split.returncode == 0, split.stderr[-3000:]
  expected, whole_totals = _everything(tmp_path / "whole")
  got, split_totals = _everything(tmp_path / "split")
  for name in expected:
    assert got[name] == expected[name], name
  assert len(expected[records.MENTIONS_TRAIN]) == 26086 and len(expected[records.ENTITIES]) == 2950
  assert whole_totals["dump/read_whole/split_reads_off"] == 8
  assert split_totals["dump/read_split"] == 8 and split_totals["dump/streams_read"] == 59
  assert "read by many workers (byte ranges) 8 files (59 page streams)" in split.stdout
