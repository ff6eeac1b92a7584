"""An evaluation report on disk: evaluation.json (every figure and what produced it),
evaluation.md (Table 6 of the paper: R@k per frequency bin, micro and macro, plus a table per
language, one column group per system, "<NAME> +CA" included, and with --nil_fraction the NIL
figures of mel.evaluation.nil), recall_by_bin.png,
recall_by_language.png and nil_curve.png (NIL only). Every file is written under a temp name
and renamed, so a reader never sees half a report.
"""
import json
import os
from typing import Callable, Dict, List

import numpy as np

from mel.bins import BIN_LABELS

FORMAT = "mel-eval/1"
JSON_NAME, MARKDOWN_NAME = "evaluation.json", "evaluation.md"
BIN_PLOT, LANGUAGE_PLOT = "recall_by_bin.png", "recall_by_language.png"
NIL_PLOT = "nil_curve.png"
NIL_FIGURES = (("accuracy", "Accuracy"), ("nil_precision", "NIL precision"),
               ("nil_recall", "NIL recall"), ("linking_precision", "Linking precision"),
               ("coverage", "Coverage"))
CURVE_ROWS = 5   # curve rows per system in evaluation.md (all of them are in the JSON)


def _fmt(value) -> str:
  return "–" if value is None else f"{value:.3f}"


def markdown_tables(report: dict) -> str:
  """Table 6 (bins, micro, macro) and a per-language table, one column per system and k."""
  systems = report["systems"]
  names = list(systems)
  ks = report["k"]

  def cells(figures: Callable[[dict], dict]) -> str:
    """One row's R@k cells: figures picks the dict holding "R@k" from a system's results."""
    return " | ".join(_fmt(figures(systems[n]["results"])[f"R@{k}"]) for n in names for k in ks)

  head = "| Bin | Queries | " + " | ".join(f"{n} R@{k}" for n in names for k in ks) + " |"
  rule = "|---|---:|" + "---:|" * (len(names) * len(ks))
  first = systems[names[0]]["results"]
  dataset = report["dataset"]
  lines = [f"Dataset: `{dataset['spec']}` ({first['queries']:,} queries); bins by "
           f"{report['bins']['source']}", "", head, rule]
  if dataset.get("language_filter"):
    note = (f"Languages: only {', '.join(dataset['language_filter'])} (--languages; "
            f"{first['queries']:,} of the dataset's {dataset['queries_all_languages']:,} queries).")
    if any(s.get("kind") == "alias_table" for s in systems.values()):
      note += (" The alias table ranks by P(e | string, language) from the query language's own "
               "training anchors, else by P(e | string) pooled over all languages.")
    lines[1:1] = ["", note]
  for b, label in enumerate(BIN_LABELS):
    lines.append(f"| {label} | {first['bins'][b]['queries']:,} | "
                 + cells(lambda r: r["bins"][b]) + " |")
  lines.append(f"| micro-avg | {first['queries']:,} | " + cells(lambda r: r["micro"]) + " |")
  lines.append("| macro-avg |  | " + cells(lambda r: r["macro"]) + " |")
  lines += ["", head.replace("| Bin |", "| Language |", 1), rule]
  for lang, row in first["languages"].items():
    lines.append(f"| {lang} | {row['queries']:,} | "
                 + cells(lambda r: r["languages"][lang]) + " |")
  lines.append("| macro-avg | | " + cells(lambda r: r["language_macro"]) + " |")
  if "nil" in report:
    lines += [""] + nil_tables(report)
  return "\n".join(lines) + "\n"


def nil_sections(report: dict) -> List[tuple]:
  """[(label, NIL section)]: each scored system's fast mode (cosine) and, when measured, its
  full mode (cosine + prior weight x prior, mel.scoring); a +CA system's reranker probability."""
  out = []
  for name in report["nil"]["systems"]:
    section = report["systems"][name].get("nil")
    if section is None:
      continue
    if section.get("score", "cosine") != "cosine":   # a +CA system: the reranker's score
      out.append((f"{name} ({section['score']} of its top {section.get('rerank_top')})",
                  section))
      continue
    out.append((f"{name}, fast (cosine)", section))
    if "full" in section:
      out.append((f"{name}, full (cosine + {section['full']['prior_weight']} x prior)",
                  section["full"]))
  return out


def nil_tables(report: dict) -> List[str]:
  """The NIL table (chosen threshold, test-half figures per system and mode) and a few curve
  rows."""
  facts = report["nil"]
  scored = nil_sections(report)
  lines = [f"NIL (--nil_fraction {facts['fraction']}, --nil_seed {facts['seed']}): "
           f"{facts['removed_entities']:,} of {facts['gold_entities_in_every_index']:,} gold "
           f"entities taken out of the index ({facts['queries_of_removed_entities']:,} queries "
           f"become out-of-KB); a threshold per mode on its score, chosen on "
           f"{facts['calibration_queries']:,} queries by the {facts['tie_rule']}; figures on the "
           f"other {facts['test_queries']:,}.", ""]
  head = "| " + " | ".join(label for _, label in NIL_FIGURES) + " |"
  rule = "---:|" * len(NIL_FIGURES)
  lines += ["| System | Threshold " + head, "|---|---:|" + rule]
  for name, section in scored:
    test = section["test"]
    lines.append(f"| {name} | {section['threshold']:.3f} | "
                 + " | ".join(_fmt(test[key]) for key, _ in NIL_FIGURES) + " |")
  for name, why in facts.get("skipped", {}).items():
    lines += ["", f"{name}: not in the NIL figures; {why}."]
  for name, section in scored:
    curve = section["curve"]
    picks = sorted({int(round(i)) for i in np.linspace(0, len(curve) - 1, CURVE_ROWS)}
                   | {i for i, row in enumerate(curve) if row["threshold"] == section["threshold"]})
    lines += ["", f"{name}, test half at other thresholds (all {len(curve)} in the JSON):", "",
              "| Threshold | Linked " + head, "|---:|---:|" + rule]
    for i in picks:
      row = curve[i]
      mark = " (chosen)" if row["threshold"] == section["threshold"] else ""
      lines.append(f"| {row['threshold']:.3f}{mark} | {row['linked']:,} | "
                   + " | ".join(_fmt(row[key]) for key, _ in NIL_FIGURES) + " |")
  return lines


def plot(report: dict, output_dir: str) -> List[str]:
  """recall_by_bin.png (R@1/R@10 per bin, every system) and recall_by_language.png (R@1)."""
  import matplotlib
  matplotlib.use("Agg")   # no display on servers and TPU VMs
  import matplotlib.pyplot as plt
  systems = report["systems"]
  ks = report["k"][:2]
  first = next(iter(systems.values()))["results"]
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  paths = []

  fig, ax = plt.subplots(figsize=(8, 4.5))
  x = np.arange(len(BIN_LABELS))
  for i, (name, system) in enumerate(systems.items()):
    for k, style in zip(ks, ("-", "--")):
      y = [np.nan if row[f"R@{k}"] is None else row[f"R@{k}"]
           for row in system["results"]["bins"]]
      ax.plot(x, y, style, marker="o" if style == "-" else "s", color=colors[i % len(colors)],
              label=f"{name} R@{k}")
  ax.set_xticks(x, [f"{label}\nn={row['queries']:,}"
                    for label, row in zip(BIN_LABELS, first["bins"])])
  ax.set_xlabel("training mentions of the gold entity")
  ax.set_ylabel("recall")
  ax.set_title(f"R@k by entity frequency: {report['dataset']['spec']}", fontsize=9)
  paths.append(_finish(fig, ax, os.path.join(output_dir, BIN_PLOT), grid_axis="both"))

  langs = list(first["languages"])
  fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(langs) + 2), 4.5))
  width = 0.8 / len(systems)
  for i, (name, system) in enumerate(systems.items()):
    y = [system["results"]["languages"][lang]["R@1"] or 0.0 for lang in langs]
    ax.bar(np.arange(len(langs)) + (i - (len(systems) - 1) / 2) * width, y, width,
           label=name, color=colors[i % len(colors)])
  ax.set_xticks(np.arange(len(langs)),
                [f"{lang}\nn={first['languages'][lang]['queries']:,}" for lang in langs])
  ax.set_ylabel("R@1")
  ax.set_title(f"R@1 per language: {report['dataset']['spec']}", fontsize=9)
  paths.append(_finish(fig, ax, os.path.join(output_dir, LANGUAGE_PLOT), grid_axis="y"))
  if "nil" in report:
    paths.append(plot_nil(report, output_dir))
  return paths


def plot_nil(report: dict, output_dir: str) -> str:
  """nil_curve.png: linking precision against coverage (left), NIL precision and recall against
  the threshold (right), on the test half, the chosen threshold marked."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))

  def values(curve, key):
    return [np.nan if row[key] is None else row[key] for row in curve]

  for i, (name, section) in enumerate(nil_sections(report)):
    curve, test, color = section["curve"], section["test"], colors[i % len(colors)]
    left.plot(values(curve, "coverage"), values(curve, "linking_precision"), "-", marker=".",
              color=color, label=name)
    left.plot(values([test], "coverage"), values([test], "linking_precision"), "*", markersize=12,
              color=color, label=f"{name}: chosen {section['threshold']:.3f}")
    thresholds = [row["threshold"] for row in curve]
    right.plot(thresholds, values(curve, "nil_precision"), "-", color=color,
               label=f"{name} NIL precision")
    right.plot(thresholds, values(curve, "nil_recall"), "--", color=color,
               label=f"{name} NIL recall")
    right.axvline(section["threshold"], color=color, alpha=0.4, linewidth=1)
  left.set_xlabel("coverage (in-KB queries linked)")
  left.set_ylabel("linking precision")
  left.set_xlim(0, 1.02)
  right.set_xlabel("threshold (fast: cosine; full: cosine + prior weight x prior; +CA: "
                   "sigmoid(reranker logit))")
  facts = report["nil"]
  fig.suptitle(f"NIL, test half: {facts['fraction']:.0%} of the gold entities removed, "
               f"{report['dataset']['spec']}", fontsize=9)
  for ax in (left, right):
    _style(ax, "both")
  return _save(fig, os.path.join(output_dir, NIL_PLOT))


def _style(ax, grid_axis: str) -> None:
  """Shared look of the plots: figure axis 0..1, grid, legend."""
  ax.set_ylim(0, 1.02)
  ax.grid(axis=grid_axis, alpha=0.3)
  ax.legend(fontsize=8)


def _finish(fig, ax, path: str, grid_axis: str) -> str:
  """A one-axis plot styled (recall axis 0..1, grid, legend), saved atomically, closed."""
  _style(ax, grid_axis)
  return _save(fig, path)


def _save(fig, path: str) -> str:
  """Saves fig to path atomically and closes it."""
  import matplotlib.pyplot as plt
  fig.tight_layout()
  # The temp name keeps the .png suffix: savefig picks the format from it.
  tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}.png")
  fig.savefig(tmp, dpi=110)
  os.replace(tmp, path)
  plt.close(fig)
  return path


def _write_text(path: str, text: str) -> None:
  tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def write_report(report: dict, output_dir: str) -> Dict[str, str]:
  """evaluation.json, evaluation.md and the plots; returns {name: path}.

  The JSON goes last: its presence means the other files of this report are there.
  """
  os.makedirs(output_dir, exist_ok=True)
  paths = {"json": os.path.join(output_dir, JSON_NAME),
           "markdown": os.path.join(output_dir, MARKDOWN_NAME)}
  bin_plot, language_plot, *nil_plot = plot(report, output_dir)
  paths.update(bin_plot=bin_plot, language_plot=language_plot)
  if nil_plot:
    paths["nil_plot"] = nil_plot[0]
  report["outputs"] = {k: os.path.abspath(v) for k, v in paths.items()}
  _write_text(paths["markdown"], markdown_tables(report))
  _write_text(paths["json"], json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False)
              + "\n")
  return paths
