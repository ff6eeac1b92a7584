"""Flags that mean the same thing in every `mel <stage>` command, defined once.

    --model_dir   a model directory (mel.model_dir)       --mining_dir  a mining run's output
    --output      what the command writes                 --overwrite   redo finished work
    --no_progress no progress bars                        --batch_size  inputs per tower call
    --shard_size  rows per output shard                   --top_k       candidates retrieved
    --recall_at   evaluation cut-offs (1,10,100)          --languages   only these languages
"""
import argparse
from typing import List, Optional

from mel.languages import LANGUAGE_CODE


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
  """A stage's parser: prog as the user typed it, the module docstring as its help."""
  return argparse.ArgumentParser(prog=prog, description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def model_dir(p, required: bool = True, help: str = "model directory", **kwargs):
  p.add_argument("--model_dir", required=required, help=help, **kwargs)


def mining_dir(p, required: bool = False,
               help: str = "mining run (beam run extract_mentions output; default: the model "
               "config's data.mining_dir)"):
  p.add_argument("--mining_dir", required=required, default="", help=help)


def output(p, required: bool = True, help: str = "what to write", default: str = ""):
  p.add_argument("--output", required=required, default=default, help=help)


def overwrite(p, help: str = "redo the work even when --output holds a finished result of "
              "the same inputs"):
  p.add_argument("--overwrite", action="store_true", help=help)


def no_progress(p):
  p.add_argument("--no_progress", action="store_true", help="no progress bars")


def batch_size(p, default: int = 256):
  p.add_argument("--batch_size", type=int, default=default,
                 help=f"inputs per tower call (default {default})")


def shard_size(p, default: Optional[int], help: str):
  p.add_argument("--shard_size", type=int, default=default, help=help)


def top_k(p, default: int, help: str):
  p.add_argument("--top_k", type=int, default=default, help=help)


def recall_at(p, default: str = "1,10,100"):
  p.add_argument("--recall_at", default=default,
                 help=f"evaluation cut-offs k of R@k, comma-separated (default {default})")


def parse_cutoffs(text: str) -> List[int]:
  """"1,10,100" -> [1, 10, 100] (sorted, unique); ValueError for anything else."""
  try:
    ks = sorted({int(x) for x in text.split(",") if x.strip()})
  except ValueError:
    ks = []
  if not ks or ks[0] < 1:
    raise ValueError(f"--recall_at {text!r}: expected comma-separated positive integers")
  return ks


def languages(p, help: str = "only these languages, comma-separated codes (e.g. bn,mr); "
              "default: all"):
  p.add_argument("--languages", default="", help=help)


def parse_languages(text: str) -> List[str]:
  """"bn, mr" -> ["bn", "mr"] (order kept, repeats dropped); "" -> [] (all); ValueError for
  anything that is not a language code."""
  codes = [x.strip() for x in text.split(",") if x.strip()]
  bad = [c for c in codes if not LANGUAGE_CODE.match(c)]
  if bad:
    raise ValueError(f"--languages {text!r}: not language codes (lower case, e.g. bn,mr): "
                     f"{', '.join(bad)}")
  return list(dict.fromkeys(codes))


def require_positive(p: argparse.ArgumentParser, args, *names: str) -> None:
  """p.error (exit 2) naming the first flag that is not a positive integer."""
  for name in names:
    value = getattr(args, name)
    if value is not None and value < 1:
      p.error(f"--{name} must be a positive integer, got {value}")
