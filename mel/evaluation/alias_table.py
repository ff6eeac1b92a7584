"""The alias-table baseline: P(entity | mention string) from training anchors (paper Sec. 5.5).

    mel alias-table --mining_dir out/mining --output out/alias_table.tsv.gz [--no_progress]

The paper compares its dual encoder with "an alias table baseline that retrieves entities based
on the prior probability of an entity given the observed mention string". The counts and the
ranking are mel.anchors.AnchorCounts' (the same P(entity | text) as the spotter's dictionary):

- **Counts**: c(l, s, e) = training mentions (the mining run's `mentions/train`) in language l
  whose anchor text normalises to s (mel.surface_forms.normalize_surface: NFKC, Unicode case
  folding, whitespace runs collapsed, stripped) and whose gold entity is e.
- **Scores**: P(e | s, l) = c(l, s, e) / c(l, s) when the query's language l saw the string in
  training; otherwise (or with no language given) the pooled P(e | s) = c(s, e) / c(s) over all
  languages. The back-off matters where one name is linked differently per wiki (on the shared
  excerpts, the year "1918" links to a page-only entity per wiki).
- **Ranking**: by that probability, best first; ties by the entity's training mentions under
  all strings (its overall prior), then by entity id, so the order is deterministic.
- A string never seen in training (after normalisation) has no candidates: a miss at every k.

What this module adds is the baseline's interface (candidates) and its file: UTF-8 TSV, plain
or gzip by the file name's `.gz`, a header line `lang<TAB>surface<TAB>entity_id<TAB>count`, then
one line per (language, string, entity), sorted.
"""
import collections
import gzip
import os
import sys
from typing import Iterable, List, Tuple

from mel import flags
from mel.anchors import AnchorCounts

HEADER = "lang\tsurface\tentity_id\tcount"
LOG = "[mel.evaluation.alias_table]"


class AliasTableError(ValueError):
  """An alias table file is malformed; the message names the file and line."""


def _open(path: str, mode: str, name: str = ""):
  """A text file, gzip when name (default: path) ends in .gz."""
  opener = gzip.open if (name or path).endswith(".gz") else open
  return opener(path, mode, encoding="utf-8", newline="\n")


class AliasTable(AnchorCounts):
  """Anchor counts as a retrieval system: the top k entities of a mention string, and a file."""

  @classmethod
  def build(cls, mentions: Iterable[Tuple[str, str, str]]) -> "AliasTable":
    """From (language, anchor text, entity id); anchors that normalise to '' are skipped."""
    return cls.from_mentions(mentions)

  def candidates(self, mention: str, k: int, lang: str = "") -> List[str]:
    """The top k entity ids for a mention string (fewer when fewer were seen with it)."""
    return [e for e, _ in self.ranked(mention, lang)[:k]]

  def save(self, path: str) -> None:
    """Writes the table atomically (temp file, then rename); gzip if path ends in .gz."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with _open(tmp, "wt", name=path) as f:   # the temp file is compressed as its target
      f.write(HEADER + "\n")
      for (lang, surface) in sorted(self.counts):
        for entity_id, n in sorted(self.counts[(lang, surface)].items()):
          f.write(f"{lang}\t{surface}\t{entity_id}\t{n}\n")
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> "AliasTable":
    counts = collections.defaultdict(dict)
    with _open(path, "rt") as f:
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
  p = flags.parser(prog, __doc__)
  flags.mining_dir(p, required=True, help="mining run (beam run extract_mentions output: "
                   "mentions/train-*)")
  flags.output(p, help="TSV file (.gz: gzip)")
  flags.no_progress(p)
  args = p.parse_args(argv)
  try:
    table = AliasTable.from_mining(args.mining_dir, progress=not args.no_progress)
  except (FileNotFoundError, ValueError) as e:
    print(f"{LOG} error: {e}", file=sys.stderr)
    return 1
  table.save(args.output)
  skipped = ", ".join(f"{k} {v}" for k, v in sorted(table.skipped.items())) or "none"
  print(f"{LOG} {table.num_mentions} training mentions -> {len(table.pooled)} strings, "
        f"{table.num_pairs} (language, string, entity) entries; skipped: {skipped} -> "
        f"{args.output}", file=sys.stderr)
  return 0
