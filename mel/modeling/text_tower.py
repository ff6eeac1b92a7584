"""A text tower: BERT encoder -> [CLS] -> Dense(embedding_dim) -> L2 normalise."""
import dataclasses

import tensorflow as tf
import tf_keras
from official.modeling import tf_utils
from official.nlp.modeling import networks

from mel.training import configs


def build_bert_encoder(config: configs.EncoderConfig) -> networks.BertEncoderV2:
  """A BertEncoderV2 whose last layer computes only the first two positions (output_range=2).

  Only [CLS] is read, so the last layer skips the other queries. The range is 2, not 1: with
  a query length of 1, TF 2.20's oneDNN CPU kernels for the attention einsums (rank-4 operand
  with a size-1 dim, broadcast other side) corrupt the heap under training and crash the
  process at random (SIGSEGV / SIGABRT; tensorflow/tensorflow#117700, #123109). Two positions
  avoid that path at 1/L extra cost in the last layer; the weights are the same either way.
  """
  if config.vocab_size <= 0:
    raise ValueError("EncoderConfig.vocab_size must be set (the vocabulary's size)")
  return networks.BertEncoderV2(
      vocab_size=config.vocab_size,
      hidden_size=config.hidden_size,
      num_layers=config.num_layers,
      num_attention_heads=config.num_attention_heads,
      inner_dim=config.intermediate_size,
      inner_activation=tf_utils.get_activation(config.hidden_act),
      output_dropout=config.dropout_rate,
      attention_dropout=config.attention_dropout_rate,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size,
      initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range),
      output_range=2)


@tf_keras.utils.register_keras_serializable(package="mel")
class TextTower(tf_keras.Model):
  """Encodes a [B, L] input layout to float32 unit vectors [B, embedding_dim].

  Inputs: dict of int32 [B, L] input_word_ids, input_mask, input_type_ids.
  The encoder computes in the dtype policy the tower is built under (mixed_bfloat16 or
  float32); the output is float32 either way.
  The final layer's [CLS] vector is projected (paper Sec. 4.1); BERT's pooler is not used.
  """

  def __init__(self, encoder_config: dict, embedding_dim: int = 300, **kwargs):
    super().__init__(**kwargs)
    self._encoder_config = dict(encoder_config)
    self._embedding_dim = embedding_dim
    self.encoder = build_bert_encoder(configs.EncoderConfig(**self._encoder_config))
    self.projection = tf_keras.layers.Dense(
        embedding_dim, name="projection",
        kernel_initializer=tf_keras.initializers.TruncatedNormal(
            stddev=self._encoder_config.get("initializer_range", 0.02)))

  def call(self, inputs, training=False):
    outputs = self.encoder(inputs, training=training)
    cls = outputs["sequence_output"][:, 0, :]          # [B, H]
    # float32 out under any precision policy: the logits, the softmax and the exported
    # vectors (which ScaNN indexes) need float32's mantissa.
    projected = tf.cast(self.projection(cls), tf.float32)
    return tf.math.l2_normalize(projected, axis=-1)    # float32 [B, D]

  def get_config(self):
    return {"encoder_config": self._encoder_config, "embedding_dim": self._embedding_dim,
            "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  @classmethod
  def from_encoder_config(cls, config: configs.EncoderConfig, embedding_dim: int, name: str):
    return cls(dataclasses.asdict(config), embedding_dim, name=name)
