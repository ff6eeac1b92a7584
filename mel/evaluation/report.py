"""An evaluation report on disk: evaluation.json (every figure and what produced it),
evaluation.md (Table 6 of the paper: R@k per frequency bin, micro and macro, plus a table per
language), recall_by_bin.png and recall_by_language.png. Every file is written under a temp
name and renamed, so a reader never sees half a report.
"""
import json
import os
from typing import Callable, Dict, List

import numpy as np

from mel.bins import BIN_LABELS

FORMAT = "mel-eval/1"
JSON_NAME, MARKDOWN_NAME = "evaluation.json", "evaluation.md"
BIN_PLOT, LANGUAGE_PLOT = "recall_by_bin.png", "recall_by_language.png"


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
  return "\n".join(lines) + "\n"


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
  return paths


def _finish(fig, ax, path: str, grid_axis: str) -> str:
  """Shared look of both plots (recall axis 0..1, grid, legend), saved atomically, closed."""
  import matplotlib.pyplot as plt
  ax.set_ylim(0, 1.02)
  ax.grid(axis=grid_axis, alpha=0.3)
  ax.legend(fontsize=8)
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
  bin_plot, language_plot = plot(report, output_dir)
  paths.update(bin_plot=bin_plot, language_plot=language_plot)
  report["outputs"] = {k: os.path.abspath(v) for k, v in paths.items()}
  _write_text(paths["markdown"], markdown_tables(report))
  _write_text(paths["json"], json.dumps(report, indent=2, sort_keys=False, ensure_ascii=False)
              + "\n")
  return paths
