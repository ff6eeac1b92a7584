"""The spotter's surface-form dictionary: what it holds, how it is built, read and written.

Per language, every anchor text of the training mentions, normalised with
`mel.surface_forms.normalize_surface` (the key of mel.anchors), with

    linked     training anchors with this text (links to an entity of the KB)
    seen       occurrences of the text in the training documents (anchors included)
    link_prob  linked / seen: how often the text is a link when it appears (the classic
               Wikipedia spotter's "keyphraseness")
    entities   the entities it linked to, with counts (the TOP_ENTITIES most frequent)

**Building** (`mel dictionary --mining_dir D --output M/dictionary`): the anchor counts are
mel.anchors.AnchorCounts of the training mentions, the count the alias-table baseline of
evaluation uses too. Then every training document's clean text is normalised and walked unit
by unit with the spotter's own matching (mel.linking.units) and every occurrence of a form of
that language is counted as `seen` (overlapping occurrences included; seen is raised to linked
where anchors sit inside words, e.g. [[Paris]]ian). Only the training split is read:
held-out documents stay unseen for evaluation. Forms with fewer than min_linked anchors or a
link_prob below min_link_prob are not kept (the spotter applies its own, stricter thresholds).

**On disk**: forms.tsv, then manifest.json (mel.manifest: format, parameters, counts per
language, the mining run's summary.json checksum, the file's size and sha256) written last and
atomically, so a directory with a manifest is complete. A rerun on the same mining run with the
same parameters reuses it.

**P(entity | text)** (`SurfaceDictionary.prior`) follows mel.anchors' back-off: the
language's counts when that language saw the text, else the counts of all languages pooled.

**Languages without anchors.** Any language code may be asked for: one the training data never
saw (no table, or an empty one) is served by the pooled forms of all languages
(`table_language`, `table`, `walk_table`, `prior`), and a tag of a language it has (pt-br) by
that language's forms.
"""
import collections
import dataclasses
import json
import os
import time
from typing import AbstractSet, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mel import anchors, files, manifest as manifests
from mel.languages import WIKIPEDIA_LANGUAGE_CODES
from mel.linking import units
from mel.linking.units import MAX_UNITS
from mel.surface_forms import normalize_surface

FORMAT = "mel-dictionary/1"
FORMS = "forms.tsv"
HEADER = "lang\tform\tlinked\tseen\tentities"
ALL_LANGUAGES = "*"      # the pooled table, for languages without their own anchors
TOP_ENTITIES = 10        # entities kept per form
BUILD_COMMAND = "mel dictionary --mining_dir D --output {path}"


class DictionaryError(ValueError):
  """A dictionary directory is missing, incomplete, corrupt, or not a mel dictionary."""


@dataclasses.dataclass(frozen=True)
class FormStats:
  """What the dictionary knows of one normalised text in one language."""
  form: str
  linked: int
  seen: int
  entities: Tuple[Tuple[str, int], ...]   # (entity id, anchors), most frequent first
  declared: Tuple[str, ...] = ()          # entities the knowledge base names with this text

  @property
  def link_prob(self) -> float:
    return self.linked / self.seen if self.seen else 0.0


def _top(by_entity: Mapping[str, int], keep: Iterable[str] = ()) -> Tuple[Tuple[str, int], ...]:
  """The TOP_ENTITIES most frequent (entity, anchors), ties by entity id, plus those of keep
  beyond them (entities a knowledge-base label names are never cut)."""
  ranked = sorted(by_entity.items(), key=lambda x: (-x[1], x[0]))
  keep = set(keep)
  return tuple(x for i, x in enumerate(ranked) if i < TOP_ENTITIES or x[0] in keep)


def _grow(stats: Optional[FormStats], form: str, entity_ids: Sequence[str]) -> FormStats:
  """stats (or a new form) with entity_ids declared: one anchor each, always spotted."""
  by_entity = dict(stats.entities) if stats else {}
  new = [e for e in entity_ids if e not in by_entity]
  for e in new:
    by_entity[e] = 1
  declared = tuple(sorted(set(stats.declared if stats else ()) | set(entity_ids)))
  linked = (stats.linked if stats else 0) + len(new)
  seen = (stats.seen if stats else 0) + len(new)
  return FormStats(form, linked, seen, _top(by_entity, declared), declared)


class SurfaceDictionary:
  """Per-language {form: FormStats}, with the unit-prefix tables the spotter walks."""

  def __init__(self, tables: Mapping[str, Mapping[str, FormStats]],
               manifest: Optional[dict] = None, max_units: int = MAX_UNITS):
    self.tables = {lang: dict(forms) for lang, forms in tables.items()}
    self.manifest = dict(manifest or {})
    self.max_units = max_units
    self._walk: Dict[tuple, dict] = {}

  def languages(self) -> List[str]:
    return sorted(lang for lang in self.tables if lang != ALL_LANGUAGES)

  def pooled(self) -> Dict[str, FormStats]:
    """The forms of all languages, counts summed (built on first use)."""
    if ALL_LANGUAGES not in self.tables:
      pooled: Dict[str, list] = {}
      for forms in self.tables.values():
        for form, s in forms.items():
          entry = pooled.setdefault(form, [0, 0, collections.Counter(), set()])
          entry[0] += s.linked
          entry[1] += s.seen
          entry[2].update(dict(s.entities))
          entry[3].update(s.declared)
      self.tables[ALL_LANGUAGES] = {
          form: FormStats(form, linked, max(seen, linked), _top(by_entity, declared),
                          tuple(sorted(declared)))
          for form, (linked, seen, by_entity, declared) in pooled.items()}
    return self.tables[ALL_LANGUAGES]

  def table(self, lang: str) -> Dict[str, FormStats]:
    """The forms that serve lang (table_language): its own, its base language's, or the pooled
    forms of all languages."""
    served = self.table_language(lang)
    return self.pooled() if served == ALL_LANGUAGES else self.tables[served]

  def table_language(self, lang: str) -> str:
    """Whose forms serve lang: lang's own; else, for a tag of a language the dictionary has
    (pt-br, zh-hans; not a Wikipedia code such as zh-yue), that language's; else
    ALL_LANGUAGES, the pooled forms (a language the training data never saw)."""
    if self.tables.get(lang):
      return lang
    base = lang.split("-")[0]
    if (base != lang and lang not in WIKIPEDIA_LANGUAGE_CODES and
        base != ALL_LANGUAGES and self.tables.get(base)):
      return base
    return ALL_LANGUAGES

  def prior(self, form: str, lang: str) -> Dict[str, float]:
    """P(entity | text) of a normalised form: lang's anchors if lang saw the form, else the
    anchors of all languages (mel.anchors.backoff, as the alias table); {} if none did. lang
    is any code: its base language's anchors serve a tag (pt-br), as in table_language."""
    served = self.table_language(lang)
    stats = anchors.backoff(None if served == ALL_LANGUAGES else self.tables[served],
                            self.pooled(), form)
    return anchors.probabilities(stats.entities, stats.linked) if stats else {}

  def walk_table(self, lang: str, min_link_prob: float, min_linked: int) -> dict:
    """units.prefix_table of lang's forms that pass the thresholds (cached)."""
    key = (self.table_language(lang), min_link_prob, min_linked)
    if key not in self._walk:
      self._walk[key] = units.prefix_table(
          ((form, s) for form, s in self.table(lang).items()
           if s.declared or (s.linked >= min_linked and s.link_prob >= min_link_prob)),
          self.max_units)[0]
    return self._walk[key]

  def grown(self, names: Iterable[Tuple[str, Mapping[str, Sequence[str]]]],
            removed: AbstractSet[str] = frozenset()) -> "SurfaceDictionary":
    """A copy for a knowledge base that changed after training (mel.retrieval.kb).

    names: (entity id, {lang: [label, alias, ...]}) of the entities added: each normalised
    name becomes a form of its language that names the entity (declared: spotted whatever the
    thresholds, one anchor in P(entity | text)); removed: entities dropped from every form's
    prior (the form's own counts stay: the text is still a link).
    """
    declared: Dict[Tuple[str, str], List[str]] = {}
    for entity_id, by_lang in names:
      for lang, texts in by_lang.items():
        for text in texts:
          form = normalize_surface(text)
          if form and not any(c in form for c in "\t\n\r"):
            ids = declared.setdefault((lang, form), [])
            if entity_id not in ids:
              ids.append(entity_id)
    tables = {lang: dict(forms) for lang, forms in self.tables.items() if lang != ALL_LANGUAGES}
    if removed:
      for forms in tables.values():
        for form, s in list(forms.items()):
          if any(e in removed for e, _ in s.entities):
            forms[form] = dataclasses.replace(
                s, entities=tuple(x for x in s.entities if x[0] not in removed),
                declared=tuple(e for e in s.declared if e not in removed))
    for (lang, form), ids in declared.items():
      forms = tables.setdefault(lang, {})
      forms[form] = _grow(forms.get(form), form, ids)
    return SurfaceDictionary(tables, self.manifest, self.max_units)

  # on disk ---------------------------------------------------------------------------------
  def save(self, path: str, extra_manifest: Optional[dict] = None) -> dict:
    """Writes <path>/forms.tsv then <path>/manifest.json, atomically (local paths).

    A gs:// path is written through a local temp directory, then copied file by file with
    the manifest last (its presence means the dictionary is complete).
    """
    if path.startswith("gs://"):
      import tempfile
      with tempfile.TemporaryDirectory() as tmp:
        manifest = self.save(os.path.join(tmp, "dictionary"), extra_manifest)
        import tensorflow as tf
        tf.io.gfile.makedirs(path)
        for name in (FORMS, manifests.NAME):
          tf.io.gfile.copy(os.path.join(tmp, "dictionary", name), f"{path.rstrip('/')}/{name}",
                           overwrite=True)
      return manifest
    with files.atomic_directory(path) as tmp:
      counts = {}
      with open(os.path.join(tmp, FORMS), "w", encoding="utf-8") as f:
        f.write(HEADER + "\n")
        for lang in self.languages():
          forms = self.tables[lang]
          counts[lang] = {"forms": len(forms), "anchors": sum(s.linked for s in forms.values())}
          for form in sorted(forms):
            s = forms[form]
            if not form or any(c in form for c in "\t\n\r"):
              raise ValueError(f"form {form!r} cannot be stored in {FORMS}")
            f.write(f"{lang}\t{form}\t{s.linked}\t{s.seen}\t"
                    f"{json.dumps([list(x) for x in s.entities], ensure_ascii=False)}\n")
      manifest = manifests.write(tmp, {
          "format": FORMAT, "max_units": self.max_units, "languages": counts,
          **(extra_manifest or {}),
          "files": {FORMS: manifests.file_entry(os.path.join(tmp, FORMS))}})
    self.manifest = manifest
    return manifest

  @classmethod
  def load(cls, path: str, verify: bool = True) -> "SurfaceDictionary":
    """Reads a dictionary directory (local); DictionaryError naming the file and problem."""
    manifest = read_manifest(path)
    if FORMS not in manifest["files"]:
      raise DictionaryError(f"{os.path.join(path, manifests.NAME)}: does not list {FORMS}")
    manifests.check_files(path, manifest["files"], verify, error=DictionaryError)
    forms_path = os.path.join(path, FORMS)
    tables: Dict[str, Dict[str, FormStats]] = {}
    with open(forms_path, encoding="utf-8") as f:
      if f.readline().rstrip("\n") != HEADER:
        raise DictionaryError(f"{forms_path}: line 1 is not the header {HEADER!r}")
      for n, line in enumerate(f, 2):
        try:
          lang, form, linked, seen, entities = line.rstrip("\n").split("\t")
          stats = FormStats(form, int(linked), int(seen),
                            tuple((str(e), int(c)) for e, c in json.loads(entities)))
        except (ValueError, TypeError) as e:
          raise DictionaryError(f"{forms_path}: line {n} is malformed ({e})") from None
        tables.setdefault(lang, {})[form] = stats
    return cls(tables, manifest, manifest.get("max_units", MAX_UNITS))


def read_manifest(path: str) -> dict:
  """The manifest of a dictionary directory; DictionaryError saying how to build a missing one."""
  if not os.path.isdir(path):
    raise DictionaryError(f"{path}: no surface-form dictionary here (build it with "
                          f"`{BUILD_COMMAND.format(path=path)}`)")
  return manifests.read(path, FORMAT, required=("files",), error=DictionaryError)


# ---------------------------------------------------------------------------------------------
# building


def count_occurrences(documents, walk_tables: Mapping[str, dict], max_units: int,
                      progress: bool = True, total: Optional[int] = None):
  """({lang: Counter(form -> occurrences)}, characters read) over the documents' normalised
  text; walk_tables: {lang: units.prefix_table with each form as its own value}."""
  from tqdm import tqdm
  seen = collections.defaultdict(collections.Counter)
  chars = 0
  with tqdm(total=total, unit="doc", desc="counting forms in documents", disable=not progress,
            mininterval=5) as bar:
    for doc in documents:
      bar.update(1)
      table = walk_tables.get(doc.lang)
      if not table:
        continue
      text = normalize_surface(doc.text)
      chars += len(text)
      starts, ends = units.units(text)
      counter = seen[doc.lang]
      for _, _, form in units.find_all(text, starts, ends, table, max_units):
        counter[form] += 1
  return seen, chars


def from_anchors(counts: anchors.AnchorCounts, documents: Iterable, *, min_linked: int = 1,
                 min_link_prob: float = 0.001, max_units: int = MAX_UNITS,
                 progress: bool = False, total_docs: Optional[int] = None
                 ) -> Tuple[SurfaceDictionary, dict]:
  """The dictionary of anchor counts and the training documents they came from, and a report
  ({"skipped": {reason: forms}, "document_chars": n})."""
  walk_tables, too_long = {}, 0
  for lang, forms in counts.by_language.items():
    walk_tables[lang], left_out = units.prefix_table(((f, f) for f in forms), max_units)
    too_long += left_out
  seen, chars = count_occurrences(documents, walk_tables, max_units, progress, total_docs)
  tables, dropped = {}, collections.Counter()
  for lang, forms in counts.by_language.items():
    kept = {}
    for form, by_entity in forms.items():
      if walk_tables[lang].get(form) is None:
        continue
      linked = sum(by_entity.values())
      stats = FormStats(form, linked, max(seen[lang][form], linked), _top(by_entity))
      if linked < min_linked:
        dropped["below_min_linked"] += 1
      elif stats.link_prob < min_link_prob:
        dropped["below_min_link_prob"] += 1
      else:
        kept[form] = stats
    tables[lang] = kept
  report = {"skipped": {"too_many_units": too_long, **dropped}, "document_chars": chars}
  return SurfaceDictionary(tables, max_units=max_units), report


def build(mining_dir: str, output: str, *, min_linked: int = 1, min_link_prob: float = 0.001,
          max_units: int = MAX_UNITS, progress: bool = True, overwrite: bool = False) -> dict:
  """Builds the dictionary of a mining run's training split and writes it; returns its
  manifest ("reused": True when output already held it: same run, same parameters)."""
  from mel import records
  started = time.time()
  params = {"min_linked": min_linked, "min_link_prob": min_link_prob, "max_units": max_units,
            "top_entities": TOP_ENTITIES}
  summary_path = os.path.join(mining_dir, records.SUMMARY_JSON)
  local_summary = "://" not in mining_dir and os.path.exists(summary_path)
  summary_sha = files.sha256_file(summary_path) if local_summary else ""
  if not overwrite and summary_sha and "://" not in output:
    try:
      previous = read_manifest(output)
    except DictionaryError:
      previous = None
    if previous and previous.get("params") == params and previous.get("source", {}).get(
        "summary_sha256") == summary_sha:
      return {**previous, "reused": True}
  counts = anchors.AnchorCounts.from_mining(mining_dir, progress)
  if not counts.counts:
    raise ValueError(f"{mining_dir}: no training mentions")
  total_docs = None
  if local_summary:
    with open(summary_path, encoding="utf-8") as f:
      total_docs = json.load(f).get("documents")
  documents = (d for d in records.read_output(mining_dir, records.DOCUMENTS)
               if d.split == "train")
  dictionary, report = from_anchors(
      counts, documents, min_linked=min_linked, min_link_prob=min_link_prob,
      max_units=max_units, progress=progress,
      total_docs=total_docs if isinstance(total_docs, int) else None)
  source = os.path.abspath(mining_dir) if "://" not in mining_dir else mining_dir
  return dictionary.save(output, {
      "params": params, "source": {"mining_dir": source, "split": "train",
                                   "summary_sha256": summary_sha},
      "skipped": {**counts.skipped, **report["skipped"]},
      "document_chars": report["document_chars"], "seconds": round(time.time() - started, 1)})
