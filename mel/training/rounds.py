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
  with rounds.distill_from (a trained reranker's model dir, model.kind CA), then, N = count:
    negatives_round{N+1}/    `mel negatives --model_dir round{N}` (as above; reused when a
                             later round mined them already)
    teacher_round{N}/        `mel teacher --reranker rounds.distill_from`: its logits for each
                             mention's gold and first data.hard_negatives_per_mention negatives
    round{N}_distilled/      `mel train`: train.steps = rounds.distill_steps (0: rounds.steps),
                             train.init_from_model_dir = round{N},
                             data.hard_negatives = teacher_round{N},
                             train.distillation_weight = the config's (1.0 if it is 0)
    round{N}_distilled/embeddings/, round{N}_distilled/index/
  (The rounds before train with train.distillation_weight 0: their records carry no teacher
  scores.)

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
TEACHER_DIR = "teacher_round{round}"
DISTILLED_DIR = "round{round}_distilled"
TEACHER_GLOB = "teacher-*.tfrecord.gz"   # mel.training.teacher.GLOB (not imported: no TF here)
DEFAULT_DISTILLATION_WEIGHT = 1.0


class StageError(RuntimeError):
  """A stage's command failed; the message names the stage and its exit status."""


def log(message: str) -> None:
  print(f"[mel.training.rounds] {message}", file=sys.stderr, flush=True)


def round_dir(work_dir: str, r: int) -> str:
  return os.path.join(work_dir, ROUND_DIR.format(round=r))


def negatives_dir(work_dir: str, r: int) -> str:
  return os.path.join(work_dir, NEGATIVES_DIR.format(round=r))


def teacher_dir(work_dir: str, r: int) -> str:
  return os.path.join(work_dir, TEACHER_DIR.format(round=r))


def distilled_dir(work_dir: str, r: int) -> str:
  return os.path.join(work_dir, DISTILLED_DIR.format(round=r))


def _join_overrides(*parts: str) -> str:
  return ",".join(p for p in parts if p)


def without_distillation(user_overrides: str, weight: float) -> str:
  """The overrides of the rounds before distillation: weight 0 when the config sets one."""
  return _join_overrides(user_overrides, "train.distillation_weight=0" if weight > 0 else "")


def distillation_weight(config_path: str, user_overrides: str = "") -> float:
  """train.distillation_weight as the config and the overrides set it (the rounds' own
  config is loaded with it 0)."""
  values = configs.load_values(config_path, user_overrides)
  value = (values.get("train") or {}).get("distillation_weight", 0.0)
  return configs._coerce(value, 0.0, "train.distillation_weight")


def distilled_overrides(work_dir: str, config: configs.ExperimentConfig, weight: float,
                        user_overrides: str = "") -> str:
  """--params_override of the distilled round (after round rounds.count)."""
  last = config.rounds.count
  return _join_overrides(
      user_overrides, f"train.steps={config.rounds.distill_steps or config.rounds.steps}",
      f"train.init_from_model_dir={round_dir(work_dir, last)}",
      f"data.hard_negatives={os.path.join(teacher_dir(work_dir, last), TEACHER_GLOB)}",
      f"train.distillation_weight={weight or DEFAULT_DISTILLATION_WEIGHT}")


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
         user_overrides: str = "", tpu: Optional[str] = None,
         weight: Optional[float] = None) -> List[tuple]:
  """The stages in order: (name, mel stage, args). weight: the configured
  train.distillation_weight (default: config's)."""
  stages = []
  rounds = config.rounds
  weight = config.train.distillation_weight if weight is None else weight
  base_overrides = without_distillation(user_overrides, weight)

  def encode_and_index(name, model):
    # Both write into the model dir (embeddings/, then index/ from them: mel.model_dir).
    stages.append((f"{name}: entity encodings", "encode", ["--model_dir", model]))
    stages.append((f"{name}: {rounds.index_kind} index", "index",
                   ["--model_dir", model, "--kind", rounds.index_kind]))

  def mine(name, r):
    stages.append((name, "negatives",
                   ["--model_dir", round_dir(work_dir, r - 1),
                    "--output", negatives_dir(work_dir, r),
                    "--mining_dir", config.data.mining_dir, "--top_k", str(rounds.top_k),
                    "--ratio", str(rounds.ratio),
                    "--max_per_mention", str(rounds.max_per_mention),
                    "--max_mentions", str(rounds.max_mentions)]))

  def train(name, model, overrides):
    args = ["--config", config_path, "--model_dir", model]
    if overrides:
      args += ["--params_override", overrides]
    if tpu:
      args += ["--tpu", tpu]
    stages.append((name, "train", args))

  for r in range(rounds.count + 1):
    if r > 0:
      encode_and_index(f"round {r - 1}", round_dir(work_dir, r - 1))
      mine(f"round {r}: hard negatives from round {r - 1}", r)
    what = "from the config" if r == 0 else f"from round {r - 1} on its hard negatives"
    train(f"round {r}: training {what}", round_dir(work_dir, r),
          round_overrides(work_dir, r, config, base_overrides))
  last = rounds.count
  encode_and_index(f"round {last}", round_dir(work_dir, last))
  if rounds.distill_from:
    mine(f"distillation: hard negatives from round {last}", last + 1)
    stages.append((f"distillation: teacher scores of {rounds.distill_from}", "teacher",
                   ["--reranker", rounds.distill_from,
                    "--negatives", os.path.join(negatives_dir(work_dir, last + 1),
                                                NEGATIVES_GLOB),
                    "--output", teacher_dir(work_dir, last),
                    "--per_mention", str(config.data.hard_negatives_per_mention)]))
    distilled = distilled_dir(work_dir, last)
    train(f"distillation: training from round {last} on the teacher's scores", distilled,
          distilled_overrides(work_dir, config, weight, user_overrides))
    encode_and_index(f"round {last} distilled", distilled)
  return stages


def run_stage(name: str, stage: str, args: List[str]) -> None:
  log(f"== {name}: mel {stage} {' '.join(args)}")
  result = subprocess.run([sys.executable, "-m", "mel", stage, *args])
  if result.returncode != 0:
    raise StageError(f"{name}: `mel {stage}` exited with status {result.returncode}")


def run(config_path: str, work_dir: str, user_overrides: str = "",
        tpu: Optional[str] = None) -> List[str]:
  """Runs every stage; returns the model dirs of all rounds."""
  weight = distillation_weight(config_path, user_overrides)
  base_overrides = without_distillation(user_overrides, weight)
  config = configs.load(config_path, base_overrides)
  # The rounds' own overrides must give a valid config too (e.g. rounds.steps vs warm-up).
  for r in range(1, config.rounds.count + 1):
    configs.load(config_path, round_overrides(work_dir, r, config, base_overrides))
  model_dirs = [round_dir(work_dir, r) for r in range(config.rounds.count + 1)]
  if config.rounds.distill_from:
    _check_reranker(config.rounds.distill_from)
    configs.load(config_path, distilled_overrides(work_dir, config, weight, user_overrides))
    model_dirs.append(distilled_dir(work_dir, config.rounds.count))
  os.makedirs(work_dir, exist_ok=True)
  stages = plan(config_path, work_dir, config, user_overrides, tpu, weight)
  log(f"{config.rounds.count} hard-negative round(s) after round 0"
      + (f", then round {config.rounds.count} distilled from {config.rounds.distill_from}"
         if config.rounds.distill_from else "") + f": {len(stages)} stages in {work_dir}")
  if config.rounds.distill_from and not weight:
    log(f"train.distillation_weight is 0: the distilled round uses "
        f"{DEFAULT_DISTILLATION_WEIGHT}")
  for name, stage, args in stages:
    run_stage(name, stage, args)
  return model_dirs


def _check_reranker(model_dir: str) -> None:
  """ConfigError unless rounds.distill_from holds an exported reranker (checked before the
  rounds start, not after them)."""
  from mel import towers
  try:
    towers.reranker(model_dir)
  except (FileNotFoundError, ValueError) as e:
    raise configs.ConfigError(f"rounds.distill_from: {e}") from None


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
