"""A model directory: every path inside it is named here and nowhere else.

    <model_dir>/config.yaml          the effective experiment config (mel train)
                vocab.txt            the WordPiece vocabulary the towers read, or
                sentencepiece.model  e5's SentencePiece ModelProto (mel.training.e5_tokenization)
                entities.tsv         entity ids and the texts the entity tower reads (entity_table)
                type_vocabulary.tsv  model.typing: the types the classifiers predict, a row each
                                     (mel.training.type_task)
                entity_types.tsv     model.typing: entity id, its types' rows (space-separated)
                checkpoints/         ckpt-<step>; training resumes from the latest
                train/               TensorBoard summaries
                train_summary.json   written last by training
                export/manifest.json kind, step, embedding_dim, entity_input, ... (mel.training.export)
                export/mention_encoder/, export/entity_encoder/   SavedModels taking raw strings
                export/reranker/     the reranker's SavedModel (model.kind CA: a reranker's
                                     model dir holds it instead of the two towers)
                embeddings/          entity vectors (mel encode)
                index/               nearest-entity index (mel index)
                dictionary/          the spotter's surface forms (mel dictionary)
                kb/                  the knowledge base's generations: entities added, replaced
                                     and removed after training (mel kb, mel.retrieval.kb)
                nil.json             the NIL threshold chosen on held-out data (mel.nil_threshold;
                                     mel evaluate --nil_fraction F --save_threshold)
                eval/<dataset kind>/ evaluation reports (mel evaluate)

Paths may be local or gs:// (training writes either); the readers here read local files.
Later stages learn what they need of a model (its identity, its mining run) from here, without
importing training code.
"""
import json
import os
from typing import Optional

CONFIG = "config.yaml"
VOCAB = "vocab.txt"
SENTENCEPIECE_MODEL = "sentencepiece.model"
ENTITIES = "entities.tsv"
TYPE_VOCABULARY = "type_vocabulary.tsv"
ENTITY_TYPES = "entity_types.tsv"
CHECKPOINTS = "checkpoints"
SUMMARIES = "train"
TRAIN_SUMMARY = "train_summary.json"
EXPORT = "export"
EXPORT_MANIFEST = "export/manifest.json"
MENTION_ENCODER = "export/mention_encoder"
ENTITY_ENCODER = "export/entity_encoder"
RERANKER = "export/reranker"
EMBEDDINGS = "embeddings"
INDEX = "index"
DICTIONARY = "dictionary"
KB = "kb"
NIL_THRESHOLD = "nil.json"
EVAL = "eval"
# What serving reads of a model dir besides index/ and dictionary/ (the gs:// cache fetches
# these, not checkpoints, summaries or embeddings; optional ones only when present). A trailing
# "/" names a directory.
SERVING_PARTS = (EXPORT_MANIFEST, MENTION_ENCODER + "/", ENTITY_ENCODER + "/", ENTITIES,
                 NIL_THRESHOLD)


def _join(root: str, rel: str) -> str:
  return os.path.join(root, *rel.split("/"))


class ModelDir:
  """Paths of one model directory, and readers for what later stages need of it."""

  def __init__(self, path: str):
    if not path:
      raise ValueError("no model directory given")
    self.path = path

  def __repr__(self) -> str:
    return f"ModelDir({self.path!r})"

  def join(self, rel: str) -> str:
    return _join(self.path, rel)

  config = property(lambda self: self.join(CONFIG))
  vocab = property(lambda self: self.join(VOCAB))
  sentencepiece_model = property(lambda self: self.join(SENTENCEPIECE_MODEL))
  entities = property(lambda self: self.join(ENTITIES))
  type_vocabulary = property(lambda self: self.join(TYPE_VOCABULARY))
  entity_types = property(lambda self: self.join(ENTITY_TYPES))
  checkpoints = property(lambda self: self.join(CHECKPOINTS))
  summaries = property(lambda self: self.join(SUMMARIES))
  train_summary = property(lambda self: self.join(TRAIN_SUMMARY))
  export = property(lambda self: self.join(EXPORT))
  export_manifest = property(lambda self: self.join(EXPORT_MANIFEST))
  mention_encoder = property(lambda self: self.join(MENTION_ENCODER))
  entity_encoder = property(lambda self: self.join(ENTITY_ENCODER))
  reranker = property(lambda self: self.join(RERANKER))
  embeddings = property(lambda self: self.join(EMBEDDINGS))
  index = property(lambda self: self.join(INDEX))
  dictionary = property(lambda self: self.join(DICTIONARY))
  kb = property(lambda self: self.join(KB))
  nil_threshold = property(lambda self: self.join(NIL_THRESHOLD))

  def eval(self, dataset_kind: str) -> str:
    return os.path.join(self.join(EVAL), dataset_kind)

  def read_export_manifest(self) -> dict:
    """export/manifest.json; FileNotFoundError saying how to make it when it is missing."""
    path = self.export_manifest
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} not found: train (and export) the model first with "
                              "`mel train`")
    with open(path, encoding="utf-8") as f:
      return json.load(f)

  def export_step(self) -> Optional[int]:
    """The exported step, None when nothing is exported yet."""
    try:
      return self.read_export_manifest().get("step")
    except FileNotFoundError:
      return None

  def identity(self) -> dict:
    """What entity vectors of this model depend on: the export and the entity table.

    Embeddings and indexes record it; loading checks it, so vectors of one model are never
    searched with another model's mention tower.
    """
    from mel.files import sha256_file
    export = self.read_export_manifest()
    return {**self.tower_identity(export), "model_dir": os.path.abspath(self.path),
            "entity_table_sha256": sha256_file(self.entities)}

  def tower_identity(self, export: Optional[dict] = None) -> dict:
    """What any entity vector of this model depends on besides its text: the exported tower
    (entities added after training are encoded by it; mel.retrieval.kb checks it)."""
    export = export or self.read_export_manifest()
    return {"kind": export["kind"],
            "step": export["step"], "embedding_dim": export["embedding_dim"],
            "entity_input": export["entity_input"],
            "tokenizer": export.get("tokenizer", "wordpiece")}

  def check_index(self, index_model: dict, index_path: str) -> dict:
    """This model's identity(), after checking that an index (whose manifest recorded
    index_model) holds vectors of this model: ValueError naming what differs."""
    identity = self.identity()
    for key in ("kind", "step", "embedding_dim", "entity_table_sha256"):
      if key in index_model and index_model[key] != identity[key]:
        raise ValueError(f"{index_path} was built from another model: its {key} is "
                         f"{index_model[key]!r}, {self.path} has {identity[key]!r}; encode "
                         f"the entities and build the index again (mel encode, mel index)")
    return identity

  def read_config(self) -> dict:
    """config.yaml as a dict; FileNotFoundError when the directory was never trained."""
    import yaml
    if not os.path.exists(self.config):
      raise FileNotFoundError(f"{self.config} not found: not a trained model dir")
    with open(self.config, encoding="utf-8") as f:
      return yaml.safe_load(f) or {}

  def mining_dir(self) -> str:
    """The mining run the model was trained on (config.yaml's data.mining_dir)."""
    try:
      config = self.read_config()
    except FileNotFoundError as e:
      raise FileNotFoundError(f"{e} (pass the mining run with --mining_dir)") from None
    mining_dir = (config.get("data") or {}).get("mining_dir", "")
    if not mining_dir:
      raise ValueError(f"{self.config}: no data.mining_dir (pass --mining_dir)")
    return mining_dir
