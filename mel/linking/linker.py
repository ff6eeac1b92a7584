"""Linking text to entities: `mel.link(text, lang)` and the Linker that `mel.load(path)` returns.

    import mel
    linker = mel.load("out/models/demo_f/round1")       # or "gs://bucket/model_dir"
    for m in linker.link("Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.", "el"):
      print(m.start, m.end, m.text, m.entity_id, m.score, m.description)
    mel.link(text, "vi")        # a default Linker, loaded once from $MEL_MODEL_DIR

What a model directory must hold, and how gs:// ones are fetched: mel.linking.loading.

**Pipeline.** Mentions come from the offline spotter (mel.linking.spotter: dictionary forms,
longest first) or from the caller (`spans=[(start, end), ...]`). Each mention is encoded with
its context (`context_chars` characters each side, as the mining pipeline cut them for
training, and the document `title`, "" by default) by the exported mention tower, up to
`max_batch` mentions per call (one call for a typical document), and the entity index is
searched.

- **fast=True**: the index's own search settings (ScaNN: its leaves and reordering), top_k
  candidates; score = the cosine of mention and entity vectors.
- **fast=False** (default): a wider search (FULL_CANDIDATES candidates, FULL_LEAVES_FACTOR
  times the leaves of a tree index), plus the entities the dictionary's anchor counts give for
  the mention's text that the search missed, scored exactly with the entity tower (loaded on
  first use, vectors memoised); all are re-ranked by score = cosine + prior_weight x
  P(entity | text) (SurfaceDictionary.prior: the language's anchors, else all languages'; 0
  for texts or entities no language has seen, so caller spans of unseen text score as in fast
  mode). Accuracy of both modes on the demo model: README "Linking" (bench/link_accuracy.py).
- **Reranking** (`mel.load(path, reranker=DIR, rerank_top=5)`, `mel link --reranker DIR`; full
  mode only): after full mode's ranking, the first `rerank_top` candidates of every mention of
  a batch are re-scored in one call by a cross-attention reranker (mel.towers.Reranker, a model
  dir trained with model.kind CA, loaded once; Linker.reload keeps it): each pair is the
  mention with its title and contexts and the candidate's entity text. They are re-ordered by
  the reranker's logit (ties keep full mode's order), the rest follow as full mode ranked
  them; Candidate.rerank holds sigmoid(logit) of the re-scored ones (score, cosine and prior
  stay full mode's), and LinkedMention.score is the best one's, the reranker's probability of
  the link. For a reranker trained with the softmax loss (its manifest has no "probability")
  sigmoid(logit) still ranks the same but is uncalibrated: its 0.5 means nothing in
  particular, choose a threshold with `mel evaluate --reranker`. Fast mode never reranks.
- **NIL.** A mention whose best candidate scores below the mode's threshold is kept with
  entity_id None (NIL) and its candidates listed, so callers see what was rejected;
  `LinkedMention.is_nil`. Each mode has its own threshold, on its own score (fast: the cosine;
  full: cosine + prior_weight x prior, mel.scoring), chosen per model on held-out data: `mel
  evaluate --nil_fraction F --save_threshold` takes gold entities out of the index, picks for
  each mode the score that best separates their mentions from the rest, and writes both to
  <model_dir>/nil.json (mel.nil_threshold), which load() reads when no threshold is given;
  without one, DEFAULT_THRESHOLD for both. With a reranker, full mode is NIL when the
  reranker's probability is below thresholds["rerank"]: nil.json's "rerank" threshold when `mel
  evaluate --reranker DIR --save_threshold` chose it for this reranker (mel.nil_threshold; on
  the reranked top K of the dual encoder's cosine ranking, which full mode's prior reorders a
  little), else DEFAULT_RERANK_THRESHOLD (0.5, the bce reranker's even odds). A `threshold` given
  applies to every mode's score. `Linker.thresholds` holds them, `Linker.threshold_source` says
  where they came from ("nil.json chosen on ...", "default" or "given").

**Languages.** Any well-formed language code is linked (a Wikipedia code such as en, zh-yue,
be-tarask, simple, or a BCP-47 tag such as gsw, pt-br): the tokenizer reads any script. The
model's pretraining languages (mel.languages.pretraining_languages of the export manifest's
"tokenizer": "wordpiece", the default, -> the 104 mBERT languages; "e5" -> XLM-R's 100) only
decide whether an UnseenLanguageWarning (mel.linking.inputs) says, once per code per process,
that results may be poor. A language without dictionary forms of its own is spotted with the
forms of all languages pooled and takes its prior from them (mel.linking.spotter); caller spans
link in any language.

**Many documents.** `Linker.request(text, lang, ...)` checks one call's arguments (the errors
below) and returns a LinkRequest; `Linker.link_many(requests)` links many together, as link
would one by one, with the mentions of all of them in shared encoder, search and reranker
batches (mel.serving's micro-batching). A mention's vector depends in its last bits on what it
is batched with, so scores may differ from link's by float rounding.

**Input checks** (mel.linking.inputs). Empty or whitespace-only text gives []; a malformed
language code ("", "12", "en us!") raises ValueError naming it; spans out of range, empty,
whitespace-only or overlapping raise ValueError naming the span. Text of any length is
processed in windows (spotter windows of `window` characters, encoder batches of `max_batch`
mentions): no tensor grows with the text.

Serving imports TensorFlow (+ tensorflow_text) and ScaNN's numpy binding, never Beam or mel's
training code.
"""
import os
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from mel import languages, nil_threshold, scoring, towers
from mel.linking import inputs, loading, model_cache
from mel.linking.dictionary import SurfaceDictionary
from mel.linking.loading import ENV_MODEL_DIR, ModelNotFoundError, resolve_model_dir  # noqa: F401
from mel.linking.results import Candidate, LinkedMention
from mel.linking.spotter import DEFAULT_MIN_LINK_PROB, DEFAULT_MIN_LINKED, MentionDetector, Spot
from mel.model_dir import ModelDir
from mel.surface_forms import normalize_surface

DEFAULT_TOP_K = 5
FULL_CANDIDATES = scoring.FULL_CANDIDATES
FULL_LEAVES_FACTOR = scoring.FULL_LEAVES_FACTOR
# Set by hand on the from-scratch demo model (README "Linking"); used when a model has no
# nil.json. The threshold depends on the model's cosine range: choose one per model with
# `mel evaluate --nil_fraction F --save_threshold`.
DEFAULT_THRESHOLD = 0.8
DEFAULT_PRIOR_WEIGHT = scoring.PRIOR_WEIGHT
CONTEXT_CHARS = 256       # the mining pipeline's context_chars: what the tower saw in training
MAX_BATCH = 128
DEFAULT_RERANK_TOP = 5           # candidates the reranker re-scores per mention (the paper's)
DEFAULT_RERANK_THRESHOLD = 0.5   # NIL below this reranker probability without a chosen one


class Linker:
  """Towers, index, entity table and dictionary held together; `link` does the work.

  encoder: callable (titles, lefts, mentions, rights: lists of str) -> float32 [B, D] unit rows.
  index: a mel.retrieval Index over the entity vectors; entities: EntityTexts for its rows.
  entity_encoder: callable (inputs: list of str) -> float32 [B, D], the entity tower (inputs
  are descriptions, or entity ids when entity_input == "entity_id"); full mode scores the
  prior's entities that the search did not return with it (None: they are left out).
  threshold: NIL when the best candidate's score is below it, in either mode (None:
  DEFAULT_THRESHOLD; load() sets `thresholds` per mode from nil.json and threshold_source to
  where it came from); prior_weight:
  weight of P(entity | text) in full mode;
  min_link_prob / min_linked: the spotter's thresholds (mel.linking.spotter).
  tokenizer: the export manifest's "tokenizer" ("wordpiece" or "e5"); its pretraining
  languages (`languages`) are those linked without an UnseenLanguageWarning.
  reranker: callable (titles, lefts, mentions, rights, descriptions: lists of str) -> float32
  logits [N], a mel.towers.Reranker (None: no reranking); rerank_top: the candidates of full
  mode it re-scores per mention.
  """

  MEMO_SIZE = 100_000   # entity vectors kept from the entity tower

  def __init__(self, encoder, index, entities, dictionary: SurfaceDictionary,
               *, entity_encoder=None, entity_input: str = "description",
               threshold: Optional[float] = None, prior_weight: float = DEFAULT_PRIOR_WEIGHT,
               min_link_prob: float = DEFAULT_MIN_LINK_PROB,
               min_linked: int = DEFAULT_MIN_LINKED, context_chars: int = CONTEXT_CHARS,
               max_batch: int = MAX_BATCH, window: int = 20_000, model_dir: str = "",
               tokenizer: str = "wordpiece", kb=None, reranker=None,
               rerank_top: int = DEFAULT_RERANK_TOP):
    if max_batch < 1 or context_chars < 0:
      raise ValueError("max_batch must be >= 1 and context_chars >= 0")
    if rerank_top < 1:
      raise ValueError(f"rerank_top must be >= 1, got {rerank_top}")
    self.tokenizer = tokenizer
    self.languages = languages.pretraining_languages(tokenizer)
    self.encoder = encoder
    self._spotter_options = (min_link_prob, min_linked, window)
    self._served = self._serve(index, entities, dictionary, kb)
    given = DEFAULT_THRESHOLD if threshold is None else float(threshold)
    self.thresholds = {"fast": given, "full": given}   # NIL below these scores, per mode
    self.reranker = reranker
    self.rerank_top = int(rerank_top)
    if reranker is not None:
      self.thresholds["rerank"] = DEFAULT_RERANK_THRESHOLD if threshold is None else given
    self.threshold_source = "default" if threshold is None else "given"
    self.prior_weight = float(prior_weight)
    self.context_chars = int(context_chars)
    self.max_batch = int(max_batch)
    self.model_dir = model_dir
    self.fetch_stats: Optional[dict] = None   # set by load() for gs:// model dirs
    self.entity_encoder = entity_encoder
    self.entity_input = entity_input
    self._trained_dictionary: Optional[SurfaceDictionary] = None   # set by load(): reload grows it
    self._verify = True

  def _serve(self, index, entities, dictionary, kb) -> "Served":
    min_link_prob, min_linked, window = self._spotter_options
    return Served(index, entities, dictionary,
                  MentionDetector(dictionary, min_link_prob, min_linked, window=window), kb, {},
                  {})

  # What a knowledge-base generation decides, read through one reference so that a reload
  # (a new Served) never mixes two generations within one link call.
  index = property(lambda self: self._served.index)
  entities = property(lambda self: self._served.entities)
  dictionary = property(lambda self: self._served.dictionary)
  detector = property(lambda self: self._served.detector)
  kb = property(lambda self: self._served.kb)

  @property
  def kb_generation(self) -> Optional[int]:
    """The knowledge base's generation served (None: an index given explicitly)."""
    return None if self.kb is None else self.kb.generation

  def reload(self) -> bool:
    """Serves the knowledge base's current generation (`mel kb` commits them) if it is newer
    than the one loaded: index, entity texts and the dictionary (which gains the added
    entities' names) are read, then swapped in at once; calls in progress finish on the old
    one. Returns whether anything changed. The towers and the reranker are not reloaded."""
    if self._trained_dictionary is None or self.kb is None:
      raise ValueError("reload needs a Linker loaded from a model directory's knowledge base "
                       "(mel.load(path), without index=)")
    from mel.retrieval import kb as kb_lib
    if kb_lib.current_generation(self.kb.model_dir) == self.kb.generation:
      return False
    parts = loading.read_kb_parts(self.kb.model_dir, None, self._trained_dictionary,
                                  self._verify)
    self._served = self._serve(parts.index, parts.entities, parts.dictionary, parts.kb)
    return True

  def request(self, text: str, lang: str, *, spans=None, top_k: int = DEFAULT_TOP_K,
              fast: bool = False, title: str = "", threshold: Optional[float] = None
              ) -> "LinkRequest":
    """The checked arguments of one link call (TypeError / ValueError naming what is wrong,
    before any work)."""
    if not isinstance(text, str):
      raise TypeError(f"text must be str, got {type(text).__name__}")
    if not isinstance(title, str):
      raise TypeError(f"title must be str, got {type(title).__name__}")
    lang = inputs.check_language(lang, self.languages)
    top_k = inputs.check_top_k(top_k)
    threshold = None if threshold is None else float(threshold)
    checked = None if spans is None else inputs.check_spans(text, spans)
    return LinkRequest(text, lang, title, checked, top_k, bool(fast), threshold)

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
    request = self.request(text, lang, spans=spans, top_k=top_k, fast=fast, title=title,
                           threshold=threshold)
    served = self._served
    batch = []
    for spot in self._spots(served, request):
      batch.append((request, spot))
      if len(batch) == self.max_batch:
        yield from self._link_batch(served, batch)
        batch = []
    if batch:
      yield from self._link_batch(served, batch)

  def link_many(self, requests: Sequence["LinkRequest"]) -> List[List[LinkedMention]]:
    """Each request's linked mentions (as link gives them), the mentions of all requests
    encoded, searched and reranked together in batches of up to max_batch: what a service
    does with the requests that arrive together (mel.serving)."""
    served = self._served
    out: List[List[LinkedMention]] = [[] for _ in requests]
    groups: Dict[Tuple[bool, int], List[int]] = {}   # one search per mode and depth
    for i, r in enumerate(requests):
      groups.setdefault((r.fast, _search_k(r)), []).append(i)
    for members in groups.values():
      batch, owners = [], []
      for i in members:
        for spot in self._spots(served, requests[i]):
          batch.append((requests[i], spot))
          owners.append(i)
          if len(batch) == self.max_batch:
            for i_, m in zip(owners, self._link_batch(served, batch)):
              out[i_].append(m)
            batch, owners = [], []
      for i_, m in zip(owners, self._link_batch(served, batch) if batch else ()):
        out[i_].append(m)
    return out

  def mode(self, fast: bool) -> str:
    """The key of `thresholds` a link call compares: "fast", "full", or "rerank" (full mode
    with a reranker)."""
    return "fast" if fast else ("full" if self.reranker is None else "rerank")

  @staticmethod
  def _spots(served, request: "LinkRequest") -> Iterable[Spot]:
    text = request.text
    if request.spans is not None:
      return (Spot(a, b, text[a:b], normalize_surface(text[a:b]), None, 0)
              for a, b in request.spans)
    if not text.strip():
      return ()
    return served.detector.iter_detect(text, request.lang)

  def _link_batch(self, served, items: Sequence[Tuple["LinkRequest", Spot]]
                  ) -> Iterator[LinkedMention]:
    """items: (request, spot) pairs of one mode and search depth (_search_k)."""
    fast = items[0][0].fast
    c = self.context_chars
    titles = [r.title for r, _ in items]
    lefts = [r.text[max(0, s.start - c):s.start] for r, s in items]
    mentions = [s.text for _, s in items]
    rights = [r.text[s.end:s.end + c] for r, s in items]
    vectors = self.encoder(titles, lefts, mentions, rights)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(items), served.index.dimension):
      raise ValueError(f"the mention encoder returned shape {vectors.shape}, expected "
                       f"({len(items)}, {served.index.dimension})")
    k = _search_k(items[0][0])
    if fast:
      rows, cosines = served.index.search(vectors, k)
      priors = [{}] * len(items)
    else:
      rows, cosines = served.index.search(vectors, k,
                                        **served.index.wide_search_options(FULL_LEAVES_FACTOR))
      priors = [served.dictionary.prior(s.form, r.lang) for r, s in items]
    # entity ids of every retrieved row, at once; descriptions only for what is returned
    valid = rows >= 0
    flat = iter(served.index.take_ids(rows[valid]))
    ids = [[next(flat) for _ in range(n)] for n in valid.sum(axis=1).tolist()]
    extra = {} if fast else self._score_missing(served, vectors, ids, priors)
    w = self.prior_weight
    ranked = []
    for k, prior in enumerate(priors):
      # (score, cosine, prior, entity id, index row or description)
      scored = [(scoring.full_score(cos, prior.get(e, 0.0), w), cos, prior.get(e, 0.0), e, row)
                for e, cos, row in zip(ids[k], cosines[k].tolist(), rows[k].tolist())]
      scored += [(scoring.full_score(cos, prior[e], w), cos, prior[e], e, description)
                 for e, (cos, description) in extra.get(k, {}).items()]
      if not fast:
        scored.sort(key=lambda x: scoring.rank_key(x[0], x[3]))
      ranked.append(scored)
    reranking = self.reranker is not None and not fast
    reranked = (self._rerank(served, titles, lefts, mentions, rights, ranked) if reranking
                else [[]] * len(items))
    for k, (request, spot) in enumerate(items):
      probabilities = reranked[k]
      candidates = tuple(
          Candidate(e, _qid(served.kb, e), float(score), float(cos), float(p),
                    _text(served, where), probabilities[i] if i < len(probabilities) else None)
          for i, (score, cos, p, e, where) in enumerate(ranked[k][:request.top_k]))
      best = candidates[0] if candidates else None
      best_score = float("-inf") if best is None else (best.rerank if reranking else best.score)
      threshold = (self.thresholds[self.mode(fast)] if request.threshold is None
                   else request.threshold)
      linked = best is not None and best_score >= threshold
      yield LinkedMention(
          spot.start, spot.end, spot.text,
          best.entity_id if linked else None, best.qid if linked else None,
          best_score, best.description if linked else None, candidates, spot.link_prob)

  def _rerank(self, served, titles, lefts, mentions, rights, ranked) -> List[List[float]]:
    """Re-orders each mention's first rerank_top candidates (ranked[k], in place) by the
    reranker's logit, all mentions' pairs in one call; [mention] their probabilities
    (sigmoid(logit)), in the new order."""
    pairs = [(k, i) for k, scored in enumerate(ranked)
             for i in range(min(self.rerank_top, len(scored)))]
    if not pairs:
      return [[] for _ in ranked]
    logits = np.asarray(self.reranker(
        [titles[k] for k, _ in pairs], [lefts[k] for k, _ in pairs], [mentions[k] for k, _ in pairs],
        [rights[k] for k, _ in pairs], [_text(served, ranked[k][i][4]) for k, i in pairs]),
        dtype=np.float64)
    if logits.shape != (len(pairs),):
      raise ValueError(f"the reranker returned shape {logits.shape} for {len(pairs)} pairs")
    out, at = [], 0
    for scored in ranked:
      n = min(self.rerank_top, len(scored))
      mine = logits[at:at + n]
      at += n
      order = sorted(range(n), key=lambda i: (-mine[i], i))   # ties: full mode's order
      scored[:n] = [scored[i] for i in order]
      out.append([float(p) for p in towers.probability(mine[order])])
    return out

  def _score_missing(self, served, vectors, ids, priors
                     ) -> Dict[int, Dict[str, Tuple[float, str]]]:
    """{spot: {entity id: (exact cosine, description)}} for prior entities not retrieved."""
    if self.entity_encoder is None:
      return {}
    missing: Dict[int, List[str]] = {}
    for k, prior in enumerate(priors):
      retrieved = set(ids[k])
      todo = [e for e in prior if e not in retrieved]
      if todo:
        missing[k] = todo
    if not missing:
      return {}
    if "texts" not in served.prior_texts:   # the live entities' texts, of this generation
      served.prior_texts["texts"] = served.entities.texts_of(
          e for forms in served.dictionary.tables.values() for s in forms.values()
          for e, _ in s.entities)
    texts, memo = served.prior_texts["texts"], served.entity_vectors
    needed = sorted({e for todo in missing.values() for e in todo
                     if e in texts and e not in memo})
    if needed:
      encoded = np.asarray(self.entity_encoder(
          needed if self.entity_input == "entity_id" else [texts[e] for e in needed]),
          dtype=np.float32)
      if len(memo) + len(needed) > self.MEMO_SIZE:
        memo.clear()
      memo.update(zip(needed, encoded))
    return {k: {e: (float(vectors[k] @ memo[e]), texts[e]) for e in todo if e in memo}
            for k, todo in missing.items()}



def _search_k(request: "LinkRequest") -> int:
  """Candidates searched for: top_k in fast mode, at least FULL_CANDIDATES in full mode."""
  return request.top_k if request.fast else max(request.top_k, FULL_CANDIDATES)


def _text(served, where) -> str:
  """A candidate's entity text: an index row's (served.entities) or the description given."""
  return where if isinstance(where, str) else served.entities[where][1]


def _qid(kb, entity_id: str) -> str:
  """The QID an added entity was given, else the one its id is."""
  given = kb.qid_of(entity_id) if kb is not None else None
  return inputs.qid_of(entity_id) if given is None else given


class LinkRequest(NamedTuple):
  """One link call's arguments, checked (Linker.request)."""
  text: str
  lang: str                                # normalised code (inputs.check_language)
  title: str
  spans: Optional[List[Tuple[int, int]]]   # sorted caller spans; None: the spotter's mentions
  top_k: int
  fast: bool
  threshold: Optional[float]               # NIL below it, on the mode's score; None: the
                                           # Linker's for the mode (`thresholds`) when linked


class Served(NamedTuple):
  """One knowledge-base generation as a Linker serves it (Linker.reload swaps the whole)."""
  index: object                      # mel.retrieval Index (live entities only)
  entities: object                   # row -> (entity id, text); texts_of(ids)
  dictionary: SurfaceDictionary
  detector: MentionDetector
  kb: object                         # mel.retrieval.kb.KnowledgeBase, or None
  prior_texts: dict                  # {"texts": {entity id: text}} once full mode needed them
  entity_vectors: dict               # memo of the entity tower, bounded by MEMO_SIZE


# ---------------------------------------------------------------------------------------------
# loading and the default linker


def load(path: Optional[str] = None, *, index: Optional[str] = None,
         dictionary: Optional[str] = None, cache_dir: Optional[str] = None,
         verify: bool = True, reranker: Optional[str] = None,
         rerank_top: int = DEFAULT_RERANK_TOP, **options) -> Linker:
  """A Linker for a model directory (local or gs://); path defaults to $MEL_MODEL_DIR.

  What is searched is the model's knowledge base as it is now (mel.retrieval.kb: index/ and the
  changes of `mel kb`); Linker.reload() serves a newer generation later (local model dirs).
  index / dictionary override <path>/index and <path>/dictionary (local or gs://). verify
  checks every index and dictionary file's sha256 (always done for gs:// fetches). options go
  to Linker (threshold, prior_weight, min_link_prob, min_linked, max_batch, ...); without a
  threshold, the model's nil.json gives it when there is one (mel.nil_threshold).
  reranker: a local model dir trained with model.kind CA (loading.read_reranker: ValueError
  for another kind, ModelNotFoundError naming what is missing); full mode then reranks its
  first rerank_top candidates (module docstring).
  """
  path = resolve_model_dir(path)
  scorer = loading.read_reranker(reranker) if reranker else None
  parts = loading.read_parts(path, index, dictionary, cache_dir, verify)
  chosen = _chosen_threshold(path, cache_dir) if options.get("threshold") is None else None
  linker = Linker(parts.encoder, parts.index, parts.entities, parts.dictionary,
                  entity_encoder=parts.entity_encoder, entity_input=parts.entity_input,
                  model_dir=path, tokenizer=parts.tokenizer, kb=parts.kb, reranker=scorer,
                  rerank_top=rerank_top, **options)
  linker.fetch_stats = parts.fetch_stats
  linker._trained_dictionary = parts.trained_dictionary
  linker._verify = verify
  if chosen is not None:
    linker.thresholds.update(nil_threshold.thresholds(chosen, linker.prior_weight))
    linker.threshold_source = nil_threshold.describe(chosen)
  if scorer is not None and options.get("threshold") is None:
    rerank = nil_threshold.rerank_threshold(chosen, scorer.manifest) if chosen else None
    if rerank is not None:
      linker.thresholds["rerank"] = rerank
    else:
      linker.threshold_source += (f"; rerank: default {DEFAULT_RERANK_THRESHOLD}"
                                  + ("" if scorer.gives_probability else
                                     " (a softmax-trained reranker: uncalibrated)"))
  return linker


def _chosen_threshold(path: str, cache_dir: Optional[str]) -> Optional[dict]:
  """The model dir's nil.json (of the gs:// cache's copy, fetched with the serving parts), or
  None when it has none or it is stale (mel.nil_threshold.read warns)."""
  local = model_cache.local_dir(path, cache_dir) if path.startswith("gs://") else path
  directory = ModelDir(local)
  if not os.path.isfile(directory.nil_threshold):
    return None
  return nil_threshold.read(local, directory.read_export_manifest())


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
