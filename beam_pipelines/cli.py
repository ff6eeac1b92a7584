"""The `beam` command: `beam run PIPELINE [flags]`; `beam run --help` lists the pipelines."""
import argparse
import importlib
import logging
import sys

# name -> (module with run(argv), one-line description)
PIPELINES = {
    "extract_mentions": ("beam_pipelines.extract_mentions",
                         "Wikipedia XML dumps (+ WikiData JSON dump) -> mentions, entities, "
                         "entity pairs, counts (sharded TFRecords) and a summary"),
    "encode_entities": ("beam_pipelines.encode_entities",
                        "a trained model dir's entities -> embedding shards (RunInference with "
                        "the exported entity tower)"),
}


def _pipeline_list():
  return "\n".join(f"  {name:<18} {desc}" for name, (_, desc) in sorted(PIPELINES.items()))


def main(argv=None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = argparse.ArgumentParser(
      prog="beam", formatter_class=argparse.RawDescriptionHelpFormatter,
      description="Run mel's Apache Beam pipelines.",
      epilog="pipelines:\n" + _pipeline_list())
  sub = parser.add_subparsers(dest="command", required=True)
  run_parser = sub.add_parser(
      "run", add_help=False, formatter_class=argparse.RawDescriptionHelpFormatter,
      description="beam run PIPELINE [pipeline flags] [Beam options]",
      epilog="pipelines:\n" + _pipeline_list() +
      "\n\n`beam run PIPELINE --help` lists a pipeline's flags.")
  run_parser.add_argument("pipeline", nargs="?")
  run_parser.add_argument("-h", "--help", action="store_true")
  args, rest = parser.parse_known_args(argv)
  if args.pipeline is None:
    run_parser.print_help()
    return 0 if args.help else 2
  if args.pipeline not in PIPELINES:
    print(f"beam run: unknown pipeline {args.pipeline!r}; available:\n{_pipeline_list()}",
          file=sys.stderr)
    return 2
  if args.help:
    rest.append("--help")
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
  logging.getLogger("apache_beam").setLevel(logging.WARNING)
  module = importlib.import_module(PIPELINES[args.pipeline][0])
  try:
    summary = module.run(rest)
  except (FileNotFoundError, ValueError) as e:
    print(f"beam run {args.pipeline}: error: {e}", file=sys.stderr)
    return 1
  ok = all(c["ok"] for c in summary.get("checks", {}).values())
  return 0 if ok else 3


if __name__ == "__main__":
  sys.exit(main())
