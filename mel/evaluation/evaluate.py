"""Evaluation: R@k by the gold entity's training frequency and by language (paper Sec. 5.2.1, 5.5).

    python -m mel.evaluation.evaluate --model_dir M [--index M/index] [--name F] [--model_dir M2 ...] \
        --dataset holdout:GLOB | mewsli9:DIR [--k 1,10,100] [--mining_dir D] [--output DIR]

Each query (a mention in context with its gold entity) goes to every system: the dual encoders
given (mention tower of the exported SavedModel, then the entity index) and the alias table
baseline (mel.evaluation.alias_table, built from the same mining run's training mentions). A system's
answer is a ranked list of entity ids; R@k is the share of queries whose gold entity is among
the first k. As in the paper:

- **Frequency bins**: a query's bin is set by how often its gold entity was seen in training
  (the mining run's counts/entity_counts: training mentions of that entity): [0, 1), [1, 10),
  [10, 100), [100, 1k), [1k, 10k), [10k, +). Per bin: queries and R@k.
- **micro-average**: R@k over all queries, without binning. **macro-average**: the mean of the
  per-bin R@k over the bins that hold queries (an empty bin has no recall; the JSON lists it).
- **Per language**: queries and R@k per language, and the mean over languages.

A gold entity that the index does not hold (a Mewsli-9 QID outside the mining run's KB) is a
miss at every k, as in the paper ("our model receives no credit on the missing ones").

Datasets: `holdout:GLOB` reads Mention records (the mining run's held-out split, e.g.
`out/mining/mentions/holdout-*.tfrecord.gz`); `mewsli9:DIR` reads a Mewsli-9 directory with
mewsli9.reader (mentions whose span does not read as the mention are left out and counted;
contexts are cut from the text as the mining pipeline cuts them, --context_chars each side).
For Mewsli-9, `--bins dataset` uses the file's freq_bin column (the paper's training counts)
instead of this mining run's counts.

Outputs in --output (default <first model_dir>/eval/<dataset kind>): evaluation.json (every
figure, and which model, index, dataset, counts and alias table produced them), evaluation.md
(tables shaped like the paper's Table 6, plus per language), recall_by_bin.png and
recall_by_language.png. The tables are printed too. This module imports only what serving
needs (the SavedModel, mel.retrieval.index): no Beam, no training code.
"""
import argparse
import bisect
import datetime
import glob as _glob
import hashlib
import json
import os
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple


import numpy as np

FORMAT = "mel-eval/1"
BIN_EDGES = (1, 10, 100, 1_000, 10_000)
BIN_LABELS = ("[0, 1)", "[1, 10)", "[10, 100)", "[100, 1k)", "[1k, 10k)", "[10k, +)")
DEFAULT_KS = (1, 10, 100)
ALIAS_TABLE = "alias table"
JSON_NAME, MARKDOWN_NAME = "evaluation.json", "evaluation.md"
BIN_PLOT, LANGUAGE_PLOT = "recall_by_bin.png", "recall_by_language.png"


def frequency_bin(count: int) -> int:
  """Bin index 0-5 of a training count: 0 -> 0, 1..9 -> 1, 10..99 -> 2, ..., >= 10k -> 5."""
  if count < 0:
    raise ValueError(f"negative training count {count}")
  return bisect.bisect_right(BIN_EDGES, count)


class Query(NamedTuple):
  """One mention to link (field names as mel.schema.Mention's, so the encoder takes both)."""
  query_id: str
  lang: str
  doc_title: str
  left_context: str
  mention: str
  right_context: str
  gold: str           # gold entity id (QID, or "<wiki>:<Title>" for page-only entities)
  freq_bin: int = -1  # the dataset's own bin (Mewsli-9's freq_bin column), -1 if none


# ---------------------------------------------------------------------------------------------
# metrics (pure)


def gold_ranks(predictions: Sequence[Sequence[str]], gold: Sequence[str]) -> np.ndarray:
  """int64 [Q]: 1-based rank of gold[q] in predictions[q], 0 when it is not there."""
  if len(predictions) != len(gold):
    raise ValueError(f"{len(predictions)} prediction lists for {len(gold)} queries")
  ranks = np.zeros(len(gold), np.int64)
  for q, (ranked, g) in enumerate(zip(predictions, gold)):
    for r, entity_id in enumerate(ranked, 1):
      if entity_id == g:
        ranks[q] = r
        break
  return ranks


def recall_at(ranks: np.ndarray, k: int) -> Optional[float]:
  """Share of queries with the gold within the first k; None for no queries."""
  if len(ranks) == 0:
    return None
  return float(np.mean((ranks >= 1) & (ranks <= k)))


def _mean(values) -> Optional[float]:
  values = [v for v in values if v is not None]
  return float(np.mean(values)) if values else None


def recall_report(ranks: np.ndarray, bins: Sequence[int], langs: Sequence[str],
                  ks: Sequence[int]) -> dict:
  """All figures of one system.

  Args:
    ranks: int [Q], rank of the gold (0: not retrieved).
    bins: [Q] frequency bin index of each query's gold entity.
    langs: [Q] language of each query.
    ks: the cut-offs.
  Returns:
    {"queries", "micro": {"R@k"}, "macro": {"R@k"} (mean over non-empty bins), "bins": [{"bin",
    "queries", "R@k"...}] (all six; R@k None when empty), "empty_bins", "languages": {lang:
    {"queries", "R@k"}}, "language_macro": {"R@k"}}.
  """
  ranks = np.asarray(ranks)
  bins = np.asarray(bins, np.int64)
  langs = np.asarray(langs, object)
  if not len(ranks) == len(bins) == len(langs):
    raise ValueError(f"ranks, bins and langs differ in length: {len(ranks)}, {len(bins)}, "
                     f"{len(langs)}")
  keys = [f"R@{k}" for k in ks]
  per_bin = []
  for b, label in enumerate(BIN_LABELS):
    in_bin = ranks[bins == b]
    per_bin.append({"bin": label, "queries": int(len(in_bin)),
                    **{key: recall_at(in_bin, k) for key, k in zip(keys, ks)}})
  languages = {}
  for lang in sorted(set(langs.tolist())):
    in_lang = ranks[langs == lang]
    languages[lang] = {"queries": int(len(in_lang)),
                       **{key: recall_at(in_lang, k) for key, k in zip(keys, ks)}}
  return {
      "queries": int(len(ranks)),
      "micro": {key: recall_at(ranks, k) for key, k in zip(keys, ks)},
      "macro": {key: _mean(row[key] for row in per_bin) for key in keys},
      "bins": per_bin,
      "empty_bins": [row["bin"] for row in per_bin if row["queries"] == 0],
      "languages": languages,
      "language_macro": {key: _mean(row[key] for row in languages.values()) for key in keys},
  }


# ---------------------------------------------------------------------------------------------
# inputs


def file_facts(paths: Sequence[str]) -> List[dict]:
  """[{"path", "bytes", "sha256"}] of local files (what produced a figure)."""
  facts = []
  for path in paths:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    facts.append({"path": os.path.abspath(path), "bytes": os.path.getsize(path),
                  "sha256": digest.hexdigest()})
  return facts


def read_entity_counts(mining_dir: str) -> Tuple[Dict[str, int], List[str]]:
  """({entity id: training mentions}, files read) from <mining_dir>/counts/entity_counts-*."""
  from mel import records
  files = sorted(_glob.glob(records.pattern(mining_dir, records.ENTITY_COUNTS)))
  if not files:
    raise FileNotFoundError(f"no files match {records.pattern(mining_dir, records.ENTITY_COUNTS)}"
                            " (the mining run's training counts)")
  counts = {}
  for path in files:
    with open(path, encoding="utf-8") as f:
      for n, line in enumerate(f, 1):
        parts = line.rstrip("\n").split("\t")
        if n == 1 and parts[0] == "entity_id":
          continue
        if len(parts) < 2 or not parts[0] or not parts[1].isdigit():
          raise ValueError(f"{path}: line {n} is not 'entity_id<TAB>mentions<TAB>...'")
        if parts[0] in counts:
          raise ValueError(f"{path}: line {n}: entity {parts[0]!r} appears twice")
        counts[parts[0]] = int(parts[1])
  return counts, files


def load_holdout(pattern: str) -> Tuple[List[Query], dict]:
  """Queries from Mention records (a mining run's holdout shards)."""
  from mel import records, schema
  files = sorted(_glob.glob(pattern))
  if not files:
    raise FileNotFoundError(f"no files match {pattern}")
  queries = [Query(query_id=m.mention_id, lang=m.lang, doc_title=m.doc_title,
                   left_context=m.left_context, mention=m.mention,
                   right_context=m.right_context, gold=m.entity_id)
             for m in records.read_records(schema.Mention, pattern)]
  return queries, {"kind": "holdout", "spec": f"holdout:{pattern}", "files": file_facts(files),
                   "queries": len(queries)}


def load_mewsli9(root: str, context_chars: int = 256) -> Tuple[List[Query], dict]:
  """Queries from a Mewsli-9 directory; mentions with problems are left out and counted."""
  from mewsli9 import reader
  dataset = reader.read_dataset(root, progress=True)
  queries = []
  for m in dataset.usable_mentions():
    text = dataset.texts[m.docid]
    queries.append(Query(
        query_id=f"{m.docid}:{m.position}", lang=m.lang, doc_title=dataset.docs[m.docid].title,
        left_context=text[max(0, m.position - context_chars):m.position], mention=m.mention,
        right_context=text[m.end:m.end + context_chars], gold=m.qid, freq_bin=m.freq_bin))
  problems = {kind: entries[:20] for kind, entries in dataset.problems.items()}
  return queries, {"kind": "mewsli9", "spec": f"mewsli9:{root}", **dataset.summary(),
                   "problem_examples": problems, "context_chars": context_chars,
                   "files": file_facts([p for p in dataset.files if p.endswith(".tsv")]),
                   "queries": len(queries)}


def load_dataset(spec: str, context_chars: int = 256) -> Tuple[List[Query], dict]:
  kind, _, path = spec.partition(":")
  if kind == "holdout" and path:
    return load_holdout(path)
  if kind == "mewsli9" and path:
    return load_mewsli9(path, context_chars)
  raise ValueError(f"--dataset {spec!r}: expected holdout:GLOB or mewsli9:DIR")


# ---------------------------------------------------------------------------------------------
# systems


class DualEncoder:
  """A model dir's exported mention tower + an index of its entity encodings."""

  def __init__(self, name: str, model_dir: str, index_path: str, batch_size: int = 256):
    from mel.retrieval import encode as encode_entities, index as retrieval
    self.name, self.model_dir, self.index_path = name, model_dir, index_path
    self.batch_size = batch_size
    self.identity = encode_entities.model_identity(model_dir)
    self.index = retrieval.load_index(index_path, dimension=self.identity["embedding_dim"])
    built_from = self.index.model
    for key in ("kind", "step", "entity_table_sha256"):
      if key in built_from and built_from[key] != self.identity[key]:
        raise ValueError(f"{index_path} was built from another model: its {key} is "
                         f"{built_from[key]!r}, {model_dir} has {self.identity[key]!r}")

  def describe(self) -> dict:
    return {"kind": "dual_encoder", "model_dir": os.path.abspath(self.model_dir),
            "model_kind": self.identity["kind"], "model_step": self.identity["step"],
            "entity_table_sha256": self.identity["entity_table_sha256"],
            "index": os.path.abspath(self.index_path), "index_kind": self.index.kind,
            "index_entities": len(self.index), "index_manifest_model": self.index.model}

  def retrieve(self, queries: Sequence[Query], k: int) -> List[List[str]]:
    from tqdm import tqdm
    from mel.retrieval.negatives import encode_mentions
    vectors = encode_mentions(self.model_dir, queries, self.batch_size)
    out = []
    for start in tqdm(range(0, len(queries), 1024), desc=f"{self.name}: retrieval",
                      unit="batch", mininterval=5):
      ids, _ = self.index.search_ids(vectors[start:start + 1024], k)
      out.extend(ids)
    return out

  def known(self, gold: Sequence[str]) -> int:
    ids = set(self.index.ids)
    return sum(1 for g in gold if g in ids)


class AliasTableSystem:
  """The alias-table baseline (mel.evaluation.alias_table) as a system."""

  def __init__(self, table, source: dict):
    self.name = ALIAS_TABLE
    self.table = table
    self.source = source

  def describe(self) -> dict:
    return {"kind": "alias_table", "normalisation": "mel.surface_forms.normalize_surface",
            "back_off": "P(e | string, language), else P(e | string) pooled over languages",
            "strings": len(self.table.pooled), "entries": self.table.num_pairs,
            "training_mentions": self.table.num_mentions, **self.source}

  def retrieve(self, queries: Sequence[Query], k: int) -> List[List[str]]:
    return [self.table.candidates(q.mention, k, q.lang) for q in queries]

  def known(self, gold: Sequence[str]) -> int:
    return sum(1 for g in gold if g in self.table.entity_totals)


# ---------------------------------------------------------------------------------------------
# reports


def _fmt(value) -> str:
  return "–" if value is None else f"{value:.3f}"


def markdown_tables(report: dict) -> str:
  """Table 6 (bins, micro, macro) and a per-language table, one column per system and k."""
  systems = report["systems"]
  names = list(systems)
  ks = report["k"]
  head = "| Bin | Queries | " + " | ".join(f"{n} R@{k}" for n in names for k in ks) + " |"
  rule = "|---|---:|" + "---:|" * (len(names) * len(ks))
  first = systems[names[0]]["results"]
  lines = [f"Dataset: `{report['dataset']['spec']}` ({first['queries']:,} queries); bins by "
           f"{report['bins']['source']}", "", head, rule]
  for b, label in enumerate(BIN_LABELS):
    cells = [_fmt(systems[n]["results"]["bins"][b][f"R@{k}"]) for n in names for k in ks]
    lines.append(f"| {label} | {first['bins'][b]['queries']:,} | " + " | ".join(cells) + " |")
  for avg, label in (("micro", "micro-avg"), ("macro", "macro-avg")):
    cells = [_fmt(systems[n]["results"][avg][f"R@{k}"]) for n in names for k in ks]
    count = f"{first['queries']:,}" if avg == "micro" else ""
    lines.append(f"| {label} | {count} | " + " | ".join(cells) + " |")
  lines += ["", head.replace("| Bin |", "| Language |", 1), rule]
  for lang, row in first["languages"].items():
    cells = [_fmt(systems[n]["results"]["languages"][lang][f"R@{k}"]) for n in names for k in ks]
    lines.append(f"| {lang} | {row['queries']:,} | " + " | ".join(cells) + " |")
  cells = [_fmt(systems[n]["results"]["language_macro"][f"R@{k}"]) for n in names for k in ks]
  lines.append("| macro-avg | | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(report: dict, output_dir: str) -> List[str]:
  """recall_by_bin.png (R@1/R@10 per bin, every system) and recall_by_language.png (R@1)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  systems = report["systems"]
  ks = report["k"][:2]
  first = next(iter(systems.values()))["results"]
  paths = []

  fig, ax = plt.subplots(figsize=(8, 4.5))
  x = np.arange(len(BIN_LABELS))
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  for i, (name, system) in enumerate(systems.items()):
    for k, style in zip(ks, ("-", "--")):
      y = [np.nan if row[f"R@{k}"] is None else row[f"R@{k}"]
           for row in system["results"]["bins"]]
      ax.plot(x, y, style, marker="o" if style == "-" else "s", color=colors[i % len(colors)],
              label=f"{name} R@{k}")
  ax.set_xticks(x, [f"{label}\nn={row['queries']:,}"
                    for label, row in zip(BIN_LABELS, first["bins"])])
  ax.set_ylim(0, 1.02)
  ax.set_xlabel("training mentions of the gold entity")
  ax.set_ylabel("recall")
  ax.set_title(f"R@k by entity frequency: {report['dataset']['spec']}", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  paths.append(_save_figure(fig, os.path.join(output_dir, BIN_PLOT)))
  plt.close(fig)

  langs = list(first["languages"])
  fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(langs) + 2), 4.5))
  width = 0.8 / len(systems)
  for i, (name, system) in enumerate(systems.items()):
    y = [system["results"]["languages"][lang]["R@1"] or 0.0 for lang in langs]
    ax.bar(np.arange(len(langs)) + (i - (len(systems) - 1) / 2) * width, y, width,
           label=name, color=colors[i % len(colors)])
  ax.set_xticks(np.arange(len(langs)),
                [f"{lang}\nn={first['languages'][lang]['queries']:,}" for lang in langs])
  ax.set_ylim(0, 1.02)
  ax.set_ylabel("R@1")
  ax.set_title(f"R@1 per language: {report['dataset']['spec']}", fontsize=9)
  ax.grid(axis="y", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  paths.append(_save_figure(fig, os.path.join(output_dir, LANGUAGE_PLOT)))
  plt.close(fig)
  return paths


def _save_figure(fig, path: str) -> str:
  tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}.png")
  fig.savefig(tmp, dpi=110)
  os.replace(tmp, path)
  return path


def _write_text(path: str, text: str) -> None:
  tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# the run


def evaluate(systems: Sequence, queries: Sequence[Query], dataset: dict, bins: Sequence[int],
             bins_source: str, ks: Sequence[int]) -> dict:
  """Runs every system on the queries; returns the report (JSON-able)."""
  gold = [q.gold for q in queries]
  langs = [q.lang for q in queries]
  report = {"format": FORMAT, "created": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"), "dataset": dataset, "k": list(ks),
            "bins": {"edges": list(BIN_EDGES), "labels": list(BIN_LABELS),
                     "source": bins_source,
                     "queries": [int(n) for n in np.bincount(np.asarray(bins, np.int64),
                                                             minlength=len(BIN_LABELS))]},
            "systems": {}}
  for system in systems:
    started = time.time()
    predictions = system.retrieve(queries, max(ks))
    ranks = gold_ranks(predictions, gold)
    results = recall_report(ranks, bins, langs, ks)
    results["gold_known_to_system"] = system.known(gold)
    results["no_candidates"] = sum(1 for p in predictions if not p)
    report["systems"][system.name] = {**system.describe(), "results": results,
                                      "seconds": round(time.time() - started, 1)}
  return report


def write_report(report: dict, output_dir: str) -> dict:
  """evaluation.json, evaluation.md and the plots; returns {name: path}."""
  os.makedirs(output_dir, exist_ok=True)
  markdown = markdown_tables(report)
  paths = {"json": os.path.join(output_dir, JSON_NAME),
           "markdown": os.path.join(output_dir, MARKDOWN_NAME)}
  bin_plot, language_plot = plot(report, output_dir)
  paths.update(bin_plot=bin_plot, language_plot=language_plot)
  report["outputs"] = {k: os.path.abspath(v) for k, v in paths.items()}
  _write_text(paths["markdown"], markdown)
  _write_text(paths["json"], json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False)
              + "\n")
  return paths


def parse_ks(text: str) -> List[int]:
  try:
    ks = sorted({int(x) for x in text.split(",") if x.strip()})
  except ValueError:
    raise ValueError(f"--k {text!r}: expected comma-separated positive integers") from None
  if not ks or ks[0] < 1:
    raise ValueError(f"--k {text!r}: expected comma-separated positive integers")
  return ks


def run(args) -> dict:
  from mel.training import configs
  from mel.evaluation.alias_table import AliasTable
  ks = parse_ks(args.k)
  model_dirs = args.model_dir or []
  if args.index and len(args.index) != len(model_dirs):
    raise ValueError(f"{len(args.index)} --index for {len(model_dirs)} --model_dir: give one "
                     "per model, or none (<model_dir>/index)")
  if args.name and len(args.name) != len(model_dirs):
    raise ValueError(f"{len(args.name)} --name for {len(model_dirs)} --model_dir")
  indexes = args.index or [os.path.join(m, "index") for m in model_dirs]
  names = args.name or [os.path.basename(os.path.normpath(m)) for m in model_dirs]
  if len(set(names)) != len(names) or ALIAS_TABLE in names:
    raise ValueError(f"system names must be distinct and not {ALIAS_TABLE!r}: {names}")
  mining_dir = args.mining_dir
  if not mining_dir:
    if not model_dirs:
      raise ValueError("--mining_dir is required without --model_dir")
    mining_dir = configs.load(os.path.join(model_dirs[0], "config.yaml")).data.mining_dir
  output = args.output
  if not output:
    if not model_dirs:
      raise ValueError("--output is required without --model_dir")
    output = os.path.join(model_dirs[0], "eval", args.dataset.split(":", 1)[0])

  systems = [DualEncoder(n, m, i, args.batch_size) for n, m, i in zip(names, model_dirs, indexes)]
  queries, dataset = load_dataset(args.dataset, args.context_chars)
  if not queries:
    raise ValueError(f"{args.dataset}: no queries")
  counts, count_files = read_entity_counts(mining_dir)
  if args.bins == "dataset":
    if dataset["kind"] != "mewsli9":
      raise ValueError("--bins dataset needs a mewsli9: dataset (its freq_bin column)")
    bins = [q.freq_bin for q in queries]
    bins_source = "the dataset's freq_bin column (the paper's training counts)"
  else:
    bins = [frequency_bin(counts.get(q.gold, 0)) for q in queries]
    bins_source = f"training mentions in {os.path.abspath(mining_dir)}/counts"
  dataset["mining_dir"] = os.path.abspath(mining_dir)
  dataset["counts_files"] = file_facts(count_files)
  if not args.no_alias_table:
    if args.alias_table:
      table, source = AliasTable.load(args.alias_table), {"file": file_facts([args.alias_table])[0]}
    else:
      table = AliasTable.from_mining(mining_dir, progress=True)
      source = {"built_from": os.path.abspath(mining_dir)}
    systems.append(AliasTableSystem(table, source))
  if not systems:
    raise ValueError("nothing to evaluate: give --model_dir, or leave the alias table on")
  report = evaluate(systems, queries, dataset, bins, bins_source, ks)
  paths = write_report(report, output)
  print(markdown_tables(report))
  print(f"[mel.evaluation.evaluate] {len(queries):,} queries, {len(systems)} systems -> "
        + ", ".join(paths.values()), file=sys.stderr)
  return report


def main(argv=None, prog: str = "mel evaluate") -> int:
  parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
  parser.add_argument("--model_dir", action="append",
                      help="a trained model dir (repeat for several models)")
  parser.add_argument("--index", action="append",
                      help="its entity index, one per --model_dir (default <model_dir>/index)")
  parser.add_argument("--name", action="append",
                      help="its name in the tables, one per --model_dir (default: dir name)")
  parser.add_argument("--dataset", required=True, help="holdout:GLOB or mewsli9:DIR")
  parser.add_argument("--k", default=",".join(map(str, DEFAULT_KS)),
                      help="cut-offs, comma-separated (default 1,10,100)")
  parser.add_argument("--mining_dir", default="",
                      help="mining run whose training counts set the bins and whose training "
                           "mentions build the alias table (default: the first model's "
                           "config data.mining_dir)")
  parser.add_argument("--bins", choices=("counts", "dataset"), default="counts",
                      help="bins from the mining run's counts, or (mewsli9) the freq_bin column")
  parser.add_argument("--alias_table", default="",
                      help="a saved alias table (python -m mel.evaluation.alias_table); default: built "
                           "from --mining_dir")
  parser.add_argument("--no_alias_table", action="store_true", help="skip the baseline")
  parser.add_argument("--output", default="",
                      help="directory for the JSON, markdown and plots "
                           "(default <first model_dir>/eval/<dataset kind>)")
  parser.add_argument("--context_chars", type=int, default=256,
                      help="mewsli9: context characters each side (the mining default)")
  parser.add_argument("--batch_size", type=int, default=256)
  args = parser.parse_args(argv)
  try:
    run(args)
  except (FileNotFoundError, ValueError) as e:
    print(f"[mel.evaluation.evaluate] error: {e}", file=sys.stderr)
    return 1
  return 0

