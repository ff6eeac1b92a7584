"""The cross-attention reranker (paper Sec. 5.5.2, "+CA"; BLINK's cross-encoder).

One BERT encoder reads a mention and a candidate's description together (the pair layout of
mel.training.input_layout), pools (the [CLS] vector, as the paper, or the mean over the real
pieces) and a Dense layer gives one logit per pair: how well the entity fits the mention.
Trained on each mention's candidates (gold first, then the dual encoder's candidates and
random entities) with the paper's binary cross-entropy or BLINK's softmax over the candidate
set (mel.modeling.losses).
"""
import dataclasses

import tensorflow as tf
import tf_keras

from mel.modeling import losses
from mel.modeling.text_tower import build_bert_encoder, pool
from mel.training import configs

RERANKER_LOSSES = configs.RERANKER_LOSSES


@tf_keras.utils.register_keras_serializable(package="mel")
class CrossEncoder(tf_keras.Model):
  """Scores mention-entity pairs.

  call(inputs) -> float32 logits [N] for an input dict of int32 [N, L] (input_word_ids,
  input_mask, input_type_ids).
  """

  def __init__(self, encoder_config: dict, pooling: str = "cls", loss: str = "bce", **kwargs):
    super().__init__(**kwargs)
    if pooling not in configs.POOLINGS:
      raise ValueError(f"pooling must be one of {configs.POOLINGS}, got {pooling!r}")
    if loss not in RERANKER_LOSSES:
      raise ValueError(f"loss must be one of {RERANKER_LOSSES}, got {loss!r}")
    self._encoder_config = dict(encoder_config)
    self._pooling = pooling
    self._loss = loss
    self.encoder = build_bert_encoder(configs.EncoderConfig(**self._encoder_config),
                                      cls_only=pooling == "cls")
    self.classifier = tf_keras.layers.Dense(
        1, name="classifier", kernel_initializer=tf_keras.initializers.TruncatedNormal(
            stddev=self._encoder_config.get("initializer_range", 0.02)))

  def call(self, inputs, training=False):
    sequence = self.encoder(inputs, training=training)["sequence_output"]   # [N, L, H]
    pooled = pool(sequence, inputs["input_mask"], self._pooling)           # [N, H]
    # float32 out under any precision policy, as the towers' vectors
    return tf.cast(self.classifier(pooled)[:, 0], tf.float32)             # [N]

  def task_losses(self, features, training=True) -> dict:
    """Per-mention loss and accuracy over each mention's candidate set.

    features: "pairs" (input dict [B*C, L], mention b's candidates in rows b*C .. b*C+C-1, the
    gold first), "candidate_mask" bool [B, C] (False: padding or a repeated entity).
    Returns float32 [B] "rerank_loss", "rerank_accuracy" (1 where the gold scores above every
    other valid candidate).
    """
    mask = features["candidate_mask"]                                      # [B, C]
    logits = tf.reshape(self(features["pairs"], training=training), tf.shape(mask))
    if self._loss == "bce":
      loss = losses.candidate_bce_loss(logits, mask)
    else:
      loss = losses.candidate_softmax_loss(logits, mask)
    return {"rerank_loss": loss, "rerank_accuracy": losses.gold_first_accuracy(logits, mask)}

  def get_config(self):
    return {"encoder_config": self._encoder_config, "pooling": self._pooling,
            "loss": self._loss, "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)


def build_cross_encoder(config: configs.ModelConfig, loss: str = "bce") -> CrossEncoder:
  """Builds (and creates the variables of) the reranker from a ModelConfig (kind CA)."""
  model = CrossEncoder(dataclasses.asdict(config.encoder), config.pooling, loss,
                       name="cross_encoder")
  seq = tf.zeros([1, 8], tf.int32)
  model({"input_word_ids": seq, "input_mask": tf.ones_like(seq), "input_type_ids": seq})
  return model
