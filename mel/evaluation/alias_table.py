"""The alias-table baseline: P(entity | mention string) from training anchors (paper Sec. 5.5).

    python -m mel.evaluation.alias_table --mining_dir out/mining --output out/alias_table.tsv.gz

The paper compares its dual encoder with "an alias table baseline that retrieves entities based
on the prior probability of an entity given the observed mention string". Here:

- **Counts**: c(l, s, e) = training mentions (the mining run's `mentions/train`) in language l
  whose anchor text normalises to s and whose gold entity is e. Anchor texts are normalised
  with `mel.surface_forms.normalize_surface` (NFKC, Unicode case folding, whitespace runs
  collapsed, stripped), the same key the spotter uses.
- **Scores**: P(e | s, l) = c(l, s, e) / c(l, s) when the query's language l saw the string in
  training; otherwise (or with no language given) the pooled P(e | s) = c(s, e) / c(s) over all
  languages. The back-off matters where one name is linked differently per wiki (on the shared
  excerpts, the year "1918" links to a page-only entity per wiki).
- **Ranking**: by that probability, best first; ties by the entity's training mentions under
  all strings (its overall prior), then by entity id, so the order is deterministic.
- A string never seen in training (after normalisation) has no candidates: a miss at every k.

On disk (`save` / `load`): UTF-8 TSV, plain or gzip by the file name's `.gz`, a header line
`lang<TAB>surface<TAB>entity_id<TAB>count`, then one line per (language, string, entity), sorted.
"""
import argparse
import collections
import gzip
import os
import sys
from typing import Dict, Iterable, List, Mapping, Tuple

from mel.surface_forms import normalize_surface

HEADER = "lang\tsurface\tentity_id\tcount"


class AliasTableError(ValueError):
  """An alias table file is malformed; the message names the file and line."""


class AliasTable:
  """(language, normalised mention string) -> {entity id: training count}, with a pooled view."""

  def __init__(self, counts: Mapping[Tuple[str, str], Mapping[str, int]],
               skipped: Mapping[str, int] = None):
    self.counts: Dict[Tuple[str, str], Dict[str, int]] = {
        key: dict(by_entity) for key, by_entity in counts.items()}
    self.pooled: Dict[str, Dict[str, int]] = collections.defaultdict(dict)
    self.entity_totals = collections.Counter()
    for (_, surface), by_entity in self.counts.items():
      pooled = self.pooled[surface]
      for entity_id, n in by_entity.items():
        pooled[entity_id] = pooled.get(entity_id, 0) + n
        self.entity_totals[entity_id] += n
    self.pooled = dict(self.pooled)
    self.skipped = dict(skipped or {})
    self._ranked: Dict[Tuple[str, str], List[Tuple[str, float]]] = {}

  # building --------------------------------------------------------------------------------
  @classmethod
  def build(cls, mentions: Iterable[Tuple[str, str, str]]) -> "AliasTable":
    """From (language, anchor text, entity id); anchors that normalise to '' are skipped."""
    counts = collections.defaultdict(collections.Counter)
    skipped = collections.Counter()
    for lang, text, entity_id in mentions:
      surface = normalize_surface(text)
      if not surface:
        skipped["empty_after_normalisation"] += 1
        continue
      counts[(lang, surface)][entity_id] += 1
    return cls(counts, skipped)

  @classmethod
  def from_mining(cls, mining_dir: str, progress: bool = False) -> "AliasTable":
    """From the training mentions of a mining output (mel.records layout)."""
    from tqdm import tqdm
    from mel import records
    mentions = records.read_output(mining_dir, records.MENTIONS_TRAIN)
    return cls.build((m.lang, m.mention, m.entity_id) for m in tqdm(
        mentions, desc="alias table", unit="mention", disable=not progress, mininterval=5))

  # queries ---------------------------------------------------------------------------------
  @property
  def num_mentions(self) -> int:
    return sum(self.entity_totals.values())

  @property
  def num_pairs(self) -> int:
    """(language, string, entity) entries."""
    return sum(len(v) for v in self.counts.values())

  def ranked(self, mention: str, lang: str = "") -> List[Tuple[str, float]]:
    """[(entity id, probability)] best first: P(e | s, lang) if lang saw s, else P(e | s)."""
    surface = normalize_surface(mention)
    key = (lang, surface) if (lang, surface) in self.counts else ("", surface)
    ranked = self._ranked.get(key)
    if ranked is None:
      by_entity = self.counts[key] if key[0] else self.pooled.get(surface, {})
      total = sum(by_entity.values())
      ranked = sorted(((e, n / total) for e, n in by_entity.items()),
                      key=lambda item: (-item[1], -self.entity_totals[item[0]], item[0]))
      self._ranked[key] = ranked
    return ranked

  def candidates(self, mention: str, k: int, lang: str = "") -> List[str]:
    """The top k entity ids for a mention string (fewer when fewer were seen with it)."""
    return [e for e, _ in self.ranked(mention, lang)[:k]]

  # files -----------------------------------------------------------------------------------
  def save(self, path: str) -> None:
    """Writes the table atomically (temp file, then rename); gzip if path ends in .gz."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    opener = gzip.open if path.endswith(".gz") else open
    with opener(tmp, "wt", encoding="utf-8", newline="\n") as f:
      f.write(HEADER + "\n")
      for (lang, surface) in sorted(self.counts):
        for entity_id, n in sorted(self.counts[(lang, surface)].items()):
          f.write(f"{lang}\t{surface}\t{entity_id}\t{n}\n")
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> "AliasTable":
    opener = gzip.open if path.endswith(".gz") else open
    counts = collections.defaultdict(dict)
    with opener(path, "rt", encoding="utf-8", newline="\n") as f:
      for n, line in enumerate(f, 1):
        line = line.rstrip("\n")
        if n == 1:
          if line != HEADER:
            raise AliasTableError(f"{path}: line 1 is not the header {HEADER!r}")
          continue
        parts = line.split("\t")
        if len(parts) != 4 or not all(parts) or not parts[3].isdigit() or parts[3] == "0":
          raise AliasTableError(f"{path}: line {n} is not "
                                "'lang<TAB>surface<TAB>entity_id<TAB>count' (count >= 1)")
        lang, surface, entity_id, count = parts
        if entity_id in counts[(lang, surface)]:
          raise AliasTableError(f"{path}: line {n} repeats ({lang}, {surface!r}, {entity_id})")
        counts[(lang, surface)][entity_id] = int(count)
    return cls(counts)


def main(argv=None, prog: str = "mel alias-table") -> int:
  parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
  parser.add_argument("--mining_dir", required=True, help="mining output (mentions/train-*)")
  parser.add_argument("--output", required=True, help="TSV file (.gz: gzip)")
  args = parser.parse_args(argv)
  try:
    table = AliasTable.from_mining(args.mining_dir, progress=True)
  except (FileNotFoundError, ValueError) as e:
    print(f"[mel.evaluation.alias_table] error: {e}", file=sys.stderr)
    return 1
  table.save(args.output)
  skipped = ", ".join(f"{k} {v}" for k, v in sorted(table.skipped.items())) or "none"
  print(f"[mel.evaluation.alias_table] {table.num_mentions} training mentions -> {len(table.pooled)} "
        f"strings, {table.num_pairs} (language, string, entity) entries; skipped: {skipped} -> "
        f"{args.output}", file=sys.stderr)
  return 0

