"""Initialise a tower's BERT encoder from a pretrained (mBERT) checkpoint.

Accepted checkpoints:
  * google-research/bert TF1 releases (bert_config.json, bert_model.ckpt.*, vocab.txt; e.g.
    multi_cased_L-12_H-768_A-12): converted with tf-models-official's converter
    (official.nlp.tools.tf2_bert_encoder_checkpoint_converter) into a temporary TF2 checkpoint;
  * TF2 object-based checkpoints of a tf-models BertEncoder, saved as Checkpoint(encoder=...)
    or Checkpoint(model=...).
The encoder is rebuilt at the checkpoint's size, restored, and the tower takes its token,
position and token-type embeddings, the embedding LayerNorm and its first N transformer layers
(paper App. B: the first 4 layers of mBERT-base). mel uses 4 token types (title, left, mention,
right) where BERT has 2: rows 0 and 1 are copied and every new row starts as a copy of row 1
(BERT's "sentence B"), so the new segments begin where the context segment is.
"""
import json
import os
import tempfile
from typing import Optional

import tensorflow as tf


class CheckpointError(ValueError):
  """A pretrained checkpoint cannot initialise the tower; the message says why."""


def _bert_config(checkpoint_path: str, bert_config_path: Optional[str]):
  from official.legacy.bert import configs as bert_configs
  path = bert_config_path or os.path.join(os.path.dirname(checkpoint_path), "bert_config.json")
  if not tf.io.gfile.exists(path):
    raise CheckpointError(f"no BERT config for {checkpoint_path}: expected {path} "
                          "(the release's bert_config.json)")
  with tf.io.gfile.GFile(path, "r") as f:
    try:
      return bert_configs.BertConfig.from_dict(json.load(f))
    except (ValueError, TypeError) as e:
      raise CheckpointError(f"{path}: not a BERT config: {e}") from None


def checkpoint_format(checkpoint_path: str) -> str:
  """'tf1' (google-research/bert names) or 'tf2:<root>' (object-based, root 'encoder'/'model')."""
  try:
    names = [name for name, _ in tf.train.list_variables(checkpoint_path)]
  except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
    raise CheckpointError(f"cannot read checkpoint {checkpoint_path}: {e}") from None
  if any(name.startswith("bert/embeddings/") for name in names):
    return "tf1"
  roots = {name.split("/", 1)[0] for name in names if "/.ATTRIBUTES/" in name}
  for root in ("encoder", "model"):
    if root in roots:
      return f"tf2:{root}"
  raise CheckpointError(f"{checkpoint_path}: neither a TF1 BERT checkpoint (bert/...) nor a "
                        f"TF2 encoder checkpoint (encoder/... or model/...); roots: "
                        f"{sorted(roots)[:5]}")


def _restore_source_encoder(checkpoint_path: str, bert_config):
  """The pretrained encoder at the checkpoint's full size, weights restored."""
  from official.nlp.tools import tf2_bert_encoder_checkpoint_converter as converter
  fmt = checkpoint_format(checkpoint_path)
  with tempfile.TemporaryDirectory(prefix="mel-bert-convert-") as tmp:
    if fmt == "tf1":
      converted = os.path.join(tmp, "converted", "ckpt")
      converter.convert_checkpoint(bert_config, converted, checkpoint_path,
                                   checkpoint_model_name="encoder", converted_model="encoder")
      restore_path = tf.train.latest_checkpoint(os.path.dirname(converted))
      if restore_path is None:
        raise CheckpointError(f"converting {checkpoint_path} wrote no checkpoint")
      root = "encoder"
    else:
      restore_path, root = checkpoint_path, fmt.split(":", 1)[1]
    encoder = converter._create_bert_model(bert_config)   # the converter's own BertEncoder
    seq = tf.zeros([1, 4], tf.int32)
    encoder({"input_word_ids": seq, "input_mask": tf.ones_like(seq), "input_type_ids": seq})
    status = tf.train.Checkpoint(**{root: encoder}).read(restore_path)
    status.expect_partial()
    try:
      status.assert_existing_objects_matched()
    except AssertionError as e:
      raise CheckpointError(f"{checkpoint_path}: does not match a BERT encoder of its "
                            f"config: {e}") from None
  return encoder


def _assign(target_layer, source_layer, what: str):
  target, source = target_layer.get_weights(), source_layer.get_weights()
  shapes_t = [w.shape for w in target]
  shapes_s = [w.shape for w in source]
  if shapes_t != shapes_s:
    raise CheckpointError(f"{what}: tower shapes {shapes_t} differ from checkpoint {shapes_s}")
  target_layer.set_weights(source)


def initialize_from_checkpoint(encoder, checkpoint_path: str,
                               bert_config_path: Optional[str] = None) -> dict:
  """Copies pretrained weights into `encoder` (a built BertEncoderV2). Returns a report."""
  bert_config = _bert_config(checkpoint_path, bert_config_path)
  source = _restore_source_encoder(checkpoint_path, bert_config)
  num_layers = len(encoder.transformer_layers)
  if num_layers > len(source.transformer_layers):
    raise CheckpointError(f"the tower has {num_layers} layers, {checkpoint_path} only "
                          f"{len(source.transformer_layers)}")

  word_t = encoder._embedding_layer.embeddings
  word_s = source._embedding_layer.embeddings
  if word_t.shape != word_s.shape:
    raise CheckpointError(
        f"word embeddings: the vocabulary gives {tuple(word_t.shape)}, {checkpoint_path} has "
        f"{tuple(word_s.shape)}; use the vocab.txt that came with the checkpoint")
  word_t.assign(word_s)

  position_t = encoder._position_embedding_layer.get_weights()[0]
  position_s = source._position_embedding_layer.get_weights()[0]
  if position_t.shape[0] > position_s.shape[0] or position_t.shape[1] != position_s.shape[1]:
    raise CheckpointError(f"position embeddings {position_t.shape} do not fit the "
                          f"checkpoint's {position_s.shape}")
  encoder._position_embedding_layer.set_weights([position_s[:position_t.shape[0]]])

  type_t = encoder._type_embedding_layer.get_weights()[0]
  type_s = source._type_embedding_layer.get_weights()[0]
  if type_t.shape[1] != type_s.shape[1]:
    raise CheckpointError(f"token type embeddings {type_t.shape} vs {type_s.shape}")
  rows = [type_s[min(i, type_s.shape[0] - 1)] for i in range(type_t.shape[0])]
  encoder._type_embedding_layer.set_weights([tf.stack(rows).numpy()])

  _assign(encoder._embedding_norm_layer, source._embedding_norm_layer, "embedding LayerNorm")
  for i in range(num_layers):
    _assign(encoder.transformer_layers[i], source.transformer_layers[i], f"layer {i}")
  _assign(encoder.pooler_layer, source.pooler_layer, "pooler")
  return {"checkpoint": checkpoint_path, "layers": num_layers,
          "checkpoint_layers": bert_config.num_hidden_layers,
          "vocab_size": int(word_s.shape[0]), "token_types": f"{type_s.shape[0]}->{type_t.shape[0]}"}
