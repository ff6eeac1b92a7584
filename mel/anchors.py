"""Anchor statistics: how often each anchor text, normalised, links to each entity, per language.

    counts = AnchorCounts.from_mining("out/mining")     # the training split's mentions
    counts.ranked("Αθήνα", "el")                        # [(entity id, P(entity | text)), ...]

The one count behind both P(entity | text) users: the alias-table baseline of evaluation
(mel.evaluation.alias_table) and the spotter's dictionary of linking (mel.linking.dictionary),
so the evaluation baseline and the linker's prior are the same probability.

- Key: mel.surface_forms.normalize_surface of the anchor text (NFKC, case folding, whitespace);
  anchors that normalise to "" are skipped and counted.
- P(e | s, l) = c(l, s, e) / c(l, s) when language l saw s in training; otherwise (or with no
  language) the pooled P(e | s) = c(s, e) / c(s) over all languages (`backoff`).
- Ranking: probability, then the entity's training anchors under all strings, then entity id.
"""
import collections
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

from mel.surface_forms import normalize_surface


def backoff(lang_forms: Optional[Mapping], pooled_forms: Mapping, form: str):
  """The language's entry for form if the language saw it, else the pooled entry (or None)."""
  if lang_forms is not None and form in lang_forms:
    return lang_forms[form]
  return pooled_forms.get(form)


def probabilities(by_entity: Iterable[Tuple[str, int]], total: int) -> Dict[str, float]:
  """{entity: n / total}: P(entity | text) from anchor counts (total: all anchors of the text,
  also those of entities not listed)."""
  return {e: n / total for e, n in by_entity} if total else {}


class AnchorCounts:
  """(language, normalised anchor text) -> {entity id: anchors}, with a pooled view."""

  def __init__(self, counts: Mapping[Tuple[str, str], Mapping[str, int]],
               skipped: Optional[Mapping[str, int]] = None):
    self.counts: Dict[Tuple[str, str], Dict[str, int]] = {
        key: dict(by_entity) for key, by_entity in counts.items()}
    self.by_language: Dict[str, Dict[str, Dict[str, int]]] = collections.defaultdict(dict)
    pooled: Dict[str, Dict[str, int]] = collections.defaultdict(dict)
    self.entity_totals = collections.Counter()
    for (lang, form), by_entity in self.counts.items():
      self.by_language[lang][form] = by_entity
      merged = pooled[form]
      for entity_id, n in by_entity.items():
        merged[entity_id] = merged.get(entity_id, 0) + n
        self.entity_totals[entity_id] += n
    self.by_language = dict(self.by_language)
    self.pooled = dict(pooled)
    self.skipped = dict(skipped or {})
    self._ranked: Dict[Tuple[str, str], List[Tuple[str, float]]] = {}

  @classmethod
  def from_mentions(cls, mentions: Iterable[Tuple[str, str, str]]) -> "AnchorCounts":
    """From (language, anchor text, entity id) triples."""
    counts = collections.defaultdict(collections.Counter)
    skipped = collections.Counter()
    for lang, text, entity_id in mentions:
      form = normalize_surface(text)
      if not form:
        skipped["empty_after_normalisation"] += 1
        continue
      counts[(lang, form)][entity_id] += 1
    return cls(counts, skipped)

  @classmethod
  def from_mining(cls, mining_dir: str, progress: bool = False) -> "AnchorCounts":
    """From the training mentions of a mining output (mel.records layout)."""
    from tqdm import tqdm
    from mel import records
    mentions = records.read_output(mining_dir, records.MENTIONS_TRAIN)
    return cls.from_mentions((m.lang, m.mention, m.entity_id) for m in tqdm(
        mentions, desc="anchor counts", unit="mention", disable=not progress, mininterval=5))

  @property
  def num_mentions(self) -> int:
    return sum(self.entity_totals.values())

  @property
  def num_pairs(self) -> int:
    """(language, text, entity) entries."""
    return sum(len(v) for v in self.counts.values())

  def ranked(self, text: str, lang: str = "") -> List[Tuple[str, float]]:
    """[(entity id, P(entity | text))] best first, with the language back-off."""
    form = normalize_surface(text)
    lang_forms = self.by_language.get(lang) if lang else None
    key = (lang, form) if lang_forms is not None and form in lang_forms else ("", form)
    ranked = self._ranked.get(key)
    if ranked is None:
      by_entity = backoff(lang_forms, self.pooled, form) or {}
      ranked = sorted(probabilities(by_entity.items(), sum(by_entity.values())).items(),
                      key=lambda item: (-item[1], -self.entity_totals[item[0]], item[0]))
      self._ranked[key] = ranked
    return ranked
