"""`mel dictionary`: builds the spotter's surface-form dictionary from a mining run.

    mel dictionary --mining_dir out/mining --output MODEL_DIR/dictionary \\
        [--min_linked 1] [--min_link_prob 0.001] [--max_units 24] [--overwrite]

What it counts and writes: mel.linking.dictionary. A rerun on the same mining run with the same
parameters reuses the output (--overwrite rebuilds). Exit status: 0 ok, 1 error, 2 usage.
"""
import sys
from typing import List, Optional

from mel import flags
from mel.linking import dictionary


def main(argv: Optional[List[str]] = None, prog: str = "mel dictionary") -> int:
  p = flags.parser(prog, __doc__)
  flags.mining_dir(p, required=True, help="mining run (beam run extract_mentions output)")
  flags.output(p, help="dictionary directory to write (MODEL_DIR/dictionary)")
  p.add_argument("--min_linked", type=int, default=1,
                 help="keep forms with at least this many training anchors")
  p.add_argument("--min_link_prob", type=float, default=0.001,
                 help="keep forms linked at least this often when they occur")
  p.add_argument("--max_units", type=int, default=dictionary.MAX_UNITS,
                 help="longest form kept, in units (words; characters in ja/zh/th)")
  flags.overwrite(p, help="rebuild even if --output holds this mining run's dictionary")
  flags.no_progress(p)
  args = p.parse_args(argv)
  flags.require_positive(p, args, "max_units")
  try:
    manifest = dictionary.build(args.mining_dir, args.output, min_linked=args.min_linked,
                                min_link_prob=args.min_link_prob, max_units=args.max_units,
                                progress=not args.no_progress, overwrite=args.overwrite)
  except (FileNotFoundError, ValueError) as e:
    print(f"[{prog}] error: {e}", file=sys.stderr)
    return 1
  if manifest.get("reused"):
    print(f"[{prog}] {args.output} already holds this mining run's dictionary; reused "
          f"(--overwrite rebuilds it)", file=sys.stderr)
    return 0
  langs = ", ".join(f"{lang} {c['forms']:,}" for lang, c in sorted(manifest["languages"].items()))
  print(f"[{prog}] {args.output}: forms per language: {langs}; "
        f"{manifest['document_chars']:,} characters of training documents read in "
        f"{manifest['seconds']} s", file=sys.stderr)
  return 0

