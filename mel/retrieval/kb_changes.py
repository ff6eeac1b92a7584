"""Changing a knowledge base: add (or replace), remove, compact; each one new generation.

    add(model_dir, entities, embeddings_dir, replace=False)   # encoded by the model's tower
    remove(model_dir, ["Q42", ...])
    compact(model_dir)                                         # one index, no masks

What a generation is on disk, and how it is read: mel.retrieval.kb. A writer holds kb/.lock
from reading the current generation to committing the next, checks the whole change against
it first (an id added twice, added again without replace, removed while absent; embeddings of
another model), and writes the change's directory atomically before the new manifest replaces
the old one: an error at any point leaves the knowledge base as it was.
"""
import contextlib
import fcntl
import math
import os
import shutil
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from mel import manifest as manifests
from mel.files import atomic_directory
from mel.model_dir import ModelDir
from mel.retrieval import embeddings as embeddings_lib
from mel.retrieval.build import build_index_from_embeddings, rechunk
from mel.retrieval.kb import (BASES, CHANGE_FORMAT, CHANGES, FORMAT, GENERATIONS, LOCK, MASKS,
                              SEGMENT_EMBEDDINGS, SEGMENT_ENTITIES, SEGMENT_INDEX, KBError,
                              KnowledgeBase, open_kb, other_tower, utc_now)
from mel.retrieval.kb_entities import RECORDS, KBEntity, KBInputError, no_duplicates, write_records

REMOVED = "removed.txt"


@contextlib.contextmanager
def writer_lock(model_dir: str) -> Iterator[None]:
  """One writer at a time per knowledge base (readers take no lock)."""
  kb_dir = ModelDir(model_dir).kb
  os.makedirs(kb_dir, exist_ok=True)
  with open(os.path.join(kb_dir, LOCK), "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def _commit(model_dir: str, kb: KnowledgeBase, base: dict, changes: List[dict],
            command: str, summary: dict) -> dict:
  """Writes generation kb.generation + 1: its history copy, then kb/manifest.json (atomic)."""
  generation = kb.generation + 1
  manifest = {"format": FORMAT, "generation": generation, "model": kb.manifest["model"],
              "base": base, "changes": changes, "command": command, "summary": summary,
              "created": utc_now()}
  kb_dir = ModelDir(model_dir).kb
  os.makedirs(os.path.join(kb_dir, GENERATIONS), exist_ok=True)
  manifests.write(os.path.join(kb_dir, GENERATIONS), manifest, name=f"{generation:05d}.json")
  return manifests.write(kb_dir, manifest)


def _write_change(model_dir: str, kb: KnowledgeBase, kind: str, fill, summary: dict) -> dict:
  """Writes kb/changes/<next generation>/ (fill(tmp_dir) writes its files), then commits the
  generation that appends it; returns the new top manifest."""
  generation = kb.generation + 1
  rel = f"kb/{CHANGES}/{generation:05d}"
  with atomic_directory(ModelDir(model_dir).join(rel)) as tmp:
    fill(tmp)
    manifests.write(tmp, {"format": CHANGE_FORMAT, "kind": kind, "generation": generation,
                          "summary": summary, "created": utc_now(),
                          "files": manifests.describe_files(tmp)})
  entry = {"path": rel, "kind": kind, "manifest": manifests.file_entry(
      os.path.join(ModelDir(model_dir).join(rel), manifests.NAME))}
  return _commit(model_dir, kb, kb.manifest["base"], kb.manifest["changes"] + [entry], kind,
                 summary)


def _write_masks(path: str, rows: Iterable[Tuple[str, int]]) -> None:
  with open(path, "w", encoding="utf-8") as f:
    for segment, row in sorted(rows):
      f.write(f"{segment}\t{row}\n")


def check_embeddings(kb: KnowledgeBase, embeddings_dir: str, entities: Sequence[KBEntity]
                     ) -> None:
  """embeddings_dir holds exactly these entities' vectors, encoded by this model's tower."""
  manifest = embeddings_lib.read_manifest(embeddings_dir)
  model = manifest.get("model") or {}
  tower = kb.manifest["model"]
  key = other_tower(model, tower)
  if key:
    raise KBInputError(f"{embeddings_dir}: embeddings of another model: {key} "
                       f"{model[key]!r}, the knowledge base's model has {tower[key]!r}")
  if manifest["dimension"] != tower["embedding_dim"]:
    raise KBInputError(f"{embeddings_dir}: vectors of dimension {manifest['dimension']}, the "
                       f"model's are {tower['embedding_dim']}")
  ids = [e for shard_ids, _ in embeddings_lib.iter_shards(embeddings_dir, verify=True)
         for e in shard_ids]
  wanted = {e.entity_id for e in entities}
  if len(ids) != len(wanted) or set(ids) != wanted:
    extra = sorted(set(ids) - wanted)[:3]
    missing = sorted(wanted - set(ids))[:3]
    raise KBInputError(f"{embeddings_dir}: holds {len(ids)} vectors, not those of the "
                       f"{len(wanted)} entities to add (not among them: {extra}; without a "
                       f"vector: {missing})")


def _base_kind(kb: KnowledgeBase) -> str:
  params = kb.segments[0].index.params or {}
  return params.get("shard_kind") or kb.segments[0].index.kind


def segment_params(kb: KnowledgeBase, count: int) -> Optional[dict]:
  """ScaNN parameters of an added segment of count vectors: scann_params_for's, except that it
  scans as many points per query as the base does (all of them when it is smaller). Its own
  default share of its few leaves scans far fewer points than the base's share of millions, and
  entities added would be found less often than those there from the start: at 10k added to
  1M, the added entity was the top-1 for 0.88 of queries drawn near it, against 1.00 in a
  rebuilt index (bench/kb_update.py). Readers insert segments of up to MERGE_SHARE of the base
  into its tree (mel.retrieval.kb); these parameters serve the larger ones, searched beside it."""
  from mel.retrieval.scann import scann_params_for
  params = scann_params_for(count, total=count + kb.live_count)
  base = kb.segments[0].index
  leaves = base.tree_leaves()
  if params["algorithm"] != "tree_ah" or leaves is None:
    return params
  scanned = leaves[0] * len(base) / max(1, base.params.get("num_leaves", leaves[1]))
  share = min(1.0, scanned / count)
  params["num_leaves_to_search"] = int(min(params["num_leaves"], max(
      params["num_leaves_to_search"], math.ceil(share * params["num_leaves"]))))
  return params


def add(model_dir: str, entities: Sequence[KBEntity], embeddings_dir: str, *,
        replace: bool = False, kind: Optional[str] = None, source: str = "the entities",
        progress: bool = False) -> dict:
  """Adds entities (vectors in embeddings_dir, see check_embeddings) as one new segment;
  with replace, ids already in the knowledge base are replaced (their old rows masked).
  Returns the new generation's manifest."""
  entities = no_duplicates(entities, source)
  if not entities:
    raise KBInputError(f"{source}: no entities to add")
  with writer_lock(model_dir):
    kb = open_kb(model_dir, verify=False)
    check_embeddings(kb, embeddings_dir, entities)
    found = kb.locate(e.entity_id for e in entities)
    if found and not replace:
      first = next(e.entity_id for e in entities if e.entity_id in found)
      raise KBInputError(f"{source}: id {first!r} is already in the knowledge base "
                         f"(generation {kb.generation}){_more(len(found))}; pass --replace to "
                         "replace its description, or leave it out. Nothing was added")
    summary = {"added": len(entities) - len(found), "replaced": len(found), "removed": 0,
               "source": source, "entities": kb.live_count + len(entities) - len(found)}

    def fill(tmp):
      shutil.copytree(embeddings_dir, os.path.join(tmp, SEGMENT_EMBEDDINGS))
      segment_kind = kind or _base_kind(kb)
      build_index_from_embeddings(
          os.path.join(tmp, SEGMENT_EMBEDDINGS), os.path.join(tmp, SEGMENT_INDEX),
          kind=segment_kind, verify=False, progress=progress,
          params=segment_params(kb, len(entities)) if segment_kind == "scann" else None)
      with open(os.path.join(tmp, SEGMENT_ENTITIES), "w", encoding="utf-8") as f:
        for e in entities:
          f.write(f"{e.entity_id}\t{e.text}\n")
      write_records(os.path.join(tmp, RECORDS), entities)
      _write_masks(os.path.join(tmp, MASKS), found.values())

    return _write_change(model_dir, kb, "add", fill, summary)


def _more(n: int) -> str:
  return f" (and {n - 1} more)" if n > 1 else ""


def remove(model_dir: str, entity_ids: Sequence[str], source: str = "the ids") -> dict:
  """Removes entities (their rows masked); KBInputError naming an id given twice or not in
  the knowledge base, and nothing removed. Returns the new generation's manifest."""
  ids = list(entity_ids)
  if not ids:
    raise KBInputError(f"{source}: no ids to remove")
  seen = set()
  for n, entity_id in enumerate(ids, 1):
    if entity_id in seen:
      raise KBInputError(f"{source}: id {entity_id!r} appears twice (record {n})")
    seen.add(entity_id)
  with writer_lock(model_dir):
    kb = open_kb(model_dir, verify=False)
    found = kb.locate(ids)
    unknown = [e for e in ids if e not in found]
    if unknown:
      raise KBInputError(f"{source}: id {unknown[0]!r} is not in the knowledge base "
                         f"(generation {kb.generation}){_more(len(unknown))}. Nothing was "
                         "removed")
    summary = {"added": 0, "replaced": 0, "removed": len(ids), "source": source,
               "entities": kb.live_count - len(ids)}

    def fill(tmp):
      _write_masks(os.path.join(tmp, MASKS), found.values())
      with open(os.path.join(tmp, REMOVED), "w", encoding="utf-8") as f:
        f.writelines(e + "\n" for e in ids)

    return _write_change(model_dir, kb, "remove", fill, summary)


def _live_pieces(kb: KnowledgeBase) -> Iterator[Tuple[List[str], np.ndarray]]:
  """(ids, vectors) of every live entity, segment by segment, from their embeddings."""
  for segment in kb.segments:
    dead = set(segment.index.take_ids(kb.masks.get(segment.path, np.zeros(0, np.int64))))
    if not os.path.isdir(segment.embeddings):
      raise KBError(f"{segment.embeddings}: missing; compaction reads every segment's "
                    "embeddings (mel encode --model_dir writes the base's)")
    for ids, vectors in embeddings_lib.iter_shards(segment.embeddings, verify=False):
      keep = np.array([e not in dead for e in ids], dtype=bool)
      if keep.any():
        yield [e for e, k in zip(ids, keep.tolist()) if k], np.asarray(vectors[keep])


def compact(model_dir: str, kind: Optional[str] = None, shard_size: int = 100000,
            progress: bool = False) -> Optional[dict]:
  """Rebuilds one base from every live entity (a new generation without changes) and deletes
  what neither it nor the generation before references. None when there is nothing to do."""
  with writer_lock(model_dir):
    kb = open_kb(model_dir, verify=True)
    if not kb.manifest["changes"]:
      return None
    generation = kb.generation + 1
    rel = f"kb/{BASES}/{generation:05d}"
    with atomic_directory(ModelDir(model_dir).join(rel)) as tmp:
      vectors_dir = os.path.join(tmp, SEGMENT_EMBEDDINGS)
      count = shards = 0
      for ids, vectors in rechunk(_live_pieces(kb), shard_size):
        embeddings_lib.write_shard(vectors_dir, shards, ids, vectors)
        count += len(ids)
        shards += 1
      embeddings_lib.write_manifest(vectors_dir, shards, model=kb.manifest["model"])
      build_index_from_embeddings(vectors_dir, os.path.join(tmp, SEGMENT_INDEX),
                                  kind=kind or _base_kind(kb), verify=False, progress=progress)
      with open(os.path.join(tmp, SEGMENT_ENTITIES), "w", encoding="utf-8") as f:
        for segment in kb.segments:
          dead = set(segment.index.take_ids(kb.masks.get(segment.path, np.zeros(0, np.int64))))
          for line in segment.texts.lines:
            if line.split("\t", 1)[0] not in dead:
              f.write(line + "\n")
      write_records(os.path.join(tmp, RECORDS), kb.added.values())
    root = ModelDir(model_dir).join(rel)
    base = {"path": rel, "index": SEGMENT_INDEX, "entities": SEGMENT_ENTITIES,
            "embeddings": SEGMENT_EMBEDDINGS, "records": RECORDS,
            "index_manifest": manifests.file_entry(
                os.path.join(root, SEGMENT_INDEX, manifests.NAME)),
            "entities_file": manifests.file_entry(os.path.join(root, SEGMENT_ENTITIES))}
    summary = {"added": 0, "replaced": 0, "removed": 0, "entities": count,
               "compacted_segments": len(kb.segments), "masked_rows_dropped":
               sum(len(m) for m in kb.masks.values())}
    manifest = _commit(model_dir, kb, base, [], "compact", summary)
    prune(model_dir, [kb.manifest, manifest])
    return manifest


def prune(model_dir: str, keep: Sequence[dict]) -> List[str]:
  """Deletes the change and base directories that none of the manifests in keep references
  (a reader still loading an older generation would fail: keep the one before the current)."""
  referenced = set()
  for manifest in keep:
    referenced.add(manifest["base"]["path"])
    referenced.update(entry["path"] for entry in manifest.get("changes", []))
  deleted = []
  for kind in (CHANGES, BASES):
    parent = ModelDir(model_dir).join(f"kb/{kind}")
    if not os.path.isdir(parent):
      continue
    for name in sorted(os.listdir(parent)):
      rel = f"kb/{kind}/{name}"
      if rel not in referenced and name.isdigit():
        shutil.rmtree(os.path.join(parent, name))
        deleted.append(rel)
  return deleted
