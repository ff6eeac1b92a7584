"""Entity types: category links per wiki, the P279 walk, the category filter, the vocabulary."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import entity_types as ET
from beam_pipelines import summary
from beam_pipelines import transforms as T
from beam_pipelines import wikidata
from mel import records
from mel.wikipedia import titles, wikitext


def _site(wiki, category_name):
  """A SiteInfo as the dump reader builds it: only the primary localised category name."""
  return titles.SiteInfo(wiki=wiki, lang=wiki[:-4], case="first-letter",
                         namespaces={category_name.lower(): 14})


EL = _site("elwiki", "Κατηγορία")
UK = _site("ukwiki", "Категорія")
JA = _site("jawiki", "Category")
VI = _site("viwiki", "Thể loại")


def test_category_titles_use_each_wikis_namespace_names_and_title_rules():
  assert titles.category_title("Κατηγορία:Πρωτεύουσες_της  Ευρώπης", EL) == (
      "Πρωτεύουσες της Ευρώπης")
  assert titles.category_title("κατηγορία:πρωτεύουσες της Ευρώπης", EL) == (
      "Πρωτεύουσες της Ευρώπης")                      # namespace case-insensitive, ucfirst
  assert titles.category_title("Категорія:Столиці Європи", UK) == "Столиці Європи"
  assert titles.category_title("Категория:Столицы", UK) == "Столицы"   # alias
  assert titles.category_title("Category:日本の首都", JA) == "日本の首都"
  assert titles.category_title("カテゴリ:日本の首都", JA) == "日本の首都"  # alias
  assert titles.category_title("Thể_loại:thủ đô châu Á", VI) == "Thủ đô châu Á"
  assert titles.category_title("Category:Thủ đô", VI) == "Thủ đô"       # canonical everywhere
  assert titles.category_title(":Category:Thủ đô", VI) == ""            # a link, not a category
  assert titles.category_title("Tập tin:X.jpg", VI) == ""
  assert titles.category_title("Κατηγορία:", EL) == ""
  # 'カテゴリ' is an alias on jawiki only.
  assert titles.category_title("カテゴリ:X", VI) == ""


def test_parse_page_collects_categories_without_sort_keys():
  text = ("'''Αθήνα''' είναι η [[πρωτεύουσα]].\n"
          "[[Κατηγορία:Πρωτεύουσες της Ευρώπης|Αθηνα]]\n[[Category:Πόλεις_της Ελλάδας]]\n"
          "[[κατηγορία:Πρωτεύουσες  της Ευρώπης]]\n[[:Κατηγορία:Όχι αυτή]]\n"
          "{{Πρότυπο|x=[[Κατηγορία:Από πρότυπο]]}}")
  parsed = wikitext.parse_page(text, EL)
  # Links inside template parameters still categorise; what a transcluded template adds by
  # itself is not in the wikitext (not seen).
  assert parsed.categories == tuple(sorted(
      ["Από πρότυπο", "Πόλεις της Ελλάδας", "Πρωτεύουσες της Ευρώπης"]))
  # '[[:Κατηγορία:...]]' is a displayed link to the category page; the others are not text.
  assert "Πόλεις" not in parsed.text and [l.target for l in parsed.links] == ["Πρωτεύουσα"]
  ja = wikitext.parse_page("[[東京]]は首都。\n[[カテゴリ:日本の首都]]\n[[Category:都市|とうきょう]]",
                           JA)
  assert ja.categories == ("日本の首都", "都市") and [l.target for l in ja.links] == ["東京"]


# A small class graph: human -> person -> {being, agent}; being -> entity; a cycle a <-> b.
GRAPH = {"Q5": ("Q215627",), "Q215627": ("Q830077", "Q24229398"), "Q830077": ("Q35120",),
         "Q24229398": (), "Q35120": (), "Qa": ("Qb",), "Qb": ("Qa", "Qc"), "Qc": ()}


def test_expand_classes_follows_p279_within_the_step_limit_and_ends_on_cycles():
  assert ET.expand_classes(["Q5"], GRAPH, 0) == {"Q5"}
  assert ET.expand_classes(["Q5"], GRAPH, 1) == {"Q5", "Q215627"}
  assert ET.expand_classes(["Q5"], GRAPH, 2) == {"Q5", "Q215627", "Q830077", "Q24229398"}
  assert ET.expand_classes(["Q5"], GRAPH, 9) == {"Q5", "Q215627", "Q830077", "Q24229398",
                                                 "Q35120"}
  assert ET.expand_classes(["Qa"], GRAPH, 50) == {"Qa", "Qb", "Qc"}
  assert ET.expand_classes(["Qmissing"], GRAPH, 2) == {"Qmissing"}
  assert ET.expansion_step(frozenset({"Qa"}), ["Qb", "Qa"]) == (frozenset({"Qa", "Qb"}), ("Qb",))


def _pipeline():
  return BeamTestPipeline(runner="FnApiRunner")


def _graph_rows():
  return [(qid, (parents, f"label of {qid}")) for qid, parents in GRAPH.items()]


def test_class_ancestors_walk_matches_the_in_memory_walk():
  classes = ["Q5", "Qa", "Qmissing"]
  for steps in (0, 2, 4):
    with _pipeline() as p:
      out = (p | "C" >> beam.Create(classes), p | "G" >> beam.Create(_graph_rows())) | (
          ET.ClassAncestors(steps))
      assert_that(out["ancestors"] | beam.MapTuple(lambda c, a: (c, sorted(a))), equal_to(
          [(c, sorted(ET.expand_classes([c], GRAPH, steps))) for c in classes]))
      counts = out[T.COUNTS] | beam.CombineGlobally(T.SumCounts())
      assert_that(counts, equal_to([{("", "types/wikidata/p31_classes"): 3,
                                     ("", "types/wikidata/p31_classes_not_in_dump"): 1}]),
                  label="counts")


def _item(qid, p31=()):
  return wikidata.Item(qid=qid, sitelinks={"xxwiki": qid}, labels={}, descriptions={},
                       aliases={}, classes=tuple(p31), instance_of=tuple(p31))


def _page(wiki, *categories):
  return (wiki, "xx", "T", "", tuple(categories))


def test_entity_types_prefer_wikidata_and_keep_common_categories():
  items = [_item("Q1", ["Q5"]), _item("Q2", ["Qa"]), _item("Q3")]   # Q3 has no P31
  pages = [("Q1", _page("xxwiki", "People")),                        # has P31: ignored
           ("Q3", _page("xxwiki", "People")), ("Q3", _page("yywiki", "Leute")),
           ("xxwiki:A", _page("xxwiki", "People", "Rare")),
           ("xxwiki:B", _page("xxwiki", "People")),
           ("yywiki:C", _page("yywiki", "Leute")),
           ("xxwiki:D", _page("xxwiki"))]
  with _pipeline() as p:
    out = (p | "I" >> beam.Create(items), p | "G" >> beam.Create(_graph_rows()),
           p | "P" >> beam.Create(pages)) | ET.EntityTypes(superclass_steps=1,
                                                           min_category_entities=3)
    assert_that(out["types"], equal_to([
        ("Q1", ("wikidata", ("Q215627", "Q5"))), ("Q2", ("wikidata", ("Qa", "Qb"))),
        ("Q3", ("category", ("cat:xxwiki:People",))),   # Leute: 2 entities < 3
        ("xxwiki:A", ("category", ("cat:xxwiki:People",))),
        ("xxwiki:B", ("category", ("cat:xxwiki:People",)))]))
    assert_that(out["vocabulary"], equal_to([
        records.TypeEntry("Q5", 1, "wikidata", "label of Q5"),
        records.TypeEntry("Q215627", 1, "wikidata", "label of Q215627"),
        records.TypeEntry("Qa", 1, "wikidata", "label of Qa"),
        records.TypeEntry("Qb", 1, "wikidata", "label of Qb"),
        records.TypeEntry("cat:xxwiki:People", 3, "category", "People")]), label="vocabulary")
    counts = out[T.COUNTS] | beam.CombineGlobally(T.SumCounts())
    assert_that(counts, equal_to([{
        ("", "types/wikidata/p31_classes"): 2, ("", "types/category/kept"): 1,
        ("", "types/category/dropped"): 2, ("", "types/category/dropped_assignments"): 3,
        ("", "types/vocabulary/category"): 1, ("", "types/vocabulary/wikidata"): 4}]),
        label="counts")


def test_type_vocabulary_file_round_trips_sorted(tmp_path):
  entries = [records.TypeEntry("cat:xxwiki:B", 3, "category", "B"),
             records.TypeEntry("Q5", 7, "wikidata", "human\twith a tab"),
             records.TypeEntry("cat:xxwiki:A", 3, "category", "A")]
  assert summary.write_type_vocabulary(entries, str(tmp_path)) == {
      ("", "types/vocabulary/entity_refs"): 13}
  assert records.read_type_vocabulary(str(tmp_path)) == [
      records.TypeEntry("Q5", 7, "wikidata", "human with a tab"), entries[2], entries[0]]
  assert not list((tmp_path / "types").glob("*.tmp-*"))
  totals = {"entities/emitted": 4, "entities/types/wikidata": 1, "entities/types/category": 2,
            "entities/types/none": 1, "types/assigned": 5, "types/vocabulary/entity_refs": 5}
  assert summary.type_coverage(totals) == {"wikidata": 25.0, "category": 50.0, "none": 25.0}
  assert summary.checks(totals)["types"]["ok"]


def test_wikidata_items_keep_p31_and_p279_apart_and_class_nodes_survive_rejection(shared_data):
  parsed = {}
  with open(shared_data / "wikidata/entities.jsonl", encoding="utf-8") as f:
    for line in f:
      for obj in wikidata.parse_line(line):
        parsed[getattr(obj, "qid", getattr(obj, "key", ""))] = obj
  book = parsed["Q571"]
  assert book.instance_of == ("Q121132955",)
  assert book.subclass_of == ("Q340169", "Q49848", "Q2424752")
  assert book.classes == book.instance_of + book.subclass_of
  assert wikidata.display_label(book.labels) == "book"
  # No Wikipedia sitelink: not an entity, but still a node of the class graph with its label.
  rejected = parsed["Q22002395"]
  assert rejected.reason == wikidata.NO_WIKIPEDIA_SITELINK and rejected.label
  assert wikidata.display_label({"fr": "livre", "de": "Buch"}) == "Buch"
