"""Ablation: Model F with and without the typing task (issue 20), same steps and seeds.

  python bench/typing_ablation.py [--mining_dir out/mining_types] [--config configs/demo_e5.yaml]
      [--seeds 1,2,3] [--steps 150] [--output out/ablation_typing] [--overrides K=V,...]
      [--on_name on] [--on_overrides K=V,...]

For each seed and each variant (typing off: model.typing.enabled=false; on: true, plus
--on_overrides, e.g. the type loss weights; --on_name names its runs) it trains
`mel train --config C` (data.mining_dir, train.seed, train.steps set), encodes and indexes the
entities (`mel encode`, `mel index`), then evaluates every run on the held-out split in one
`mel evaluate` (R@1/10/100 by training-frequency bin, micro and macro). It prints, per variant,
the mean over seeds and the spread (max - min) of each figure, and the difference on - off
with the spread it must beat; the issue's targets: [0, 1) R@100 and [1, 10) R@1 higher with
types by more than the run-to-run spread, no bin lower by more than the spread. Finished runs
(train_summary.json, index/) are reused: a rerun only does what is missing. Also printed: the
type coverage of the mining run (mining summary) and the typing heads' training metrics.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIGURES = (("[0, 1)", "R@100"), ("[0, 1)", "R@1"), ("[1, 10)", "R@1"), ("[1, 10)", "R@100"),
           ("[10, 100)", "R@1"), ("[100, 1k)", "R@1"), ("micro", "R@1"), ("micro", "R@100"),
           ("macro", "R@1"), ("macro", "R@100"))


def run(*args) -> None:
  command = [sys.executable, "-m", "mel", *map(str, args)]
  print("+ mel " + " ".join(map(str, args)), flush=True)
  result = subprocess.run(command, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  if result.returncode != 0:
    raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}")


def train_and_index(model_dir: pathlib.Path, args, seed: int, typing: str) -> None:
  overrides = (f"data.mining_dir={args.mining_dir},train.seed={seed},train.steps={args.steps},"
               f"model.typing.enabled={typing}" + "".join(
                   f",{x}" for x in (args.overrides, args.on_overrides if typing == "true" else "")
                   if x))
  if not (model_dir / "train_summary.json").exists():
    run("train", "--config", args.config, "--model_dir", model_dir, "--params_override",
        overrides)
  if not (model_dir / "index").is_dir():
    run("encode", "--model_dir", model_dir, "--no_progress")
    run("index", "--model_dir", model_dir, "--no_progress")


def figure(results: dict, where: str, k: str):
  if where in ("micro", "macro"):
    return results[where][k]
  return next(b[k] for b in results["bins"] if b["bin"] == where)


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--mining_dir", default="out/mining_types")
  p.add_argument("--config", default="configs/demo_e5.yaml")
  p.add_argument("--seeds", default="1,2,3")
  p.add_argument("--steps", type=int, default=150)
  p.add_argument("--output", default="out/ablation_typing")
  p.add_argument("--overrides", default="", help="more --params_override for every run")
  p.add_argument("--on_name", default="on", help="the typing runs' name (and model dirs')")
  p.add_argument("--on_overrides", default="", help="more --params_override for typing runs")
  args = p.parse_args()
  variants = {"off": "false", args.on_name: "true"}
  seeds = [int(s) for s in args.seeds.split(",")]
  output = pathlib.Path(args.output)
  names = []
  for seed in seeds:
    for variant, typing in variants.items():
      model_dir = output / f"typing_{variant}_seed{seed}"
      train_and_index(model_dir, args, seed, typing)
      names += ["--model_dir", model_dir, "--name", f"{variant} {seed}"]
  evaluation = output / f"eval_{args.on_name}_seeds{'-'.join(map(str, seeds))}"
  if not (evaluation / "evaluation.json").exists():
    run("evaluate", *names, "--dataset",
        f"holdout:{args.mining_dir}/mentions/holdout-*.tfrecord.gz", "--recall_at", "1,10,100",
        "--output", evaluation, "--no_progress")
  systems = json.loads((evaluation / "evaluation.json").read_text())["systems"]
  table = {v: {f: [figure(systems[f"{v} {s}"]["results"], *f) for s in seeds] for f in FIGURES}
           for v in variants}
  print(f"\n{len(seeds)} seeds, {args.steps} steps, {args.config}, {args.mining_dir}")
  print(f"{'figure':<18} {'off mean':>9} {'spread':>7} {'on mean':>9} {'spread':>7} "
        f"{'on - off':>9}  beyond both spreads?")
  summary = {}
  for f in FIGURES:
    off, on = table["off"][f], table[args.on_name][f]
    if any(x is None for x in off + on):
      continue
    mean_off, mean_on = sum(off) / len(off), sum(on) / len(on)
    spread_off, spread_on = max(off) - min(off), max(on) - min(on)
    diff = mean_on - mean_off
    beyond = abs(diff) > max(spread_off, spread_on)
    name = f"{f[0]} {f[1]}"
    print(f"{name:<18} {mean_off:9.3f} {spread_off:7.3f} {mean_on:9.3f} {spread_on:7.3f} "
          f"{diff:+9.3f}  {'yes' if beyond else 'no'}")
    summary[name] = {"off": off, "on": on, "diff": diff, "beyond_spread": beyond}
  for seed in seeds:
    trained = json.loads((output / f"typing_{args.on_name}_seed{seed}" / "train_summary.json")
                         .read_text())
    final = trained.get("final_metrics", {})
    typing = {k: round(v, 4) for k, v in final.items() if "type" in k or "mention_entity" in k}
    print(f"typing heads, seed {seed}: {json.dumps(typing)}")
  (evaluation / "ablation.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
  main()
