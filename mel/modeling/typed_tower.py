"""A text tower with the hierarchical typing task (ultra-fine typing for zero-shot EL, Sec. 3.2).

    u = BERT(x)                         the encoder's sequence output        [B, L, H]
    t = T(u)                            type_layers transformer layers       [B, L, H]
    type_logits = Dense(pool(t))        the low-level task: the entity's types [B, num_types]
    f = F((u + t) / 2)                  task_layers transformer layers       [B, L, H]
    vector = concat(l2(P_f(pool(f))), l2(P_u(pool(u)))) / sqrt(2)           float32 [B, 2D]

pool is the tower's pooling ([CLS] or the mean over real pieces, as TextTower); P_u and P_f are
Dense layers to embedding_dim (none with projection false: D = H). The vector is unit length
and the dot product of a mention's and an entity's is (f_m . f_e + u_m . u_e) / 2 on the unit
f and u: the paper's score s(m, e) = f_m . f_e + u_m . u_e, normalised and halved. So the
dual encoder's logits, scale x cosine, are the paper's score at temperature 2 / scale, and the
exported towers serve it with no change to their interface: one [B, 2D] vector per input whose
dot product (or cosine) an index ranks by.
"""
import dataclasses
import math

import tensorflow as tf
import tf_keras
from official.nlp.modeling import layers

from mel.training import configs
from mel.modeling.text_tower import activation, build_bert_encoder, pool


def transformer_block(config: configs.EncoderConfig, name: str) -> layers.TransformerEncoderBlock:
  """One post-LN transformer layer shaped like the encoder's own (heads, inner size, dropout)."""
  return layers.TransformerEncoderBlock(
      num_attention_heads=config.num_attention_heads,
      inner_dim=config.intermediate_size,
      inner_activation=activation(config.hidden_act),
      output_dropout=config.dropout_rate,
      attention_dropout=config.attention_dropout_rate,
      kernel_initializer=tf_keras.initializers.TruncatedNormal(stddev=config.initializer_range),
      name=name)


@tf_keras.utils.register_keras_serializable(package="mel")
class TypedTextTower(tf_keras.Model):
  """Encodes a [B, L] input layout to float32 unit vectors [B, 2 * embedding_dim] carrying the
  combined score (module docstring); encode() also returns the type logits.

  Inputs: dict of int32 [B, L] input_word_ids, input_mask, input_type_ids.
  num_types: the size of the type vocabulary (the classifier's outputs).
  type_layers, task_layers: transformer layers in T and in f.
  """

  def __init__(self, encoder_config: dict, embedding_dim: int = 300, pooling: str = "cls",
               projection: bool = True, num_types: int = 1, type_layers: int = 1,
               task_layers: int = 1, **kwargs):
    super().__init__(**kwargs)
    if pooling not in configs.POOLINGS:
      raise ValueError(f"pooling must be one of {configs.POOLINGS}, got {pooling!r}")
    if min(num_types, type_layers, task_layers) < 1:
      raise ValueError("num_types, type_layers and task_layers must be >= 1")
    self._encoder_config = dict(encoder_config)
    self._embedding_dim = embedding_dim
    self._pooling = pooling
    self._projection = projection
    self._num_types = num_types
    self._type_layers = type_layers
    self._task_layers = task_layers
    encoder_config = configs.EncoderConfig(**self._encoder_config)
    if not projection and embedding_dim != encoder_config.hidden_size:
      raise ValueError(f"without a projection embedding_dim ({embedding_dim}) must equal the "
                       f"hidden size ({encoder_config.hidden_size})")
    # T and f read every position of u: the encoder's last layer computes them all.
    self.encoder = build_bert_encoder(encoder_config, cls_only=False)
    self.attention_mask = layers.SelfAttentionMask()
    self.type_blocks = [transformer_block(encoder_config, f"type_layer_{i}")
                        for i in range(type_layers)]
    self.task_blocks = [transformer_block(encoder_config, f"task_layer_{i}")
                        for i in range(task_layers)]
    # One initializer per layer: a shared unseeded instance gives every layer the same values.
    def initializer():
      return tf_keras.initializers.TruncatedNormal(stddev=encoder_config.initializer_range)

    self.type_classifier = tf_keras.layers.Dense(num_types, name="type_classifier",
                                                 kernel_initializer=initializer())
    self.projection = self.task_projection = None
    if projection:
      self.projection = tf_keras.layers.Dense(embedding_dim, name="projection",
                                              kernel_initializer=initializer())
      self.task_projection = tf_keras.layers.Dense(embedding_dim, name="task_projection",
                                                   kernel_initializer=initializer())

  @property
  def output_dim(self) -> int:
    """The exported vector's size: f's and u's, concatenated."""
    return 2 * self._embedding_dim

  def encode(self, inputs, training=False):
    """(vector float32 [B, 2D], type_logits float32 [B, num_types])."""
    u = self.encoder(inputs, training=training)["sequence_output"]         # [B, L, H]
    mask = self.attention_mask(u, inputs["input_mask"])                    # [B, L, L]
    t = u
    for block in self.type_blocks:
      t = block([t, mask], training=training)                              # [B, L, H]
    f = (u + t) / 2
    for block in self.task_blocks:
      f = block([f, mask], training=training)                              # [B, L, H]
    type_logits = self.type_classifier(pool(t, inputs["input_mask"], self._pooling))
    pooled_u = pool(u, inputs["input_mask"], self._pooling)                # [B, H]
    pooled_f = pool(f, inputs["input_mask"], self._pooling)
    if self.projection is not None:
      pooled_u, pooled_f = self.projection(pooled_u), self.task_projection(pooled_f)
    # float32 out under any precision policy (as TextTower: logits and the index need it).
    unit_u = tf.math.l2_normalize(tf.cast(pooled_u, tf.float32), axis=-1)  # [B, D]
    unit_f = tf.math.l2_normalize(tf.cast(pooled_f, tf.float32), axis=-1)  # [B, D]
    vector = tf.concat([unit_f, unit_u], axis=-1) / math.sqrt(2.0)        # [B, 2D], unit
    return vector, tf.cast(type_logits, tf.float32)

  def call(self, inputs, training=False):
    return self.encode(inputs, training=training)[0]

  def get_config(self):
    return {"encoder_config": self._encoder_config, "embedding_dim": self._embedding_dim,
            "pooling": self._pooling, "projection": self._projection,
            "num_types": self._num_types, "type_layers": self._type_layers,
            "task_layers": self._task_layers, "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)

  @classmethod
  def from_model_config(cls, config: configs.ModelConfig, name: str):
    if config.typing.num_types < 1:
      raise ValueError("model.typing.num_types is not set (mel train sets it from the type "
                       "vocabulary)")
    return cls(dataclasses.asdict(config.encoder), config.embedding_dim, config.pooling,
               config.projection, config.typing.num_types, config.typing.type_layers,
               config.typing.task_layers, name=name)
