"""extract_mentions: Wikipedia dumps (+ a WikiData dump) -> mel's training records.

  beam run extract_mentions --wikipedia_dumps=GLOB[,GLOB] [--wikidata_dump=GLOB]
      --output_dir=DIR [Beam pipeline options, e.g. --runner=DataflowRunner ...]

Stages: read dumps -> parse articles -> resolve titles (redirect chains, WikiData sitelinks) ->
link mentions -> holdout split -> entity types (WikiData classes, else page categories) ->
entities (description choice, counts, types) -> entity pairs -> sharded TFRecords, the type
vocabulary, dead letters, summary. See mel/records.py for the output layout.
"""
import argparse
import dataclasses
import datetime
import hashlib
import logging
import os
import time
from typing import Dict, List

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines import entity_types
from beam_pipelines import read_dumps
from beam_pipelines import summary as summary_lib
from mel.wikipedia import titles
from beam_pipelines import transforms
from mel import records

# Local runners that never download anything (Beam 2.77's default first fetches Prism).
LOCAL_RUNNER = "FnApiRunner"


@dataclasses.dataclass(frozen=True)
class Config:
  """What the pipeline computes; stored in summary.json to decide whether a rerun can reuse it."""
  wikipedia_dumps: List[str]      # resolved file paths
  wikidata_dumps: List[str]
  output_dir: str
  qids_only: bool = False         # keep only entities with a QID (the paper's setting)
  context_chars: int = 256        # characters of left/right context kept per mention
  holdout_per_language: int = 1000
  holdout_max_fraction: float = 0.5
  exclude_titles: str = ""        # file of document titles kept out of training and holdout
  max_redirect_hops: int = 4
  max_pairs: int = 5              # entity-entity pairs per entity
  type_superclass_steps: int = 2  # P279 steps above each P31 class (0: P31 only)
  min_category_entities: int = 3  # a category type is kept when this many entities carry it
  seed: int = 0
  num_shards: int = 0             # 0: the runner decides
  write_documents: bool = True
  inputs_fingerprint: str = ""    # sha256 of the inputs' paths, sizes and the exclusion list


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="beam run extract_mentions",
      description="Mine WikiData-linked mentions, entities and entity pairs from Wikipedia "
                  "XML dumps. Unknown flags are passed to Beam (--runner, --project, ...); "
                  f"without --runner the local {LOCAL_RUNNER} runs the job.")
  p.add_argument("--wikipedia_dumps", required=True,
                 help="comma-separated globs of pages-articles XML dumps (.xml/.bz2/.gz/.xz; "
                      "local or gs://). The language comes from each dump's <dbname>. A "
                      "-multistream.xml.bz2 with its -multistream-index.txt.bz2 beside it is "
                      "read by many workers; index files the globs match are skipped.")
  p.add_argument("--wikidata_dump", default="",
                 help="glob of WikiData JSON dump files (.json/.bz2/.gz; a .bz2 of many "
                      "streams, as published, is read by many workers). Without it every "
                      "entity id is '<dbname>:<Title>'.")
  p.add_argument("--output_dir", "--output", dest="output_dir", required=True,
                 help="where the records go (local or gs://); --output is the same flag, the "
                      "name every `mel` command uses")
  p.add_argument("--qids_only", action="store_true",
                 help="drop pages that no WikiData item resolves (the paper's setting)")
  p.add_argument("--context_chars", type=int, default=Config.context_chars)
  p.add_argument("--holdout_per_language", type=int, default=Config.holdout_per_language,
                 help="mentions per language in the holdout split (whole documents)")
  p.add_argument("--holdout_max_fraction", type=float, default=Config.holdout_max_fraction,
                 help="never hold out more than this share of a language's mentions")
  p.add_argument("--exclude_titles", default="",
                 help="file of titles ('<dbname>\\t<title>' or '<title>' for every wiki) whose "
                      "mentions are kept out of both splits")
  p.add_argument("--max_redirect_hops", type=int, default=Config.max_redirect_hops)
  p.add_argument("--max_pairs", type=int, default=Config.max_pairs)
  p.add_argument("--type_superclass_steps", type=int, default=Config.type_superclass_steps,
                 help="entity types: expand each P31 class this many subclass-of (P279) steps "
                      "up the WikiData dump's class graph (0: P31 classes only)")
  p.add_argument("--min_category_entities", type=int, default=Config.min_category_entities,
                 help="entity types: keep a Wikipedia category (the types of entities without "
                      "P31) only if at least this many entities carry it")
  p.add_argument("--seed", type=int, default=Config.seed)
  p.add_argument("--num_shards", type=int, default=Config.num_shards)
  p.add_argument("--no_documents", action="store_true",
                 help="do not write the documents/ output (clean article text)")
  p.add_argument("--no_split_reads", action="store_true",
                 help="read every dump file whole on one worker (by default bz2 multistream "
                      "dumps with their index, and bz2 WikiData dumps, are read in byte ranges "
                      "by many workers; the records are the same)")
  p.add_argument("--split_bytes", type=int, default=read_dumps.DEFAULT_SPLIT_BYTES,
                 help="size of the byte ranges a split read starts from (runners may split "
                      "them further)")
  p.add_argument("--overwrite", action="store_true",
                 help="run even if output_dir holds a completed run with the same config")
  return p


def expand_globs(spec: str, what: str) -> Dict[str, int]:
  """Comma-separated globs -> {path: size in bytes}, in order; a glob matching nothing fails."""
  files = {}
  for pattern in [s.strip() for s in spec.split(",") if s.strip()]:
    matched = sorted((m.path, m.size_in_bytes)
                     for r in FileSystems.match([pattern]) for m in r.metadata_list)
    # A multistream dump's index sits beside it, and a glob like '*multistream*' takes both.
    matched = [(path, size) for path, size in matched if not path.endswith("-index.txt.bz2")]
    if not matched:
      raise FileNotFoundError(f"{what}: no file matches {pattern!r}")
    files.update(matched)
  return files


def fingerprint(files: Dict[str, int], excluded: frozenset) -> str:
  """Changes when an input is replaced (size), added or removed, or the exclusions change."""
  h = hashlib.sha256()
  for path, size in files.items():
    h.update(f"{path}\t{size}\n".encode("utf-8"))
  for wiki, title in sorted(excluded):
    h.update(f"x\t{wiki}\t{title}\n".encode("utf-8"))
  return h.hexdigest()


def read_excluded_titles(path: str) -> frozenset:
  """'<dbname>\\t<title>' or '<title>' lines -> {(dbname or '*', normalized title)}."""
  if not path:
    return frozenset()
  out = set()
  with FileSystems.open(path) as f:
    for line_no, raw in enumerate(f.read().decode("utf-8").splitlines(), start=1):
      line = raw.strip()
      if not line or line.startswith("#"):
        continue
      wiki, _, title = line.rpartition("\t")
      title = titles.normalize_title(title)
      if not title:
        raise ValueError(f"{path}:{line_no}: empty title")
      out.add((wiki.strip() or "*", title))
  return frozenset(out)


def _write_tfrecords(pcoll, output_dir, name, num_shards, label):
  return (pcoll | f"Encode{label}" >> beam.Map(lambda r: r.to_example_bytes())
          | f"Write{label}" >> beam.io.WriteToTFRecord(
              os.path.join(output_dir, name), file_name_suffix=records.TFRECORD_SUFFIX,
              num_shards=num_shards))


def build_pipeline(p: beam.Pipeline, config: Config, excluded: frozenset,
                   read_options: read_dumps.ReadOptions = read_dumps.ReadOptions()):
  """Wires every stage onto pipeline p. read_options say how dumps are read, not what is
  computed (the records are the same), so they are not part of the config."""
  counts, dead = [], []

  dumps = p | "WikipediaDumps" >> beam.Create(config.wikipedia_dumps)
  read = dumps | "ReadWikipedia" >> read_dumps.ReadWikipediaDumps(read_options)
  parsed = read["pages"] | "ParseArticles" >> transforms.ParseArticles(read["siteinfo"])
  counts += [read[transforms.COUNTS], parsed[transforms.COUNTS]]
  dead += [read[transforms.DEAD_LETTER], parsed[transforms.DEAD_LETTER]]
  articles, nodes = parsed["articles"], parsed["nodes"]

  if config.wikidata_dumps:
    wd = (p | "WikidataDumps" >> beam.Create(config.wikidata_dumps)
          | "ReadWikidata" >> read_dumps.ReadWikidata(read_options))
    items, class_graph = wd["items"], wd["classes"]
    # Only sitelinks into the wikis being mined can be link targets.
    dump_wikis = beam.pvalue.AsDict(read["siteinfo"])
    sitelinks = wd["sitelinks"] | "SitelinksOfDumpWikis" >> beam.Filter(
        lambda row, wikis: row[0][0] in wikis, dump_wikis)
    counts.append(wd[transforms.COUNTS])
    dead.append(wd[transforms.DEAD_LETTER])
  else:
    items = p | "NoItems" >> beam.Create([])
    class_graph = p | "NoClasses" >> beam.Create([])
    sitelinks = p | "NoSitelinks" >> beam.Create([])

  by_title = (nodes, sitelinks) | "EntityIdsByTitle" >> transforms.EntityIdsByTitle(
      config.max_redirect_hops, config.qids_only)
  targets = articles | "LinkTargets" >> beam.FlatMap(
      transforms.link_targets, excluded).with_outputs(transforms.COUNTS, main="targets")
  counts.append(targets[transforms.COUNTS])
  resolved = (targets.targets, by_title["titles"]) | "ResolveLinks" >> transforms.ResolveLinks()
  counts.append(resolved[transforms.COUNTS])
  dead.append(resolved[transforms.DEAD_LETTER])

  holdout_docs = resolved["resolved"] | "ChooseHoldout" >> transforms.ChooseHoldoutDocuments(
      config.holdout_per_language, config.holdout_max_fraction, config.seed)
  built = (articles, resolved["resolved"], holdout_docs) | (
      "MentionsAndDocuments" >> transforms.MentionsAndDocuments(config.context_chars,
                                                                config.write_documents))
  counts.append(built[transforms.COUNTS])
  train = built["mentions"] | "Train" >> beam.Filter(lambda m: m.split == "train")
  holdout = built["mentions"] | "Holdout" >> beam.Filter(lambda m: m.split == "holdout")

  pages = (by_title["article_entities"], articles) | "PagesOfEntities" >> (
      transforms.PagesOfEntities())
  types = (items, class_graph, pages) | "EntityTypes" >> entity_types.EntityTypes(
      config.type_superclass_steps, config.min_category_entities)
  entities = (items, pages, train, types["types"]) | (
      "BuildEntities" >> transforms.BuildEntities(config.max_pairs, config.seed))
  counts += [entities[transforms.COUNTS], types[transforms.COUNTS]]

  out, shards = config.output_dir, config.num_shards
  _write_tfrecords(train, out, records.MENTIONS_TRAIN, shards, "Train")
  _write_tfrecords(holdout, out, records.MENTIONS_HOLDOUT, shards, "Holdout")
  _write_tfrecords(entities["entities"], out, records.ENTITIES, shards, "Entities")
  _write_tfrecords(entities["pairs"], out, records.ENTITY_PAIRS, shards, "Pairs")
  if config.write_documents:
    _write_tfrecords(built["documents"], out, records.DOCUMENTS, shards, "Documents")
  (entities["entities"] | "EntityCountRow" >> beam.Map(summary_lib.entity_count_row)
   | "WriteEntityCounts" >> beam.io.WriteToText(
       os.path.join(out, records.ENTITY_COUNTS), file_name_suffix=".tsv",
       num_shards=shards, header="entity_id\tmentions\tper_language"))
  # One small file, written whole (atomically) like counts/language_totals.json; its counts
  # reach the summary, which therefore waits for it.
  counts.append(types["vocabulary"] | "TypeVocabulary" >> beam.combiners.ToList()
                | "WriteTypeVocabulary" >> beam.Map(summary_lib.write_type_vocabulary, out))
  (dead | "AllDeadLetters" >> beam.Flatten()
   | "WriteDeadLetters" >> beam.io.WriteToText(
       os.path.join(out, records.DEAD_LETTER), file_name_suffix=".jsonl.gz",
       num_shards=shards))

  all_counts = counts | "AllCounts" >> beam.Flatten() | "SumCounts" >> beam.CombineGlobally(
      transforms.SumCounts())
  totals = entities["language_totals"] | "TotalsDict" >> beam.combiners.ToDict()
  (all_counts | "WriteSummary" >> beam.Map(
      summary_lib.write_summary, config=dataclasses.asdict(config),
      language_totals=beam.pvalue.AsSingleton(totals)))


def _clear_outputs(output_dir):
  """Removes the outputs of an earlier, unfinished run so no stale shard mixes in."""
  stale = [os.path.join(output_dir, records.SUMMARY_JSON),
           os.path.join(output_dir, records.SUMMARY_TXT)]
  for sub in records.OUTPUT_SUBDIRS:
    stale += [m.path for r in FileSystems.match([os.path.join(output_dir, sub, "*")])
              for m in r.metadata_list]
  stale = [s for s in stale if FileSystems.exists(s)]
  if stale:
    logging.info("removing %d files of an earlier run in %s", len(stale), output_dir)
    FileSystems.delete(stale)


def run(argv=None) -> dict:
  """Parses flags, runs (or reuses) the job, prints and returns the summary."""
  parser = build_parser()
  args, beam_args = parser.parse_known_args(argv)
  if args.type_superclass_steps < 0:
    parser.error("--type_superclass_steps must be >= 0")
  if args.min_category_entities < 1:
    parser.error("--min_category_entities must be >= 1")
  if args.split_bytes < 1:
    parser.error("--split_bytes must be >= 1")
  if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
    beam_args.append(f"--runner={LOCAL_RUNNER}")
  wikipedia = expand_globs(args.wikipedia_dumps, "--wikipedia_dumps")
  wikidata = expand_globs(args.wikidata_dump, "--wikidata_dump") if args.wikidata_dump else {}
  excluded = read_excluded_titles(args.exclude_titles)
  config = Config(
      wikipedia_dumps=list(wikipedia), wikidata_dumps=list(wikidata),
      output_dir=args.output_dir, qids_only=args.qids_only, context_chars=args.context_chars,
      holdout_per_language=args.holdout_per_language,
      holdout_max_fraction=args.holdout_max_fraction, exclude_titles=args.exclude_titles,
      max_redirect_hops=args.max_redirect_hops, max_pairs=args.max_pairs,
      type_superclass_steps=args.type_superclass_steps,
      min_category_entities=args.min_category_entities, seed=args.seed,
      num_shards=args.num_shards, write_documents=not args.no_documents,
      inputs_fingerprint=fingerprint({**wikipedia, **wikidata}, excluded))

  previous = summary_lib.read_summary(args.output_dir)
  if not args.overwrite and previous and previous.get("config") == dataclasses.asdict(config):
    print(f"extract_mentions: {args.output_dir} already holds a completed run with this "
          "config and inputs; reusing it (pass --overwrite to run again).")
    print(summary_lib.format_summary(previous))
    return previous
  _clear_outputs(args.output_dir)

  started = time.time()
  print(f"extract_mentions: {len(config.wikipedia_dumps)} Wikipedia dump(s), "
        f"{len(config.wikidata_dumps)} WikiData dump(s) -> {args.output_dir}", flush=True)
  options = PipelineOptions(beam_args)
  with beam.Pipeline(options=options) as p:
    build_pipeline(p, config, excluded, read_dumps.ReadOptions(
        split_reads=not args.no_split_reads, split_bytes=args.split_bytes))
  summary = summary_lib.read_summary(args.output_dir)
  summary_lib.finish_summary(args.output_dir, summary, time.time() - started,
                             datetime.datetime.now(datetime.timezone.utc).isoformat())
  print(summary_lib.format_summary(summary))
  return summary
