"""The entity table: every entity id with the text the entity tower reads, one per line.

    <entity_id> TAB <text> NEWLINE     (line number = the entity's row, Model E's table index)

Written once per model dir (mel.model_dir.ENTITIES) from the mining pipeline's Entity records,
so training, entity encoding and serving all agree on which entities exist, their rows and their
texts. TF reads it with a TextFileInitializer (no graph-size limit at 20M entities).
"""
import os
from typing import Iterable, List, Mapping, Optional, Tuple

from mel import records, schema

MAX_TEXT_CHARS = 2000   # far beyond 64 wordpieces; keeps lines bounded


NAME_SEPARATOR = " — "


def entity_name(entity: schema.Entity) -> str:
  """The entity's label in its description's language, else its best-known label, else its
  page title (the entity id of a page-only entity is wiki:title)."""
  return name_from_labels(entity.labels, entity.description_lang, entity.mention_counts,
                          entity.entity_id.split(":", 1)[-1])


def name_from_labels(labels: Mapping[str, str], description_lang: str = "",
                     mention_counts: Optional[Mapping[str, int]] = None,
                     fallback: str = "") -> str:
  """The label in description_lang, else the label of the language with the most mentions
  (ties by code), else fallback."""
  counts = mention_counts or {}
  languages = sorted(labels, key=lambda lang: (-counts.get(lang, 0), lang))
  if description_lang in labels:
    languages.insert(0, description_lang)
  name = labels[languages[0]] if languages else ""
  return name or fallback


def entity_text(entity: schema.Entity, with_name: bool = False) -> str:
  """What Model F encodes: the chosen description, else a label, else the page title.

  212 of the 2,950 entities of the shared excerpts have no description (no first sentence
  and no WikiData description); a label still tells the tower more than an empty input.
  with_name (data.entity_names) puts the name first, "name — description", unless the
  description starts with it: a first sentence need not name its subject (the excerpts' year
  pages start with their first event, "5 січня — розпочався Нюрнберзький процес", never "1946").
  """
  return text_from(entity.description, entity_name(entity), with_name)


def text_from(description: str, name: str, with_name: bool = False) -> str:
  """entity_text's rule for any entity: description (name first with with_name), else name."""
  text = description
  if not text:
    text = name
  elif with_name and not clean(text).casefold().startswith(clean(name).casefold()):
    text = name + NAME_SEPARATOR + text
  return clean(text)


def clean(text: str) -> str:
  """One TSV field: no tabs or line breaks, bounded length."""
  return " ".join(text.replace("\t", " ").split())[:MAX_TEXT_CHARS]


def rows_from_records(entities: Iterable[schema.Entity],
                      with_names: bool = False) -> List[Tuple[str, str]]:
  """(entity_id, text) sorted by entity_id, so rows do not depend on shard order."""
  rows = sorted((e.entity_id, entity_text(e, with_names)) for e in entities)
  for (a, _), (b, _) in zip(rows, rows[1:]):
    if a == b:
      raise ValueError(f"entity {a!r} appears twice in the entity records")
  return rows


def write(rows: List[Tuple[str, str]], path: str) -> None:
  """Writes the table atomically (temp file, then rename); local or gs://."""
  import tensorflow as tf
  for entity_id, _ in rows:
    if not entity_id or any(c in entity_id for c in "\t\n\r"):
      raise ValueError(f"entity id {entity_id!r} cannot be stored in the entity table")
  tmp = f"{path}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(tmp, "w") as f:
    for entity_id, text in rows:
      f.write(f"{entity_id}\t{text}\n")
  tf.io.gfile.rename(tmp, path, overwrite=True)


def write_from_mining(mining_dir: str, path: str, with_names: bool = False) -> int:
  """Builds the table from <mining_dir>/entities; returns the number of entities."""
  rows = rows_from_records(records.read_output(mining_dir, records.ENTITIES), with_names)
  if not rows:
    raise ValueError(f"{mining_dir}: no entity records")
  write(rows, path)
  return len(rows)


def read(path: str) -> List[Tuple[str, str]]:
  """(entity_id, text) per row, in row order."""
  import tensorflow as tf
  rows = []
  with tf.io.gfile.GFile(path, "r") as f:
    for n, line in enumerate(f, 1):
      parts = line.rstrip("\n").split("\t")
      if len(parts) != 2 or not parts[0]:
        raise ValueError(f"{path}: line {n} is not 'entity_id<TAB>text'")
      rows.append((parts[0], parts[1]))
  return rows


def count(path: str) -> int:
  import tensorflow as tf
  with tf.io.gfile.GFile(path, "r") as f:
    return sum(1 for _ in f)


def text_lookup(path: str):
  """tf.lookup table entity_id -> text ('' when unknown)."""
  import tensorflow as tf
  init = tf.lookup.TextFileInitializer(
      path, key_dtype=tf.string, key_index=0, value_dtype=tf.string, value_index=1,
      delimiter="\t")
  return tf.lookup.StaticHashTable(init, default_value="")


def row_lookup(path: str):
  """tf.lookup table entity_id -> int64 row (-1 when unknown)."""
  import tensorflow as tf
  init = tf.lookup.TextFileInitializer(
      path, key_dtype=tf.string, key_index=0, value_dtype=tf.int64,
      value_index=tf.lookup.TextFileIndex.LINE_NUMBER, delimiter="\t")
  return tf.lookup.StaticHashTable(init, default_value=-1)
