"""`mel kb`: grow a trained model's knowledge base without retraining.

    mel kb add     --model_dir M --entities new.jsonl [--replace] [--embeddings E]
    mel kb add     --model_dir M --mining_dir D [--skip_existing]  # another mining run's
    mel kb remove  --model_dir M --ids ids.txt | --id Q42 [--id ...]
    mel kb compact --model_dir M [--kind scann|brute_force]
    mel kb status  --model_dir M

`add` encodes the entities with the model's entity tower (resumable: a killed run continues in
kb/staging/) unless --embeddings gives their vectors (mel encode --entities ... --output E),
then commits them as one generation: an added index segment, the old rows of replaced ids
masked. Ids already in the knowledge base are an error unless --replace (replace them) or
--skip_existing (leave them out). `remove` masks ids;
an unknown id is an error. `compact` rebuilds one index from every live entity. Each command
is one atomic generation (mel.retrieval.kb); `mel.load(...).reload()`, `:reload` in
`mel link -i` and `mel evaluate` see the new one. The spotter's dictionary gains the labels and
aliases of added entities when a linker loads the generation (mel.linking.dictionary).

Exit status: 0 ok, 1 bad input or an unusable knowledge base (the message names the record or
file; the knowledge base is unchanged), 2 usage.
"""
import os
import shutil
import sys
import time
from typing import List, Optional

from mel import flags
from mel.model_dir import ModelDir

STAGING = "staging"


def _print_summary(prog: str, manifest: dict, seconds: float) -> None:
  s = manifest.get("summary", {})
  print(f"[{prog}] generation {manifest['generation']}: {s.get('added', 0)} added, "
        f"{s.get('replaced', 0)} replaced, {s.get('removed', 0)} removed; "
        f"{s.get('entities', '?')} entities live, {len(manifest.get('changes', []))} change(s) "
        f"since the base ({seconds:.1f} s)", file=sys.stderr)


def run_add(args, prog: str) -> None:
  from mel.retrieval import encode, kb_changes, kb_entities
  from mel.retrieval import kb
  entities = encode.read_entity_set(args.model_dir, args.entities, args.mining_dir)
  source = args.entities or args.mining_dir
  if args.skip_existing:
    live = kb.open_kb(args.model_dir, verify=False).locate(e.entity_id for e in entities)
    if live:
      print(f"[{prog}] {len(live)} of the {len(entities)} entities are in the knowledge base "
            "already: skipped (--skip_existing)", file=sys.stderr)
    entities = [e for e in entities if e.entity_id not in live]
    if not entities:
      print(f"[{prog}] nothing to add", file=sys.stderr)
      return
  staging = ""
  embeddings_dir = args.embeddings
  if not embeddings_dir:
    fingerprint = kb_entities.fingerprint(entities)
    staging = os.path.join(ModelDir(args.model_dir).kb, STAGING, fingerprint[:16])
    embeddings_dir = staging
    encode.encode_entity_set(args.model_dir, entities, staging, args.batch_size,
                             progress=not args.no_progress)
  started = time.time()
  manifest = kb_changes.add(args.model_dir, entities, embeddings_dir, replace=args.replace,
                            kind=args.kind, source=source, progress=not args.no_progress)
  if staging:
    shutil.rmtree(staging, ignore_errors=True)
  _print_summary(prog, manifest, time.time() - started)


def read_ids(args) -> List[str]:
  from mel.retrieval.kb_entities import KBInputError, check_id
  ids = list(args.id)
  if args.ids:
    if not os.path.isfile(args.ids):
      raise KBInputError(f"{args.ids}: no such file")
    with open(args.ids, encoding="utf-8") as f:
      for n, line in enumerate(f, 1):
        if line.strip():
          ids.append(check_id(line.strip(), f"{args.ids}:{n}"))
  return ids


def main(argv: Optional[List[str]] = None, prog: str = "mel kb") -> int:
  p = flags.parser(prog, __doc__)
  commands = p.add_subparsers(dest="command", required=True)
  add = commands.add_parser("add", help="add (or replace) entities")
  remove = commands.add_parser("remove", help="remove entities by id")
  compact = commands.add_parser("compact", help="rebuild one index from every live entity")
  status = commands.add_parser("status", help="the current generation and its history")
  for sub in (add, remove, compact, status):
    flags.model_dir(sub, help="a trained model dir with its index (mel encode, mel index)")
  add.add_argument("--entities", default="", help="JSON lines: {id, description, labels, "
                   "aliases, qid, description_lang} (mel.retrieval.kb_entities)")
  flags.mining_dir(add, help="add another mining run's entities (its entities/ records)")
  add.add_argument("--embeddings", default="", help="their vectors, already encoded (mel "
                   "encode --entities ... --output E); default: encode them now")
  existing = add.add_mutually_exclusive_group()
  existing.add_argument("--replace", action="store_true",
                        help="replace entities already in the knowledge base (same id)")
  existing.add_argument("--skip_existing", action="store_true",
                        help="leave out entities already in the knowledge base (e.g. another "
                        "mining run's entities: add only the new ones)")
  for sub in (add, compact):
    sub.add_argument("--kind", choices=("scann", "brute_force"), default=None,
                     help="index kind of the new segment (default: the base's)")
  flags.batch_size(add)
  remove.add_argument("--ids", default="", help="file of entity ids, one per line")
  remove.add_argument("--id", action="append", default=[], help="an entity id (repeatable)")
  for sub in (add, compact):
    flags.no_progress(sub)
  args = p.parse_args(argv)
  if args.command == "add" and bool(args.entities) == bool(args.mining_dir):
    p.error("kb add: give one of --entities and --mining_dir")
  if args.command == "remove" and not (args.ids or args.id):
    p.error("kb remove: give --ids FILE or --id ID")
  from mel.retrieval import kb, kb_changes
  from mel.retrieval.embeddings import EmbeddingsError
  from mel.retrieval.index import IndexLoadError
  started = time.time()
  try:
    if args.command == "add":
      run_add(args, prog)
    elif args.command == "remove":
      manifest = kb_changes.remove(args.model_dir, read_ids(args),
                                   source=args.ids or "--id")
      _print_summary(prog, manifest, time.time() - started)
    elif args.command == "compact":
      manifest = kb_changes.compact(args.model_dir, kind=args.kind,
                                    progress=not args.no_progress)
      if manifest is None:
        print(f"[{prog}] generation {kb.current_generation(args.model_dir)} has no changes "
              "since its base: nothing to compact", file=sys.stderr)
      else:
        _print_summary(prog, manifest, time.time() - started)
    else:
      print(describe(args.model_dir))
  except (FileNotFoundError, ValueError, EmbeddingsError, IndexLoadError) as e:
    print(f"[{prog}] error: {e}", file=sys.stderr)
    return 1
  return 0


def describe(model_dir: str) -> str:
  """The current generation and the history of changes, for a person."""
  from mel.retrieval import kb
  current = kb.open_kb(model_dir, verify=False)
  m = current.manifest
  lines = [f"{model_dir}: generation {current.generation}, {current.live_count} entities "
           f"live in {len(current.segments)} segment(s), "
           f"{sum(len(v) for v in current.masks.values())} masked row(s)",
           f"  base: {m['base']['path']} ({len(current.segments[0].index)} rows)"]
  history = os.path.join(ModelDir(model_dir).kb, kb.GENERATIONS)
  if os.path.isdir(history):
    import json
    for name in sorted(os.listdir(history)):
      with open(os.path.join(history, name), encoding="utf-8") as f:
        g = json.load(f)
      s = g.get("summary", {})
      lines.append(f"  {g['generation']:>5}  {g['created']}  {g['command']:<8} "
                   f"+{s.get('added', 0)} ~{s.get('replaced', 0)} -{s.get('removed', 0)} "
                   f"-> {s.get('entities', '?')} live  {s.get('source', '')}")
  return "\n".join(lines)
