"""SavedModels of the two towers whose signatures take raw strings (callers need no tokenizer).

In a model dir (paths: mel.model_dir):
    export/mention_encoder   serving_default(title, left, mention, right: string [B])
                               -> {"embeddings": float32 [B, D]}
    export/entity_encoder    Model F: serving_default(description: string [B])
                             Model E: serving_default(entity_id: string [B])
                               -> {"embeddings": float32 [B, D]} (zeros for unknown ids)
    export/reranker          model.kind CA, in place of the towers:
                             serving_default(title, left, mention, right, description:
                               string [N]) -> {"logits": float32 [N]} (one mention-entity
                               pair per row; sigmoid(logit) is the pair's probability when
                               trained with the bce loss)
    export/manifest.json     kind, step, embedding_dim, tokenizer (wordpiece or e5),
                             vocabulary size, mention_layout, entity count,
                             trained_precision (float32 or bfloat16)

The exported towers compute in float32 whatever the training precision (mel.training.train
exports a float32 copy of a bfloat16-trained model): serving machines often lack bfloat16
hardware, where bfloat16 runs emulated and slower.

Loading needs TensorFlow and `import tensorflow_text` (its ops), nothing from mel's training
code. Each SavedModel is written beside its target and renamed into place.
"""
import json

import tensorflow as tf

from mel import entity_table
from mel.model_dir import ModelDir
from mel.training.input_layout import InputBuilder

_STRING_BATCH = tf.TensorSpec([None], tf.string)


class MentionEncoder(tf.Module):
  """Raw mention strings -> unit vectors, tokenisation included."""

  def __init__(self, tower, builder: InputBuilder):
    super().__init__(name="mention_encoder")
    self.tower = tower
    self.tokenizer = builder.tokenizer.module   # tracked: the vocabulary goes into the export
    self._builder = builder

  @tf.function(input_signature=[_STRING_BATCH] * 4)
  def serve(self, title, left, mention, right):
    inputs = self._builder.mentions(title, left, mention, right)
    return {"embeddings": self.tower(inputs, training=False)}


class DescriptionEncoder(tf.Module):
  """Model F: raw description strings -> unit vectors."""

  def __init__(self, tower, builder: InputBuilder):
    super().__init__(name="entity_encoder")
    self.tower = tower
    self.tokenizer = builder.tokenizer.module
    self._builder = builder

  @tf.function(input_signature=[_STRING_BATCH])
  def serve(self, description):
    return {"embeddings": self.tower(self._builder.entities(description), training=False)}


class EntityIdEncoder(tf.Module):
  """Model E: entity ids -> their table rows (zero vectors for ids not in the table)."""

  def __init__(self, tower, table_path: str):
    super().__init__(name="entity_encoder")
    self.tower = tower
    self.rows = entity_table.row_lookup(table_path)

  @tf.function(input_signature=[_STRING_BATCH])
  def serve(self, entity_id):
    rows = self.rows.lookup(entity_id)
    vectors = self.tower(tf.cast(tf.maximum(rows, 0), tf.int32), training=False)
    return {"embeddings": tf.where((rows >= 0)[:, None], vectors, tf.zeros_like(vectors))}


class PairScorer(tf.Module):
  """The reranker: raw mention-entity pairs -> logits, tokenisation included."""

  def __init__(self, model, builder: InputBuilder):
    super().__init__(name="reranker")
    self.model = model
    self.tokenizer = builder.tokenizer.module
    self._builder = builder

  @tf.function(input_signature=[_STRING_BATCH] * 5)
  def serve(self, title, left, mention, right, description):
    inputs = self._builder.pairs(title, left, mention, right, description)
    return {"logits": self.model(inputs, training=False)}


def _save(module, path: str):
  tmp = path + ".tmp"
  if tf.io.gfile.exists(tmp):
    tf.io.gfile.rmtree(tmp)
  tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
  if tf.io.gfile.exists(path):
    tf.io.gfile.rmtree(path)
  tf.io.gfile.rename(tmp, path)


def exported_step(model_dir: ModelDir):
  """The step of the export in model_dir (local or gs://), None when there is none."""
  if not tf.io.gfile.exists(model_dir.export_manifest):
    return None
  with tf.io.gfile.GFile(model_dir.export_manifest) as f:
    return json.load(f).get("step")


def export_towers(model, builder: InputBuilder, kind: str, model_dir: ModelDir, *, step: int,
                  entity_names: bool = False,
                  trained_precision: str = "float32") -> dict:
  """Writes both towers and the manifest into model_dir's export/; returns the manifest.

  model: a dual encoder computing in float32; trained_precision: the precision its weights
  were trained in (recorded).
  """
  tf.io.gfile.makedirs(model_dir.export)
  _save(MentionEncoder(model.mention_tower, builder), model_dir.mention_encoder)
  if kind == "F":
    entity_module = DescriptionEncoder(model.entity_tower, builder)
  else:
    entity_module = EntityIdEncoder(model.entity_tower, model_dir.entities)
  _save(entity_module, model_dir.entity_encoder)
  manifest = {
      "kind": kind, "step": int(step),
      # the vectors' size (model.typing: f's and u's concatenated, twice model.embedding_dim)
      "embedding_dim": int(model.mention_tower.output_dim),
      "vocab_size": builder.tokenizer.vocab_size,
      "tokenizer": builder.tokenizer.kind,
      "mention_layout": builder.mention_layout,
      "max_seq_length": builder.max_seq_length,
      "max_title_length": builder.max_title_length,
      "num_entities": entity_table.count(model_dir.entities),
      "entity_input": "description" if kind == "F" else "entity_id",
      # how the entity table's texts were made: entities added later are made the same way
      "entity_names": bool(entity_names),
      "trained_precision": trained_precision,
  }
  _write_manifest(manifest, model_dir)
  return manifest


def export_reranker(model, builder: InputBuilder, model_dir: ModelDir, *, step: int,
                    entity_names: bool = False, trained_precision: str = "float32",
                    loss: str = "bce") -> dict:
  """Writes the reranker (a CrossEncoder computing in float32) and the manifest into
  model_dir's export/; returns the manifest."""
  tf.io.gfile.makedirs(model_dir.export)
  _save(PairScorer(model, builder), model_dir.reranker)
  manifest = {
      "kind": "CA", "step": int(step), "loss": loss,
      "probability": "sigmoid(logit)" if loss == "bce" else None,
      "vocab_size": builder.tokenizer.vocab_size,
      "tokenizer": builder.tokenizer.kind,
      "max_seq_length": builder.max_seq_length,
      "max_title_length": builder.max_title_length,
      "num_entities": entity_table.count(model_dir.entities),
      "entity_names": bool(entity_names),
      "trained_precision": trained_precision,
  }
  _write_manifest(manifest, model_dir)
  return manifest


def _write_manifest(manifest: dict, model_dir: ModelDir) -> None:
  tmp = model_dir.export_manifest + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, model_dir.export_manifest, overwrite=True)
