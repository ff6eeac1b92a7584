"""The `mel` command: one subcommand per stage, with the same flag names for the same ideas
(mel.flags).

    mel train      --config C --model_dir M [--tpu NAME]   train a dual encoder (= python -m mel.train)
    mel rounds     --config C --output DIR                 round 0 + hard-negative rounds
    mel vocab      --mining_dir D --output vocab.txt       WordPiece vocabulary from mined text
    mel encode     --model_dir M                           entity embeddings (M/embeddings)
    mel index      --model_dir M | --embeddings E --output I   nearest-entity index
    mel kb         add | remove | compact | status --model_dir M   grow the knowledge base
    mel negatives  --model_dir M --output N                hard negatives for the next round
    mel teacher    --reranker R --negatives G --output T   reranker scores for distillation
    mel alias-table --mining_dir D --output T.tsv.gz       the alias-table baseline
    mel evaluate   --model_dir M ... --dataset holdout:GLOB   R@k by bin and language
    mel dictionary --mining_dir D --output M/dictionary    the spotter's surface forms
    mel link       -i | --text T | --input F --lang L      link text
    mel serve      --model_dir M [--host H --port P]       link over HTTP (REL, NIF, a page)

`mel STAGE --help` lists a stage's flags. Mining is `beam run extract_mentions` (a Beam job).
"""
import importlib
import sys
from typing import List, Optional

# stage -> (module with main(argv, prog), one line of help)
STAGES = {
    "train": ("mel.training.train", "train a dual encoder (Model F / E) into a model dir"),
    "rounds": ("mel.training.rounds", "round 0 and the hard-negative rounds of a config"),
    "vocab": ("mel.training.vocabulary", "learn a WordPiece vocabulary from mined text"),
    "encode": ("mel.retrieval.encode", "encode every entity with a model's entity tower"),
    "index": ("mel.retrieval.build_index", "build a nearest-entity index over embeddings"),
    "kb": ("mel.retrieval.kb_command", "add, replace, remove entities without retraining"),
    "negatives": ("mel.retrieval.negatives", "mine hard negatives for the next round"),
    "teacher": ("mel.training.teacher", "score hard negatives with a reranker (distillation)"),
    "alias-table": ("mel.evaluation.alias_table", "build the alias-table baseline"),
    "evaluate": ("mel.evaluation.evaluate", "R@k by frequency bin and language"),
    "dictionary": ("mel.linking.build_dictionary", "build the spotter's surface-form dictionary"),
    "link": ("mel.linking.cli", "link text to entities (interactive, one text, JSON lines)"),
    "serve": ("mel.serving.cli", "an HTTP service: /v1/link, REL, NIF (GERBIL), a page"),
}


def usage() -> str:
  width = max(map(len, STAGES))
  lines = ["usage: mel STAGE [flags]   (mel STAGE --help for its flags)", "", "stages:"]
  lines += [f"  {name:<{width}}  {text}" for name, (_, text) in STAGES.items()]
  return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(usage(), file=sys.stdout if argv else sys.stderr)
    return 0 if argv else 2
  stage, rest = argv[0], argv[1:]
  if stage not in STAGES:
    print(f"mel: unknown stage {stage!r}\n\n{usage()}", file=sys.stderr)
    return 2
  module = importlib.import_module(STAGES[stage][0])
  try:
    return module.main(rest, prog=f"mel {stage}")
  except SystemExit as e:   # argparse: --help exits 0, usage errors 2
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


if __name__ == "__main__":
  sys.exit(main())
