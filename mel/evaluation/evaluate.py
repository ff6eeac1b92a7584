"""Evaluation: R@k by the gold entity's training frequency and by language (paper Sec. 5.2.1, 5.5).

    mel evaluate --model_dir M [--index M/index] [--name F] [--model_dir M2 ...] \
        --dataset holdout:GLOB | mewsli9:DIR [--recall_at 1,10,100] [--mining_dir D] \
        [--bins counts|dataset] [--alias_table T | --no_alias_table] [--output DIR] \
        [--languages bn,mr] [--context_chars 256] [--batch_size 256] [--no_progress] \
        [--nil_fraction 0.2 [--nil_seed 0] [--save_threshold]] \
        [--reranker CA_DIR [--rerank_top 5] [--rerank NAME]]

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

**+CA** (--reranker DIR, a model dir trained with model.kind CA; paper Sec. 5.5.2): the system
"<NAME> +CA" takes dual encoder NAME's ranked predictions (--rerank NAME, default the first
--model_dir; nothing is searched again), re-scores its top --rerank_top K (default 5, as the
paper) with the reranker (each query's title, left context, mention and right context paired
with the entity texts of NAME's index rows), sorts them by logit (ties keep NAME's order) and
keeps NAME's ranks after K: its R@k for k >= K is NAME's, R@1 is what reranking changes. With
--nil_fraction its NIL score is sigmoid of the best logit among NAME's top K searched without
the removed entities (the reranker's probability for a bce-trained one; uncalibrated for a
softmax-trained one), its threshold chosen as the others'; --save_threshold writes it to NAME's
nil.json under "rerank" (with the reranker's step and loss), which mel.load(path, reranker=DIR)
uses.

**NIL** (--nil_fraction F > 0; mel.evaluation.nil): of the distinct gold entities that every
dual encoder's index holds, a fraction F drawn by sha256 of (--nil_seed, entity id) is taken out
of each index (a MaskedIndex: nothing is rebuilt), so that all mentions of those entities are
out-of-KB queries that should come back NIL; the same entities for every system. Each dual
encoder's top-1 (entity, cosine) is searched without them. Half the queries, drawn by (seed,
query id), choose the cosine threshold with the best NIL-aware accuracy; the other half report
at it NIL precision and recall, linking precision, coverage and accuracy, and a curve over
thresholds. A gold entity no index held (Mewsli-9 QIDs outside the KB) is out-of-KB too, and
counted apart. The alias table has no scores: it is left out of the NIL figures.
--save_threshold writes each model's nil.json (mel.nil_threshold), which mel.load then uses.

Each model is searched through its knowledge base as it is now (mel.retrieval.kb: index/ plus the
entities `mel kb` added, replaced or removed), unless --index names another index. Defaults
from the first --model_dir (mel.model_dir): --mining_dir its
config's data.mining_dir, --output <model_dir>/eval/<dataset kind>. Outputs (mel.evaluation.
report): evaluation.json, evaluation.md, recall_by_bin.png, recall_by_language.png (and with
--nil_fraction nil_curve.png); the tables are printed too. Imports no Beam and no training
code: only the exported towers and the index.
"""
import datetime
import os
import sys
import time
from typing import List, Sequence

import numpy as np

from mel import flags, nil_threshold, scoring
from mel.bins import BIN_EDGES, BIN_LABELS, frequency_bin
from mel.evaluation import datasets, metrics, nil, report as reports
from mel.evaluation.systems import (ALIAS_TABLE, AliasTableSystem, DualEncoder, Reranked,
                                   full_top1_without, top1_without, topk_without)

LOG = "[mel.evaluation.evaluate]"
KB_INDEX = "kb"   # --index value: the model's knowledge base


def plan_nil(systems: Sequence, queries: Sequence[datasets.Query], fraction: float,
             seed: int) -> dict:
  """What the NIL evaluation takes out and how it splits the queries, the same for every system.

  Candidates for removal are the distinct gold entities that every scored system's index holds;
  nil.removed_entities draws the fraction of them. Returns {"removed": sorted ids, "rows":
  {system name: {entity id: index rows}} (every held gold), "calibration": bool [Q], "facts":
  the report's "nil" section}.
  """
  from mel.retrieval.ids import rows_of
  scored = [s for s in systems if hasattr(s, "encode")]
  reranked = [s for s in systems if hasattr(s, "base")]
  distinct = sorted({q.gold for q in queries})
  # rows of the gold entities each index can return (an entity `mel kb remove`d is not held)
  rows = {}
  for s in scored:
    live = set(s.index.live_ids())
    rows[s.name] = {e: r for e, r in rows_of(s.index.ids, distinct).items() if e in live}
  held = sorted(set.intersection(*(set(r) for r in rows.values()))) if rows else []
  removed = nil.removed_entities(held, fraction, seed)
  calibration = nil.calibration_half([q.query_id for q in queries], seed)
  gone = set(removed)
  facts = {"fraction": fraction, "seed": seed, "queries": len(queries),
           "gold_entities": len(distinct), "gold_entities_in_every_index": len(held),
           "removed_entities": len(removed), "removed_examples": removed[:20],
           "queries_of_removed_entities": sum(1 for q in queries if q.gold in gone),
           "calibration_queries": int(calibration.sum()),
           "test_queries": int((~calibration).sum()), "tie_rule": nil.TIE_RULE,
           "systems": [s.name for s in scored + reranked],
           "skipped": {s.name: "it has no scores to threshold (it ranks by alias counts)"
                       for s in systems if not hasattr(s, "encode") and s not in reranked}}
  return {"removed": removed, "rows": rows, "calibration": calibration, "facts": facts}


def nil_of(system, vectors: np.ndarray, queries: Sequence[datasets.Query], plan: dict,
           anchors=None) -> dict:
  """One scored system's NIL section: its top-1 without the removed entities, the threshold
  chosen on the calibration half and the test half's figures (mel.evaluation.nil); with anchor
  counts (mel.anchors), the same for full mode's score under "full"."""
  gold = [q.gold for q in queries]
  rows = plan["rows"][system.name]
  dead = [r for e in plan["removed"] for r in rows.get(e, ())]
  top, cosines = top1_without(system.index, vectors, dead)
  gone = set(plan["removed"])
  in_kb = np.array([g in rows and g not in gone for g in gold], bool)
  correct = np.array([t == g for t, g in zip(top, gold)], bool)
  section = {**nil.nil_section(cosines, correct, in_kb, plan["calibration"]),
             "score": "cosine", "index_rows_removed": len(dead),
             "out_of_kb_removed": sum(1 for g in gold if g in gone),
             "out_of_kb_not_indexed": sum(1 for g in gold if g not in rows)}
  if anchors is not None:
    top, scores = full_top1_without(system.index, vectors, dead, queries, anchors, gone)
    correct = np.array([t == g for t, g in zip(top, gold)], bool)
    section["full"] = {**nil.nil_section(scores, correct, in_kb, plan["calibration"]),
                       "score": scoring.FULL_SCORE, "prior_weight": scoring.PRIOR_WEIGHT,
                       "candidates": scoring.FULL_CANDIDATES}
  return section


def rerank_nil_of(system: Reranked, vectors: np.ndarray, queries: Sequence[datasets.Query],
                  plan: dict) -> dict:
  """A +CA system's NIL section: its base's top K without the removed entities, re-scored by the
  reranker; the score is sigmoid of the best logit (-inf: no candidate), thresholded as
  nil_of's."""
  from mel import towers
  gold = [q.gold for q in queries]
  rows = plan["rows"][system.base.name]
  dead = [r for e in plan["removed"] for r in rows.get(e, ())]
  candidates = topk_without(system.base.index, vectors, dead, system.top)
  logits = system.logits(queries, candidates, desc="NIL reranking")
  top = [ids[int(np.argmax(l))] if len(l) else None for ids, l in zip(candidates, logits)]
  scores = np.array([float(towers.probability(np.max(l))) if len(l) else -np.inf
                     for l in logits], np.float64)
  gone = set(plan["removed"])
  in_kb = np.array([g in rows and g not in gone for g in gold], bool)
  correct = np.array([t == g for t, g in zip(top, gold)], bool)
  return {**nil.nil_section(scores, correct, in_kb, plan["calibration"]),
          "score": nil_threshold.RERANK_SCORE, "rerank_top": system.top,
          "calibrated": system.reranker.gives_probability, "index_rows_removed": len(dead),
          "out_of_kb_removed": sum(1 for g in gold if g in gone),
          "out_of_kb_not_indexed": sum(1 for g in gold if g not in rows)}


def evaluate(systems: Sequence, queries: Sequence[datasets.Query], dataset: dict,
             bins: Sequence[int], bins_source: str, ks: Sequence[int], nil_fraction: float = 0.0,
             nil_seed: int = 0, anchors=None) -> dict:
  """Runs every system on the queries; returns the report (JSON-able).

  nil_fraction > 0 adds the NIL evaluation (plan_nil, nil_of): a "nil" section in the report
  and in each scored system's entry; anchors (mel.anchors.AnchorCounts of the training
  mentions) add full mode's. A Reranked system reorders the predictions its base (listed before
  it) made here (rerank_nil_of for its NIL section).
  """
  gold = [q.gold for q in queries]
  langs = [q.lang for q in queries]
  report = {"format": reports.FORMAT, "created": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"), "dataset": dataset, "k": list(ks),
            "bins": {"edges": list(BIN_EDGES), "labels": list(BIN_LABELS),
                     "source": bins_source,
                     "queries": [int(n) for n in np.bincount(np.asarray(bins, np.int64),
                                                             minlength=len(BIN_LABELS))]},
            "systems": {}}
  plan = plan_nil(systems, queries, nil_fraction, nil_seed) if nil_fraction > 0 else None
  # a dual encoder that a Reranked system reorders is searched deep enough for it
  depth = {s.base.name: s.top for s in systems if hasattr(s, "base")}
  done = {}   # base system name -> (predictions, vectors or None), for its Reranked system
  for system in systems:
    started = time.time()
    vectors = None
    if hasattr(system, "base"):
      if system.base.name not in done:
        raise ValueError(f"{system.name}: its base {system.base.name!r} must be evaluated first")
      predictions = system.rerank(queries, done[system.base.name][0])
      vectors = done[system.base.name][1]
    elif hasattr(system, "encode") and (plan is not None or system.name in depth):
      # encoded once: the recall search and the NIL search take the same vectors
      vectors = system.encode(queries)
      predictions = system.search(vectors, max(max(ks), depth.get(system.name, 0)))
    else:
      predictions = system.retrieve(queries, max(ks))
    if system.name in depth:
      done[system.name] = (predictions, vectors)
    results = metrics.recall_report(metrics.gold_ranks(predictions, gold), bins, langs, ks)
    results["gold_known_to_system"] = system.known(gold)
    results["no_candidates"] = sum(1 for p in predictions if not p)
    entry = {**system.describe(), "results": results}
    if plan is not None and vectors is not None:
      entry["nil"] = (rerank_nil_of(system, vectors, queries, plan) if hasattr(system, "base")
                      else nil_of(system, vectors, queries, plan, anchors))
    report["systems"][system.name] = {**entry, "seconds": round(time.time() - started, 1)}
  if plan is not None:
    report["nil"] = plan["facts"]
  return report


def save_thresholds(report: dict, systems: Sequence) -> List[str]:
  """Writes nil.json (mel.nil_threshold) of every dual encoder's model dir, with the threshold
  of its +CA system under "rerank" when there is one; returns the paths."""
  from mel.model_dir import ModelDir
  facts, dataset = report["nil"], report["dataset"]
  reranked = {s.base.name: s for s in systems if hasattr(s, "base")}
  paths = []
  for system in systems:
    section = report["systems"][system.name].get("nil")
    if section is None or hasattr(system, "base"):
      continue
    chosen_on = {"dataset": dataset["spec"], "queries": facts["queries"],
                 "languages": dataset.get("languages"),
                 "calibration_queries": facts["calibration_queries"],
                 "test_queries": facts["test_queries"], "nil_fraction": facts["fraction"],
                 "seed": facts["seed"], "removed_entities": facts["removed_entities"],
                 "index": os.path.abspath(system.index_path), "tie_rule": facts["tie_rule"],
                 "calibration": section["calibration"], "evaluated": report["created"],
                 "report": report.get("outputs", {}).get("json")}
    full = section.get("full")
    if full is not None:
      full = {k: full[k] for k in ("threshold", "prior_weight", "candidates", "test", "curve")}
    rerank = None
    if system.name in reranked:
      ca = reranked[system.name]
      ca_section = report["systems"][ca.name]["nil"]
      rerank = {"threshold": ca_section["threshold"], "top": ca.top,
                "reranker": nil_threshold.reranker_of(ca.reranker.manifest, ca.reranker_dir),
                "test": ca_section["test"], "curve": ca_section["curve"]}
    paths.append(nil_threshold.write(
        system.model_dir, ModelDir(system.model_dir).read_export_manifest(),
        section["threshold"], chosen_on, section["test"], section["curve"], full, rerank))
  return paths


def run(args) -> dict:
  """The evaluation of main's parsed flags: reads, evaluates, writes, prints; the report."""
  from mel.evaluation.alias_table import AliasTable
  from mel.model_dir import ModelDir
  ks = flags.parse_cutoffs(args.recall_at)
  kind = datasets.dataset_kind(args.dataset)
  if args.save_threshold and not args.nil_fraction > 0:
    raise ValueError("--save_threshold needs --nil_fraction F > 0: the threshold is chosen on "
                     "queries whose gold entities were taken out of the index")
  if args.nil_fraction > 0 and not args.model_dir:
    raise ValueError("--nil_fraction needs a --model_dir: the alias table has no scores to "
                     "threshold")
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
  if args.reranker:
    base = args.rerank or (names[0] if names else None)
    if base not in names:
      raise ValueError(f"--rerank {base!r}: no dual encoder of that --name (names: {names})"
                       if base else "--reranker needs a --model_dir whose results it reranks")
    at = names.index(base)
    systems.insert(at + 1, Reranked(systems[at], args.reranker, args.rerank_top, progress))
  elif args.rerank:
    raise ValueError("--rerank names the dual encoder a --reranker reranks: give --reranker")
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
  table = None
  if not args.no_alias_table:
    if args.alias_table:
      table = AliasTable.load(args.alias_table)
      source = {"file": datasets.file_facts([args.alias_table])[0]}
    else:
      table = AliasTable.from_mining(mining_dir, progress=progress)
      source = {"built_from": os.path.abspath(mining_dir)}
    systems.append(AliasTableSystem(table, source))
  if args.nil_fraction > 0 and table is None:   # full mode's prior: the training anchors
    table = AliasTable.from_mining(mining_dir, progress=progress)
  if not systems:
    raise ValueError("nothing to evaluate: give --model_dir, or leave the alias table on")
  report = evaluate(systems, queries, dataset, bins, bins_source, ks, args.nil_fraction,
                    args.nil_seed, anchors=table)
  paths = reports.write_report(report, output)
  if args.save_threshold:
    for path in save_thresholds(report, systems):
      print(f"{LOG} NIL threshold -> {path}", file=sys.stderr)
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
  p.add_argument("--nil_fraction", type=float, default=0.0,
                 help="take this fraction of the queries' gold entities out of each index and "
                 "choose a NIL threshold on half the queries (default 0: off)")
  p.add_argument("--nil_seed", type=int, default=0,
                 help="which entities are taken out and which queries choose (default 0)")
  p.add_argument("--save_threshold", action="store_true",
                 help="write the chosen threshold to each model's nil.json (needs "
                 "--nil_fraction), where mel.load finds it")
  p.add_argument("--reranker", default="",
                 help="a cross-attention reranker's model dir (model.kind CA): adds the system "
                 "'<NAME> +CA', NAME's top --rerank_top re-scored by it")
  p.add_argument("--rerank_top", type=int, default=5,
                 help="candidates of NAME the reranker re-scores per query (default 5)")
  p.add_argument("--rerank", default="",
                 help="the --name of the dual encoder whose results are reranked (default: the "
                 "first --model_dir's)")
  flags.batch_size(p)
  flags.no_progress(p)
  args = p.parse_args(argv)
  flags.require_positive(p, args, "batch_size")
  flags.require_positive(p, args, "rerank_top")
  if not 0 <= args.nil_fraction < 1:
    p.error(f"--nil_fraction must be in [0, 1), got {args.nil_fraction}")
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
