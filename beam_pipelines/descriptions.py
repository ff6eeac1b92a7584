"""Description choice per entity (paper Sec. 4.2.1) and cross-lingual description pairs.

From the first source that has any candidate (Wikipedia first sentences, then WikiData
descriptions), candidates are ordered by n_e(l), the entity's training mentions in language l,
then by n(l), all training mentions in language l, then by language code so ties are stable.
Only the 104 mBERT languages give candidates; the entity set itself is not limited by language.
"""
import random
from typing import List, Mapping, Tuple

from beam_pipelines import splits
from mel import languages

WIKIPEDIA = "wikipedia"
WIKIDATA = "wikidata"


def _in_mbert(candidates: Mapping[str, str]) -> dict:
  return {lang: text.strip() for lang, text in candidates.items()
          if lang in languages.MBERT_LANGUAGE_CODES and text and text.strip()}


def rank_languages(langs, entity_counts: Mapping[str, int],
                   language_totals: Mapping[str, int]) -> List[str]:
  return sorted(langs, key=lambda l: (-entity_counts.get(l, 0), -language_totals.get(l, 0), l))


def choose_description(wikipedia: Mapping[str, str], wikidata: Mapping[str, str],
                       entity_counts: Mapping[str, int],
                       language_totals: Mapping[str, int]) -> Tuple[str, str, str]:
  """Returns (text, lang, source); ('', '', '') when no mBERT-language candidate exists."""
  for source, candidates in ((WIKIPEDIA, _in_mbert(wikipedia)), (WIKIDATA, _in_mbert(wikidata))):
    if candidates:
      lang = rank_languages(candidates, entity_counts, language_totals)[0]
      return candidates[lang], lang, source
  return "", "", ""


def sample_pairs(entity_id: str, selected_lang: str, wikipedia: Mapping[str, str],
                 wikidata: Mapping[str, str], max_pairs: int, seed: int) -> List[Tuple[str, str]]:
  """Up to max_pairs (lang, text) descriptions in languages other than the selected one.

  A language's Wikipedia sentence is preferred over its WikiData description. The sample is a
  pure function of (seed, entity_id), so reruns and other runners give the same pairs.
  """
  others = _in_mbert(wikidata)
  others.update(_in_mbert(wikipedia))
  others.pop(selected_lang, None)
  langs = sorted(others)
  if len(langs) > max_pairs:
    rng = random.Random(splits.stable_hash(str(seed), "pairs", entity_id))
    langs = sorted(rng.sample(langs, max_pairs))
  return [(lang, others[lang]) for lang in langs]
