"""The dual encoder: a mention tower and an entity tower scoring by scaled cosine.

Model F: the entity tower is a TextTower over descriptions ([CLS] description [SEP]); both
towers pool and project as model.pooling / model.projection say.
Model E: the entity tower is an EntityEmbedding table over entity rows.
model.typing (Model F): typed towers and the type losses (mel.modeling.typed_dual_encoder).
No parameters are shared between the towers (paper Sec. 4.2).
Distillation (train.distillation_weight > 0): with teacher logits in the batch, the student's
logits over each mention's own candidates (its gold and its hard negatives, the values of the
in-batch softmax) learn the reranker's distribution over them (losses.distillation_loss at
distillation_temperature).
"""
from typing import Optional

import tensorflow as tf
import tf_keras

from mel.training import configs
from mel.modeling import losses
from mel.modeling.entity_embedding import EntityEmbedding
from mel.modeling.text_tower import TextTower


@tf_keras.utils.register_keras_serializable(package="mel")
class DualEncoder(tf_keras.Model):
  """Holds both towers and computes the training losses of a batch.

  call(features) -> {"mentions": [B, D], "entities": [B, D]} for features holding
  "mentions" (input dict [B, L]) and "entities" (input dict [B, L] for Model F, or int32 rows
  [B] for Model E).
  """

  def __init__(self, mention_tower: tf_keras.Model, entity_tower: tf_keras.Model,
               scale: float = 20.0, distillation_temperature: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.mention_tower = mention_tower
    self.entity_tower = entity_tower
    self.scale = scale
    self.distillation_temperature = distillation_temperature

  def call(self, features, training=False):
    return {"mentions": self.mention_tower(features["mentions"], training=training),
            "entities": self.entity_tower(features["entities"], training=training)}

  def task_losses(self, features, training=True) -> dict:
    """Per-example losses and in-batch accuracies, computed in a replica context.

    features: "mentions", "entities", "entity_ids" int32 [B]; optionally hard negatives
    "negatives" (inputs [B*K, ...]), "negative_ids" int32 [B*K], "negative_mask" bool [B*K];
    optionally the entity-entity task "pairs_a", "pairs_b" (description inputs [P, L]) and
    "pair_ids" int32 [P]; with hard negatives, optionally a teacher's "teacher_logits"
    float32 [B, 1+K] (the gold, then the mention's K negatives) and "teacher_mask" bool [B, 1+K].
    Returns float32 [B] "mention_entity_loss", "mention_entity_accuracy", with pairs [P]
    "entity_entity_loss", "entity_entity_accuracy", with teacher logits [B] "distillation_loss".
    """
    mentions = self.mention_tower(features["mentions"], training=training)    # [B, D]
    gold = self.entity_tower(features["entities"], training=training)         # [B, D]
    return self.retrieval_losses(mentions, gold, features, training)

  def retrieval_losses(self, mentions, gold, features, training=True) -> dict:
    """task_losses from the mentions' and gold entities' vectors [B, D] (the rest of the
    features are encoded here)."""
    negatives = None
    if "negatives" in features:
      negatives = self.entity_tower(features["negatives"], training=training)  # [B*K, D]
    candidates, candidate_ids, candidate_mask, labels = losses.gather_candidates(
        gold, features["entity_ids"], negatives, features.get("negative_ids"),
        features.get("negative_mask"))
    loss, logits = losses.in_batch_softmax_loss(
        mentions, candidates, labels, features["entity_ids"], candidate_ids, self.scale,
        candidate_mask)
    out = {"mention_entity_loss": loss,
           "mention_entity_accuracy": losses.in_batch_accuracy(logits, labels)}
    if "teacher_logits" in features:
      if negatives is None:
        raise ValueError("teacher_logits need the hard negatives they score (negatives)")
      teacher = features["teacher_logits"]                                     # [B, 1+K]
      student = losses.own_candidate_logits(logits, labels, tf.shape(teacher)[1] - 1)
      out["distillation_loss"] = losses.distillation_loss(
          student, teacher, features["teacher_mask"], self.distillation_temperature)
    if "pairs_a" in features:
      # The cross-lingual entity-entity task (paper Sec. 5.2.3): the selected description
      # retrieves another language's description of the same entity.
      queries = self.entity_tower(features["pairs_a"], training=training)      # [P, D]
      targets = self.entity_tower(features["pairs_b"], training=training)      # [P, D]
      candidates, candidate_ids, _, labels = losses.gather_candidates(
          targets, features["pair_ids"])
      loss, logits = losses.in_batch_softmax_loss(
          queries, candidates, labels, features["pair_ids"], candidate_ids, self.scale)
      out["entity_entity_loss"] = loss
      out["entity_entity_accuracy"] = losses.in_batch_accuracy(logits, labels)
    return out

  def get_config(self):
    return {"mention_tower": tf_keras.layers.serialize(self.mention_tower),
            "entity_tower": tf_keras.layers.serialize(self.entity_tower),
            "scale": self.scale, "distillation_temperature": self.distillation_temperature,
            "name": self.name}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    config["mention_tower"] = tf_keras.layers.deserialize(config["mention_tower"])
    config["entity_tower"] = tf_keras.layers.deserialize(config["entity_tower"])
    return cls(**config)


def build_dual_encoder(config: configs.ModelConfig, num_entities: Optional[int] = None,
                       distillation_temperature: float = 1.0) -> DualEncoder:
  """Builds (and creates the variables of) Model F or Model E from a ModelConfig
  (distillation_temperature: train.distillation_temperature); with model.typing, Model F's
  typed towers (mel.modeling.typed_dual_encoder)."""
  if config.typing.enabled:
    # Imported here: the typed dual encoder subclasses this module's DualEncoder.
    from mel.modeling.typed_dual_encoder import build_typed_dual_encoder
    return build_typed_dual_encoder(config, distillation_temperature)
  mention_tower = TextTower.from_model_config(config, name="mention_tower")
  seq = tf.zeros([1, 8], tf.int32)
  dummy = {"input_word_ids": seq, "input_mask": tf.ones_like(seq), "input_type_ids": seq}
  mention_tower(dummy)
  if config.kind == "F":
    entity_tower = TextTower.from_model_config(config, name="entity_tower")
    entity_tower(dummy)
  elif config.kind == "E":
    if not num_entities:
      raise ValueError("Model E needs num_entities (the size of the entity table)")
    entity_tower = EntityEmbedding(num_entities, config.embedding_dim, name="entity_tower")
    entity_tower(tf.zeros([1], tf.int32))
  else:
    raise ValueError(f"unknown model kind {config.kind!r}")
  return DualEncoder(mention_tower, entity_tower, scale=config.scale,
                     distillation_temperature=distillation_temperature, name="dual_encoder")
