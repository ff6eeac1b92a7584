"""SavedModels of the two towers whose signatures take raw strings (callers need no tokenizer).

    <export_dir>/mention_encoder   serving_default(title, left, mention, right: string [B])
                                     -> {"embeddings": float32 [B, D]}
    <export_dir>/entity_encoder    Model F: serving_default(description: string [B])
                                   Model E: serving_default(entity_id: string [B])
                                     -> {"embeddings": float32 [B, D]} (zeros for unknown ids)
    <export_dir>/manifest.json     kind, dimension, step, vocabulary size, entity count

Loading needs TensorFlow and `import tensorflow_text` (its ops), nothing from mel's training
code. The directory is written beside the target and renamed into place.
"""
import json
import os

import tensorflow as tf

from mel import entity_table
from mel.training.input_layout import InputBuilder

MENTION_ENCODER = "mention_encoder"
ENTITY_ENCODER = "entity_encoder"
MANIFEST = "manifest.json"
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


def _save(module, path: str):
  tmp = path + ".tmp"
  if tf.io.gfile.exists(tmp):
    tf.io.gfile.rmtree(tmp)
  tf.saved_model.save(module, tmp, signatures={"serving_default": module.serve})
  if tf.io.gfile.exists(path):
    tf.io.gfile.rmtree(path)
  tf.io.gfile.rename(tmp, path)


def export_towers(model, builder: InputBuilder, kind: str, export_dir: str, *, step: int,
                  table_path: str) -> dict:
  """Writes both towers and the manifest; returns the manifest."""
  tf.io.gfile.makedirs(export_dir)
  _save(MentionEncoder(model.mention_tower, builder), os.path.join(export_dir, MENTION_ENCODER))
  if kind == "F":
    entity_module = DescriptionEncoder(model.entity_tower, builder)
  else:
    entity_module = EntityIdEncoder(model.entity_tower, table_path)
  _save(entity_module, os.path.join(export_dir, ENTITY_ENCODER))
  manifest = {
      "kind": kind, "step": int(step),
      "embedding_dim": int(model.mention_tower.get_config()["embedding_dim"]),
      "vocab_size": builder.tokenizer.vocab_size,
      "max_seq_length": builder.max_seq_length,
      "max_title_length": builder.max_title_length,
      "num_entities": entity_table.count(table_path),
      "entity_input": "description" if kind == "F" else "entity_id",
  }
  tmp = os.path.join(export_dir, MANIFEST + ".tmp")
  with tf.io.gfile.GFile(tmp, "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
  tf.io.gfile.rename(tmp, os.path.join(export_dir, MANIFEST), overwrite=True)
  return manifest
