"""Builds a nearest-entity index over a model's entity embeddings (mel encode's output).

    mel index --model_dir M                   # M/embeddings -> M/index
    mel index --embeddings E --output I       # any embeddings directory
        [--kind scann|brute_force] [--shard_size N] [--scann_param KEY=VALUE ...]
        [--no_verify] [--overwrite] [--no_progress]

The embeddings are streamed (read twice: a ScaNN tree is trained on a sample spread over all
rows, then every row is inserted), so the float32 vectors never sit in memory at once. Above
--shard_size vectors the index is split into shards that share one ScaNN tree (trained once)
and are filled and written one at a time. The output is written atomically: --output holds
either the previous complete index or the new one. Load it with mel.retrieval.load_index.

A progress bar counts vectors (and names the shard); before training, a line says how much
memory saving a shard will take (ScaNN copies its codebook once per leaf while it saves: ~11 GB
for 20M x 300-d) and a warning says when that exceeds what is available. --scann_param
overrides mel.retrieval.scann_params_for's choice, e.g. dims_per_block=4 (half the codes and
half that copy) or num_leaves=8000.

An index already at --output that was built from the same embeddings (same model, export step,
entity table and embeddings directory) with the same kind is reused; --overwrite rebuilds it.
"""
import json
import sys
import time

from mel import flags
from mel.model_dir import ModelDir


def parse_scann_params(pairs) -> dict:
  """["num_leaves=8000", "spherical=false"] -> {"num_leaves": 8000, "spherical": False}."""
  from mel.retrieval.scann import scann_params_for
  known = scann_params_for(10**6)
  params = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep or key not in known:
      raise ValueError(f"--scann_param {pair!r}: expected KEY=VALUE with KEY one of "
                       f"{', '.join(sorted(known))}")
    try:
      params[key] = json.loads(value)
    except json.JSONDecodeError:
      params[key] = value   # a bare string, e.g. reorder_dtype=int8
  return params


def parse_args(argv=None, prog: str = "mel index"):
  """The parsed flags, --embeddings and --output filled in from --model_dir."""
  parser = flags.parser(prog, __doc__)
  flags.model_dir(parser, required=False, default="",
                  help="model directory: its embeddings/ are indexed into its index/")
  parser.add_argument("--embeddings", default="",
                      help="mel.retrieval.embeddings directory (default: MODEL_DIR/embeddings)")
  flags.output(parser, required=False, help="index directory to write (default: MODEL_DIR/index)")
  parser.add_argument("--kind", choices=("scann", "brute_force"), default="scann",
                      help="scann (default) or brute_force (exact, float32 in memory)")
  flags.shard_size(parser, None, help="vectors per index shard (default: scann 1.875 GB of "
                   "int8 + codes, 5M at 300-d; brute_force 2.4 GB of float32)")
  parser.add_argument("--scann_param", action="append", default=[], metavar="KEY=VALUE",
                      help="override one of ScaNN's parameters (repeatable), e.g. "
                      "dims_per_block=4, num_leaves=8000, training_sample_size=1000000")
  parser.add_argument("--no_verify", action="store_true",
                      help="skip the embeddings' checksums (sizes and shapes are still checked)")
  flags.overwrite(parser, help="rebuild even when --output holds an index of these embeddings")
  flags.no_progress(parser)
  args = parser.parse_args(argv)
  if args.model_dir:
    directory = ModelDir(args.model_dir)
    args.embeddings = args.embeddings or directory.embeddings
    args.output = args.output or directory.index
  elif not (args.embeddings and args.output):
    parser.error("give --model_dir, or both --embeddings and --output")
  flags.require_positive(parser, args, "shard_size")
  try:
    args.scann_params = parse_scann_params(args.scann_param)
  except ValueError as e:
    parser.error(str(e))
  if args.scann_params and args.kind != "scann":
    parser.error("--scann_param applies to --kind scann only")
  return args


def main(argv=None, prog: str = "mel index") -> int:
  args = parse_args(argv, prog)
  from mel import retrieval
  from mel.retrieval import embeddings
  started = time.time()
  try:
    if not args.overwrite and retrieval.index_is_current(args.output, args.embeddings, args.kind):
      print(f"index {args.output}: built from {args.embeddings} already; reused "
            "(--overwrite rebuilds it)")
      return 0
    manifest = retrieval.build_index_from_embeddings(
        args.embeddings, args.output, kind=args.kind, shard_size=args.shard_size,
        params=args.scann_params or None, verify=not args.no_verify,
        progress=not args.no_progress)
  except embeddings.EmbeddingsError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  seconds = time.time() - started
  size = retrieval.index_bytes(args.output)
  print(f"index {args.output}: kind {args.kind}, {manifest['count']} vectors of dimension "
        f"{manifest['dimension']}, {len(manifest['shards'])} shard(s), built in {seconds:.1f}s, "
        f"{size / 1e6:.1f} MB")
  return 0
