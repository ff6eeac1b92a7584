"""Entities to add to a knowledge base: a user's JSON lines or another mining run's records,
checked and turned into the text a model's entity tower reads.

    {"id": "Q84263196", "description": "disease caused by SARS-CoV-2",
     "labels": {"en": "COVID-19", "de": "COVID-19"}, "aliases": {"en": ["covid"]},
     "qid": "Q84263196", "description_lang": "en"}

Required: "id" (no tab or line break) and a non-empty "description". Optional: "labels"
{lang: label} and "aliases" {lang: [alias, ...]} (the spotter's dictionary gains them, see
mel.linking.dictionary), "qid" (when the id is not a QID itself, e.g. "mykb:42"), and
"description_lang" (which label names the entity). The text encoded is what training encodes
for mined entities (mel.entity_table.text_from): the description, with the name first when the
model was trained with data.entity_names.

Every problem is a KBInputError naming the file, the line and the id: a line that is not a JSON
object, a missing or empty field, a wrong type, an id given twice in one batch.
"""
import hashlib
import json
import os
import re
from typing import Dict, Iterable, List, Mapping, NamedTuple, Tuple

from mel import entity_table

QID = re.compile(r"Q[1-9][0-9]*")
RECORDS = "records.jsonl"   # a change's (or a compacted base's) added entities, as given


class KBInputError(ValueError):
  """Entities to add (or ids to remove) are malformed; the message names the record."""


class KBEntity(NamedTuple):
  """One entity to add: its id, the text the entity tower reads, and what the dictionary and
  the results need (labels, aliases, qid)."""
  entity_id: str
  text: str
  description: str
  labels: Mapping[str, str]
  aliases: Mapping[str, Tuple[str, ...]]
  qid: str
  description_lang: str = ""

  def names(self) -> Dict[str, List[str]]:
    """{lang: [label, aliases...]}: the texts that name the entity, per language."""
    out: Dict[str, List[str]] = {}
    for lang, label in self.labels.items():
      out.setdefault(lang, []).append(label)
    for lang, aliases in self.aliases.items():
      out.setdefault(lang, []).extend(aliases)
    return out

  def to_json(self) -> dict:
    return {"id": self.entity_id, "description": self.description,
            "labels": dict(self.labels), "aliases": {k: list(v) for k, v in self.aliases.items()},
            "qid": self.qid, "description_lang": self.description_lang}


def check_id(entity_id, where: str) -> str:
  if not isinstance(entity_id, str) or not entity_id.strip():
    raise KBInputError(f"{where}: \"id\" must be a non-empty string, got {entity_id!r}")
  if entity_id != entity_id.strip() or any(c in entity_id for c in "\t\n\r"):
    raise KBInputError(f"{where}: id {entity_id!r} has surrounding spaces, a tab or a line "
                       "break")
  return entity_id


def _str_map(value, field: str, where: str) -> Dict[str, str]:
  if value is None:
    return {}
  if not isinstance(value, dict) or not all(
      isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()):
    raise KBInputError(f"{where}: \"{field}\" must be an object of language -> string")
  return {k: v for k, v in value.items() if v.strip()}


def _list_map(value, where: str) -> Dict[str, Tuple[str, ...]]:
  if value is None:
    return {}
  if not isinstance(value, dict) or not all(
      isinstance(k, str) and k and isinstance(v, list) and all(isinstance(a, str) for a in v)
      for k, v in value.items()):
    raise KBInputError(f"{where}: \"aliases\" must be an object of language -> [string, ...]")
  return {k: tuple(a for a in v if a.strip()) for k, v in value.items()}


def from_json(record, where: str, with_name: bool = False) -> KBEntity:
  """One JSON record (a dict) -> KBEntity; KBInputError naming where (file:line) otherwise."""
  if not isinstance(record, dict):
    raise KBInputError(f"{where}: not a JSON object")
  entity_id = check_id(record.get("id"), where)
  where = f"{where} (id {entity_id!r})"
  unknown = sorted(set(record) - {"id", "description", "labels", "aliases", "qid",
                                  "description_lang"})
  if unknown:
    raise KBInputError(f"{where}: unknown field(s) {', '.join(unknown)}")
  description = record.get("description")
  if not isinstance(description, str) or not description.strip():
    raise KBInputError(f"{where}: empty or missing \"description\" (the entity tower encodes "
                       "it; an entity without one cannot be linked)")
  labels = _str_map(record.get("labels"), "labels", where)
  qid = record.get("qid") or (entity_id if QID.fullmatch(entity_id) else "")
  if not isinstance(qid, str) or (qid and not QID.fullmatch(qid)):
    raise KBInputError(f"{where}: \"qid\" must look like Q123, got {record.get('qid')!r}")
  description_lang = record.get("description_lang") or ""
  if not isinstance(description_lang, str):
    raise KBInputError(f"{where}: \"description_lang\" must be a string")
  name = entity_table.name_from_labels(labels, description_lang)
  text = entity_table.text_from(description, name, with_name)
  return KBEntity(entity_id, text, entity_table.clean(description), labels,
                  _list_map(record.get("aliases"), where), qid, description_lang)


def no_duplicates(entities: Iterable[KBEntity], source: str) -> List[KBEntity]:
  """The entities as a list; KBInputError naming an id given twice."""
  out, seen = [], {}
  for n, entity in enumerate(entities, 1):
    if entity.entity_id in seen:
      raise KBInputError(f"{source}: id {entity.entity_id!r} appears twice (records "
                         f"{seen[entity.entity_id]} and {n}); one batch holds each id once")
    seen[entity.entity_id] = n
    out.append(entity)
  return out


def read_jsonl(path: str, with_name: bool = False) -> List[KBEntity]:
  """The entities of a JSON lines file (blank lines skipped), checked."""
  if not os.path.isfile(path):
    raise KBInputError(f"{path}: no such file")

  def parse():
    with open(path, encoding="utf-8") as f:
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          record = json.loads(line)
        except ValueError as e:
          raise KBInputError(f"{path}:{n}: not JSON ({e})") from None
        yield from_json(record, f"{path}:{n}", with_name)

  entities = no_duplicates(parse(), path)
  if not entities:
    raise KBInputError(f"{path}: no entities")
  return entities


def from_mining(mining_dir: str, with_name: bool = False) -> List[KBEntity]:
  """The entities of a mining run (its entities/ records), texts as training makes them."""
  from mel import records
  entities = []
  for e in records.read_output(mining_dir, records.ENTITIES):
    entities.append(KBEntity(
        e.entity_id, entity_table.entity_text(e, with_name), entity_table.clean(e.description),
        dict(e.labels), {k: tuple(v) for k, v in e.aliases.items()}, e.qid, e.description_lang))
  entities = no_duplicates(sorted(entities), mining_dir)
  if not entities:
    raise KBInputError(f"{mining_dir}: no entity records")
  return entities


def read_records(path: str) -> List[KBEntity]:
  """A change's records.jsonl (write_records: the input records plus the text encoded)."""
  entities = []
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      try:
        d = json.loads(line)
        entities.append(KBEntity(d["id"], d["text"], d["description"], d["labels"],
                                 {k: tuple(v) for k, v in d["aliases"].items()}, d["qid"],
                                 d["description_lang"]))
      except (ValueError, KeyError, AttributeError, TypeError) as e:
        raise KBInputError(f"{path}:{n}: not a knowledge-base record ({e!r})") from None
  return entities


def write_records(path: str, entities: Iterable[KBEntity]) -> None:
  with open(path, "w", encoding="utf-8") as f:
    for entity in entities:
      record = {**entity.to_json(), "text": entity.text}
      f.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def fingerprint(entities: Iterable[KBEntity]) -> str:
  """sha256 of the ids and texts: encodings of the same batch are resumed, not redone."""
  digest = hashlib.sha256()
  for entity in entities:
    digest.update(f"{entity.entity_id}\t{entity.text}\n".encode("utf-8"))
  return digest.hexdigest()


def with_name_of(model_dir: str) -> bool:
  """Whether the model's entity texts put the name first: its export manifest's
  "entity_names", else (exports before it was recorded) config.yaml's data.entity_names."""
  from mel.model_dir import ModelDir
  directory = ModelDir(model_dir)
  export = directory.read_export_manifest()
  if "entity_names" in export:
    return bool(export["entity_names"])
  try:
    config = directory.read_config()
  except FileNotFoundError:
    raise KBInputError(f"{directory.export_manifest} does not say whether entity texts start "
                       f"with the entity's name and {directory.config} is missing: copy the "
                       "model's config.yaml there") from None
  return bool((config.get("data") or {}).get("entity_names", False))
