"""Composite PTransforms of the mining pipeline, each named for what it produces.

Every DoFn here counts what it reads, emits and skips by (lang, name) and sends the sums to a
COUNTS output once per bundle (CountingDoFn; SumCounts adds them up), and sends what it rejects
to a DEAD_LETTER output (schema.DeadLetter as JSON), so the summary can show that everything
read was either emitted or skipped for a named reason.

Keys of the title tables are (wiki, normalized title); data is joined with CoGroupByKey, never
held in one worker's memory, so the same graph runs on the full dumps of 104 languages.
"""
import collections
import dataclasses
import gc
import logging
from typing import Optional, Tuple

import apache_beam as beam

from beam_pipelines import descriptions
from mel.wikipedia import dump_reader
from beam_pipelines import splits
from mel.wikipedia import titles
from beam_pipelines import wikidata
from mel.wikipedia import wikitext
from mel import languages
from mel import schema
from mel.wikipedia.redirects import (REDIRECT_CHAIN_TOO_LONG, REDIRECT_LOOP,  # noqa: F401
                                     REDIRECT_TO_NON_ARTICLE, next_hop)

COUNTS = "counts"
DEAD_LETTER = "dead_letter"

# Reasons a link is not a mention, beyond those wikitext.parse_page reports.
TARGET_HAS_NO_PAGE = "target_has_no_page"
TARGET_FAILED_TO_PARSE = "target_failed_to_parse"
REDIRECT_TARGET_HAS_NO_PAGE = "redirect_target_has_no_page"
FILTERED_CLASS = "filtered_class"
NO_QID = "no_qid"
EXCLUDED_DOCUMENT = "excluded_document"


def count(lang: str, name: str, n: int = 1):
  """A count as an output element, for plain functions (DoFns use CountingDoFn.count)."""
  return beam.pvalue.TaggedOutput(COUNTS, {(lang, name): n})


def dead(stage, reason, source, key, detail="", n=1):
  """A DeadLetter, validated and serialized here: JSON strings are cheap to move between stages."""
  return beam.pvalue.TaggedOutput(
      DEAD_LETTER, schema.DeadLetter(stage=stage, reason=reason, source=source, key=key,
                                     detail=detail[:500], count=n).to_json())


class SumCounts(beam.CombineFn):
  """Sums count dicts: {(lang, name): n} for the summary, {lang: n} per entity."""

  def create_accumulator(self):
    return collections.Counter()

  def add_input(self, acc, counts):
    acc.update(counts)
    return acc

  def merge_accumulators(self, accs):
    total = collections.Counter()
    for acc in accs:
      total.update(acc)
    return total

  def extract_output(self, acc):
    return dict(acc)


def freeze_heap():
  """Takes the objects alive now out of the garbage collector's walks (gc.freeze).

  They are mostly imported modules (TensorFlow's and Beam's, imported as the stages start), and
  a full collection would walk them all again; parsing wikitext allocates so many short-lived
  objects that full collections come often. Called from every CountingDoFn's setup, when a
  stage starts: freezing is O(1), and what it keeps alive is only cyclic garbage of that moment.
  bench/RESULTS.md has what this saves.
  """
  gc.freeze()


class CountingDoFn(beam.DoFn):
  """A DoFn that sums its counts over a bundle and emits them once, from finish_bundle.

  Counting per element would send one small dict downstream per page, link target, or WikiData
  line (hundreds of millions on full dumps); per bundle it is a handful.
  """

  def setup(self):
    freeze_heap()

  def start_bundle(self):
    self._counts = collections.Counter()

  def count(self, lang: str, name: str, n: int = 1):
    self._counts[(lang, name)] += n

  def finish_bundle(self):
    if self._counts:
      yield beam.pvalue.TaggedOutput(
          COUNTS, beam.transforms.window.GlobalWindows.windowed_value(dict(self._counts)))
    self._counts = collections.Counter()


# --------------------------------------------------------------------------------------------
# Parsing articles


@dataclasses.dataclass(frozen=True)
class Article:
  wiki: str
  lang: str
  title: str        # normalized
  page_id: int
  text: str
  description: str
  links: Tuple[wikitext.LinkSpan, ...]
  categories: Tuple[str, ...] = ()  # normalized titles of its [[Category:...]] links


# Title-table nodes: what a (wiki, title) key is.
ARTICLE_NODE = "article"
REDIRECT_NODE = "redirect"
UNPARSED_NODE = "unparsed"


class _ParsePageFn(CountingDoFn):
  """RawPage -> Article (main), title-table nodes, counts, dead letters."""

  def process(self, page: dump_reader.RawPage, sites):
    site = sites.get(page.wiki) or titles.default_siteinfo(page.wiki)
    lang = page.lang
    if page.ns != 0:
      self.count(lang, "pages/skipped/non_article_namespace")
      return
    title = titles.normalize_title(page.title, site.case, site.lang)
    key = (page.wiki, title)
    raw_redirect = page.redirect or wikitext.redirect_target(page.text)
    if raw_redirect:
      kind, target = titles.classify_link(raw_redirect, site)
      self.count(lang, "pages/redirect")
      yield beam.pvalue.TaggedOutput(
          "nodes", (key, (REDIRECT_NODE, target if kind == titles.ARTICLE else "")))
      return
    try:
      parsed = wikitext.parse_page(page.text, site)
    except wikitext.WikitextParseError as e:
      self.count(lang, "pages/skipped/parse_error")
      yield dead("page", "parse_error", page.source, f"{page.wiki}:{page.title}", str(e))
      yield beam.pvalue.TaggedOutput("nodes", (key, (UNPARSED_NODE, "")))
      return
    self.count(lang, "pages/article")
    for name, n in parsed.link_counts:
      self.count(lang, "links/found" if name == "found" else f"links/skipped/{name}", n)
    yield beam.pvalue.TaggedOutput("nodes", (key, (ARTICLE_NODE, page.page_id)))
    yield Article(wiki=page.wiki, lang=lang, title=title, page_id=page.page_id,
                  text=parsed.text, description=parsed.description, links=parsed.links,
                  categories=parsed.categories)


class ParseArticles(beam.PTransform):
  """RawPages -> {'articles': Article, 'nodes': ((wiki, title), node), counts, dead_letter}."""

  def __init__(self, siteinfo):
    super().__init__()
    self._siteinfo = siteinfo

  def expand(self, pages):
    out = pages | "Parse" >> beam.ParDo(
        _ParsePageFn(), sites=beam.pvalue.AsDict(self._siteinfo)).with_outputs(
            "nodes", COUNTS, DEAD_LETTER, main="articles")
    return {"articles": out.articles, "nodes": out.nodes, COUNTS: out[COUNTS],
            DEAD_LETTER: out[DEAD_LETTER]}


def link_targets(article: Article, excluded):
  """Article -> ((wiki, target), (doc_id, link index)) per article link: small tuples, so the
  join on targets moves ints, not contexts. Links of excluded documents are counted instead."""
  if not article.links:
    return
  if (article.wiki, article.title) in excluded or ("*", article.title) in excluded:
    yield count(article.lang, f"links/skipped/{EXCLUDED_DOCUMENT}", len(article.links))
    return
  for i, link in enumerate(article.links):
    yield (article.wiki, link.target), (article.page_id, i)


# --------------------------------------------------------------------------------------------
# Titles -> entities


def _first(values):
  for v in values:
    return v
  return None


def _redirect_step(key, grouped, max_hops=4):
  """One round of following redirects: states waiting at `key` meet the node at `key`.

  A state is (src, hops taken to reach key, titles passed after src); the redirect rule itself
  is mel.wikipedia.redirects.next_hop, shared with the Mewsli-9 extractor.
  """
  node = _first(grouped["node"])
  for src, hops, visited in grouped["state"]:
    if node is None:
      yield "done", (src, ("fail", REDIRECT_TARGET_HAS_NO_PAGE, ""))
    elif node[0] == ARTICLE_NODE:
      yield "done", (src, ("ok", key, hops))
    elif node[0] == UNPARSED_NODE:
      yield "done", (src, ("fail", TARGET_FAILED_TO_PARSE, ""))
    else:
      # next_hop wants the whole chain passed so far, its start first.
      step = next_hop(key, node[1], (src,) + visited, hops, max_hops)
      if step[0] == "fail":
        yield "done", (src, step)
      else:
        yield "pending", (step[1], (src, hops + 1, visited + (key,)))


class ResolveTitles(beam.PTransform):
  """Title-table nodes -> (key, ('ok', article key, hops) | ('fail', reason, detail)).

  Articles resolve to themselves; redirects are followed for at most max_hops (one
  CoGroupByKey per hop), with loops detected; unparsed pages fail.
  """

  def __init__(self, max_hops: int):
    super().__init__()
    self._max_hops = max_hops

  def expand(self, nodes):
    direct = nodes | "Direct" >> beam.FlatMapTuple(
        lambda key, node: [] if node[0] == REDIRECT_NODE else [(key, (
            ("ok", key, 0) if node[0] == ARTICLE_NODE else ("fail", TARGET_FAILED_TO_PARSE,
                                                           "")))])
    redirects = nodes | "Redirects" >> beam.Filter(lambda kv: kv[1][0] == REDIRECT_NODE)
    immediate_fail = redirects | "NonArticleRedirects" >> beam.FlatMapTuple(
        lambda key, node: [] if node[1] else [(key, ("fail", REDIRECT_TO_NON_ARTICLE, ""))])
    pending = redirects | "StartChains" >> beam.FlatMapTuple(
        lambda key, node: [((key[0], node[1]), (key, 1, ()))] if node[1] else [])
    finished = [direct, immediate_fail]
    for hop in range(1, self._max_hops + 1):
      step = ({"state": pending, "node": nodes} | f"JoinHop{hop}" >> beam.CoGroupByKey()
              | f"FollowHop{hop}" >> beam.FlatMapTuple(_redirect_step, max_hops=self._max_hops))
      finished.append(step | f"DoneHop{hop}" >> beam.FlatMap(
          lambda kv: [kv[1]] if kv[0] == "done" else []))
      pending = step | f"PendingHop{hop}" >> beam.FlatMap(
          lambda kv: [kv[1]] if kv[0] == "pending" else [])
    finished.append(pending | "TooLong" >> beam.MapTuple(
        lambda _, state: (state[0], ("fail", REDIRECT_CHAIN_TOO_LONG, ""))))
    return finished | "AllResolutions" >> beam.Flatten()


def sitelink_rows(obj):
  """WikiData Item / filtered Rejected -> ((wiki, title), (qid, kept?)) for each sitelink."""
  kept = isinstance(obj, wikidata.Item)
  for wiki, title in obj.sitelinks.items():
    yield (wiki, titles.normalize_title(title)), (obj.qid if kept else obj.key, kept)


def _effective_node(key, grouped, qids_only=False):
  """A title's dump node meets its WikiData sitelink row.

  Yields ("node", (key, node)) for the title table and, for article titles, ("entity", (key,
  ('ok', entity_id, qid) | ('fail', reason, detail))). A sitelinked title that the dump lacks
  (excerpts are incomplete) or failed to parse is still an article: WikiData knows its entity.
  """
  node = _first(grouped["node"])
  row = _first(grouped["sitelink"])
  if node is not None and node[0] == REDIRECT_NODE:
    yield "node", (key, node)
    return
  if row is None:
    if node is None:
      return  # only sitelink rows create titles; nothing to do
    yield "node", (key, node)
    if node[0] == ARTICLE_NODE:
      yield "entity", (key, ("fail", NO_QID, "") if qids_only else
                       ("ok", f"{key[0]}:{key[1]}", ""))
    return
  yield "node", (key, (ARTICLE_NODE, node[1] if node is not None else 0))
  qid, kept = row
  yield "entity", (key, ("ok", qid, qid) if kept else ("fail", FILTERED_CLASS, qid))


def _resolution_meets_entity(final_key, grouped):
  entity = _first(grouped["entity"])
  for src, hops in grouped["src"]:
    if entity is None:  # an article with no entity row cannot happen; be explicit anyway
      yield src, ("fail", TARGET_HAS_NO_PAGE, "")
    elif entity[0] == "ok":
      yield src, ("ok", entity[1], entity[2], final_key[1])
    else:
      yield src, ("fail", entity[1], entity[2])


class EntityIdsByTitle(beam.PTransform):
  """(dump nodes, sitelink rows) -> {'titles': (key, ('ok', entity_id, qid, final title) |
  ('fail', reason, detail)) for every title, following redirects; 'article_entities'}."""

  def __init__(self, max_hops, qids_only):
    super().__init__()
    self._max_hops = max_hops
    self._qids_only = qids_only

  def expand(self, inputs):
    dump_nodes, sitelinks = inputs
    joined = ({"node": dump_nodes, "sitelink": sitelinks} | "JoinSitelinks" >> beam.CoGroupByKey()
              | "EffectiveNodes" >> beam.FlatMapTuple(_effective_node, qids_only=self._qids_only))
    nodes = joined | "Nodes" >> beam.FlatMap(lambda kv: [kv[1]] if kv[0] == "node" else [])
    entity_of_article = joined | "ArticleEntities" >> beam.FlatMap(
        lambda kv: [kv[1]] if kv[0] == "entity" else [])
    resolutions = nodes | "ResolveTitles" >> ResolveTitles(self._max_hops)
    ok = resolutions | "ResolvedOk" >> beam.FlatMapTuple(
        lambda src, r: [(r[1], (src, r[2]))] if r[0] == "ok" else [])
    failed = resolutions | "ResolvedFail" >> beam.FlatMapTuple(
        lambda src, r: [(src, r)] if r[0] == "fail" else [])
    titled = ({"src": ok, "entity": entity_of_article} | "JoinEntities" >> beam.CoGroupByKey()
              | "EntityOfTitle" >> beam.FlatMapTuple(_resolution_meets_entity))
    return {"titles": (titled, failed) | "AllTitles" >> beam.Flatten(),
            "article_entities": entity_of_article}


class _ResolveLinksFn(CountingDoFn):
  """Links to one target meet the target's resolution.

  Resolved: ((wiki, doc_id), (link index, entity_id, qid, final title)) per link.
  Not resolved: one count and one dead letter for the target, covering all its links.
  """

  def process(self, element):
    (wiki, target), grouped = element
    resolution = _first(grouped["title"]) or ("fail", TARGET_HAS_NO_PAGE, "")
    if resolution[0] == "ok":
      _, entity_id, qid, final_title = resolution
      for doc_id, index in grouped["link"]:
        yield (wiki, doc_id), (index, entity_id, qid, final_title)
      return
    reason, detail = resolution[1], resolution[2]
    links = list(grouped["link"])
    if not links:
      return  # a title nobody links to
    docs = sorted({doc_id for doc_id, _ in links})
    n = len(links)
    self.count(languages.dbname_to_language(wiki), f"links/skipped/{reason}", n)
    shown = ", ".join(str(d) for d in docs[:10]) + (", ..." if len(docs) > 10 else "")
    yield dead("link", reason, wiki, f"{wiki}:{target}",
               f"{n} link(s) from {len(docs)} page(s) (page ids {shown})"
               + (f"; {detail}" if detail else ""), n=n)


class ResolveLinks(beam.PTransform):
  """(link targets, title entities) -> {'resolved': ((wiki, doc_id), link), counts, dead}."""

  def expand(self, inputs):
    targets, title_entities = inputs
    out = ({"link": targets, "title": title_entities} | "JoinTargets" >> beam.CoGroupByKey()
           | "Resolve" >> beam.ParDo(_ResolveLinksFn()).with_outputs(
               COUNTS, DEAD_LETTER, main="resolved"))
    return {"resolved": out.resolved, COUNTS: out[COUNTS], DEAD_LETTER: out[DEAD_LETTER]}


# --------------------------------------------------------------------------------------------
# Holdout split


class ChooseHoldoutDocuments(beam.PTransform):
  """Resolved links ((wiki, doc_id), ...) -> (wiki, doc_id) keys of the holdout documents."""

  def __init__(self, per_language, max_fraction, seed):
    super().__init__()
    self._per_language = per_language
    self._max_fraction = max_fraction
    self._seed = seed

  def expand(self, resolved):
    per_doc = (resolved | "DocKey" >> beam.MapTuple(
        lambda doc, _: ((languages.dbname_to_language(doc[0]), doc[0], doc[1]), 1))
               | "MentionsPerDoc" >> beam.CombinePerKey(sum))
    totals = (per_doc | "LangOfDoc" >> beam.MapTuple(lambda key, n: (key[0], n))
              | "MentionsPerLang" >> beam.CombinePerKey(sum))
    seed, target, max_fraction = self._seed, self._per_language, self._max_fraction

    def candidates(key, n, totals=None):
      lang, wiki, doc_id = key
      fraction = splits.doc_fraction(seed, wiki, doc_id)
      if fraction < splits.candidate_threshold(target, totals.get(lang, 0)):
        yield lang, (fraction, wiki, doc_id, n)

    def select(lang, docs, totals=None):
      return splits.select_holdout(docs, target, totals[lang], max_fraction)

    return (per_doc | "Candidates" >> beam.FlatMapTuple(candidates,
                                                        totals=beam.pvalue.AsDict(totals))
            | "GroupCandidates" >> beam.GroupByKey()
            | "Select" >> beam.FlatMapTuple(select, totals=beam.pvalue.AsDict(totals)))


class _MentionsOfDocumentFn(CountingDoFn):
  """An article with its resolved links -> its Mentions, its Document, and their counts."""

  def __init__(self, context_chars, write_documents):
    self._context_chars = context_chars
    self._write_documents = write_documents

  def process(self, element, holdout_docs):
    doc_key, grouped = element
    article: Optional[Article] = _first(grouped["article"])
    if article is None:
      return  # resolved links come only from articles; nothing can arrive without one
    split = "holdout" if doc_key in holdout_docs else "train"
    text, width = article.text, self._context_chars
    n = 0
    for index, entity_id, qid, target_title in sorted(grouped["linked"]):
      link = article.links[index]
      n += 1
      yield schema.Mention(
          mention_id=f"{article.wiki}:{article.page_id}:{index}", lang=article.lang,
          wiki=article.wiki, doc_id=article.page_id, doc_title=article.title,
          left_context=text[max(0, link.start - width):link.start],
          mention=text[link.start:link.end], right_context=text[link.end:link.end + width],
          start=link.start, end=link.end, target_title=target_title, entity_id=entity_id,
          qid=qid, split=split)
    if n:
      self.count(article.lang, f"mentions/{split}", n)
    if self._write_documents:
      self.count(article.lang, "documents/emitted")
      yield beam.pvalue.TaggedOutput("documents", schema.Document(
          wiki=article.wiki, lang=article.lang, doc_id=article.page_id, title=article.title,
          text=text, split=split))


class MentionsAndDocuments(beam.PTransform):
  """(articles, resolved links, holdout doc keys) -> {'mentions', 'documents', counts}."""

  def __init__(self, context_chars, write_documents):
    super().__init__()
    self._context_chars = context_chars
    self._write_documents = write_documents

  def expand(self, inputs):
    articles, resolved, holdout_docs = inputs
    by_doc = articles | "KeyByDoc" >> beam.Map(lambda a: ((a.wiki, a.page_id), a))
    holdout = beam.pvalue.AsDict(holdout_docs | "AsKeys" >> beam.Map(lambda k: (k, True)))
    out = ({"article": by_doc, "linked": resolved} | "JoinDocs" >> beam.CoGroupByKey()
           | "Build" >> beam.ParDo(_MentionsOfDocumentFn(self._context_chars,
                                                         self._write_documents),
                                   holdout_docs=holdout)
           .with_outputs("documents", COUNTS, main="mentions"))
    return {"mentions": out.mentions, "documents": out.documents, COUNTS: out[COUNTS]}


# --------------------------------------------------------------------------------------------
# Entities and entity pairs


class _BuildEntityFn(CountingDoFn):
  """All we know of one entity -> Entity record and its description pairs."""

  def __init__(self, max_pairs, seed):
    self._max_pairs = max_pairs
    self._seed = seed

  def process(self, element, language_totals):
    entity_id, grouped = element
    item: Optional[wikidata.Item] = _first(grouped["item"])
    pages = sorted(grouped["page"])  # (wiki, lang, title, description, categories)
    counts = _first(grouped["counts"]) or {}
    types = _first(grouped.get("types", ())) or ("none", ())  # (source, type ids)
    if item is not None or pages:  # counts alone (no record of the entity) cannot happen
      yield from self._build(entity_id, item, pages, counts, types, language_totals)

  def _build(self, entity_id, item, pages, counts, types, language_totals):
    wikipedia_descriptions = {}
    for wiki, lang, title, description, *_ in pages:
      if description and lang not in wikipedia_descriptions:
        wikipedia_descriptions[lang] = description
    if item is not None:
      sitelinks, labels = dict(item.sitelinks), dict(item.labels)
      wd_descriptions, aliases = dict(item.descriptions), dict(item.aliases)
    else:
      sitelinks = {wiki: title for wiki, _, title, *_ in pages}
      labels = {lang: title for _, lang, title, *_ in pages}
      wd_descriptions, aliases = {}, {}
    text, lang, source = descriptions.choose_description(
        wikipedia_descriptions, wd_descriptions, counts, language_totals)
    entity = schema.Entity(
        entity_id=entity_id, qid=item.qid if item is not None else "", description=text,
        description_lang=lang, description_source=source, mention_count=sum(counts.values()),
        mention_counts=counts, sitelinks=sitelinks, labels=labels,
        wikidata_descriptions=wd_descriptions, wikipedia_descriptions=wikipedia_descriptions,
        aliases=aliases, types=types[1])
    self.count("", "entities/emitted")
    # Types come from one source per entity (see entity_types); n counts the assignments, so
    # the summary can check them against the vocabulary's entity counts.
    self.count("", f"entities/types/{types[0]}")
    if types[1]:
      self.count("", "types/assigned", len(types[1]))
    self.count("", "entities/with_qid" if entity.qid else "entities/page_only")
    self.count("", f"entities/description/{source or 'none'}")
    yield entity
    if text:
      for other_lang, other_text in descriptions.sample_pairs(
          entity_id, lang, wikipedia_descriptions, wd_descriptions, self._max_pairs,
          self._seed):
        self.count("", "entity_pairs/emitted")
        yield beam.pvalue.TaggedOutput("pairs", schema.EntityPair(
            entity_id=entity_id, lang_a=lang, text_a=text, lang_b=other_lang,
            text_b=other_text))


class PagesOfEntities(beam.PTransform):
  """(article entities, articles) -> (entity_id, (wiki, lang, title, description, categories))
  for every article page of an entity (several for an entity with sitelinks in several wikis).
  """

  def expand(self, inputs):
    article_entities, articles = inputs
    article_info = articles | "KeyArticles" >> beam.Map(
        lambda a: ((a.wiki, a.title), (a.wiki, a.lang, a.title, a.description, a.categories)))
    return ({"entity": article_entities, "info": article_info}
            | "JoinArticleInfo" >> beam.CoGroupByKey()
            | "PagesOfEntity" >> beam.FlatMapTuple(
                lambda key, g: [(e[1], info) for e in g["entity"] if e[0] == "ok"
                                for info in g["info"]]))


class BuildEntities(beam.PTransform):
  """(items, entity pages, train mentions, entity types) -> Entity, EntityPair, counts.

  Entity types are (entity_id, (source, type ids)) from entity_types.EntityTypes; an entity
  without a row has none."""

  def __init__(self, max_pairs, seed):
    super().__init__()
    self._max_pairs = max_pairs
    self._seed = seed

  def expand(self, inputs):
    items, pages, train_mentions, types = inputs
    by_qid = items | "KeyItems" >> beam.Map(lambda item: (item.qid, item))
    counts = (train_mentions | "EntityLang" >> beam.Map(lambda m: (m.entity_id, {m.lang: 1}))
              | "CountPerLanguage" >> beam.CombinePerKey(SumCounts()))
    language_totals = (train_mentions | "Lang" >> beam.Map(lambda m: (m.lang, 1))
                       | "LanguageTotals" >> beam.CombinePerKey(sum))
    out = ({"item": by_qid, "page": pages, "counts": counts, "types": types}
           | "JoinEntity" >> beam.CoGroupByKey()
           | "Build" >> beam.ParDo(_BuildEntityFn(self._max_pairs, self._seed),
                                   language_totals=beam.pvalue.AsDict(language_totals))
           .with_outputs("pairs", COUNTS, main="entities"))
    return {"entities": out.entities, "pairs": out.pairs, COUNTS: out[COUNTS],
            "language_totals": language_totals}
