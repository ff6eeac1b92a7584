"""Where the mining pipeline puts each record type, and readers for them.

The layout under an output directory (shards are gzip TFRecords of mel.schema records):
  mentions/train-*.tfrecord.gz     Mention, split "train"
  mentions/holdout-*.tfrecord.gz   Mention, split "holdout"
  entities/entities-*.tfrecord.gz  Entity
  entity_pairs/entity_pairs-*.tfrecord.gz  EntityPair
  documents/documents-*.tfrecord.gz  Document (clean article text)
  counts/entity_counts-*.tsv       entity_id, training mentions, per-language counts
  counts/language_totals.json      training mentions per language, n(l)
  types/type_vocabulary.tsv        type_id, entities, source (wikidata / category), label
  dead_letter/dead_letter-*.jsonl.gz  DeadLetter, one JSON object a line
  summary.json, summary.txt        written last: their presence means the run completed
"""
import glob as _glob
import gzip
import json
import os
import re
from typing import Iterable, Iterator, List, NamedTuple, Type

from mel import schema

MENTIONS_TRAIN = "mentions/train"
MENTIONS_HOLDOUT = "mentions/holdout"
ENTITIES = "entities/entities"
ENTITY_PAIRS = "entity_pairs/entity_pairs"
DOCUMENTS = "documents/documents"
ENTITY_COUNTS = "counts/entity_counts"
LANGUAGE_TOTALS = "counts/language_totals.json"
TYPE_VOCABULARY = "types/type_vocabulary.tsv"
DEAD_LETTER = "dead_letter/dead_letter"
SUMMARY_JSON = "summary.json"
SUMMARY_TXT = "summary.txt"

TFRECORD_SUFFIX = ".tfrecord.gz"
RECORD_TYPE_OF = {MENTIONS_TRAIN: schema.Mention, MENTIONS_HOLDOUT: schema.Mention,
                  ENTITIES: schema.Entity, ENTITY_PAIRS: schema.EntityPair,
                  DOCUMENTS: schema.Document}
OUTPUT_SUBDIRS = ("mentions", "entities", "entity_pairs", "documents", "counts", "types",
                  "dead_letter")
TYPE_SOURCES = ("wikidata", "category")
TYPE_VOCABULARY_HEADER = "type_id\tentities\tsource\tlabel"


def pattern(output_dir: str, name: str) -> str:
  """Glob of the shards of one output, e.g. pattern(d, MENTIONS_TRAIN)."""
  suffix = TFRECORD_SUFFIX if name in RECORD_TYPE_OF else ""
  if name == DEAD_LETTER:
    suffix = ".jsonl.gz"
  elif name == ENTITY_COUNTS:
    suffix = ".tsv"
  return os.path.join(output_dir, f"{name}-*-of-*{suffix}")


def read_records(record_type: Type, file_pattern: str) -> Iterator:
  """Yields the records of every shard matching file_pattern (local files; small outputs).

  Training and evaluation read the same shards with tf.data and record_type.feature_spec().
  """
  import tensorflow as tf
  files = sorted(tf.io.gfile.glob(file_pattern))
  if not files:
    raise FileNotFoundError(f"no files match {file_pattern}")
  for path in files:
    for raw in tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator():
      yield record_type.from_example(raw)


def read_output(output_dir: str, name: str) -> Iterator:
  return read_records(RECORD_TYPE_OF[name], pattern(output_dir, name))


def read_dead_letters(output_dir: str) -> Iterator[schema.DeadLetter]:
  for path in sorted(_glob.glob(pattern(output_dir, DEAD_LETTER))):
    with gzip.open(path, "rt", encoding="utf-8") as f:
      for line in f:
        yield schema.DeadLetter.from_json(line)


def read_summary(output_dir: str) -> dict:
  """summary.json of a local output_dir (the launcher reads gs:// ones through Beam)."""
  with open(os.path.join(output_dir, SUMMARY_JSON), encoding="utf-8") as f:
    return json.load(f)


class TypeEntry(NamedTuple):
  """One line of TYPE_VOCABULARY: a kept type and how many entity records carry it."""
  type_id: str    # "Q5" (WikiData class) or "cat:<wiki>:<Title>" (Wikipedia category)
  entities: int
  source: str     # one of TYPE_SOURCES
  label: str      # for display: the class's label (English, else any), the category title


_TSV_UNSAFE_RE = re.compile(r"[\t\r\n]+")


def sorted_type_vocabulary(entries: Iterable[TypeEntry]) -> List[TypeEntry]:
  """Most carried first, then by id: the order of the file."""
  return sorted(entries, key=lambda e: (-e.entities, e.type_id))


def format_type_vocabulary(entries: Iterable[TypeEntry]) -> str:
  """The TYPE_VOCABULARY file's text (header, then sorted rows); tabs in labels become spaces."""
  lines = [TYPE_VOCABULARY_HEADER]
  for e in sorted_type_vocabulary(entries):
    lines.append(f"{e.type_id}\t{e.entities}\t{e.source}\t"
                 f"{_TSV_UNSAFE_RE.sub(' ', e.label)}")
  return "\n".join(lines) + "\n"


def read_type_vocabulary(output_dir: str) -> List[TypeEntry]:
  """TYPE_VOCABULARY of a local output_dir, sorted by entities (desc) then id."""
  with open(os.path.join(output_dir, TYPE_VOCABULARY), encoding="utf-8") as f:
    lines = f.read().splitlines()
  if not lines or lines[0] != TYPE_VOCABULARY_HEADER:
    raise ValueError(f"{TYPE_VOCABULARY} in {output_dir}: missing header")
  entries = []
  for line in lines[1:]:
    type_id, n, source, label = line.split("\t")
    entries.append(TypeEntry(type_id, int(n), source, label))
  return sorted_type_vocabulary(entries)
