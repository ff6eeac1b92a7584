"""Entity types for the mining pipeline: WikiData classes, else Wikipedia categories.

An entity's types come from one source:
  wikidata  its P31 (instance of) classes, each expanded up P279 (subclass of) for at most
            `superclass_steps` steps (0: P31 only). The P279 graph is that of the items in the
            WikiData dump itself; a P31 class that is not in the dump keeps its id but cannot
            be expanded (counted). Type ids are QIDs ("Q5"), the same in every language.
  category  for entities without a QID or without P31: the union of the [[Category:...]]
            links of their pages in every mined wiki, as "cat:<wiki>:<Title>". A category is
            kept only when at least `min_category_entities` entities carry it: the rare ones
            are mostly maintenance and one-off categories (the dropped ones are counted).

Outputs: (entity_id, (source, sorted type ids)) for BuildEntities, and vocabulary rows
records.TypeEntry(type_id, entities, source, label), whose entity counts equal the number of
entity records carrying each type. The graph walks are joins (CoGroupByKey), one step at a
time, as the redirect chains in transforms.ResolveTitles are: nothing is held in one worker.
"""
from typing import Iterable, Mapping, Sequence, Tuple

import apache_beam as beam

from beam_pipelines.transforms import COUNTS, CountingDoFn, count
from mel import records

WIKIDATA = "wikidata"
CATEGORY = "category"
CATEGORY_PREFIX = "cat:"


def category_type_id(wiki: str, title: str) -> str:
  """'elwiki', 'Πρωτεύουσες της Ευρώπης' -> 'cat:elwiki:Πρωτεύουσες της Ευρώπης'."""
  return f"{CATEGORY_PREFIX}{wiki}:{title}"


def expansion_step(reached: frozenset, parents: Iterable[str]) -> Tuple[frozenset, tuple]:
  """One P279 step: the parents of the frontier -> (reached set, new frontier). Classes
  reached before are not walked again, so cycles end."""
  new = tuple(sorted(set(parents) - reached))
  return reached | frozenset(new), new


def expand_classes(start: Iterable[str], parents_of: Mapping[str, Sequence[str]],
                   steps: int) -> frozenset:
  """In memory: the classes `start` and their superclasses up to `steps` P279 steps.

  The reference the Beam walk (ClassAncestors) is tested against, and what small callers use.
  """
  reached = frozenset(start)
  frontier = tuple(sorted(reached))
  for _ in range(steps):
    if not frontier:
      break
    reached, frontier = expansion_step(
        reached, [p for c in frontier for p in parents_of.get(c, ())])
  return reached


def _first(values):
  for v in values:
    return v
  return None


# --------------------------------------------------------------------------------------------
# WikiData classes


def _mark_in_dump(cls, grouped):
  """A P31 class meets its graph node: counts whether it can be expanded."""
  if not any(True for _ in grouped["need"]):
    return
  yield count("", "types/wikidata/p31_classes")
  if _first(grouped["node"]) is None:
    yield count("", "types/wikidata/p31_classes_not_in_dump")
  yield cls, (frozenset([cls]), (cls,))


def _ask_parents(frontier_class, grouped):
  """Frontier class meets its node: its parents go to every class whose walk reached it."""
  node = _first(grouped["node"])
  parents = node[0] if node is not None else ()
  for asking in grouped["ask"]:
    yield asking, tuple(parents)


def _next_state(cls, grouped):
  reached, _ = _first(grouped["state"])
  return cls, expansion_step(reached, [p for ps in grouped["parents"] for p in ps])


class ClassAncestors(beam.PTransform):
  """(P31 class ids, class graph (qid, (P279 parents, label))) -> (class, frozenset of the
  class and its superclasses within `steps`), plus counts of classes not in the dump."""

  def __init__(self, steps: int):
    super().__init__()
    self._steps = steps

  def expand(self, inputs):
    classes, graph = inputs
    need = classes | "NeedKey" >> beam.Map(lambda c: (c, True))
    marked = ({"need": need, "node": graph} | "JoinP31Classes" >> beam.CoGroupByKey()
              | "MarkInDump" >> beam.FlatMapTuple(_mark_in_dump).with_outputs(
                  COUNTS, main="states"))
    states = marked.states
    for step in range(1, self._steps + 1):
      asks = states | f"Frontier{step}" >> beam.FlatMapTuple(
          lambda cls, state: [(f, cls) for f in state[1]])
      parents = ({"ask": asks, "node": graph} | f"JoinParents{step}" >> beam.CoGroupByKey()
                 | f"AskParents{step}" >> beam.FlatMapTuple(_ask_parents))
      states = ({"state": states, "parents": parents} | f"JoinStates{step}" >> beam.CoGroupByKey()
                | f"Step{step}" >> beam.MapTuple(_next_state))
    ancestors = states | "Reached" >> beam.MapTuple(lambda cls, state: (cls, state[0]))
    return {"ancestors": ancestors, COUNTS: marked[COUNTS]}


def _types_of_members(cls, grouped):
  ancestors = _first(grouped["ancestors"]) or frozenset([cls])
  for qid in grouped["member"]:
    yield qid, ancestors


class _UnionFn(beam.CombineFn):
  def create_accumulator(self):
    return set()

  def add_input(self, acc, values):
    acc.update(values)
    return acc

  def merge_accumulators(self, accs):
    return set().union(*accs)

  def extract_output(self, acc):
    return tuple(sorted(acc))


class WikidataTypes(beam.PTransform):
  """(items, class graph) -> (qid, sorted type ids) for every item with P31, and counts."""

  def __init__(self, steps: int):
    super().__init__()
    self._steps = steps

  def expand(self, inputs):
    items, graph = inputs
    members = items | "P31Members" >> beam.FlatMap(
        lambda item: [(c, item.qid) for c in set(item.instance_of)])
    classes = (members | "P31Class" >> beam.Keys() | "DistinctClasses" >> beam.Distinct())
    walked = (classes, graph) | "ClassAncestors" >> ClassAncestors(self._steps)
    types = ({"member": members, "ancestors": walked["ancestors"]}
             | "JoinMembers" >> beam.CoGroupByKey()
             | "TypesOfMembers" >> beam.FlatMapTuple(_types_of_members)
             | "UnionPerItem" >> beam.CombinePerKey(_UnionFn()))
    return {"types": types, COUNTS: walked[COUNTS]}


def _vocabulary_row(type_id, grouped):
  n = _first(grouped["n"])
  if n is None:
    return  # a graph node no entity carries
  node = _first(grouped["node"])
  label = node[1] if node is not None else ""
  yield count("", "types/vocabulary/wikidata")
  yield records.TypeEntry(type_id, n, WIKIDATA, label)


# --------------------------------------------------------------------------------------------
# Categories


def _choose_source(entity_id, grouped):
  """WikiData types win; otherwise the union of the pages' categories are candidates."""
  wd = _first(grouped["wikidata"])
  if wd:
    yield "typed", (entity_id, (WIKIDATA, wd))
    return
  categories = {category_type_id(page[0], title) for page in grouped["page"]
                for title in page[4]}
  for type_id in sorted(categories):
    yield "candidate", (type_id, entity_id)


# Declared: the inferred type (a union with the tagged outputs) fails GroupByKey's check.
@beam.typehints.with_output_types(Tuple[str, str])
class _FilterCategoriesFn(CountingDoFn):
  """A category with its entities -> (entity_id, type_id) per entity if enough carry it, and
  its vocabulary row."""

  def __init__(self, min_entities: int):
    self._min = min_entities

  def process(self, element):
    type_id, entity_ids = element
    entity_ids = sorted(set(entity_ids))
    if len(entity_ids) < self._min:
      self.count("", "types/category/dropped")
      self.count("", "types/category/dropped_assignments", len(entity_ids))
      return
    self.count("", "types/category/kept")
    self.count("", "types/vocabulary/category")
    for entity_id in entity_ids:
      yield entity_id, type_id
    label = type_id.split(":", 2)[2]
    yield beam.pvalue.TaggedOutput("vocabulary", records.TypeEntry(
        type_id, len(entity_ids), CATEGORY, label))


class EntityTypes(beam.PTransform):
  """(items, class graph, entity pages) -> {'types': (entity_id, (source, type ids)),
  'vocabulary': records.TypeEntry, counts}. See the module docstring for the rules."""

  def __init__(self, superclass_steps: int, min_category_entities: int):
    super().__init__()
    self._steps = superclass_steps
    self._min_entities = min_category_entities

  def expand(self, inputs):
    items, graph, pages = inputs
    wd = (items, graph) | "WikidataTypes" >> WikidataTypes(self._steps)
    chosen = ({"wikidata": wd["types"], "page": pages} | "JoinSources" >> beam.CoGroupByKey()
              | "ChooseSource" >> beam.FlatMapTuple(_choose_source))
    typed = chosen | "WikidataTyped" >> beam.FlatMap(
        lambda kv: [kv[1]] if kv[0] == "typed" else [])
    candidates = chosen | "CategoryCandidates" >> beam.FlatMap(
        lambda kv: [kv[1]] if kv[0] == "candidate" else [])
    filtered = (candidates | "EntitiesOfCategory" >> beam.GroupByKey()
                | "FilterCategories" >> beam.ParDo(_FilterCategoriesFn(self._min_entities))
                .with_outputs("vocabulary", COUNTS, main="kept"))
    by_category = (filtered.kept | "CategoriesOfEntity" >> beam.GroupByKey()
                   | "CategoryTypes" >> beam.MapTuple(
                       lambda entity_id, ids: (entity_id, (CATEGORY, tuple(sorted(ids))))))

    type_counts = (typed | "WikidataTypeIds" >> beam.FlatMapTuple(
        lambda entity_id, types: [(t, 1) for t in types[1]])
                   | "EntitiesPerClass" >> beam.CombinePerKey(sum))
    wd_vocabulary = ({"n": type_counts, "node": graph} | "JoinLabels" >> beam.CoGroupByKey()
                     | "WikidataVocabulary" >> beam.FlatMapTuple(_vocabulary_row)
                     .with_outputs(COUNTS, main="rows"))
    return {
        "types": (typed, by_category) | "AllTypes" >> beam.Flatten(),
        "vocabulary": ((wd_vocabulary.rows, filtered.vocabulary)
                       | "AllVocabulary" >> beam.Flatten()),
        COUNTS: ((wd[COUNTS], filtered[COUNTS], wd_vocabulary[COUNTS])
                 | "TypeCounts" >> beam.Flatten()),
    }
