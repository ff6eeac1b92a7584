"""mewsli9: the Mewsli-9 reader (format, md5 and span checks) and extraction from WikiNews dumps."""
import collections
import csv
import hashlib
import json
from xml.sax.saxutils import escape

import pytest

from conftest import run_module
from mel.wikipedia import redirects
from mewsli9 import extract, reader

# ---------------------------------------------------------------------------------------------
# reader


def _write_fixture(root, texts, docs_rows, mention_rows):
  """A Mewsli-9-format directory written with csv quoting, as the release is."""
  for lang in {r[0].split("-")[0] for r in docs_rows}:
    (root / lang / "text").mkdir(parents=True)
  for docid, text in texts.items():
    (root / docid.split("-")[0] / "text" / docid).write_bytes(text.encode("utf-8"))
  by_lang = collections.defaultdict(lambda: ([], []))
  for row in docs_rows:
    by_lang[row[0].split("-")[0]][0].append(row)
  for row in mention_rows:
    by_lang[row[0].split("-")[0]][1].append(row)
  for lang, (docs, mentions) in by_lang.items():
    for name, columns, rows in (("docs.tsv", reader.DOC_COLUMNS, docs),
                                ("mentions.tsv", reader.MENTION_COLUMNS, mentions)):
      with open(root / lang / name, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def md5(text):
  return hashlib.md5(text.encode("utf-8")).hexdigest()


TEXTS = {
    "de-1": "Die Kanzlerin traf Macron in Paris.\nDanach flog sie nach 東京.",
    "ja-7": '東京で"会見"が行われた。',
    "ja-8": "この文書のmd5は違う。",
}


@pytest.fixture
def fixture_dir(tmp_path):
  root = tmp_path / "mewsli-9"
  docs = [("de-1", '"Kanzlerin" trifft Macron', "1", "11", "https://de.wikinews.org/wiki?curid=1",
           md5(TEXTS["de-1"])),
          ("ja-7", "会見", "7", "70", "https://ja.wikinews.org/wiki?curid=7", md5(TEXTS["ja-7"])),
          ("ja-8", "違う", "8", "80", "u", "0" * 32)]                       # wrong md5
  mentions = [
      ("de-1", 4, 9, "Kanzlerin", "http://de.wikipedia.org/wiki/Bundeskanzler", "de", "Q4970706",
       "True", 3),
      ("de-1", 19, 6, "Macron", "http://de.wikipedia.org/wiki/Emmanuel_Macron", "de", "Q3052772",
       "True", 4),
      ("de-1", 29, 5, "Paris", "u", "de", "Q90", "True", 5),
      ("de-1", 57, 2, "東京", "u", "de", "Q1490", "True", 5),                # after a line break
      ("ja-7", 0, 2, "東京", "u", "ja", "Q1490", "True", 5),
      ("ja-7", 3, 4, '"会見"', "u", "ja", "Q1", "False", 0),              # quotes in a field
      ("ja-7", 2, 3, "会見", "u", "ja", "Q2", "False", 1),                 # bad span: reads で"会
      ("ja-8", 0, 2, "この", "u", "ja", "Q3", "False", 2),
  ]
  _write_fixture(root, TEXTS, docs, mentions)
  return root


def test_reader_reads_docs_mentions_and_texts(fixture_dir):
  ds = reader.read_dataset(str(fixture_dir))
  assert set(ds.docs) == {"de-1", "ja-7", "ja-8"}
  assert ds.docs["de-1"].title == '"Kanzlerin" trifft Macron'     # csv quoting undone
  assert ds.docs["ja-7"].lang == "ja" and ds.texts["ja-7"] == TEXTS["ja-7"]
  assert len(ds.mentions) == 8
  quoted = next(m for m in ds.mentions if m.qid == "Q1")
  assert quoted.mention == '"会見"' and quoted.qid_in_refs is False and quoted.freq_bin == 0
  # Unicode code points: '東京' after the line break is at 57 in de-1.
  tokyo = next(m for m in ds.mentions if m.docid == "de-1" and m.qid == "Q1490")
  assert ds.texts["de-1"][tokyo.position:tokyo.end] == "東京"


def test_reader_reports_a_wrong_md5_and_a_bad_span(fixture_dir):
  ds = reader.read_dataset(str(fixture_dir))
  assert set(ds.problems) == {reader.MD5_MISMATCH, reader.SPAN_MISMATCH}
  [md5_problem] = ds.problems[reader.MD5_MISMATCH]
  assert "ja/text/ja-8" in md5_problem and "0" * 32 in md5_problem
  [span_problem] = ds.problems[reader.SPAN_MISMATCH]
  # ja/mentions.tsv line 4 (header, then rows); the span [2, 5) reads 'で"会'.
  assert "ja/mentions.tsv:4" in span_problem and """'で"会'""" in span_problem
  usable = ds.usable_mentions()
  assert len(usable) == 7 and all(m.qid != "Q2" for m in usable)
  # A wrong md5 is reported, its document's spans are still checked one by one.
  assert any(m.docid == "ja-8" for m in usable)
  assert ds.summary()["problems"] == {reader.MD5_MISMATCH: 1, reader.SPAN_MISMATCH: 1}


def test_reader_cli_lists_the_problems(fixture_dir, capsys):
  assert reader.main([str(fixture_dir), "--lang", "de"]) == 0
  assert "1 documents, 4 mentions (4 usable)" in capsys.readouterr().out
  assert reader.main([str(fixture_dir)]) == 1
  out = capsys.readouterr().out
  assert "md5_mismatch: 1" in out and "span_mismatch: 1" in out and "ja/mentions.tsv:4" in out
  assert reader.main([str(fixture_dir / "nowhere")]) == 2


def test_reader_reports_missing_texts_and_unknown_docs(fixture_dir):
  (fixture_dir / "ja" / "text" / "ja-8").unlink()
  with open(fixture_dir / "ja" / "mentions.tsv", "a", encoding="utf-8") as f:
    f.write("ja-99\t0\t1\tx\tu\tja\tQ5\tFalse\t0\n")
  ds = reader.read_dataset(str(fixture_dir))
  assert len(ds.problems[reader.NO_TEXT]) == 2           # the doc, and its mention
  assert "ja/mentions.tsv:6" in ds.problems[reader.UNKNOWN_DOC][0]
  assert len(ds.usable_mentions()) == 6


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("\t4\t9\t", "\tfour\t9\t"), r"de/mentions\.tsv: line 2: position 'four'"),
    (lambda t: t.replace("\tQ90\tTrue\t5", "\tQ90\tTrue\t6"), r"line 4: freq_bin 6"),
    (lambda t: t.replace("\tQ90\tTrue", "\tQ90\tyes"), r"line 4: qid_in_refs 'yes'"),
    (lambda t: t.replace("\tQ90\t", "\t"), r"line 4: 8 fields, the header has 9"),
    (lambda t: t.replace("qid_in_refs", "in_refs"), r"line 1: header lacks columns"),
    (lambda t: t.replace("\t6\tMacron", "\t0\tMacron"), r"line 3: length 0 is below 1"),
])
def test_reader_format_errors_name_the_file_and_line(fixture_dir, edit, message):
  path = fixture_dir / "de" / "mentions.tsv"
  path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
  with pytest.raises(reader.Mewsli9FormatError, match=message):
    reader.read_dataset(str(fixture_dir))


def test_write_language_round_trips_and_replaces(tmp_path):
  text = 'Er sagte: "Tab\there" und ging nach Berlin.'
  doc = reader.Doc("de-5", 'Titel mit "Quote"\tund Tab', "5", "", "u", reader.text_md5(text), "de")
  start = text.index("Berlin")
  mention = reader.Mention("de-5", start, 6, "Berlin", "u", "de", "Q64", True, 3, "")
  reader.write_language(str(tmp_path / "de"), [doc], {"de-5": text}, [mention])
  reader.write_language(str(tmp_path / "de"), [doc], {"de-5": text}, [mention])   # replaces
  ds = reader.read_dataset(str(tmp_path))
  assert ds.problems == {} and ds.docs["de-5"] == doc and ds.texts["de-5"] == text
  assert [(m.position, m.mention, m.qid, m.freq_bin) for m in ds.mentions] == [
      (start, "Berlin", "Q64", 3)]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["de"]     # no temp dirs left


# ---------------------------------------------------------------------------------------------
# extraction: pieces


@pytest.mark.parametrize("heading, lang, expected", [
    ("Quellen", "de", True), (" Weblinks: ", "de", True), ("Sources", "de", True),
    ("Politik", "de", False), ("Извори", "sr", True), ("Izvori", "sr", True),
    ("Повезане вести", "sr", True), ("Београд", "sr", False), ("出典", "ja", True),
    ("関連記事", "ja", True), ("東京", "ja", False), ("المصادر", "ar", True),
    ("See also.", "xx", True), ("Reactions", "en", False),
])
def test_end_section_headings(heading, lang, expected):
  assert extract.is_end_section(heading, lang) is expected


@pytest.mark.parametrize("raw, on_wikipedia, expected", [
    ("w:Berlin", False, ("de", "Berlin")), (":w:berlin#Geschichte", False, ("de", "Berlin")),
    ("W:fr:Paris", False, ("fr", "Paris")), ("wikipedia:en:New_York", False, ("en", "New York")),
    ("w:sr:Београд", False, ("sr", "Београд")), ("w:xyz:Foo", False, ("de", "Xyz:Foo")),
    (":fr:Paris", False, None), (":fr:Paris", True, ("fr", "Paris")), ("fr:Paris", True, None),
    ("Berlin", False, None), ("wikt:Haus", False, None), ("w:", False, None),
    ("w:{{PAGENAME}}", False, None),
])
def test_prefixed_wikipedia_targets(raw, on_wikipedia, expected):
  assert extract.prefixed_wikipedia_target(raw, "de", on_wikipedia) == expected


REDIRECTS = {("dewiki", "BRD"): "Deutschland", ("dewiki", "A"): "B", ("dewiki", "B"): "A",
             ("dewiki", "X"): "", ("dewiki", "C1"): "C2", ("dewiki", "C2"): "C3",
             ("dewiki", "C3"): "C4", ("dewiki", "Self"): "Self"}


def test_follow_redirects_worked_out_by_hand():
  """mel.wikipedia.redirects.follow, the rule the extractor and the mining pipeline share."""
  follow = redirects.follow
  # BRD -> Deutschland: one hop; Berlin is no redirect: itself, no hop.
  assert follow(("dewiki", "BRD"), REDIRECTS, 4) == ("ok", ("dewiki", "Deutschland"), 1)
  assert follow(("dewiki", "Berlin"), REDIRECTS, 4) == ("ok", ("dewiki", "Berlin"), 0)
  # A -> B -> A: at B the next title is the start; the detail is the chain so far.
  assert follow(("dewiki", "A"), REDIRECTS, 4) == ("fail", redirects.REDIRECT_LOOP, "A -> B")
  assert follow(("dewiki", "Self"), REDIRECTS, 4) == ("fail", redirects.REDIRECT_LOOP, "Self")
  # X leads out of the articles (its target was not an article title).
  assert follow(("dewiki", "X"), REDIRECTS, 4) == ("fail", redirects.REDIRECT_TO_NON_ARTICLE, "")
  # C1 -> C2 -> C3 -> C4 is 3 hops: fine with 3, too long with 2.
  assert follow(("dewiki", "C1"), REDIRECTS, 3) == ("ok", ("dewiki", "C4"), 3)
  assert follow(("dewiki", "C1"), REDIRECTS, 2) == (
      "fail", redirects.REDIRECT_CHAIN_TOO_LONG, "more than 2 hops")


def test_next_hop_one_step_at_a_time():
  """next_hop at a redirect page: visited holds the chain before it, its start first."""
  step = redirects.next_hop
  assert step(("dewiki", "C2"), "C3", [("dewiki", "C1")], 1, 4) == ("follow", ("dewiki", "C3"))
  # Back to the start, or to the page itself: a loop naming the chain.
  assert step(("dewiki", "C3"), "C1", [("dewiki", "C1"), ("dewiki", "C2")], 2, 4) == (
      "fail", redirects.REDIRECT_LOOP, "C1 -> C2 -> C3")
  assert step(("dewiki", "C2"), "C2", [("dewiki", "C1")], 1, 4) == (
      "fail", redirects.REDIRECT_LOOP, "C1 -> C2")
  # 4 hops taken with max 4: one more is too many; the empty target fails first.
  assert step(("dewiki", "C5"), "C6", [], 4, 4) == (
      "fail", redirects.REDIRECT_CHAIN_TOO_LONG, "more than 4 hops")
  assert step(("dewiki", "C5"), "", [], 4, 4) == ("fail", redirects.REDIRECT_TO_NON_ARTICLE, "")
  # The loop is found before the hop limit.
  assert step(("dewiki", "B"), "A", [("dewiki", "A")], 9, 1)[1] == redirects.REDIRECT_LOOP


def test_the_extractor_has_no_redirect_rule_of_its_own():
  assert not hasattr(extract, "follow_redirects") and not hasattr(extract, "REDIRECT_LOOP")


# ---------------------------------------------------------------------------------------------
# extraction: constructed WikiNews dumps in three scripts


def _dump(path, dbname, pages, namespaces=()):
  """A pages-articles XML dump: pages are (page id, title, ns, wikitext, redirect or None)."""
  ns_xml = "".join(f'<namespace key="{k}" case="first-letter">{escape(n)}</namespace>'
                   for k, n in namespaces)
  body = []
  for page_id, title, ns, text, redirect in pages:
    redirect_xml = f'<redirect title="{escape(redirect)}" />' if redirect else ""
    body.append(f"<page><title>{escape(title)}</title><ns>{ns}</ns><id>{page_id}</id>"
                f"{redirect_xml}<revision><id>{page_id * 10}</id>"
                f'<text xml:space="preserve">{escape(text)}</text></revision></page>')
  path.write_text(
      '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">'
      f"<siteinfo><dbname>{dbname}</dbname><case>first-letter</case><namespaces>{ns_xml}"
      f"</namespaces></siteinfo>{''.join(body)}</mediawiki>", encoding="utf-8")
  return str(path)


def _entity(entity_id, sitelinks, mentions):
  from mel import schema
  counts = {"de": mentions} if mentions else {}
  return schema.Entity(
      entity_id=entity_id, qid=entity_id if entity_id.startswith("Q") else "", description="",
      description_lang="", description_source="", mention_count=mentions, mention_counts=counts,
      sitelinks=sitelinks, labels={}, wikidata_descriptions={}, wikipedia_descriptions={},
      aliases={})


KB = [  # entity, sitelinks, training mentions (-> bin)
    ("Q64", {"dewiki": "Berlin", "enwiki": "Berlin", "srwiki": "Берлин", "jawiki": "ベルリン"},
     150),                                                            # bin 3
    ("Q183", {"dewiki": "Deutschland", "enwiki": "Germany"}, 12),      # bin 2
    ("Q90", {"frwiki": "Paris", "enwiki": "Paris"}, 0),                # bin 0
    ("Q1234567", {"dewiki": "Kleinstadt"}, 1),                         # bin 1, no enwiki
    ("srwiki:Нешто", {"srwiki": "Нешто"}, 3),                          # page-only entity
    ("Q17", {"jawiki": "日本", "enwiki": "Japan", "srwiki": "Јапан"}, 10_000),   # bin 5
    ("Q1490", {"jawiki": "東京都", "enwiki": "Tokyo"}, 1_000),          # bin 4
]

DE_PAGE = """{{Datum|1. Januar 2019}}
'''Berlin''' (Deutschland), 1.01.2019 – Die [[w:Berlin|deutsche Hauptstadt]] und die \
[[w:BRD|Bundesrepublik]] feiern. {{w|Kleinstadt|Eine Kleinstadt}} auch. Der [[w:fr:Paris|Pariser]] \
Bürgermeister kam.<ref>[[w:Berlin|in ref]]</ref> [[Anderer Artikel|Siehe]] auch \
[[:fr:Article|hier]]. Unbekannt: [[w:Gibt es nicht|Nichts]], [[w:Schleife A|Schleife]].
[[Kategorie:Politik]]

== Quellen ==
* [[w:Berlin|Berlin in der Quelle]]
"""
SR_PAGE = """[[w:Берлин|Берлин]] је главни град. [[w:sr:Нешто|Нешто]] је непознато. Види \
[[w:sr:Јапан|Јапан]]у.

== Извори ==
* [[w:Берлин|извор]]
"""
JA_PAGE = """[[w:東京|東京]]で[[w:日本|日本]]の首相が会見した。{{W|ベルリン|ベルリン}}からも。

== 出典 ==
* [[w:東京都|出典の東京]]
"""


@pytest.fixture(scope="module")
def constructed(tmp_path_factory):
  import tensorflow as tf
  root = tmp_path_factory.mktemp("wikinews")
  mining = root / "mining"
  (mining / "entities").mkdir(parents=True)
  with tf.io.TFRecordWriter(str(mining / "entities/entities-00000-of-00001.tfrecord.gz"),
                            options="GZIP") as w:
    for entity_id, sitelinks, n in KB:
      w.write(_entity(entity_id, sitelinks, n).to_example_bytes())
  dumps = [
      _dump(root / "de.xml", "dewikinews", [
          (1, "Berlin feiert", 0, DE_PAGE, None),
          (2, "Umleitung", 0, "#WEITERLEITUNG [[Berlin feiert]]", "Berlin feiert"),
          (3, "Diskussion:Berlin feiert", 1, "[[w:Berlin|Berlin]]", None),
          (4, "Ohne Links", 0, "Kein Link hier. [[Berlin feiert|Intern]]", None)],
          [(14, "Kategorie"), (1, "Diskussion")]),
      _dump(root / "sr.xml", "srwikinews", [(10, "Берлин", 0, SR_PAGE, None)]),
      _dump(root / "ja.xml", "jawikinews", [(20, "会見", 0, JA_PAGE, None)]),
  ]
  wikipedia = [
      _dump(root / "dewiki.xml", "dewiki", [
          (1, "BRD", 0, "#REDIRECT [[Deutschland]]", "Deutschland"),
          (2, "Schleife A", 0, "#REDIRECT [[Schleife B]]", "Schleife B"),
          (3, "Schleife B", 0, "#REDIRECT [[Schleife A]]", "Schleife A")]),
      _dump(root / "jawiki.xml", "jawiki", [(1, "東京", 0, "#REDIRECT [[東京都]]", "東京都")])]
  return dumps, wikipedia, str(mining), root


def _by_mention(ds):
  return {m.mention: m for m in ds.mentions}


def test_extraction_in_three_scripts(constructed):
  dumps, wikipedia, mining, root = constructed
  out = root / "out"
  summary = extract.extract(dumps, mining, str(out), wikipedia_dumps=wikipedia, progress=False)
  ds = reader.read_dataset(str(out))
  assert ds.problems == {}                         # every md5 and span checks out
  assert sorted(ds.docs) == ["de-1", "ja-20", "sr-10"]   # the link-less article is not written
  de = ds.texts["de-1"]
  assert de.startswith("Berlin (Deutschland), 1.01.2019 – Die deutsche Hauptstadt und die "
                       "Bundesrepublik feiern. Eine Kleinstadt auch. Der Pariser "
                       "Bürgermeister kam.")
  assert "Quelle" not in de and "in ref" not in de and "Politik" not in de
  assert "Siehe auch hier." in de                  # other links keep their text
  got = {m.mention: (m.qid, m.freq_bin, m.qid_in_refs) for m in ds.mentions if m.lang == "de"}
  assert got == {"deutsche Hauptstadt": ("Q64", 3, True),
                 "Bundesrepublik": ("Q183", 2, True),        # through the redirect BRD
                 "Eine Kleinstadt": ("Q1234567", 1, False),  # {{w}} template; no enwiki page
                 "Pariser": ("Q90", 0, True)}                # [[w:fr:...]]
  assert _by_mention(ds)["Pariser"].url == "http://fr.wikipedia.org/wiki/Paris"
  # Cyrillic: the link trail joins the anchor; the page-only entity is dropped (QIDs only).
  sr = {m.mention: m.qid for m in ds.mentions if m.lang == "sr"}
  assert sr == {"Берлин": "Q64", "Јапану": "Q17"}
  # Japanese: no trails; a redirect on jawiki; {{W}} (first letter case-insensitive).
  ja = {m.mention: (m.qid, m.freq_bin) for m in ds.mentions if m.lang == "ja"}
  assert ja == {"東京": ("Q1490", 4), "日本": ("Q17", 5), "ベルリン": ("Q64", 3)}
  assert ds.texts["ja-20"] == "東京で日本の首相が会見した。ベルリンからも。"

  t = summary["totals"]
  assert t["links/unresolved/not_in_kb"] == 1 and t["links/unresolved/redirect_loop"] == 1
  assert t["links/unresolved/page_only_entity"] == 1
  assert t["links/same_project_link"] == 2 and t["links/interwiki_link"] == 1
  assert t["links/in_ref"] == 1 and t["links/category_link"] == 1
  assert t["end_section/cut"] == 3 and t["end_section/links"] == 3
  assert t["pages/skipped/redirect"] == 1 and t["pages/skipped/non_article_namespace"] == 1
  assert summary["checks"]["found_equals_mentions_unresolved_and_others"]
  assert summary["checks"]["mentions"] == len(ds.mentions) == 9
  assert json.loads((out / "summary.json").read_text())["checks"] == summary["checks"]

  # Without redirect dumps, BRD and 東京 do not resolve; with --keep_page_entities, Нешто does.
  out2 = root / "out2"
  summary = extract.extract(dumps, mining, str(out2), keep_page_entities=True, progress=False)
  ds = reader.read_dataset(str(out2))
  assert "Bundesrepublik" not in _by_mention(ds) and "東京" not in _by_mention(ds)
  assert _by_mention(ds)["Нешто"].qid == "srwiki:Нешто"
  assert summary["totals"]["links/unresolved/not_in_kb"] == 4   # also the loop's start


def test_extraction_cli_reports_and_fails_clearly(constructed, tmp_path):
  dumps, wikipedia, mining, _ = constructed
  flags = ["--wikinews_dumps", ",".join(dumps), "--mining_dir", mining,
           "--wikipedia_dumps", ",".join(wikipedia), "--output", tmp_path / "out"]
  result = run_module("mewsli9.extract", *flags, "--no_progress")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "links     found 17 = mentions 9 + unresolved 3 + not Wikipedia links 5 [ok]" in \
      result.stderr
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert summary["inputs"]["wikipedia_dumps"] and summary["inputs"]["wikinews_dumps"]
  # Over a finished dataset: refused without --overwrite, replaced with it.
  again = run_module("mewsli9.extract", *flags, "--no_progress")
  assert again.returncode == 1 and "pass --overwrite" in again.stderr
  assert run_module("mewsli9.extract", *flags, "--overwrite").returncode == 0
  missing = run_module("mewsli9.extract", "--wikinews_dumps", str(tmp_path / "nope-*.xml"),
                       "--mining_dir", mining, "--output", tmp_path / "out3")
  assert missing.returncode == 1 and "no files match" in missing.stderr
  old_flag = run_module("mewsli9.extract", "--dumps", dumps[0], "--mining_dir", mining,
                        "--output", tmp_path / "out4")
  assert old_flag.returncode == 2 and "--wikinews_dumps" in old_flag.stderr


def test_overwrite_removes_languages_the_new_dataset_lacks(constructed, tmp_path):
  dumps, _, mining, _ = constructed
  out = tmp_path / "out"
  extract.extract(dumps, mining, str(out), progress=False)
  assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["de", "ja", "sr"]
  with pytest.raises(ValueError, match="already holds a Mewsli-9 dataset"):
    extract.extract(dumps[:1], mining, str(out), progress=False)
  extract.extract(dumps[:1], mining, str(out), overwrite=True, progress=False)
  assert sorted(p.name for p in out.iterdir()) == ["de", "summary.json"]
  assert set(reader.read_dataset(str(out)).docs) == {"de-1"}


# ---------------------------------------------------------------------------------------------
# extraction on real Wikipedia pages (the shared mini dumps treated as a dump)


@pytest.mark.slow
def test_wikipedia_mini_dumps_give_the_mining_runs_text_and_mentions(mini_mining, mini_mewsli9):
  """On a Wikipedia dump, plain [[links]] are Wikipedia links: within the text kept before the
  end sections, the extraction must find exactly the mining run's mentions (same offsets, same
  entities) in exactly its text."""
  from mel import records
  out, summary = mini_mewsli9
  ds = reader.read_dataset(str(out))
  assert ds.problems == {} and len(ds.mentions) > 500
  assert len({m.lang for m in ds.mentions}) == 7
  mined = collections.defaultdict(set)
  for name in (records.MENTIONS_TRAIN, records.MENTIONS_HOLDOUT):
    for m in records.read_output(str(mini_mining[0]), name):
      mined[f"{m.lang}-{m.doc_id}"].add((m.start, m.end, m.entity_id))
  texts = {f"{d.lang}-{d.doc_id}": d.text
           for d in records.read_output(str(mini_mining[0]), records.DOCUMENTS)}
  extracted = collections.defaultdict(set)
  for m in ds.mentions:
    extracted[m.docid].add((m.position, m.end, m.qid))
  cut = 0
  for docid, text in ds.texts.items():
    assert texts[docid].startswith(text), docid
    cut += len(text) < len(texts[docid])
    assert extracted[docid] == {x for x in mined[docid] if x[1] <= len(text)}, docid
  assert cut > 20                          # end sections were cut on many pages
  assert summary["totals"]["end_section/cut"] >= cut
  assert summary["checks"]["found_equals_mentions_unresolved_and_others"]


def test_mewsli9_imports_no_beam_and_no_evaluation():
  """mewsli9 comes before evaluation (mel.evaluation.datasets reads it) and needs no Beam."""
  import subprocess
  import sys
  code = ("import sys, mewsli9.extract, mewsli9.reader; print(sorted(m for m in sys.modules if "
          "m.startswith(('apache_beam', 'beam_pipelines', 'mel.evaluation'))))")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == "[]"
