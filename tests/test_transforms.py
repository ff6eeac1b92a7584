"""Beam transforms of the mining pipeline, with TestPipeline + assert_that on small inputs."""
import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
import pytest

from beam_pipelines import read_dumps
from beam_pipelines import summary
from beam_pipelines import transforms as T
from beam_pipelines import wikidata
from mel.wikipedia import redirects, wikitext
from mel import schema

A, R, U = T.ARTICLE_NODE, T.REDIRECT_NODE, T.UNPARSED_NODE
W = "xxwiki"


def _pipeline():
  return BeamTestPipeline(runner="FnApiRunner")


NODES = [
    ((W, "Paris"), (A, 1)),
    ((W, "Paname"), (R, "Paris")),              # one hop
    ((W, "Ville Lumière"), (R, "Paname")),      # two hops
    ((W, "Loop A"), (R, "Loop B")),
    ((W, "Loop B"), (R, "Loop A")),
    ((W, "Broken"), (R, "Nowhere")),
    ((W, "To help page"), (R, "")),             # redirect into another namespace
    ((W, "Chain 1"), (R, "Chain 2")), ((W, "Chain 2"), (R, "Chain 3")),
    ((W, "Chain 3"), (R, "Chain 4")), ((W, "Chain 4"), (R, "Paris")),
    ((W, "Bad page"), (U, "")),
    ((W, "To bad page"), (R, "Bad page")),
]


def test_resolve_titles_follows_chains_and_names_failures():
  with _pipeline() as p:
    out = p | beam.Create(NODES) | T.ResolveTitles(max_hops=3)
    simplified = out | beam.MapTuple(lambda k, r: (k[1], r[0], r[1] if r[0] == "fail"
                                                   else r[1][1]))
    assert_that(simplified, equal_to([
        ("Paris", "ok", "Paris"), ("Paname", "ok", "Paris"), ("Ville Lumière", "ok", "Paris"),
        ("Loop A", "fail", redirects.REDIRECT_LOOP), ("Loop B", "fail", redirects.REDIRECT_LOOP),
        ("Broken", "fail", T.REDIRECT_TARGET_HAS_NO_PAGE),
        ("To help page", "fail", redirects.REDIRECT_TO_NON_ARTICLE),
        # Chain 1 needs 4 hops (> 3); Chain 2 needs 3, Chain 3 two, Chain 4 one.
        ("Chain 1", "fail", redirects.REDIRECT_CHAIN_TOO_LONG), ("Chain 2", "ok", "Paris"),
        ("Chain 3", "ok", "Paris"), ("Chain 4", "ok", "Paris"),
        ("Bad page", "fail", T.TARGET_FAILED_TO_PARSE),
        ("To bad page", "fail", T.TARGET_FAILED_TO_PARSE),
    ]))


def test_resolve_titles_follows_the_shared_redirect_rule():
  """One hop per CoGroupByKey gives what mel.wikipedia.redirects.follow gives in memory (the
  Mewsli-9 extractor's way), loop details included, for every chain of redirect pages that
  does not end at a missing or unparsed page (those only the pipeline knows)."""
  table = {key: node[1] for key, node in NODES if node[0] == R}
  expected = [(key, redirects.follow(key, table, 3)) for key in table
              if key[1] not in ("Broken", "To bad page")]
  with _pipeline() as p:
    out = p | beam.Create(NODES) | T.ResolveTitles(max_hops=3)
    assert_that(out | beam.Filter(lambda kv: kv[0] in table and kv[0][1] not in (
        "Broken", "To bad page")), equal_to(expected))
  assert (W, "Loop A") in dict(expected) and dict(expected)[(W, "Loop A")] == (
      "fail", redirects.REDIRECT_LOOP, "Loop A -> Loop B")


SITELINKS = [
    ((W, "Paris"), ("Q90", True)),
    ((W, "Category page"), ("Q4167836x", False)),  # a filtered item's page
    ((W, "Not in this dump"), ("Q5", True)),       # WikiData knows a page the excerpt lacks
    ((W, "Bad page"), ("Q7", True)),
]
EXTRA_NODES = [((W, "Orphan"), (A, 9)), ((W, "Category page"), (A, 3)),
               ((W, "To missing"), (R, "Not in this dump"))]


@pytest.mark.parametrize("qids_only", [False, True])
def test_entity_ids_by_title(qids_only):
  with _pipeline() as p:
    nodes = p | "Nodes" >> beam.Create(NODES + EXTRA_NODES)
    sitelinks = p | "Sitelinks" >> beam.Create(SITELINKS)
    out = (nodes, sitelinks) | T.EntityIdsByTitle(max_hops=3, qids_only=qids_only)
    got = out["titles"] | beam.MapTuple(
        lambda k, r: (k[1], r[1]) if r[0] == "ok" else (k[1], "fail:" + r[1]))
    orphan = "fail:" + T.NO_QID if qids_only else "xxwiki:Orphan"
    assert_that(got | beam.Filter(lambda kv: kv[0] in (
        "Paris", "Ville Lumière", "Orphan", "Category page", "To missing", "Not in this dump",
        "Bad page", "To bad page")), equal_to([
            ("Paris", "Q90"), ("Ville Lumière", "Q90"), ("Orphan", orphan),
            ("Category page", "fail:" + T.FILTERED_CLASS), ("To missing", "Q5"),
            ("Not in this dump", "Q5"), ("Bad page", "Q7"), ("To bad page", "Q7")]))


def test_resolve_links_counts_and_dead_letters_every_failure():
  titles_table = [((W, "Paris"), ("ok", "Q90", "Q90", "Paris")),
                  ((W, "Loop A"), ("fail", redirects.REDIRECT_LOOP, "Loop A -> Loop B"))]
  # (doc_id, link index) per link: Paris twice, the loop once, a missing page from two docs.
  links = [((W, "Paris"), (1, 0)), ((W, "Paris"), (2, 5)), ((W, "Loop A"), (1, 1)),
           ((W, "Nowhere"), (1, 2)), ((W, "Nowhere"), (3, 0))]
  with _pipeline() as p:
    out = ((p | "Links" >> beam.Create(links), p | "Titles" >> beam.Create(titles_table))
           | T.ResolveLinks())
    assert_that(out["resolved"], equal_to([((W, 1), (0, "Q90", "Q90", "Paris")),
                                           ((W, 2), (5, "Q90", "Q90", "Paris"))]),
                label="resolved")
    counts = out[T.COUNTS] | "Sum" >> beam.CombineGlobally(T.SumCounts())
    assert_that(counts, equal_to([{("xx", "links/skipped/redirect_loop"): 1,
                                   ("xx", "links/skipped/target_has_no_page"): 2}]),
                label="counts")
    dead = out[T.DEAD_LETTER] | beam.Map(schema.DeadLetter.from_json)
    assert_that(dead | beam.Map(lambda d: (d.stage, d.reason, d.key, d.count)),
                equal_to([("link", redirects.REDIRECT_LOOP, "xxwiki:Loop A", 1),
                          ("link", T.TARGET_HAS_NO_PAGE, "xxwiki:Nowhere", 2)]), label="dead")


def test_link_targets_are_small_tuples_and_excluded_documents_are_counted():
  article = T.Article(wiki=W, lang="xx", title="Doc", page_id=4, text="Alpha Paris Rome",
                      description="", links=(wikitext.LinkSpan(6, 11, "Paris", "Paris"),
                                             wikitext.LinkSpan(12, 16, "Rome", "Rome")))
  assert list(T.link_targets(article, frozenset())) == [((W, "Paris"), (4, 0)),
                                                        ((W, "Rome"), (4, 1))]
  for excluded in ({(W, "Doc")}, {("*", "Doc")}):
    (out,) = list(T.link_targets(article, excluded))
    assert out.tag == T.COUNTS and out.value == {("xx", "links/skipped/excluded_document"): 2}


def test_holdout_takes_whole_documents_per_language():
  # 6 documents in xxwiki (10 resolved links each) and 1 in yywiki; target 15 with a 0.5 cap.
  resolved = [((W, d), (i, "Q90", "Q90", "Paris")) for d in range(6) for i in range(10)]
  resolved += [(("yywiki", 100), (i, "Q90", "Q90", "Paris")) for i in range(4)]
  with _pipeline() as p:
    docs = p | beam.Create(resolved) | T.ChooseHoldoutDocuments(15, 0.5, seed=3)
    per_wiki = docs | beam.Map(lambda key: (key[0], 1)) | beam.CombinePerKey(sum)
    # xxwiki: two whole documents reach the target (20 >= 15, under the cap of 30);
    # yywiki: its one document holds 4 > 0.5 * 4 mentions, so nothing is held out.
    assert_that(per_wiki, equal_to([(W, 2)]))


def test_mentions_of_a_document_cut_contexts_and_take_the_split():
  text = "Alpha beta Paris gamma delta"
  article = T.Article(wiki=W, lang="xx", title="Doc", page_id=4, text=text, description="",
                      links=(wikitext.LinkSpan(0, 5, "Alpha", "Alpha"),
                             wikitext.LinkSpan(11, 16, "Paris", "Paris")))
  fn = T._MentionsOfDocumentFn(context_chars=6, write_documents=True)
  element = ((W, 4), {"article": [article], "linked": [(1, "Q90", "Q90", "Paris")]})
  for holdout, split in (({}, "train"), ({(W, 4): True}, "holdout")):
    fn.start_bundle()
    out = list(fn.process(element, holdout_docs=holdout))
    (flushed,) = list(fn.finish_bundle())
    (mention,) = [o for o in out if isinstance(o, schema.Mention)]
    assert (mention.left_context, mention.mention, mention.right_context) == (
        " beta ", "Paris", " gamma")
    assert (mention.mention_id, mention.entity_id, mention.split) == ("xxwiki:4:1", "Q90", split)
    tagged = {o.tag: o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput)}
    assert tagged["documents"].text == text and tagged["documents"].split == split
    assert flushed.tag == T.COUNTS
    assert flushed.value.value == {("xx", f"mentions/{split}"): 1, ("xx", "documents/emitted"): 1}


def test_wikidata_items_and_filtered_sitelinks(shared_data):
  path = str(shared_data / "wikidata/entities.jsonl")
  with _pipeline() as p:
    out = p | beam.Create([path]) | read_dumps.ReadWikidata()
    assert_that(out["items"] | beam.Map(lambda i: i.qid) | beam.combiners.Count.Globally(),
                equal_to([17]), label="items")
    assert_that(out["sitelinks"] | beam.Filter(lambda r: r[0] == ("viwiki", "Hồng Kông")),
                equal_to([(("viwiki", "Hồng Kông"), ("Q8646", True))]), label="sitelink")
    counts = out[T.COUNTS] | beam.CombineGlobally(T.SumCounts())
    assert_that(counts | beam.Map(lambda c: (c[("", "wikidata/read")],
                                             c[("", "wikidata/skipped/not_an_item")])),
                equal_to([(23, 4)]), label="counts")


def test_entity_build_chooses_description_by_usage_and_emits_pairs():
  item = wikidata.Item(qid="Q90", sitelinks={"frwiki": "Paris", "ukwiki": "Париж"},
                       labels={"fr": "Paris"}, descriptions={"en": "capital of France"},
                       aliases={}, classes=())
  pages = [("frwiki", "fr", "Paris", "Paris est la capitale de la France."),
           ("ukwiki", "uk", "Париж", "Париж — столиця Франції.")]
  fn = T._BuildEntityFn(max_pairs=5, seed=0)
  fn.start_bundle()
  # 3 Ukrainian mentions vs 1 French: the Ukrainian first sentence wins (n_e(l) first).
  out = list(fn.process(("Q90", {"item": [item], "page": pages, "counts": [{"uk": 3, "fr": 1}]}),
                        language_totals={"fr": 100, "uk": 5}))
  entity = next(o for o in out if not isinstance(o, beam.pvalue.TaggedOutput))
  assert (entity.description, entity.description_lang, entity.description_source) == (
      "Париж — столиця Франції.", "uk", "wikipedia")
  assert entity.mention_count == 4 and entity.sitelinks == item.sitelinks
  pairs = [o.value for o in out if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == "pairs"]
  assert sorted((p.lang_a, p.lang_b) for p in pairs) == [("uk", "en"), ("uk", "fr")]
  (flushed,) = list(fn.finish_bundle())
  assert flushed.value.value == {("", "entities/emitted"): 1, ("", "entities/with_qid"): 1,
                                 ("", "entities/description/wikipedia"): 1,
                                 ("", "entities/types/none"): 1,
                                 ("", "entity_pairs/emitted"): 2}
  assert entity.types == ()


def test_entity_build_takes_the_types_row():
  pages = [("xxwiki", "xx", "Athens", "Athens is a city.", ("Capitals",))]
  fn = T._BuildEntityFn(max_pairs=5, seed=0)
  fn.start_bundle()
  out = list(fn.process(("xxwiki:Athens", {
      "item": [], "page": pages, "counts": [],
      "types": [("category", ("cat:xxwiki:Capitals", "cat:xxwiki:Cities"))]}),
      language_totals={}))
  (entity,) = [o for o in out if not isinstance(o, beam.pvalue.TaggedOutput)]
  assert entity.types == ("cat:xxwiki:Capitals", "cat:xxwiki:Cities")
  (flushed,) = list(fn.finish_bundle())
  assert flushed.value.value[("", "entities/types/category")] == 1
  assert flushed.value.value[("", "types/assigned")] == 2


def test_summary_checks_catch_a_lost_link():
  counts = {("xx", "pages/read"): 3, ("xx", "pages/article"): 2, ("xx", "pages/redirect"): 1,
            ("xx", "links/found"): 5, ("xx", "mentions/train"): 3,
            ("xx", "links/skipped/in_template"): 1}
  built = summary.build_summary(counts, {"output_dir": "/tmp/x"}, {"xx": 3})
  assert built["checks"]["pages"]["ok"]
  assert not built["checks"]["links"]["ok"]
  assert "MISMATCH: 5 != 4" in summary.format_summary(built)
