"""Linking text to entities: `mel.link(text, lang)` and the Linker that `mel.load(path)` returns.

    import mel
    linker = mel.load("out/models/demo_f/round1")       # or "gs://bucket/model_dir"
    for m in linker.link("Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", "el"):
      print(m.start, m.end, m.text, m.entity_id, m.score, m.description)
    mel.link(text, "vi")        # a default Linker, loaded once from $MEL_MODEL_DIR

A model directory holds what serving needs (other files are ignored):

    export/manifest.json, export/mention_encoder/   the mention tower (mel.training.train)
    export/entity_encoder/                         the entity tower (optional; full mode)
    index/                                         entity index (mel.retrieval.build_index)
    entities.tsv                                   entity ids and descriptions (mel.training.train)
    dictionary/                                    surface forms (mel.linking.build_dictionary)

**Pipeline.** Mentions come from the offline spotter (`mel.linking.spotter`: dictionary
forms, longest first) or from the caller (`spans=[(start, end), ...]`). Each mention is
encoded with its context (`context_chars` characters each side, as the mining pipeline cut
them for training, and the document `title`, "" by default) by the exported mention tower,
up to `max_batch` mentions per call (one call for a typical document), and the entity index
is searched.

- **fast=True**: the index's own search settings (ScaNN: its leaves and reordering), top_k
  candidates; score = the cosine of mention and entity vectors.
- **fast=False** (default): a wider search (FULL_CANDIDATES candidates; ScaNN trees search 4x
  the leaves), plus the entities the dictionary's anchor counts give for the mention's text
  that the search missed, scored exactly with the entity tower (export/entity_encoder, loaded
  on first use, vectors memoised); all are re-ranked by
  score = cosine + prior_weight x P(entity | text) (P = 0 for texts or entities the
  dictionary has not seen, so caller spans of unseen text score as in fast mode). On the demo
  model's 5,605 held-out mentions (gold spans, bench/link_accuracy.py): accuracy@1 0.87 in
  full mode, 0.59 in fast mode (the tiny demo tower; the anchor prior carries most of it).
- **NIL.** A mention whose best score is below `threshold` is kept with entity_id None (NIL)
  and its candidates listed, so callers see what was rejected; `LinkedMention.is_nil`.

**Input checks.** Empty or whitespace-only text gives []; a language outside the 104 mBERT
languages raises ValueError listing them; spans out of range, empty, whitespace-only or
overlapping raise ValueError naming the span. Text of any length is processed in windows
(spotter windows of `window` characters, encoder batches of `max_batch` mentions): no tensor
grows with the text.

**gs://** model directories are fetched with google-cloud-storage into a cache
(`$MEL_CACHE`, default ~/.cache/mel; transfers checked by GCS's crc32c/md5), then loaded from
local disk (ScaNN and SavedModels read local files) and verified: index files against the
index manifest's sha256, the dictionary against its manifest, entities.tsv against the
checksum the index recorded. The next load lists the bucket and downloads only objects whose
generation changed; a cached file that fails verification is fetched again once.

Serving imports TensorFlow (+ tensorflow_text) and ScaNN's numpy binding, never Beam or
mel's training code.
"""
import dataclasses
import json
import os
import re
import sys
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from mel import files, languages
from mel.linking import spotter as md
from mel.surface_forms import normalize_surface

ENV_MODEL_DIR = "MEL_MODEL_DIR"
EXPORT_MANIFEST = "export/manifest.json"
MENTION_ENCODER = "export/mention_encoder"
ENTITY_ENCODER = "export/entity_encoder"      # optional: full mode's exact prior rescoring
INDEX = "index"
ENTITIES = "entities.tsv"
DICTIONARY = "dictionary"

DEFAULT_TOP_K = 5
FULL_CANDIDATES = 64      # candidates re-ranked in full mode
FULL_LEAVES_FACTOR = 4    # full mode searches this many times the ScaNN leaves
# Defaults chosen on the demo model's 5,605 held-out mentions (gold spans): in full mode, with
# weight 0.5, accuracy@1 is 0.87 (fast mode, cosine only: 0.59); at threshold 0.8 full mode
# links 95.5% of the mentions at precision 0.91 (fast mode: 79% at 0.64); figures of the
# round-1 demo model, bench/link_accuracy.py. The threshold depends
# on the model (its cosine range): calibrate it for others.
DEFAULT_THRESHOLD = 0.8
DEFAULT_PRIOR_WEIGHT = 0.5
CONTEXT_CHARS = 256       # the mining pipeline's context_chars: what the tower saw in training
MAX_BATCH = 128
SUPPORTED_LANGUAGES = tuple(sorted(languages.MBERT_LANGUAGE_CODES))
_QID = re.compile(r"Q[1-9][0-9]*")


class ModelNotFoundError(FileNotFoundError):
  """No model directory was given, or it lacks a part serving needs."""


# ---------------------------------------------------------------------------------------------
# results


@dataclasses.dataclass(frozen=True)
class Candidate:
  entity_id: str
  qid: str               # the QID, "" for an entity known only by its Wikipedia page
  score: float           # what candidates are ranked by (cosine, + prior in full mode)
  cosine: float          # mention-entity cosine from the index
  prior: float           # P(entity | mention text) from the dictionary (0 when unseen)
  description: str

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LinkedMention:
  """One mention: [start, end) in the input text, and its entity (None = NIL)."""
  start: int
  end: int
  text: str
  entity_id: Optional[str]    # None when the best score is below the threshold (NIL)
  qid: Optional[str]          # QID, "" for page-only entities, None for NIL
  score: float                # the best candidate's score (also for NIL: what was rejected;
                              # -inf when the index returned no candidate)
  description: Optional[str]  # the entity's description (None for NIL)
  candidates: Tuple[Candidate, ...]   # top_k, best first
  link_prob: Optional[float]  # the spotter's link probability (None for caller spans)

  @property
  def is_nil(self) -> bool:
    return self.entity_id is None

  def to_dict(self) -> dict:
    """JSON-ready: candidates as dicts; the score of a mention without candidates is None."""
    out = dataclasses.asdict(self)
    out["candidates"] = [c.to_dict() for c in self.candidates]
    if not np.isfinite(self.score):
      out["score"] = None
    return out


# ---------------------------------------------------------------------------------------------
# components


class SavedModelEncoder:
  """The exported mention tower: (titles, lefts, mentions, rights) -> float32 [B, D]."""

  def __init__(self, path: str):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the tokenizer ops of the SavedModel)
    self._tf = tf
    self._serve = tf.saved_model.load(path).signatures["serving_default"]

  def __call__(self, titles, lefts, mentions, rights) -> np.ndarray:
    tf = self._tf
    out = self._serve(title=tf.constant(list(titles), tf.string),
                      left=tf.constant(list(lefts), tf.string),
                      mention=tf.constant(list(mentions), tf.string),
                      right=tf.constant(list(rights), tf.string))
    return out["embeddings"].numpy()


class SavedModelEntityEncoder:
  """The exported entity tower, loaded on first use: inputs [B] (descriptions for Model F,
  entity ids for Model E, per export/manifest.json's entity_input) -> float32 [B, D]."""

  def __init__(self, path: str, argument: str):
    self.path, self.argument, self._serve = path, argument, None

  def __call__(self, inputs) -> np.ndarray:
    if self._serve is None:
      self._serve = SavedModelEncoder(self.path)._serve
    import tensorflow as tf
    return self._serve(**{self.argument: tf.constant(list(inputs), tf.string)})[
        "embeddings"].numpy()


class EntityTexts:
  """Entity id and description of each index row, from entities.tsv (line = table row).

  Index rows follow the table's order for brute-force indexes but not for streamed ScaNN
  builds (the training sample goes in first), so rows are mapped through the ids: a
  permutation array when they differ, nothing when they agree.
  """

  def __init__(self, path: str, index_ids: Sequence[str]):
    from mel.retrieval.index import IdList
    self.lines = IdList.from_file(path)
    if len(self.lines) != len(index_ids):
      raise ValueError(f"{path}: {len(self.lines)} entities, the index holds {len(index_ids)}")
    table_ids = (line.split("\t", 1)[0] for line in self.lines)
    self.row_of = None
    if any(a != b for a, b in zip(table_ids, index_ids)):
      position = {line.split("\t", 1)[0]: i for i, line in enumerate(self.lines)}
      try:
        self.row_of = np.array([position[e] for e in index_ids], dtype=np.int64)
      except KeyError as e:
        raise ValueError(f"{path}: no entity {e.args[0]!r}, which the index holds") from None

  def __getitem__(self, index_row: int) -> Tuple[str, str]:
    row = index_row if self.row_of is None else int(self.row_of[index_row])
    entity_id, _, text = self.lines[row].partition("\t")
    return entity_id, text

  def texts_of(self, entity_ids: Iterable[str]) -> Dict[str, str]:
    """{entity id: text} for the ids the table holds (one pass over the table)."""
    wanted = set(entity_ids)
    found = {}
    for line in self.lines:
      entity_id, _, text = line.partition("\t")
      if entity_id in wanted:
        found[entity_id] = text
    return found


def qid_of(entity_id: str) -> str:
  return entity_id if _QID.fullmatch(entity_id) else ""


def check_language(lang) -> str:
  """The language code, lower-cased; ValueError listing the supported codes otherwise."""
  code = lang.strip().lower().replace("_", "-") if isinstance(lang, str) else lang
  if code not in languages.MBERT_LANGUAGE_CODES:
    raise ValueError(f"unsupported language {lang!r}: mel links text in the 104 mBERT "
                     f"languages, given by Wikipedia code (zh covers Simplified and "
                     f"Traditional): {' '.join(SUPPORTED_LANGUAGES)}")
  return code


def check_spans(text: str, spans) -> List[Tuple[int, int]]:
  """Caller spans as sorted (start, end); ValueError naming the first bad span."""
  out = []
  for k, span in enumerate(spans):
    if isinstance(span, dict):
      span = (span.get("start"), span.get("end"))
    try:
      start, end = span
    except (TypeError, ValueError):
      raise ValueError(f"span {k} ({span!r}) is not a (start, end) pair") from None
    if not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool)
               for x in (start, end)):
      raise ValueError(f"span {k} ({span!r}): start and end must be integers")
    start, end = int(start), int(end)
    if not 0 <= start < end <= len(text):
      raise ValueError(f"span {k} [{start}, {end}) is out of range for a text of {len(text)} "
                       f"characters (need 0 <= start < end <= {len(text)})")
    if not text[start:end].strip():
      raise ValueError(f"span {k} [{start}, {end}) holds only whitespace")
    out.append((start, end, k))
  out.sort()
  for (a, b, i), (c, d, j) in zip(out, out[1:]):
    if c < b:
      raise ValueError(f"spans {i} [{a}, {b}) and {j} [{c}, {d}) overlap")
  return [(a, b) for a, b, _ in out]


def _tree_leaves(index) -> Optional[Tuple[int, int]]:
  """(default leaves to search, fewest leaves of a shard) if every shard is a ScaNN tree."""
  from mel.retrieval import index as retrieval
  shards = index.shards if isinstance(index, retrieval.ShardedIndex) else [index]
  if not all(isinstance(s, retrieval.ScannIndex) and s.params.get("algorithm") == "tree_ah"
             for s in shards):
    return None
  return (max(s.params["num_leaves_to_search"] for s in shards),
          min(s.params["num_leaves"] for s in shards))


# ---------------------------------------------------------------------------------------------
# the linker


class Linker:
  """Towers, index, entity table and dictionary held together; `link` does the work.

  encoder: callable (titles, lefts, mentions, rights: lists of str) -> float32 [B, D] unit rows.
  index: a mel.retrieval.index.Index over the entity vectors; entities: EntityTexts for its rows.
  entity_encoder: callable (inputs: list of str) -> float32 [B, D], the entity tower (inputs
  are descriptions, or entity ids when entity_input == "entity_id"); full mode scores the
  prior's entities that the search did not return with it (None: they are left out).
  threshold: NIL below this score; prior_weight: weight of P(entity | text) in full mode;
  min_link_prob / min_linked: the spotter's thresholds (mel.linking.spotter).
  """

  def __init__(self, encoder, index, entities: EntityTexts, dictionary: md.SurfaceDictionary,
               *, entity_encoder=None, entity_input: str = "description",
               threshold: float = DEFAULT_THRESHOLD, prior_weight: float = DEFAULT_PRIOR_WEIGHT,
               min_link_prob: float = md.DEFAULT_MIN_LINK_PROB,
               min_linked: int = md.DEFAULT_MIN_LINKED, context_chars: int = CONTEXT_CHARS,
               max_batch: int = MAX_BATCH, window: int = 20_000, model_dir: str = ""):
    if max_batch < 1 or context_chars < 0:
      raise ValueError("max_batch must be >= 1 and context_chars >= 0")
    self.encoder = encoder
    self.index = index
    self.entities = entities
    self.dictionary = dictionary
    self.detector = md.MentionDetector(dictionary, min_link_prob, min_linked, window=window)
    self.threshold = float(threshold)
    self.prior_weight = float(prior_weight)
    self.context_chars = int(context_chars)
    self.max_batch = int(max_batch)
    self.model_dir = model_dir
    self.fetch_stats: Optional[dict] = None   # set by load() for gs:// model dirs
    self.entity_encoder = entity_encoder
    self.entity_input = entity_input
    self._tree = _tree_leaves(index)
    self._prior_texts: Optional[Dict[str, str]] = None   # entity id -> text, prior entities
    self._entity_vectors: Dict[str, np.ndarray] = {}     # memo of the entity tower, bounded

  def link(self, text: str, lang: str, *, spans=None, top_k: int = DEFAULT_TOP_K,
           fast: bool = False, title: str = "", threshold: Optional[float] = None
           ) -> List[LinkedMention]:
    """Linked mentions of text, in text order (see the module docstring)."""
    return list(self.iter_link(text, lang, spans=spans, top_k=top_k, fast=fast, title=title,
                               threshold=threshold))

  def iter_link(self, text: str, lang: str, *, spans=None, top_k: int = DEFAULT_TOP_K,
                fast: bool = False, title: str = "", threshold: Optional[float] = None
                ) -> Iterator[LinkedMention]:
    """As link, yielding mentions batch by batch (bounded memory for any text length)."""
    if not isinstance(text, str):
      raise TypeError(f"text must be str, got {type(text).__name__}")
    if not isinstance(title, str):
      raise TypeError(f"title must be str, got {type(title).__name__}")
    lang = check_language(lang)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
      raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    threshold = self.threshold if threshold is None else float(threshold)
    if spans is not None:
      checked = check_spans(text, spans)   # errors before any work, also for empty text
      table = self.dictionary.table(lang)

      def caller_spots():
        for start, end in checked:
          form = normalize_surface(text[start:end])
          stats = table.get(form)
          yield md.Spot(start, end, text[start:end], form,
                        stats.link_prob if stats else None, stats.linked if stats else 0)
      spots = caller_spots()
    elif not text.strip():
      return
    else:
      spots = self.detector.iter_detect(text, lang)
    batch = []
    for spot in spots:
      batch.append(spot)
      if len(batch) == self.max_batch:
        yield from self._link_batch(text, lang, batch, title, top_k, fast, threshold,
                                    spans is not None)
        batch = []
    if batch:
      yield from self._link_batch(text, lang, batch, title, top_k, fast, threshold,
                                  spans is not None)

  def _link_batch(self, text, lang, spots, title, top_k, fast, threshold, caller):
    c = self.context_chars
    vectors = self.encoder([title] * len(spots),
                           [text[max(0, s.start - c):s.start] for s in spots],
                           [s.text for s in spots],
                           [text[s.end:s.end + c] for s in spots])
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(spots), self.index.dimension):
      raise ValueError(f"the mention encoder returned shape {vectors.shape}, expected "
                       f"({len(spots)}, {self.index.dimension})")
    if fast:
      rows, cosines = self.index.search(vectors, top_k)
    else:
      options = {}
      if self._tree:
        default, fewest = self._tree
        options["leaves_to_search"] = min(fewest, FULL_LEAVES_FACTOR * default)
      rows, cosines = self.index.search(vectors, max(top_k, FULL_CANDIDATES), **options)
    table = self.dictionary.table(lang)
    priors = [{} if fast else (table[s.form].prior() if s.form in table else {})
              for s in spots]
    # entity ids of every retrieved row, at once; descriptions only for what is returned
    from mel.retrieval.index import _take
    valid = rows >= 0
    flat = iter(_take(self.index.ids, rows[valid]))
    ids = [[next(flat) for _ in range(n)] for n in valid.sum(axis=1).tolist()]
    extra = {} if fast else self._score_missing(vectors, ids, priors)
    w = self.prior_weight
    for k, spot in enumerate(spots):
      prior = priors[k]
      # (score, cosine, prior, entity id, index row or description)
      scored = [(cos + w * prior.get(e, 0.0), cos, prior.get(e, 0.0), e, row)
                for e, cos, row in zip(ids[k], cosines[k].tolist(), rows[k].tolist())]
      scored += [(cos + w * prior[e], cos, prior[e], e, description)
                 for e, (cos, description) in extra.get(k, {}).items()]
      if not fast:
        scored.sort(key=lambda x: (-x[0], x[3]))
      candidates = tuple(
          Candidate(e, qid_of(e), float(score), float(cos), float(p),
                    where if isinstance(where, str) else self.entities[where][1])
          for score, cos, p, e, where in scored[:top_k])
      best = candidates[0] if candidates else None
      linked = best is not None and best.score >= threshold
      yield LinkedMention(
          spot.start, spot.end, spot.text,
          best.entity_id if linked else None, best.qid if linked else None,
          best.score if best else float("-inf"), best.description if linked else None,
          candidates, None if caller else spot.link_prob)

  MEMO_SIZE = 100_000   # entity vectors kept from the entity tower

  def _score_missing(self, vectors, ids, priors) -> Dict[int, Dict[str, Tuple[float, str]]]:
    """{spot: {entity id: (exact cosine, description)}} for prior entities not retrieved."""
    if self.entity_encoder is None:
      return {}
    missing: Dict[int, List[str]] = {}
    for k, prior in enumerate(priors):
      if prior:
        retrieved = set(ids[k])
        todo = [e for e in prior if e not in retrieved]
        if todo:
          missing[k] = todo
    if not missing:
      return {}
    if self._prior_texts is None:
      ids = {e for forms in self.dictionary.tables.values() for s in forms.values()
             for e, _ in s.entities}
      self._prior_texts = self.entities.texts_of(ids)
    needed = sorted({e for todo in missing.values() for e in todo
                     if e in self._prior_texts and e not in self._entity_vectors})
    if needed:
      inputs = needed if self.entity_input == "entity_id" else [
          self._prior_texts[e] for e in needed]
      encoded = np.asarray(self.entity_encoder(inputs), dtype=np.float32)
      if len(self._entity_vectors) + len(needed) > self.MEMO_SIZE:
        self._entity_vectors.clear()
      self._entity_vectors.update(zip(needed, encoded))
    out = {}
    for k, todo in missing.items():
      scored = {}
      for e in todo:
        if e in self._entity_vectors:
          scored[e] = (float(vectors[k] @ self._entity_vectors[e]), self._prior_texts[e])
      out[k] = scored
    return out


# ---------------------------------------------------------------------------------------------
# loading


def _require(path: str, part: str, how: str) -> str:
  full = os.path.join(path, part)
  if not os.path.exists(full):
    raise ModelNotFoundError(f"{full}: missing; {how}")
  return full


def load(path: Optional[str] = None, *, index: Optional[str] = None,
         dictionary: Optional[str] = None, cache_dir: Optional[str] = None,
         verify: bool = True, **options) -> Linker:
  """A Linker for a model directory (local or gs://); path defaults to $MEL_MODEL_DIR.

  index / dictionary override <path>/index and <path>/dictionary (local or gs://). verify
  checks every index and dictionary file's sha256 (always done for gs:// fetches). options go
  to Linker (threshold, prior_weight, min_link_prob, min_linked, max_batch, ...).
  """
  path = resolve_model_dir(path)
  if path.startswith("gs://") or (index or "").startswith("gs://") or (
      dictionary or "").startswith("gs://"):
    from mel.linking import model_cache
    local = model_cache.fetch_all(path, index, dictionary, cache_dir)
    try:
      return _load_local(*local.paths, verify=True, options=options, model_dir=path,
                         fetch_stats=local.stats)
    except (ValueError, OSError) as e:
      if not local.stats.get("reused"):
        raise
      print(f"[mel] the cached copy in {local.paths[0]} failed verification ({e}); fetching "
            f"it again", file=sys.stderr)
    local = model_cache.fetch_all(path, index, dictionary, cache_dir, force=True)
    return _load_local(*local.paths, verify=True, options=options, model_dir=path,
                       fetch_stats=local.stats)
  return _load_local(path, index or os.path.join(path, INDEX),
                     dictionary or os.path.join(path, DICTIONARY), verify=verify,
                     options=options, model_dir=path)


def resolve_model_dir(path: Optional[str]) -> str:
  path = path or os.environ.get(ENV_MODEL_DIR, "")
  if not path:
    raise ModelNotFoundError(
        f"no model directory: pass one (mel.load(PATH), mel.link(..., model_dir=PATH), "
        f"mel link --model_dir PATH) or set {ENV_MODEL_DIR}. A model directory holds export/, "
        f"index/, entities.tsv and dictionary/ (bash scripts/demo.sh makes one under "
        f"out/models/)")
  return path


def _load_local(path, index_path, dictionary_path, *, verify, options, model_dir,
                fetch_stats=None) -> Linker:
  from mel.retrieval import index as retrieval
  if not os.path.isdir(path):
    raise ModelNotFoundError(f"{path}: no such model directory")
  manifest_path = _require(path, EXPORT_MANIFEST, "train and export the model first "
                           "(python -m mel.train)")
  encoder_path = _require(path, MENTION_ENCODER, "train and export the model first "
                          "(python -m mel.train)")
  table_path = _require(path, ENTITIES, "it is written by python -m mel.train")
  if not os.path.exists(index_path):
    raise ModelNotFoundError(f"{index_path}: missing; build it with python -m "
                             f"mel.retrieval.encode and python -m mel.retrieval.build_index")
  if not os.path.exists(dictionary_path):
    raise ModelNotFoundError(f"{dictionary_path}: missing; build it with python -m "
                             f"mel.linking.build_dictionary --mining_dir MINING --output "
                             f"{dictionary_path}")
  with open(manifest_path, encoding="utf-8") as f:
    export_manifest = json.load(f)
  dimension = int(export_manifest["embedding_dim"])
  index = retrieval.load_index(index_path, verify=verify, dimension=dimension)
  built_with = index.model or {}
  for key in ("kind", "step", "embedding_dim"):
    if key in built_with and key in export_manifest and built_with[key] != export_manifest[key]:
      raise ValueError(f"{index_path}: built from entity vectors of {key} {built_with[key]!r}, "
                       f"the mention tower in {path}/export has {export_manifest[key]!r}: "
                       f"re-encode the entities and rebuild the index for this model")
  want = built_with.get("entity_table_sha256")
  if want:
    got = files.sha256_file(table_path)
    if got != want:
      raise ValueError(f"{table_path}: checksum {got[:12]}... differs from the table the index "
                       f"was built from ({want[:12]}...)")
  entities = EntityTexts(table_path, index.ids)
  dictionary = md.SurfaceDictionary.load(dictionary_path, verify=verify)
  encoder = SavedModelEncoder(encoder_path)
  entity_input = export_manifest.get("entity_input", "description")
  entity_encoder = None
  if os.path.isdir(os.path.join(path, ENTITY_ENCODER)):
    entity_encoder = SavedModelEntityEncoder(os.path.join(path, ENTITY_ENCODER), entity_input)
  linker = Linker(encoder, index, entities, dictionary, entity_encoder=entity_encoder,
                  entity_input=entity_input, model_dir=model_dir, **options)
  linker.fetch_stats = fetch_stats
  return linker


_DEFAULT: Dict[str, Linker] = {}


def default_linker(model_dir: Optional[str] = None) -> Linker:
  """The Linker of model_dir (or $MEL_MODEL_DIR), loaded on first use and kept."""
  path = resolve_model_dir(model_dir)
  if path not in _DEFAULT:
    _DEFAULT[path] = load(path)
  return _DEFAULT[path]


def link(text: str, lang: str, *, spans=None, top_k: int = DEFAULT_TOP_K, fast: bool = False,
         title: str = "", threshold: Optional[float] = None,
         model_dir: Optional[str] = None) -> List[LinkedMention]:
  """Links text with the default Linker (model_dir or $MEL_MODEL_DIR); see Linker.link."""
  return default_linker(model_dir).link(text, lang, spans=spans, top_k=top_k, fast=fast,
                                        title=title, threshold=threshold)


def iter_documents(linker: Linker, documents: Iterable[dict], *, default_lang: str = "",
                   top_k: int = DEFAULT_TOP_K, fast: bool = False) -> Iterator[dict]:
  """{"text", "lang", "title"?, "spans"?, ...} -> the same dict + "mentions" (or "error")."""
  for doc in documents:
    out = dict(doc) if isinstance(doc, dict) else {"input": doc}
    try:
      if not isinstance(doc, dict) or "text" not in doc:
        raise ValueError('each document must be a JSON object with a "text" field')
      lang = doc.get("lang") or default_lang
      if not lang:
        raise ValueError('no "lang" field and no default language (--lang)')
      mentions = linker.link(doc["text"], lang, spans=doc.get("spans"), top_k=top_k,
                             fast=fast, title=doc.get("title") or "")
      out["mentions"] = [m.to_dict() for m in mentions]
    except (TypeError, ValueError) as e:
      out["error"] = str(e)
    yield out
