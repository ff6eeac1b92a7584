"""The records every stage of mel exchanges, and their one tf.train.Example encoding.

Each record is a frozen dataclass that validates itself on construction, round-trips to JSON
(`to_json` / `from_json`) and to tf.train.Example (`to_example` / `from_example`). The feature
spec that the readers (training, evaluation) pass to `tf.io.parse_example` is derived from the
same field table (`feature_spec`), so writer and readers cannot drift apart.

Field kinds and their tf.train.Example features:
  str       -> bytes feature `name` (UTF-8)
  int       -> int64 feature `name`
  str_map   -> bytes features `name/keys` and `name/values` (parallel, keys sorted)
  int_map   -> bytes `name/keys` and int64 `name/values`
  list_map  -> bytes `name/keys` and `name/values`; a key repeats once per value
  str_list  -> bytes feature `name` with one value per element (a tuple of str)
  float_list -> float feature `name` with one value per element (a tuple of float, stored as
               float32: values are rounded to float32 on construction, so both round trips
               give the record back exactly)
"""
import dataclasses
import json
import math
import struct
from typing import Any, ClassVar, Mapping

SPLITS = ("train", "holdout")
DESCRIPTION_SOURCES = ("wikipedia", "wikidata", "")


def _example_pb2():
  """tf.train.Example's protobuf module, imported once (lazy: JSON needs no TensorFlow).

  The generated classes are used directly: going through `tf.train.*` costs a lazy-module
  lookup per attribute, which made encoding several times slower.
  """
  global _EXAMPLE_PB2
  if _EXAMPLE_PB2 is None:
    from tensorflow.core.example import example_pb2
    _EXAMPLE_PB2 = example_pb2
  return _EXAMPLE_PB2


_EXAMPLE_PB2 = None
_FLOAT32 = struct.Struct("<f")


def _float32(x: float) -> float:
  """x rounded to the nearest float32 (what a float feature stores); OverflowError beyond
  float32's range; NaN and infinities pass through."""
  return _FLOAT32.unpack(_FLOAT32.pack(x))[0]


class SchemaError(ValueError):
  """A record violates its schema; the message names the record type and the field."""


def _fail(record, message):
  raise SchemaError(f"{type(record).__name__} {record.record_key()!r}: {message}")


@dataclasses.dataclass(frozen=True)
class _Record:
  """Base: subclasses list their fields' kinds in FIELDS (name -> kind)."""
  FIELDS: ClassVar[Mapping[str, str]] = {}

  def record_key(self) -> str:
    """What names this record in error messages."""
    return "?"

  def __post_init__(self):
    for name, kind in self.FIELDS.items():
      value = getattr(self, name)
      if kind == "str" and not isinstance(value, str):
        _fail(self, f"field {name} must be str, got {type(value).__name__}")
      elif kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        _fail(self, f"field {name} must be int, got {type(value).__name__}")
      elif kind in ("str_map", "int_map", "list_map"):
        if not isinstance(value, Mapping):
          _fail(self, f"field {name} must be a mapping, got {type(value).__name__}")
        want = {"str_map": str, "int_map": int, "list_map": tuple}[kind]
        for k, v in value.items():
          if not isinstance(k, str) or not isinstance(v, want):
            _fail(self, f"field {name} has entry {k!r}: {v!r} (want str -> {want.__name__})")
          if kind == "list_map" and not all(isinstance(x, str) for x in v):
            _fail(self, f"field {name}[{k!r}] must hold strings")
      elif kind == "str_list":
        if not isinstance(value, tuple) or not all(isinstance(x, str) for x in value):
          _fail(self, f"field {name} must be a tuple of str, got {value!r}")
      elif kind == "float_list":
        if not isinstance(value, tuple) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
          _fail(self, f"field {name} must be a tuple of float, got {value!r}")
        try:
          object.__setattr__(self, name, tuple(_float32(float(x)) for x in value))
        except OverflowError:
          _fail(self, f"field {name} holds a value beyond float32's range: {value!r}")
    self.validate()

  def validate(self):
    """Record-specific invariants; raise via _fail."""

  # JSON ------------------------------------------------------------------------------------
  def to_dict(self) -> dict:
    out = {}
    for name, kind in self.FIELDS.items():
      value = getattr(self, name)
      if kind == "list_map":
        value = {k: list(v) for k, v in sorted(value.items())}
      elif kind in ("str_list", "float_list"):
        value = list(value)
      elif kind in ("str_map", "int_map"):
        value = dict(sorted(value.items()))
      out[name] = value
    return out

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

  @classmethod
  def _optional(cls) -> set:
    """Fields with a default: records written before a field was added read as the default."""
    return {f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]):
    missing = set(cls.FIELDS) - set(data) - cls._optional()
    unknown = set(data) - set(cls.FIELDS)
    if missing or unknown:
      raise SchemaError(f"{cls.__name__}: missing fields {sorted(missing)}, "
                        f"unknown fields {sorted(unknown)}")
    kwargs = {}
    for name, kind in cls.FIELDS.items():
      if name not in data:
        continue
      value = data[name]
      if kind == "list_map" and isinstance(value, Mapping):
        value = {k: tuple(v) for k, v in value.items()}
      elif kind in ("str_list", "float_list") and isinstance(value, list):
        value = tuple(value)
      kwargs[name] = value
    return cls(**kwargs)

  @classmethod
  def from_json(cls, text: str):
    return cls.from_dict(json.loads(text))

  # tf.train.Example ------------------------------------------------------------------------
  def to_example(self):
    example_pb2 = _example_pb2()
    example = example_pb2.Example()
    feature = example.features.feature
    for name, kind in self.FIELDS.items():
      value = getattr(self, name)
      if kind == "str":
        feature[name].bytes_list.value.append(value.encode("utf-8"))
      elif kind == "int":
        feature[name].int64_list.value.append(value)
      elif kind == "str_list":
        feature[name].bytes_list.value.extend(x.encode("utf-8") for x in value)
      elif kind == "float_list":
        feature[name].float_list.value.extend(value)
      else:
        items = sorted(value.items())
        if kind == "list_map":
          items = [(k, x) for k, xs in items for x in xs]
        feature[name + "/keys"].bytes_list.value.extend(k.encode("utf-8") for k, _ in items)
        values = feature[name + "/values"]
        if kind == "int_map":
          values.int64_list.value.extend(v for _, v in items)
        else:
          values.bytes_list.value.extend(v.encode("utf-8") for _, v in items)
    return example

  def to_example_bytes(self) -> bytes:
    return self.to_example().SerializeToString()

  @classmethod
  def from_example(cls, serialized: bytes):
    example = _example_pb2().Example.FromString(serialized)
    feats = example.features.feature

    def _get(name, kind):
      if name not in feats:
        raise SchemaError(f"{cls.__name__}: example has no feature {name!r}")
      feature = feats[name]
      if kind == "int":
        return list(feature.int64_list.value)
      if kind == "float_list":
        return list(feature.float_list.value)
      return [v.decode("utf-8") for v in feature.bytes_list.value]

    kwargs = {}
    optional = cls._optional()
    for name, kind in cls.FIELDS.items():
      if name in optional and name not in feats and name + "/keys" not in feats:
        continue
      if kind in ("str", "int"):
        values = _get(name, kind)
        if len(values) != 1:
          raise SchemaError(f"{cls.__name__}: feature {name!r} has {len(values)} values")
        kwargs[name] = values[0]
      elif kind in ("str_list", "float_list"):
        kwargs[name] = tuple(_get(name, kind))
      else:
        keys = _get(name + "/keys", "str")
        values = _get(name + "/values", "int" if kind == "int_map" else "str")
        if len(keys) != len(values):
          raise SchemaError(f"{cls.__name__}: {name}/keys and {name}/values differ in length")
        if kind == "list_map":
          grouped = {}
          for k, v in zip(keys, values):
            grouped.setdefault(k, []).append(v)
          kwargs[name] = {k: tuple(v) for k, v in grouped.items()}
        else:
          kwargs[name] = dict(zip(keys, values))
    return cls(**kwargs)

  @classmethod
  def feature_spec(cls) -> dict:
    """The `tf.io.parse_example` spec: scalars FixedLen, maps VarLen (sparse)."""
    import tensorflow as tf
    spec = {}
    for name, kind in cls.FIELDS.items():
      if kind == "str":
        spec[name] = tf.io.FixedLenFeature([], tf.string)
      elif kind == "int":
        spec[name] = tf.io.FixedLenFeature([], tf.int64)
      elif kind == "str_list":
        spec[name] = tf.io.VarLenFeature(tf.string)
      elif kind == "float_list":
        spec[name] = tf.io.VarLenFeature(tf.float32)
      else:
        spec[name + "/keys"] = tf.io.VarLenFeature(tf.string)
        spec[name + "/values"] = tf.io.VarLenFeature(
            tf.int64 if kind == "int_map" else tf.string)
    return spec


@dataclasses.dataclass(frozen=True)
class Mention(_Record):
  """One hyperlink anchor in a Wikipedia article, linked to an entity.

  `start`/`end` are Unicode code point offsets into the article's clean text (the `Document`
  of the same wiki and doc_id); `left_context` and `right_context` are the text just before and
  after, at most the pipeline's context window each.
  """
  mention_id: str     # "<wiki>:<doc_id>:<n>", n counts links in document order
  lang: str           # language code of the wiki, e.g. "uk"
  wiki: str           # dump database name, e.g. "ukwiki"
  doc_id: int         # page id of the article the mention is in
  doc_title: str
  left_context: str
  mention: str
  right_context: str
  start: int
  end: int
  target_title: str   # the linked page after redirects, in `wiki`
  entity_id: str      # QID, or "<wiki>:<Title>" when no WikiData item resolves the page
  qid: str            # "" when the entity has no QID
  split: str          # one of SPLITS

  FIELDS: ClassVar[Mapping[str, str]] = {
      "mention_id": "str", "lang": "str", "wiki": "str", "doc_id": "int", "doc_title": "str",
      "left_context": "str", "mention": "str", "right_context": "str", "start": "int",
      "end": "int", "target_title": "str", "entity_id": "str", "qid": "str", "split": "str"}

  def record_key(self):
    return self.mention_id

  def validate(self):
    if not self.mention.strip():
      _fail(self, "empty mention text")
    if not 0 <= self.start < self.end:
      _fail(self, f"bad span [{self.start}, {self.end})")
    if self.end - self.start != len(self.mention):
      _fail(self, f"span [{self.start}, {self.end}) does not match mention length "
            f"{len(self.mention)}")
    if not self.entity_id:
      _fail(self, "empty entity_id")
    if self.split not in SPLITS:
      _fail(self, f"split must be one of {SPLITS}, got {self.split!r}")
    if self.qid and self.qid != self.entity_id:
      _fail(self, f"qid {self.qid!r} differs from entity_id {self.entity_id!r}")


@dataclasses.dataclass(frozen=True)
class MentionWithNegatives(Mention):
  """A training mention with the hard negatives mined for it (entity ids, best first).

  Written by hard-negative mining; training reads it in place of Mention. Its features are a
  superset of Mention's, so Mention.feature_spec() parses it too.
  """
  negative_ids: tuple = ()

  FIELDS: ClassVar[Mapping[str, str]] = {**Mention.FIELDS, "negative_ids": "str_list"}

  def validate(self):
    super().validate()
    if self.entity_id in self.negative_ids:
      _fail(self, f"gold entity {self.entity_id!r} is among its negatives")
    if len(set(self.negative_ids)) != len(self.negative_ids):
      _fail(self, "negative_ids repeats an entity")
    if any(not x for x in self.negative_ids):
      _fail(self, "empty negative id")


@dataclasses.dataclass(frozen=True)
class MentionWithTeacherScores(MentionWithNegatives):
  """A training mention, its hard negatives and a reranker's logits for its candidates.

  Written by `mel teacher` (mel.training.teacher); read by training with
  train.distillation_weight > 0 (the dual encoder learns the reranker's distribution over the
  candidates). teacher_logits[0] is the gold entity's logit, teacher_logits[1 + i] that of
  negative_ids[i]. Its features are a superset of MentionWithNegatives', whose spec parses it.
  """
  teacher_logits: tuple = ()

  FIELDS: ClassVar[Mapping[str, str]] = {**MentionWithNegatives.FIELDS,
                                         "teacher_logits": "float_list"}

  def validate(self):
    super().validate()
    if len(self.teacher_logits) != 1 + len(self.negative_ids):
      _fail(self, f"teacher_logits has {len(self.teacher_logits)} values, want 1 + "
            f"{len(self.negative_ids)} (the gold, then each negative)")
    if not all(math.isfinite(x) for x in self.teacher_logits):
      _fail(self, f"teacher_logits holds a non-finite value: {self.teacher_logits!r}")


@dataclasses.dataclass(frozen=True)
class Entity(_Record):
  """A knowledge-base entity: a WikiData item or, failing one, a Wikipedia page."""
  entity_id: str                 # QID, or "<wiki>:<Title>"
  qid: str                       # "" for page-only entities
  description: str               # the chosen description (Model F's input); may be ""
  description_lang: str
  description_source: str        # "wikipedia", "wikidata" or ""
  mention_count: int             # training mentions linking to this entity
  mention_counts: Mapping[str, int]          # language -> training mentions
  sitelinks: Mapping[str, str]               # wiki dbname -> page title
  labels: Mapping[str, str]                  # language -> label (WikiData, else page titles)
  wikidata_descriptions: Mapping[str, str]   # language -> WikiData description
  wikipedia_descriptions: Mapping[str, str]  # language -> first sentence of that page
  aliases: Mapping[str, tuple]               # language -> aliases (WikiData)
  types: tuple = ()              # type ids: WikiData classes ("Q5", P31 expanded up P279) or,
                                 # without them, page categories ("cat:<wiki>:<Title>")

  FIELDS: ClassVar[Mapping[str, str]] = {
      "entity_id": "str", "qid": "str", "description": "str", "description_lang": "str",
      "description_source": "str", "mention_count": "int", "mention_counts": "int_map",
      "sitelinks": "str_map", "labels": "str_map", "wikidata_descriptions": "str_map",
      "wikipedia_descriptions": "str_map", "aliases": "list_map", "types": "str_list"}

  def record_key(self):
    return self.entity_id

  def validate(self):
    if not self.entity_id:
      _fail(self, "empty entity_id")
    if self.qid and self.qid != self.entity_id:
      _fail(self, f"qid {self.qid!r} differs from entity_id")
    if self.description_source not in DESCRIPTION_SOURCES:
      _fail(self, f"description_source must be one of {DESCRIPTION_SOURCES}")
    if bool(self.description) != bool(self.description_source):
      _fail(self, "description and description_source must be both set or both empty")
    if self.mention_count != sum(self.mention_counts.values()):
      _fail(self, f"mention_count {self.mention_count} != sum of mention_counts "
            f"{sum(self.mention_counts.values())}")
    if any(n <= 0 for n in self.mention_counts.values()):
      _fail(self, "mention_counts holds a non-positive count")


@dataclasses.dataclass(frozen=True)
class EntityPair(_Record):
  """Two descriptions of one entity in different languages (the auxiliary entity-entity task)."""
  entity_id: str
  lang_a: str   # the entity's selected description
  text_a: str
  lang_b: str   # another language's description
  text_b: str

  FIELDS: ClassVar[Mapping[str, str]] = {
      "entity_id": "str", "lang_a": "str", "text_a": "str", "lang_b": "str", "text_b": "str"}

  def record_key(self):
    return f"{self.entity_id}:{self.lang_a}:{self.lang_b}"

  def validate(self):
    if not (self.entity_id and self.text_a and self.text_b):
      _fail(self, "entity_id, text_a and text_b must be non-empty")
    if self.lang_a == self.lang_b:
      _fail(self, f"both descriptions are in {self.lang_a!r}")


@dataclasses.dataclass(frozen=True)
class Document(_Record):
  """The clean text of one article, which mention offsets index into."""
  wiki: str
  lang: str
  doc_id: int
  title: str
  text: str
  split: str

  FIELDS: ClassVar[Mapping[str, str]] = {
      "wiki": "str", "lang": "str", "doc_id": "int", "title": "str", "text": "str",
      "split": "str"}

  def record_key(self):
    return f"{self.wiki}:{self.doc_id}"

  def validate(self):
    if self.split not in SPLITS:
      _fail(self, f"split must be one of {SPLITS}, got {self.split!r}")


@dataclasses.dataclass(frozen=True)
class DeadLetter(_Record):
  """A rejected input: which stage rejected it, why, and where it came from."""
  stage: str    # "dump", "page", "link", "wikidata", ...
  reason: str   # a short machine-readable reason, e.g. "target_has_no_page"
  source: str   # the input file (and line, where known)
  key: str      # what was rejected: "<wiki>:<title>", a QID, a link target
  detail: str   # free text: the error message, where the links were, ...
  count: int    # input records this covers: all links to one unresolvable target are one entry

  FIELDS: ClassVar[Mapping[str, str]] = {
      "stage": "str", "reason": "str", "source": "str", "key": "str", "detail": "str",
      "count": "int"}

  def record_key(self):
    return self.key

  def validate(self):
    if not (self.stage and self.reason):
      _fail(self, "stage and reason must be non-empty")
    if self.count < 1:
      _fail(self, f"count must be positive, got {self.count}")


RECORD_TYPES = {cls.__name__: cls for cls in (
    Mention, MentionWithNegatives, MentionWithTeacherScores, Entity, EntityPair, Document,
    DeadLetter)}
