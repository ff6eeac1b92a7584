"""Round 0 and the hard-negative rounds of a config, one command (paper Sec. 5.2.4).

    mel rounds --config configs/model_f_plus.yaml --output DIR \\
        [--params_override k=v,...] [--tpu NAME|local]

Runs, in DIR:
  round0/                    `mel train` with the config as it is
  for r = 1 .. rounds.count:
    round{r-1}/embeddings/   `mel encode --model_dir round{r-1}` (its entity tower)
    round{r-1}/index/        `mel index --model_dir round{r-1} --kind rounds.index_kind`
    negatives_round{r}/      `mel negatives --model_dir round{r-1}` (top rounds.top_k, ratio
                             rounds.ratio, rounds.max_per_mention per mention)
    round{r}/                `mel train`, a new invocation: train.steps = rounds.steps,
                             train.init_from_model_dir = round{r-1},
                             data.hard_negatives = negatives_round{r}
  round{count}/embeddings/, round{count}/index/   for evaluation and `mel link`

Each stage is the stage's own command, run as a child process, so a round is exactly what a
user running the commands by hand gets. Every stage reuses finished work: training resumes from
its latest checkpoint (and does nothing once at its step), encoding skips finished shards,
the index and the negatives are kept when they were built from the same model. So after a
preemption or a crash, the same command continues where it stopped.

Training runs where `--tpu` says (TPUStrategy; GPUs and CPU otherwise); encoding, indexing and
mining run on this machine's CPU and read and write local paths.
"""
import os
import subprocess
import sys
from typing import List, Optional

from mel import flags
from mel.model_dir import ModelDir
from mel.training import configs

ROUND_DIR = "round{round}"
NEGATIVES_DIR = "negatives_round{round}"
NEGATIVES_GLOB = "negatives-*.tfrecord.gz"


class StageError(RuntimeError):
  """A stage's command failed; the message names the stage and its exit status."""


def log(message: str) -> None:
  print(f"[mel.training.rounds] {message}", file=sys.stderr, flush=True)


def round_dir(work_dir: str, r: int) -> str:
  return os.path.join(work_dir, ROUND_DIR.format(round=r))


def negatives_dir(work_dir: str, r: int) -> str:
  return os.path.join(work_dir, NEGATIVES_DIR.format(round=r))


def _join_overrides(*parts: str) -> str:
  return ",".join(p for p in parts if p)


def round_overrides(work_dir: str, r: int, config: configs.ExperimentConfig,
                    user_overrides: str = "") -> str:
  """--params_override of round r's training: the user's, then what the round fixes."""
  if r == 0:
    return user_overrides
  negatives = os.path.join(negatives_dir(work_dir, r), NEGATIVES_GLOB)
  return _join_overrides(
      user_overrides, f"train.steps={config.rounds.steps}",
      f"train.init_from_model_dir={round_dir(work_dir, r - 1)}",
      f"data.hard_negatives={negatives}")


def plan(config_path: str, work_dir: str, config: configs.ExperimentConfig,
         user_overrides: str = "", tpu: Optional[str] = None) -> List[tuple]:
  """The stages in order: (name, mel stage, args)."""
  stages = []
  rounds = config.rounds

  def encode_and_index(r):
    model = round_dir(work_dir, r)
    # Both write into the model dir (embeddings/, then index/ from them: mel.model_dir).
    stages.append((f"round {r}: entity encodings", "encode", ["--model_dir", model]))
    stages.append((f"round {r}: {rounds.index_kind} index", "index",
                   ["--model_dir", model, "--kind", rounds.index_kind]))

  for r in range(rounds.count + 1):
    if r > 0:
      encode_and_index(r - 1)
      stages.append((f"round {r}: hard negatives from round {r - 1}", "negatives",
                     ["--model_dir", round_dir(work_dir, r - 1),
                      "--output", negatives_dir(work_dir, r),
                      "--mining_dir", config.data.mining_dir, "--top_k", str(rounds.top_k),
                      "--ratio", str(rounds.ratio),
                      "--max_per_mention", str(rounds.max_per_mention),
                      "--max_mentions", str(rounds.max_mentions)]))
    train_args = ["--config", config_path, "--model_dir", round_dir(work_dir, r)]
    overrides = round_overrides(work_dir, r, config, user_overrides)
    if overrides:
      train_args += ["--params_override", overrides]
    if tpu:
      train_args += ["--tpu", tpu]
    what = "from the config" if r == 0 else f"from round {r - 1} on its hard negatives"
    stages.append((f"round {r}: training {what}", "train", train_args))
  encode_and_index(rounds.count)
  return stages


def run_stage(name: str, stage: str, args: List[str]) -> None:
  log(f"== {name}: mel {stage} {' '.join(args)}")
  result = subprocess.run([sys.executable, "-m", "mel", stage, *args])
  if result.returncode != 0:
    raise StageError(f"{name}: `mel {stage}` exited with status {result.returncode}")


def run(config_path: str, work_dir: str, user_overrides: str = "",
        tpu: Optional[str] = None) -> List[str]:
  """Runs every stage; returns the model dirs of all rounds."""
  config = configs.load(config_path, user_overrides)
  # The rounds' own overrides must give a valid config too (e.g. rounds.steps vs warm-up).
  for r in range(1, config.rounds.count + 1):
    configs.load(config_path, round_overrides(work_dir, r, config, user_overrides))
  os.makedirs(work_dir, exist_ok=True)
  stages = plan(config_path, work_dir, config, user_overrides, tpu)
  log(f"{config.rounds.count} hard-negative round(s) after round 0: {len(stages)} stages "
      f"in {work_dir}")
  for name, stage, args in stages:
    run_stage(name, stage, args)
  return [round_dir(work_dir, r) for r in range(config.rounds.count + 1)]


def main(argv=None, prog: str = "mel rounds") -> int:
  parser = flags.parser(prog, __doc__)
  configs.add_flags(parser, tpu_help="passed to every `mel train` (TPU name, grpc://address, "
                    "or 'local' on a TPU VM)")
  flags.output(parser, help="round0/, round1/, ..., negatives_round1/, ... go here; a rerun "
               "continues the work found there")
  args = parser.parse_args(argv)
  try:
    model_dirs = run(args.config, args.output, args.params_override, args.tpu)
  except (configs.ConfigError, StageError) as e:
    log(f"error: {e}")
    return 1
  log("done: " + ", ".join(model_dirs) + f" (the last one is indexed: "
      f"{ModelDir(model_dirs[-1]).index})")
  return 0
