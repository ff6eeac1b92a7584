"""WikiData JSON dump entities -> KB items, with the paper's filters (App. C, Table 8).

The dump is `[`, then one entity per line followed by a comma, then `]`; JSON-lines files and
API answers (`{"entities": {...}}`) are read too. Kept: items (Q...) that are not an instance
(P31) or subclass (P279) of a Wikimedia-internal class and that have at least one Wikipedia
sitelink (any language).

Each item's P31 (instance of) and P279 (subclass of) values are kept apart too: the entity
types (beam_pipelines/entity_types.py) expand P31 classes up the P279 graph, whose nodes are
every item of the dump, kept or not (most classes have no Wikipedia page).
"""
import dataclasses
import json
from typing import Iterator, Mapping, Optional, Tuple, Union

from mel import languages

# Paper Table 8: Wikimedia-internal administrative classes.
WIKIMEDIA_INTERNAL_CLASSES = frozenset({
    "Q4167836",   # Wikimedia category
    "Q24046192",  # Wikimedia category of stubs
    "Q20010800",  # Wikimedia user language category
    "Q11266439",  # Wikimedia template
    "Q11753321",  # Wikimedia navigational template
    "Q19842659",  # Wikimedia user language template
    "Q21528878",  # Wikimedia redirect page
    "Q17362920",  # Wikimedia duplicated page
    "Q14204246",  # Wikimedia project page
    "Q21025364",  # Wikimedia project page
    "Q17442446",  # Wikimedia internal item
    "Q26267864",  # Wikimedia KML file
    "Q4663903",   # Wikimedia portal
    "Q15184295",  # Wikimedia module
})

# Rejection reasons.
NOT_AN_ITEM = "not_an_item"
FILTERED_CLASS = "filtered_class"
NO_WIKIPEDIA_SITELINK = "no_wikipedia_sitelink"
BAD_JSON = "bad_json"
BAD_ENTITY = "bad_entity"


@dataclasses.dataclass(frozen=True)
class Item:
  """A WikiData item with what the KB keeps of it."""
  qid: str
  sitelinks: Mapping[str, str]     # Wikipedia sites only: dbname -> title
  labels: Mapping[str, str]
  descriptions: Mapping[str, str]
  aliases: Mapping[str, Tuple[str, ...]]
  classes: Tuple[str, ...]         # P31 and P279 values
  instance_of: Tuple[str, ...] = ()  # P31 values
  subclass_of: Tuple[str, ...] = ()  # P279 values


@dataclasses.dataclass(frozen=True)
class Rejected:
  reason: str
  key: str      # the entity id, or a prefix of the line when it has none
  detail: str
  sitelinks: Mapping[str, str] = dataclasses.field(default_factory=dict)
  # For items rejected after parsing, what the class graph needs of them.
  subclass_of: Tuple[str, ...] = ()
  label: str = ""


def display_label(labels: Mapping[str, str]) -> str:
  """One label to show for an item: English if it has one, else the first language's."""
  if labels.get("en"):
    return labels["en"]
  return next((labels[lang] for lang in sorted(labels) if labels[lang]), "")


def dump_lines_to_json(line: str) -> Optional[str]:
  """Strips the dump's framing: None for '[' / ']' / blank lines, the entity JSON otherwise."""
  stripped = line.strip()
  if stripped in ("", "[", "]"):
    return None
  return stripped[:-1] if stripped.endswith(",") else stripped


def parse_line(line: str) -> Iterator[Union[Item, Rejected]]:
  """Parses one dump line into zero or more Items / Rejected (API answers hold several)."""
  body = dump_lines_to_json(line)
  if body is None:
    return
  try:
    data = json.loads(body)
  except json.JSONDecodeError as e:
    yield Rejected(BAD_JSON, body[:60], f"{e.msg} at column {e.colno}")
    return
  if isinstance(data, dict) and isinstance(data.get("entities"), dict):
    for entity in data["entities"].values():
      yield parse_entity(entity)
  else:
    yield parse_entity(data)


def _datavalue_id(claim) -> Optional[str]:
  value = (claim.get("mainsnak") or {}).get("datavalue", {}).get("value")
  if not isinstance(value, dict):
    return None
  if value.get("id"):
    return value["id"]
  if value.get("numeric-id") is not None:  # dumps before 2015 lack "id"
    return f"Q{value['numeric-id']}"
  return None


def _texts(mapping) -> dict:
  return {lang: v["value"] for lang, v in (mapping or {}).items()
          if isinstance(v, dict) and isinstance(v.get("value"), str)}


def parse_entity(data) -> Union[Item, Rejected]:
  if not isinstance(data, dict) or not isinstance(data.get("id"), str):
    return Rejected(BAD_ENTITY, str(data)[:60], "entity has no string 'id'")
  qid = data["id"]
  if data.get("type") != "item" or not qid.startswith("Q"):
    return Rejected(NOT_AN_ITEM, qid, f"type {data.get('type')!r}")
  try:
    claims = data.get("claims") or {}
    instance_of, subclass_of = (
        tuple(cid for claim in claims.get(prop, ()) for cid in [_datavalue_id(claim)] if cid)
        for prop in ("P31", "P279"))
    classes = instance_of + subclass_of
    sitelinks = {site: link["title"] for site, link in (data.get("sitelinks") or {}).items()
                 if languages.is_wikipedia_site(site) and isinstance(link, dict)
                 and link.get("title")}
    aliases = {lang: tuple(a["value"] for a in values if isinstance(a, dict) and a.get("value"))
               for lang, values in (data.get("aliases") or {}).items()}
    item = Item(qid=qid, sitelinks=sitelinks, labels=_texts(data.get("labels")),
                descriptions=_texts(data.get("descriptions")),
                aliases={k: v for k, v in aliases.items() if v}, classes=classes,
                instance_of=instance_of, subclass_of=subclass_of)
  except (AttributeError, TypeError, KeyError) as e:
    return Rejected(BAD_ENTITY, qid, f"unexpected structure: {type(e).__name__}: {e}")
  internal = sorted(WIKIMEDIA_INTERNAL_CLASSES.intersection(classes))
  if internal:
    # The sitelinks still matter: pages of filtered items must not become page-only entities.
    return Rejected(FILTERED_CLASS, qid, "instance/subclass of " + ",".join(internal),
                    sitelinks=sitelinks, subclass_of=subclass_of,
                    label=display_label(item.labels))
  if not sitelinks:
    return Rejected(NO_WIKIPEDIA_SITELINK, qid, "no Wikipedia sitelink",
                    subclass_of=subclass_of, label=display_label(item.labels))
  return item
