"""A text tower: BERT encoder -> [CLS] or mean pooling -> Dense(embedding_dim) -> L2 normalise."""
import dataclasses

import tensorflow as tf
import tf_keras
from official.modeling import tf_utils
from official.nlp.modeling import networks

from mel.training import configs


@tf_keras.utils.register_keras_serializable(package="mel")
def exact_gelu(x):
  """GELU with erf (BERT's and XLM-R's own), where tf-models' "gelu" is the tanh approximation."""
  return tf.nn.gelu(x, approximate=False)


def activation(name: str):
  """An activation by config name ("exact_gelu" or tf-models' names)."""
  return exact_gelu if name == "exact_gelu" else tf_utils.get_activation(name)


def build_bert_encoder(config: configs.EncoderConfig,
                       cls_only: bool = True) -> networks.BertEncoderV2:
  """A BertEncoderV2; with cls_only its last layer computes only the first two positions
  (output_range=2), for [CLS] pooling.

  With [CLS] pooling only [CLS] is read, so the last layer skips the other queries. The range
  is 2, not 1: with a query length of 1, TF 2.20's oneDNN CPU kernels for the attention
  einsums (rank-4 operand with a size-1 dim, broadcast other side) corrupt the heap under
  training and crash the process at random (SIGSEGV / SIGABRT; tensorflow/tensorflow#117700,
  #123109). Two positions avoid that path at 1/L extra cost in the last layer; the weights are
  the same either way.
  """
  if config.vocab_size <= 0:
    raise ValueError("EncoderConfig.vocab_size must be set (the vocabulary's size)")
  return networks.BertEncoderV2(
      vocab_size=config.vocab_size,
      hidden_size=config.hidden_size,
      num_layers=config.num_layers,
      num_attention_heads=config.num_attention_heads,
      inner_dim=config.intermediate_size,
      inner_activation=activation(config.hidden_act),
      output_dropout=config.dropout_rate,
      attention_dropout=config.attention_dropout_rate,
      max_sequence_length=config.max_position_embeddings,
      type_vocab_size=config.type_vocab_size,
      initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range),
      output_range=2 if cls_only else None)


def pool(sequence, input_mask, pooling: str):
  """[B, L, H] encoder output -> [B, H]: the [CLS] vector ("cls") or the mean over the real
  pieces ("mean", input_mask int [B, L])."""
  if pooling == "cls":
    return sequence[:, 0, :]
  mask = tf.cast(input_mask, sequence.dtype)[:, :, None]                  # [B, L, 1]
  return tf.reduce_sum(sequence * mask, axis=1) / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


@tf_keras.utils.register_keras_serializable(package="mel")
class TextTower(tf_keras.Model):
  """Encodes a [B, L] input layout to float32 unit vectors [B, embedding_dim].

  Inputs: dict of int32 [B, L] input_word_ids, input_mask, input_type_ids.
  The encoder computes in the dtype policy the tower is built under (mixed_bfloat16 or
  float32); the output is float32 either way.
  pooling "cls": the final layer's [CLS] vector (paper Sec. 4.1; BERT's pooler is not used);
  "mean": the mean of the final layer over the real pieces (input_mask), as e5 was trained.
  projection: a Dense layer to embedding_dim (paper: 300); without it embedding_dim is the
  encoder's hidden size and the pooled vector is normalised as it is.
  """

  def __init__(self, encoder_config: dict, embedding_dim: int = 300, pooling: str = "cls",
               projection: bool = True, **kwargs):
    super().__init__(**kwargs)
    if pooling not in configs.POOLINGS:
      raise ValueError(f"pooling must be one of {configs.POOLINGS}, got {pooling!r}")
    self._encoder_config = dict(encoder_config)
    self._embedding_dim = embedding_dim
    self._pooling = pooling
    self._projection = projection
    encoder_config = configs.EncoderConfig(**self._encoder_config)
    if not projection and embedding_dim != encoder_config.hidden_size:
      raise ValueError(f"without a projection embedding_dim ({embedding_dim}) must equal the "
                       f"hidden size ({encoder_config.hidden_size})")
    self.encoder = build_bert_encoder(encoder_config, cls_only=pooling == "cls")
    self.projection = None
    if projection:
      self.projection = tf_keras.layers.Dense(
          embedding_dim, name="projection",
          kernel_initializer=tf_keras.initializers.TruncatedNormal(
              stddev=self._encoder_config.get("initializer_range", 0.02)))

  @property
  def output_dim(self) -> int:
    """The exported vector's size."""
    return self._embedding_dim

  def call(self, inputs, training=False):
    sequence = self.encoder(inputs, training=training)["sequence_output"]   # [B, L, H]
    pooled = pool(sequence, inputs["input_mask"], self._pooling)           # [B, H]
    if self.projection is not None:
      pooled = self.projection(pooled)
    # float32 out under any precision policy: the logits, the softmax and the exported
    # vectors (which ScaNN indexes) need float32's mantissa.
    return tf.math.l2_normalize(tf.cast(pooled, tf.float32), axis=-1)     # float32 [B, D]

  def get_config(self):
    return {"encoder_config": self._encoder_config, "embedding_dim": self._embedding_dim,
            "pooling": self._pooling, "projection": self._projection, "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  @classmethod
  def from_model_config(cls, config: configs.ModelConfig, name: str):
    return cls(dataclasses.asdict(config.encoder), config.embedding_dim, config.pooling,
               config.projection, name=name)
