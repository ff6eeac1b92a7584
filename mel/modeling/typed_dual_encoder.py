"""Model F with the hierarchical typing task (model.typing; mel.modeling.typed_tower).

Both towers are TypedTextTowers; the training loss is the paper's L_link + L_type_m + L_type_e
(Sec. 3.2.4; the weights are train.type_loss_weight_*, applied by the training loop): the
in-batch softmax over the combined vectors, and the multi-label type loss of each tower's
classifier against the gold entity's types (the mention and its entity share their types).
"""
import tensorflow as tf
import tf_keras

from mel.training import configs
from mel.modeling import losses
from mel.modeling.dual_encoder import DualEncoder
from mel.modeling.typed_tower import TypedTextTower

SIDES = ("mention", "entity")


@tf_keras.utils.register_keras_serializable(package="mel")
class TypedDualEncoder(DualEncoder):
  """A DualEncoder of two TypedTextTowers; call(features) as DualEncoder's ([B, 2D] vectors).

  task_losses(features) needs, besides DualEncoder's features, "type_targets" float32 [B, T]
  (the gold entity's multi-hot types) and "type_mask" bool [B] (False: the entity has no type
  in the vocabulary). It adds float32 [B] "mention_type_loss", "entity_type_loss", the type
  counts "<side>_type_tp", "<side>_type_fp", "<side>_type_fn" (micro-F1 at 0.5) and
  "typed_pairs" (1 where the pair has types).
  """

  def task_losses(self, features, training=True) -> dict:
    mentions, mention_types = self.mention_tower.encode(features["mentions"],
                                                        training=training)  # [B, 2D], [B, T]
    gold, entity_types = self.entity_tower.encode(features["entities"], training=training)
    out = self.retrieval_losses(mentions, gold, features, training)
    targets, mask = features["type_targets"], features["type_mask"]
    for side, logits in zip(SIDES, (mention_types, entity_types)):
      out[f"{side}_type_loss"] = losses.multi_label_type_loss(logits, targets, mask)
      counts = losses.multi_label_counts(logits, targets, mask)
      for name, value in zip(("tp", "fp", "fn"), counts):
        out[f"{side}_type_{name}"] = value
    out["typed_pairs"] = tf.cast(mask, tf.float32)
    return out


def build_typed_dual_encoder(config: configs.ModelConfig,
                             distillation_temperature: float = 1.0) -> TypedDualEncoder:
  """Builds (and creates the variables of) Model F with typed towers from a ModelConfig whose
  typing.num_types is set."""
  if config.kind != "F":
    raise ValueError(f"model.typing needs model.kind F, got {config.kind!r}")
  seq = tf.zeros([1, 8], tf.int32)
  dummy = {"input_word_ids": seq, "input_mask": tf.ones_like(seq), "input_type_ids": seq}
  towers = []
  for name in ("mention_tower", "entity_tower"):
    tower = TypedTextTower.from_model_config(config, name=name)
    tower(dummy)
    towers.append(tower)
  return TypedDualEncoder(*towers, scale=config.scale,
                          distillation_temperature=distillation_temperature,
                          name="dual_encoder")
