"""A model directory's serving parts, read (local or gs://) and checked to belong together.

    parts = read_parts("out/models/demo_f/round1")   # or "gs://bucket/model_dir"

Paths are mel.model_dir's: export/manifest.json and export/mention_encoder/ (`mel train`),
export/entity_encoder/ (optional: full mode's exact prior rescoring), entities.tsv, index/
(`mel encode` + `mel index`), dictionary/ (`mel dictionary`) and kb/ (optional: entities added,
replaced or removed since, `mel kb`; its current generation is what is searched, and the
dictionary gains the added entities' labels and aliases); other files are ignored. A missing
part is named with the command that builds it. `read_kb_parts` reads what a new generation
changes, for Linker.reload.

gs:// directories are fetched by mel.linking.model_cache, then read from local disk and
verified (every index and dictionary file against its manifest's sha256, entities.tsv against
the checksum the index recorded); a cached copy that fails is fetched again once.

A reranker (`mel.load(path, reranker=DIR)`) is read by read_reranker from a local model dir
trained with model.kind CA: its export/manifest.json and export/reranker/ (its SavedModel,
loaded and run once on an empty pair, so that a broken export fails at load).

The export manifest's "tokenizer" ("wordpiece" for mBERT-style towers, also when the key is
absent; "e5" for multilingual-e5 towers) names the model's pretraining languages
(mel.languages.pretraining_languages); any other value is an error naming it.
"""
import os
import sys
from typing import NamedTuple, Optional

from mel import languages, retrieval, towers
from mel.linking.dictionary import BUILD_COMMAND, SurfaceDictionary
from mel.model_dir import ModelDir
from mel.retrieval.kb import EntityTexts, KBTexts, KnowledgeBase, open_search_index

ENV_MODEL_DIR = "MEL_MODEL_DIR"


class ModelNotFoundError(FileNotFoundError):
  """No model directory was given, or it lacks a part serving needs."""


class Parts(NamedTuple):
  """What a Linker is made of (mel.linking.linker.Linker's arguments)."""
  encoder: towers.MentionTower
  index: retrieval.Index
  entities: KBTexts                              # index row -> (entity id, text)
  dictionary: SurfaceDictionary
  entity_encoder: Optional[towers.EntityTower]   # None when the export has no entity tower
  entity_input: str
  fetch_stats: Optional[dict]                    # gs:// only: {"downloaded", "reused", ...}
  tokenizer: str = "wordpiece"                   # the export manifest's; absent: "wordpiece"
  kb: Optional[KnowledgeBase] = None             # None when --index named another index
  trained_dictionary: Optional[SurfaceDictionary] = None   # before the kb's names were added


class KBParts(NamedTuple):
  """What changes with the knowledge base's generation (Linker.reload swaps them)."""
  index: retrieval.Index
  entities: KBTexts                 # index row -> (entity id, text)
  dictionary: SurfaceDictionary
  kb: Optional[KnowledgeBase]


def read_kb_parts(path: str, index_path: Optional[str], dictionary: SurfaceDictionary,
                  verify: bool = True) -> KBParts:
  """The index, entity texts and dictionary of model dir path's current knowledge-base
  generation (mel.retrieval.kb), or of index_path when it is not the model's own index/.
  dictionary: the model's, as trained; it gains the added entities' names."""
  index, kb = open_search_index(path, index_path, verify)
  if kb is None:
    texts = KBTexts([EntityTexts(ModelDir(path).entities, index.ids)], [0], set())
    return KBParts(index, texts, dictionary, None)
  if kb.generation == 0:
    return KBParts(index, kb.entities, dictionary, kb)
  grown = dictionary.grown(((e, r.names()) for e, r in kb.added.items()), kb.removed)
  return KBParts(index, kb.entities, grown, kb)


def resolve_model_dir(path: Optional[str]) -> str:
  """path, else $MEL_MODEL_DIR; ModelNotFoundError saying how to give one."""
  path = path or os.environ.get(ENV_MODEL_DIR, "")
  if not path:
    raise ModelNotFoundError(
        f"no model directory: pass one (mel.load(PATH), mel.link(..., model_dir=PATH), "
        f"mel link --model_dir PATH) or set {ENV_MODEL_DIR}. A model directory holds export/, "
        f"index/, entities.tsv and dictionary/ (bash scripts/demo.sh makes one under "
        f"out/models/)")
  return path


def read_parts(path: str, index: Optional[str] = None, dictionary: Optional[str] = None,
               cache_dir: Optional[str] = None, verify: bool = True) -> Parts:
  """The parts of model directory path; index / dictionary override <path>/index and
  <path>/dictionary (local or gs://). verify checks every index and dictionary file's sha256
  (always done for gs:// fetches)."""
  if any((p or "").startswith("gs://") for p in (path, index, dictionary)):
    from mel.linking import model_cache
    local = model_cache.fetch_all(path, index, dictionary, cache_dir)
    try:
      return _read_local(*local.paths, verify=True, fetch_stats=local.stats,
                         index_given=index is not None)
    except (ValueError, OSError) as e:
      if not local.stats.get("reused"):
        raise
      print(f"[mel] the cached copy in {local.paths[0]} failed verification ({e}); fetching "
            f"it again", file=sys.stderr)
    local = model_cache.fetch_all(path, index, dictionary, cache_dir, force=True)
    return _read_local(*local.paths, verify=True, fetch_stats=local.stats,
                       index_given=index is not None)
  directory = ModelDir(path)
  return _read_local(path, index or directory.index, dictionary or directory.dictionary,
                     verify=verify, index_given=index is not None)


def read_reranker(path: str) -> towers.Reranker:
  """The reranker of model dir path (model.kind CA), loaded; ModelNotFoundError naming what is
  missing, ValueError (mel.towers.reranker) for a model dir of another kind."""
  if path.startswith("gs://"):
    raise ModelNotFoundError(f"reranker {path}: a reranker is read from a local directory; "
                             "copy it first (gsutil -m cp -r)")
  if not os.path.isdir(path):
    raise ModelNotFoundError(f"reranker {path}: no such model directory")
  directory = ModelDir(path)
  how = "train a reranker with `mel train` (model.kind: CA)"
  _require(directory.export_manifest, how)
  scorer = towers.reranker(path)
  _require(directory.reranker, how)
  scorer([""], [""], [""], [""], [""])   # loads the SavedModel now: a broken export fails here
  return scorer


def _require(path: str, how: str) -> str:
  if not os.path.exists(path):
    raise ModelNotFoundError(f"{path}: missing; {how}")
  return path


def _read_local(path: str, index_path: str, dictionary_path: str, *, verify: bool,
                fetch_stats: Optional[dict] = None, index_given: bool = False) -> Parts:
  """index_given: index_path was named by the caller (searched as it is); else the model's
  knowledge base is searched (its index/ and the changes of `mel kb`)."""
  if not os.path.isdir(path):
    raise ModelNotFoundError(f"{path}: no such model directory")
  directory = ModelDir(path)
  train = "train and export the model first with `mel train`"
  _require(directory.export_manifest, train)
  _require(directory.mention_encoder, train)
  _require(directory.entities, "it is written by `mel train`")
  _require(index_path, f"build it with `mel encode --model_dir {path}`, then "
           f"`mel index --model_dir {path}`")
  _require(dictionary_path, f"build it with `{BUILD_COMMAND.format(path=dictionary_path)}`")
  export = directory.read_export_manifest()
  tokenizer = export.get("tokenizer", "wordpiece")
  try:
    languages.pretraining_languages(tokenizer)
  except ValueError as e:
    raise ValueError(f"{directory.export_manifest}: {e}") from None
  dictionary = SurfaceDictionary.load(dictionary_path, verify=verify)
  kb_parts = read_kb_parts(path, index_path if index_given else None, dictionary, verify)
  # the mention tower is loaded now, so that a broken export fails here and not at the first
  # text; the entity tower only serves full mode's missed prior entities: loaded on first use
  encoder = towers.MentionTower(directory.mention_encoder,
                                module=towers.load_saved_model(directory.mention_encoder))
  entity_input = export.get("entity_input", "description")
  entity_encoder = None
  if os.path.isdir(directory.entity_encoder):
    entity_encoder = towers.EntityTower(directory.entity_encoder, entity_input)
  return Parts(encoder, kb_parts.index, kb_parts.entities, kb_parts.dictionary, entity_encoder,
               entity_input, fetch_stats, tokenizer, kb_parts.kb, dictionary)
