"""Evaluation: R@k by the gold entity's training frequency and by language (paper Sec. 5.2.1, 5.5).

    mel evaluate --model_dir M [--index M/index] [--name F] [--model_dir M2 ...] \
        --dataset holdout:GLOB | mewsli9:DIR [--recall_at 1,10,100] [--mining_dir D] \
        [--bins counts|dataset] [--alias_table T | --no_alias_table] [--output DIR] \
        [--languages bn,mr] [--context_chars 256] [--batch_size 256] [--no_progress]

Each query (a mention in context with its gold entity) goes to every system: the dual encoders
given (mention tower of the exported SavedModel, then the entity index) and the alias-table
baseline (mel.evaluation.alias_table, built from the same mining run's training mentions). A
system's answer is a ranked list of entity ids; R@k is the share of queries whose gold entity is
among the first k. As in the paper:

- **Frequency bins** (mel.bins): a query's bin is set by how often its gold entity was seen in
  training (the mining run's counts/entity_counts): [0, 1), [1, 10), [10, 100), [100, 1k),
  [1k, 10k), [10k, +). Per bin: queries and R@k.
- **micro-average**: R@k over all queries, without binning. **macro-average**: the mean of the
  per-bin R@k over the bins that hold queries (an empty bin has no recall; the JSON lists it).
- **Per language**: queries and R@k per language, and the mean over languages.

A gold entity that the index does not hold (a Mewsli-9 QID outside the mining run's KB) is a
miss at every k, as in the paper ("our model receives no credit on the missing ones").

Datasets (mel.evaluation.datasets): `holdout:GLOB` reads Mention records (the mining run's
held-out split, e.g. `out/mining/mentions/holdout-*.tfrecord.gz`); `mewsli9:DIR` reads a
Mewsli-9 directory (mentions whose span does not read as the mention are left out and counted;
contexts are cut --context_chars each side, as mining cuts them). For Mewsli-9, `--bins dataset`
uses the file's freq_bin column (the paper's training counts) instead of this mining run's.
`--languages bn,mr` keeps only the queries in those languages, for every system (the
leave-languages-out evaluation of a model trained with data.exclude_languages); the alias table
is still built from all training anchors, and it ranks by a query's own language first, so a
left-out language is answered from its own training anchors.

Each model is searched through its knowledge base as it is now (mel.retrieval.kb: index/ plus the
entities `mel kb` added, replaced or removed), unless --index names another index. Defaults
from the first --model_dir (mel.model_dir): --mining_dir its
config's data.mining_dir, --output <model_dir>/eval/<dataset kind>. Outputs (mel.evaluation.
report): evaluation.json, evaluation.md, recall_by_bin.png, recall_by_language.png; the tables
are printed too. Imports no Beam and no training code: only the exported towers and the index.
"""
import datetime
import os
import sys
import time
from typing import Sequence

import numpy as np

from mel import flags
from mel.bins import BIN_EDGES, BIN_LABELS, frequency_bin
from mel.evaluation import datasets, metrics, report as reports
from mel.evaluation.systems import ALIAS_TABLE, AliasTableSystem, DualEncoder

LOG = "[mel.evaluation.evaluate]"
KB_INDEX = "kb"   # --index value: the model's knowledge base


def evaluate(systems: Sequence, queries: Sequence[datasets.Query], dataset: dict,
             bins: Sequence[int], bins_source: str, ks: Sequence[int]) -> dict:
  """Runs every system on the queries; returns the report (JSON-able)."""
  gold = [q.gold for q in queries]
  langs = [q.lang for q in queries]
  report = {"format": reports.FORMAT, "created": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"), "dataset": dataset, "k": list(ks),
            "bins": {"edges": list(BIN_EDGES), "labels": list(BIN_LABELS),
                     "source": bins_source,
                     "queries": [int(n) for n in np.bincount(np.asarray(bins, np.int64),
                                                             minlength=len(BIN_LABELS))]},
            "systems": {}}
  for system in systems:
    started = time.time()
    predictions = system.retrieve(queries, max(ks))
    results = metrics.recall_report(metrics.gold_ranks(predictions, gold), bins, langs, ks)
    results["gold_known_to_system"] = system.known(gold)
    results["no_candidates"] = sum(1 for p in predictions if not p)
    report["systems"][system.name] = {**system.describe(), "results": results,
                                      "seconds": round(time.time() - started, 1)}
  return report


def run(args) -> dict:
  """The evaluation of main's parsed flags: reads, evaluates, writes, prints; the report."""
  from mel.evaluation.alias_table import AliasTable
  from mel.model_dir import ModelDir
  ks = flags.parse_cutoffs(args.recall_at)
  kind = datasets.dataset_kind(args.dataset)
  progress = not args.no_progress
  model_dirs = args.model_dir or []
  if args.index and len(args.index) != len(model_dirs):
    raise ValueError(f"{len(args.index)} --index for {len(model_dirs)} --model_dir: give one "
                     "per model, or none (<model_dir>/index)")
  if args.name and len(args.name) != len(model_dirs):
    raise ValueError(f"{len(args.name)} --name for {len(model_dirs)} --model_dir")
  # None: the model's knowledge base as it is now (index/ plus the changes of `mel kb`)
  indexes = [None if i == KB_INDEX else i for i in (args.index or [KB_INDEX] * len(model_dirs))]
  names = args.name or [os.path.basename(os.path.normpath(m)) for m in model_dirs]
  if len(set(names)) != len(names) or ALIAS_TABLE in names:
    raise ValueError(f"system names must be distinct and not {ALIAS_TABLE!r}: {names}")
  mining_dir = args.mining_dir
  if not mining_dir:
    if not model_dirs:
      raise ValueError("--mining_dir is required without --model_dir")
    mining_dir = ModelDir(model_dirs[0]).mining_dir()
  output = args.output
  if not output:
    if not model_dirs:
      raise ValueError("--output is required without --model_dir")
    output = ModelDir(model_dirs[0]).eval(kind)

  systems = [DualEncoder(n, m, i, args.batch_size, progress)
             for n, m, i in zip(names, model_dirs, indexes)]
  queries, dataset = datasets.load_dataset(args.dataset, args.context_chars, progress)
  if not queries:
    raise ValueError(f"{args.dataset}: no queries")
  languages = flags.parse_languages(args.languages)
  if languages:
    queries, dataset = datasets.only_languages(queries, dataset, languages)
  dataset["languages"] = sorted({q.lang for q in queries})
  counts, count_files = datasets.read_entity_counts(mining_dir)
  if args.bins == "dataset":
    if kind != "mewsli9":
      raise ValueError("--bins dataset needs a mewsli9: dataset (its freq_bin column)")
    bins = [q.freq_bin for q in queries]
    bins_source = "the dataset's freq_bin column (the paper's training counts)"
  else:
    bins = [frequency_bin(counts.get(q.gold, 0)) for q in queries]
    bins_source = f"training mentions in {os.path.abspath(mining_dir)}/counts"
  dataset["mining_dir"] = os.path.abspath(mining_dir)
  dataset["counts_files"] = datasets.file_facts(count_files)
  if not args.no_alias_table:
    if args.alias_table:
      table = AliasTable.load(args.alias_table)
      source = {"file": datasets.file_facts([args.alias_table])[0]}
    else:
      table = AliasTable.from_mining(mining_dir, progress=progress)
      source = {"built_from": os.path.abspath(mining_dir)}
    systems.append(AliasTableSystem(table, source))
  if not systems:
    raise ValueError("nothing to evaluate: give --model_dir, or leave the alias table on")
  report = evaluate(systems, queries, dataset, bins, bins_source, ks)
  paths = reports.write_report(report, output)
  print(reports.markdown_tables(report))
  print(f"{LOG} {len(queries):,} queries, {len(systems)} systems -> " + ", ".join(paths.values()),
        file=sys.stderr)
  return report


def main(argv=None, prog: str = "mel evaluate") -> int:
  p = flags.parser(prog, __doc__)
  flags.model_dir(p, required=False, action="append",
                  help="a trained model dir (repeat for several models)")
  p.add_argument("--index", action="append",
                 help="its entity index, one per --model_dir: a directory (searched as it "
                 f"is) or {KB_INDEX!r}, the model's knowledge base (default: <model_dir>/index "
                 "plus the changes of `mel kb`)")
  p.add_argument("--name", action="append",
                 help="its name in the tables, one per --model_dir (default: dir name)")
  p.add_argument("--dataset", required=True, help="holdout:GLOB or mewsli9:DIR")
  flags.recall_at(p)
  flags.mining_dir(p, help="mining run whose training counts set the bins and whose training "
                   "mentions build the alias table (default: the first model's config "
                   "data.mining_dir)")
  p.add_argument("--bins", choices=("counts", "dataset"), default="counts",
                 help="bins from the mining run's counts, or (mewsli9) the freq_bin column")
  p.add_argument("--alias_table", default="",
                 help="a saved alias table (mel alias-table); default: built from --mining_dir")
  p.add_argument("--no_alias_table", action="store_true", help="skip the baseline")
  flags.languages(p, help="only the dataset's queries in these languages, comma-separated "
                  "codes, e.g. bn (a left-out language); default: all")
  flags.output(p, required=False, help="directory for the JSON, markdown and plots "
               "(default <first model_dir>/eval/<dataset kind>)")
  p.add_argument("--context_chars", type=int, default=256,
                 help="mewsli9: context characters each side (the mining default)")
  flags.batch_size(p)
  flags.no_progress(p)
  args = p.parse_args(argv)
  flags.require_positive(p, args, "batch_size")
  if args.context_chars < 0:
    p.error(f"--context_chars must be 0 or more, got {args.context_chars}")
  try:
    flags.parse_cutoffs(args.recall_at)
    flags.parse_languages(args.languages)
  except ValueError as e:
    p.error(str(e))
  try:
    run(args)
  except (FileNotFoundError, ValueError) as e:
    print(f"{LOG} error: {e}", file=sys.stderr)
    return 1
  return 0
