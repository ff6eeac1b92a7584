"""Builds the spotter's surface-form dictionary from a mining output.

    python -m mel.linking.build_dictionary --mining_dir out/mining --output MODEL_DIR/dictionary \
        [--min_linked 1] [--min_link_prob 0.001] [--max_units 24]

For every language: each training mention's anchor text, normalised with
`mel.surface_forms.normalize_surface`, is a form; `linked` counts its anchors (and the
entities they link to). Then every training document's clean text is normalised and walked
unit by unit (`mel.linking.spotter.find_all`, the spotter's own matching: word boundaries in
space-delimited scripts, characters in ja/zh/th) and every occurrence of a form of that
language is counted as `seen` (overlapping occurrences included). link_prob = linked / seen
(seen is raised to linked where anchors sit inside words, e.g. [[Paris]]ian). Only the
training split is read: held-out documents stay unseen for evaluation.

Forms with fewer than --min_linked anchors or a link_prob below --min_link_prob are not kept
(the spotter applies its own, stricter thresholds when linking; see mel.linking.spotter).
The output directory (forms.tsv + manifest.json with the parameters, counts per language, the
mining run's summary.json checksum and the file's sha256) is written atomically: a directory
with a manifest is complete. A rerun on the same mining run with the same parameters reuses
it (--overwrite rebuilds).
The walk costs ~1-2 hash look-ups per unit: ~1 min for the 21 M characters of the demo's
training documents on one core.
"""
import argparse
import collections
import json
import os
import sys
import time
from typing import Dict, Optional


from mel.linking import spotter as md
from mel.surface_forms import normalize_surface


def count_anchors(mentions):
  """{lang: {form: Counter(entity id -> anchors)}} from training mentions; skipped counts."""
  anchors: Dict[str, Dict[str, collections.Counter]] = collections.defaultdict(dict)
  skipped = collections.Counter()
  for m in mentions:
    form = normalize_surface(m.mention)
    if not form:
      skipped["empty_after_normalisation"] += 1
      continue
    anchors[m.lang].setdefault(form, collections.Counter())[m.entity_id] += 1
  return anchors, skipped


def count_occurrences(documents, walk_tables, max_units: int, progress: bool = True,
                      total: Optional[int] = None):
  """{lang: Counter(form -> occurrences)} over the documents' normalised text."""
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
      starts, ends = md.units(text)
      counter = seen[doc.lang]
      for _, _, form in md.find_all(text, starts, ends, table, max_units):
        counter[form] += 1
  return seen, chars


def _summary_sha256(mining_dir: str) -> str:
  """Checksum of the mining run's summary.json ("" if none): identifies the run."""
  import hashlib
  from mel import records
  path = os.path.join(mining_dir, records.SUMMARY_JSON)
  if "://" in mining_dir or not os.path.exists(path):
    return ""
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def build(mining_dir: str, output: str, *, min_linked: int = 1, min_link_prob: float = 0.001,
          max_units: int = md.MAX_UNITS, progress: bool = True, overwrite: bool = False) -> dict:
  """Builds and writes the dictionary; returns its manifest.

  An existing dictionary at output built from the same mining run (its summary.json's
  checksum) with the same parameters is reused unless overwrite.
  """
  from mel import records
  started = time.time()
  params = {"min_linked": min_linked, "min_link_prob": min_link_prob, "max_units": max_units,
            "top_entities": md.TOP_ENTITIES}
  summary_sha = _summary_sha256(mining_dir)
  if not overwrite and summary_sha and "://" not in output:
    try:
      previous = md.read_manifest(output)
    except md.DictionaryError:
      previous = None
    if previous and previous.get("params") == params and previous.get("source", {}).get(
        "summary_sha256") == summary_sha:
      previous["reused"] = True
      return previous
  anchors, skipped = count_anchors(records.read_output(mining_dir, records.MENTIONS_TRAIN))
  if not anchors:
    raise ValueError(f"{mining_dir}: no training mentions")
  walk_tables, too_long = {}, collections.Counter()
  for lang, forms in anchors.items():
    table = {}
    for form in forms:
      prefixes = md.form_units(form)
      if len(prefixes) > max_units or not prefixes or prefixes[-1] != form:
        too_long[lang] += 1
        continue
      for prefix in prefixes[:-1]:
        table.setdefault(prefix, None)
      table[form] = form
    walk_tables[lang] = table
  total_docs = None
  summary_path = os.path.join(mining_dir, records.SUMMARY_JSON)
  if os.path.exists(summary_path):
    with open(summary_path, encoding="utf-8") as f:
      total_docs = json.load(f).get("documents")
    total_docs = total_docs if isinstance(total_docs, int) else None
  documents = (d for d in records.read_output(mining_dir, records.DOCUMENTS)
               if d.split == "train")
  seen, chars = count_occurrences(documents, walk_tables, max_units, progress, total_docs)
  tables, dropped = {}, collections.Counter()
  for lang, forms in anchors.items():
    kept = {}
    for form, entities in forms.items():
      if form not in walk_tables[lang]:
        continue
      linked = sum(entities.values())
      stats = md.FormStats(form, linked, max(seen[lang][form], linked), tuple(sorted(
          entities.items(), key=lambda x: (-x[1], x[0]))[:md.TOP_ENTITIES]))
      if linked < min_linked:
        dropped["below_min_linked"] += 1
      elif stats.link_prob < min_link_prob:
        dropped["below_min_link_prob"] += 1
      else:
        kept[form] = stats
    tables[lang] = kept
  dictionary = md.SurfaceDictionary(tables, max_units=max_units)
  extra = {"params": params,
           "source": {"mining_dir": os.path.abspath(mining_dir) if "://" not in mining_dir
                      else mining_dir, "split": "train", "summary_sha256": summary_sha},
           "skipped": {**dict(skipped), "too_many_units": sum(too_long.values()),
                       **dict(dropped)},
           "document_chars": chars, "seconds": round(time.time() - started, 1)}
  return dictionary.save(output, extra)


def main(argv=None, prog: str = "mel dictionary") -> int:
  parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
  parser.add_argument("--mining_dir", required=True, help="output of beam run extract_mentions")
  parser.add_argument("--output", required=True, help="dictionary directory to write")
  parser.add_argument("--min_linked", type=int, default=1,
                      help="keep forms with at least this many training anchors")
  parser.add_argument("--min_link_prob", type=float, default=0.001,
                      help="keep forms linked at least this often when they occur")
  parser.add_argument("--max_units", type=int, default=md.MAX_UNITS,
                      help="longest form kept, in units (words; characters in ja/zh/th)")
  parser.add_argument("--overwrite", action="store_true",
                      help="rebuild even if OUTPUT holds this mining run's dictionary")
  parser.add_argument("--no_progress", action="store_true")
  args = parser.parse_args(argv)
  try:
    manifest = build(args.mining_dir, args.output, min_linked=args.min_linked,
                     min_link_prob=args.min_link_prob, max_units=args.max_units,
                     progress=not args.no_progress, overwrite=args.overwrite)
  except (FileNotFoundError, ValueError) as e:
    print(f"[mel.linking.build_dictionary] error: {e}", file=sys.stderr)
    return 1
  if manifest.get("reused"):
    print(f"[mel.linking.build_dictionary] {args.output} already holds this mining run's dictionary; "
          f"reused (--overwrite rebuilds it)", file=sys.stderr)
    return 0
  langs = ", ".join(f"{lang} {c['forms']:,}" for lang, c in sorted(manifest["languages"].items()))
  print(f"[mel.linking.build_dictionary] {args.output}: forms per language: {langs}; "
        f"{manifest['document_chars']:,} characters of training documents read in "
        f"{manifest['seconds']} s", file=sys.stderr)
  return 0

