"""A knowledge base that grows after training: entities added, replaced and removed without
rebuilding what exists, each change one atomic, checksummed generation.

    kb = open_kb("out/models/demo_f/round1")      # the current generation (0: index/ as built)
    rows, scores = kb.index.search(queries, k)    # live entities only
    add(model_dir, entities, embeddings_dir, replace=False)    # -> generation + 1
    remove(model_dir, ["Q42"]);  compact(model_dir)

Model F encodes an entity from its description (paper Sec. 4.2), so a trained entity tower
encodes entities it never saw (mel.retrieval.encode.encode_rows); Model E's entity table is
learned and cannot grow. On disk, under the model directory (paths relative to it):

    kb/manifest.json            the current generation (mel-kb/1), replaced atomically: a reader
                                sees the old or the new knowledge base, never a mix
    kb/generations/00003.json   every generation's manifest as committed (history)
    kb/changes/00003/           one change, immutable once written: manifest.json
                                (mel-kb-change/1, checksums of its files), masks.tsv; additions
                                also index/, embeddings/, entities.tsv, records.jsonl
    kb/bases/00007/             a compacted base (mel kb compact): the same files as an addition
    kb/.lock                    held (flock) by a writer from reading the current generation
                                to committing the next

**Generation 0** is the model as `mel encode` + `mel index` left it: index/, entities.tsv and
embeddings/. A generation's **segments** are its base and its additions, in order; search runs
over all of them (mel.retrieval.sharded, a top-k merge) and each segment's **masks** (rows of
entities replaced or removed by a later change, mel.retrieval.masked) are never returned.
Readers (serving, evaluation) insert additions of up to MERGE_SHARE of the base's rows into
the base's ScaNN tree in memory when they load, so one tree is searched; on disk they stay
segments.
Replacing an entity (same id, new description) adds it to the new segment and masks its old
row. The top manifest checksums each change's manifest, which checksums the change's files,
and records the base index's manifest and entity table checksums: a base rebuilt since (new
training, `mel index`) is an error, not a silent mix of two models' vectors.

**Compaction** streams every live vector into one new base (index built once, no masks) as a
new generation; files referenced by neither it nor the generation before are deleted.
"""
import datetime
import os
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np

from mel import manifest as manifests
from mel.model_dir import ModelDir
from mel.retrieval.ids import IdList, rows_of
from mel.retrieval.index import Index, load_index
from mel.retrieval.kb_entities import RECORDS, KBEntity, read_records
from mel.retrieval.masked import MaskedIndex
from mel.retrieval.sharded import ShardedIndex

FORMAT = "mel-kb/1"
CHANGE_FORMAT = "mel-kb-change/1"
GENERATIONS, CHANGES, BASES, LOCK = "generations", "changes", "bases", ".lock"
MASKS = "masks.tsv"                  # segment path TAB row, one masked row per line
SEGMENT_INDEX, SEGMENT_EMBEDDINGS, SEGMENT_ENTITIES = "index", "embeddings", "entities.tsv"
BASE = "."                           # generation 0's base: the model directory itself
MERGE_SHARE = 0.1   # added segments up to this share of the base are searched in its tree


class KBError(ValueError):
  """A knowledge base's generation is missing, corrupt, or does not fit this model."""


class Segment(NamedTuple):
  """One searchable part of a generation: the base or an addition (path relative to the model
  directory)."""
  path: str
  index: Index
  texts: "EntityTexts"
  records: List[KBEntity]          # the entities as given (none for generation 0's base)
  embeddings: str                  # its embeddings directory (absolute)


class EntityTexts:
  """Entity id and text of each row of one segment's index (its entities.tsv, line = a row of
  the table, mapped through the index's ids when their orders differ)."""

  def __init__(self, path: str, index_ids: Sequence[str]):
    self.path = path
    self.lines = IdList.from_file(path, error=KBError)
    if len(self.lines) != len(index_ids):
      raise KBError(f"{path}: {len(self.lines)} entities, the index holds {len(index_ids)}")
    self.row_of = None
    if any(line.split("\t", 1)[0] != e for line, e in zip(self.lines, index_ids)):
      position = {line.split("\t", 1)[0]: i for i, line in enumerate(self.lines)}
      try:
        self.row_of = np.array([position[e] for e in index_ids], dtype=np.int64)
      except KeyError as e:
        raise KBError(f"{path}: no entity {e.args[0]!r}, which the index holds") from None

  def __getitem__(self, index_row: int) -> Tuple[str, str]:
    row = index_row if self.row_of is None else int(self.row_of[index_row])
    entity_id, _, text = self.lines[row].partition("\t")
    return entity_id, text

  def texts_of(self, entity_ids: Iterable[str]) -> Dict[str, str]:
    """{entity id: text} for the ids this segment holds (one pass over its table)."""
    wanted = set(entity_ids)
    found = {}
    for line in self.lines:
      entity_id, _, text = line.partition("\t")
      if entity_id in wanted:
        found[entity_id] = text
    return found


class KBTexts:
  """Entity id and text of each row of a generation's index (all segments), as serving reads
  them: kb.entities[row] -> (id, text); texts_of(ids) -> the live entities' texts."""

  def __init__(self, segments: Sequence[EntityTexts], offsets: Sequence[int],
               removed: Set[str]):
    self.segments = list(segments)
    self.offsets = np.asarray(offsets, dtype=np.int64)
    self.removed = removed

  def __getitem__(self, row: int) -> Tuple[str, str]:
    part = int(np.searchsorted(self.offsets, row, side="right")) - 1
    return self.segments[part][row - int(self.offsets[part])]

  def texts_of(self, entity_ids: Iterable[str]) -> Dict[str, str]:
    wanted = set(entity_ids) - self.removed
    found: Dict[str, str] = {}
    for segment in self.segments:   # later segments hold the replacements
      found.update(segment.texts_of(wanted))
    return found


class KnowledgeBase:
  """One generation, loaded: index (live rows only), entities, and what the dictionary needs.

  added: the live entities added since training, by id (labels, aliases, qid);
  removed: ids that were in the knowledge base and are no longer (dictionary priors drop them).
  """

  def __init__(self, model_dir: str, generation: int, manifest: dict,
               segments: List[Segment], masks: Dict[str, np.ndarray], merge: bool = False):
    self.model_dir = model_dir
    self.generation = generation
    self.manifest = manifest
    self.segments = segments
    self.masks = masks
    masked_ids = {e for s in segments for e in s.index.take_ids(masks.get(s.path, []))}
    offsets = np.cumsum([0] + [len(s.index) for s in segments])[:-1]
    parts = [MaskedIndex(s.index, masks.get(s.path, ())) for s in segments]
    self.removed: Set[str] = set()
    if masked_ids:
      # a masked id lives on only as a replacement, which is always in a later (added)
      # segment: the base's millions of ids need not be read
      live = {e for part in parts[1:] for e in rows_of(part.live_ids(), masked_ids)}
      self.removed = masked_ids - live
    self.merged = _merge_into_base(segments, masks) if merge else 0
    if self.merged:
      base = segments[0].index
      dead = [np.asarray(masks.get(s.path, []), np.int64) + offsets[i]
              for i, s in enumerate(segments[:1 + self.merged])]
      parts = [MaskedIndex(base, np.concatenate(dead))] + parts[1 + self.merged:]
    self.index: Index = parts[0] if len(parts) == 1 else ShardedIndex(parts)
    self.index.model = dict(segments[0].index.model)
    added: Dict[str, KBEntity] = {}
    for segment in segments:
      for record in segment.records:
        added[record.entity_id] = record
    self.added = {e: r for e, r in added.items() if e not in self.removed}
    self.entities = KBTexts([s.texts for s in segments], offsets, self.removed)

  @property
  def live_count(self) -> int:
    return len(self.index) - sum(len(m) for m in self.masks.values())

  def locate(self, entity_ids: Iterable[str]) -> Dict[str, Tuple[str, int]]:
    """{id: (segment path, row)} of the live rows of the wanted ids (of a knowledge base
    opened without merge: writers address rows per segment)."""
    if self.merged:
      raise ValueError("locate needs a knowledge base opened with merge=False")
    wanted = set(entity_ids)
    found: Dict[str, Tuple[str, int]] = {}
    for segment in self.segments:
      dead = set(self.masks.get(segment.path, np.zeros(0, np.int64)).tolist())
      for entity_id, rows in rows_of(segment.index.ids, wanted).items():
        for row in rows:
          if row not in dead:
            found[entity_id] = (segment.path, row)
    return found

  def qid_of(self, entity_id: str) -> Optional[str]:
    """The qid an added entity was given, None for the others (derive it from the id)."""
    record = self.added.get(entity_id)
    return record.qid if record is not None else None


def _merge_into_base(segments: List[Segment], masks: Dict[str, np.ndarray]) -> int:
  """Inserts the first added segments into the base's ScaNN tree in memory (ScannIndex.append)
  while they hold at most MERGE_SHARE of the base's rows; returns how many. One tree is
  searched then, as fast as the base alone: a separate segment's search and the merge of its
  results cost a 10k segment beside a 1M base 24% of the base's latency (bench/kb_update.py).
  A base without a tree (exact search, or small) is left as it is."""
  from mel.retrieval.scann import ScannIndex
  base = segments[0].index
  tree = base.shards[-1] if isinstance(base, ShardedIndex) else base
  if not isinstance(tree, ScannIndex) or tree.params.get("algorithm") != "tree_ah":
    return 0
  budget, merged = MERGE_SHARE * len(base), 0
  for segment in segments[1:]:
    if len(segment.index) > budget:
      break
    tree.append(list(segment.index.ids), _vectors_in_row_order(segment))
    budget -= len(segment.index)
    merged += 1
  if merged and isinstance(base, ShardedIndex):   # offsets and ids of the grown last shard
    segments[0] = segments[0]._replace(index=ShardedIndex(base.shards, base.params, base.model))
  return merged


def _vectors_in_row_order(segment: Segment) -> np.ndarray:
  """float32 [n, D]: the segment's embeddings, in the order of its index's rows."""
  from mel.retrieval import embeddings as embeddings_lib
  by_id = {}
  for ids, vectors in embeddings_lib.iter_shards(segment.embeddings, verify=False):
    by_id.update(zip(ids, np.asarray(vectors, np.float32)))
  try:
    return np.stack([by_id[e] for e in segment.index.ids])
  except KeyError as e:
    raise KBError(f"{segment.embeddings}: no vector for {e.args[0]!r}, which "
                  f"{segment.path}'s index holds") from None


# ---------------------------------------------------------------------------------------------
# reading


def utc_now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def manifest_path(model_dir: str) -> str:
  return os.path.join(ModelDir(model_dir).kb, manifests.NAME)


def read_manifest(model_dir: str) -> Optional[dict]:
  """The current generation's manifest, None for generation 0 (no kb/ yet)."""
  kb_dir = ModelDir(model_dir).kb
  if not os.path.exists(os.path.join(kb_dir, manifests.NAME)):
    return None
  return manifests.read(kb_dir, FORMAT, required=("generation", "base", "changes", "model"),
                        error=KBError)


def current_generation(model_dir: str) -> int:
  """The current generation's number (0 before the first change); cheap (one small file)."""
  manifest = read_manifest(model_dir)
  return 0 if manifest is None else int(manifest["generation"])


def other_tower(recorded: dict, tower: dict) -> Optional[str]:
  """The first key of ModelDir.tower_identity on which vectors recorded as of `recorded` and
  this model's `tower` differ (keys recorded by one only are not compared), or None."""
  return next((k for k in tower if k in recorded and recorded[k] != tower[k]), None)


def _base_manifest(model_dir: str) -> dict:
  """Generation 0's base entry: the model's own index, table and embeddings, checksummed."""
  directory = ModelDir(model_dir)
  return {"path": BASE, "index": "index", "entities": "entities.tsv",
          "embeddings": "embeddings",
          "index_manifest": manifests.file_entry(os.path.join(directory.index, manifests.NAME)),
          "entities_file": manifests.file_entry(directory.entities)}


def _load_segment(model_dir: str, path: str, index_rel: str, entities_rel: str,
                  embeddings_rel: str, records: bool, verify: bool, dimension: int) -> Segment:
  root = ModelDir(model_dir).join(path)
  index = load_index(os.path.join(root, index_rel), verify=verify, dimension=dimension)
  texts = EntityTexts(os.path.join(root, entities_rel), index.ids)
  added = read_records(os.path.join(root, RECORDS)) if records else []
  return Segment(path, index, texts, added, os.path.join(root, embeddings_rel))


def _check_base(model_dir: str, base: dict, generation: int) -> None:
  if base["path"] != BASE:
    return   # a compacted base lives under kb/ and is checked through its index manifest
  now = _base_manifest(model_dir)
  for key, what in (("index_manifest", "index/"), ("entities_file", "entities.tsv")):
    if now[key] != base[key]:
      raise KBError(
          f"{manifest_path(model_dir)}: the model's {what} changed since generation "
          f"{generation} was committed (re-trained or re-indexed): the added entities were "
          f"encoded by the previous model. Move kb/ away and add them again (mel kb add)")


def open_kb(model_dir: str, verify: bool = True, merge: bool = False) -> KnowledgeBase:
  """The current generation of model_dir's knowledge base, every file checked against its
  manifest (checksums with verify). KBError naming the file and the problem.

  merge (serving, evaluation): small added segments are searched in the base's tree
  (_merge_into_base); writers open without it, to address rows segment by segment."""
  directory = ModelDir(model_dir)
  export = directory.read_export_manifest()
  tower = directory.tower_identity(export)
  dimension = int(export["embedding_dim"])
  manifest = read_manifest(model_dir)
  if manifest is None:
    segment = _load_segment(model_dir, BASE, "index", "entities.tsv", "embeddings", False,
                            verify, dimension)
    directory.check_index(segment.index.model or {}, directory.index)
    return KnowledgeBase(model_dir, 0, {"generation": 0, "base": _base_manifest(model_dir),
                                        "changes": [], "model": tower}, [segment], {})
  generation = int(manifest["generation"])
  differs = other_tower(manifest["model"], tower)
  if differs:
    raise KBError(f"{manifest_path(model_dir)}: generation {generation} holds vectors of "
                  f"another export ({differs} {manifest['model'][differs]!r}, the model has "
                  f"{tower[differs]!r}); move kb/ away and add the entities again")
  base = manifest["base"]
  _check_base(model_dir, base, generation)
  segments = [_load_segment(model_dir, base["path"], base["index"], base["entities"],
                            base["embeddings"], bool(base.get("records")), verify, dimension)]
  masks: Dict[str, List[int]] = {}
  for entry in manifest["changes"]:
    change_dir = ModelDir(model_dir).join(entry["path"])
    manifests.check_files(change_dir, {manifests.NAME: entry["manifest"]}, verify=True,
                          error=KBError)
    change = manifests.read(change_dir, CHANGE_FORMAT, required=("kind", "files"),
                            error=KBError)
    manifests.check_files(change_dir, change["files"], verify, error=KBError)
    for path, row in _read_masks(os.path.join(change_dir, MASKS)):
      masks.setdefault(path, []).append(row)
    if change["kind"] == "add":
      segments.append(_load_segment(model_dir, entry["path"], SEGMENT_INDEX, SEGMENT_ENTITIES,
                                    SEGMENT_EMBEDDINGS, True, verify, dimension))
  known = {s.path for s in segments}
  for path in masks:
    if path not in known:
      raise KBError(f"{manifest_path(model_dir)}: a change masks rows of {path}, which is not "
                    "a segment of this generation")
  return KnowledgeBase(model_dir, generation, manifest, segments,
                       {p: np.asarray(r, np.int64) for p, r in masks.items()}, merge)


def _read_masks(path: str) -> Iterator[Tuple[str, int]]:
  with open(path, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
      segment, _, row = line.rstrip("\n").partition("\t")
      if not segment or not row.isdigit():
        raise KBError(f"{path}: line {n} is not 'segment<TAB>row'")
      yield segment, int(row)


def open_search_index(model_dir: str, index_path: Optional[str] = None,
                      verify: bool = True) -> Tuple[Index, Optional[KnowledgeBase]]:
  """What evaluation and serving search: index_path exactly when given (checked to be this
  model's; its own index/ too, without the changes of `mel kb`), else the model's knowledge
  base (its current generation). (index, kb or None)."""
  directory = ModelDir(model_dir)
  if index_path:
    dimension = int(directory.read_export_manifest()["embedding_dim"])
    index = load_index(index_path, verify=verify, dimension=dimension)
    directory.check_index(index.model or {}, index_path)
    return index, None
  kb = open_kb(model_dir, verify, merge=True)
  return kb.index, kb
