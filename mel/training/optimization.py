"""The optimiser of the paper (App. B): Adam(W), linear warm-up, then linear decay to 0."""
import tensorflow as tf
import tf_keras

from mel.training import configs


@tf_keras.utils.register_keras_serializable(package="mel")
class WarmupLinearDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
  """lr(step) = peak * step / warmup for step < warmup, then peak * (total - step) /
  (total - warmup), never below 0."""

  def __init__(self, peak: float, total_steps: int, warmup_steps: int):
    super().__init__()
    if total_steps < 1 or not 0 <= warmup_steps < total_steps:
      raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) < total_steps ({total_steps})")
    self.peak = peak
    self.total_steps = total_steps
    self.warmup_steps = warmup_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    peak = tf.constant(self.peak, tf.float32)
    warmup = tf.constant(float(self.warmup_steps), tf.float32)
    total = tf.constant(float(self.total_steps), tf.float32)
    warm = peak * step / tf.maximum(warmup, 1.0)
    decay = peak * tf.maximum(total - step, 0.0) / (total - warmup)
    return tf.where(step < warmup, warm, decay)

  def get_config(self):
    return {"peak": self.peak, "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps}


def create_optimizer(config: configs.TrainConfig) -> tf_keras.optimizers.Optimizer:
  """AdamW over the schedule; LayerNorm weights and biases take no weight decay (as BERT)."""
  # max(steps, 1): a run of train.steps 0 (exporting the initial towers) builds it too.
  schedule = WarmupLinearDecay(config.learning_rate, max(config.steps, 1),
                               int(config.steps * config.warmup_fraction))
  optimizer = tf_keras.optimizers.AdamW(
      learning_rate=schedule, weight_decay=config.weight_decay, beta_1=0.9, beta_2=0.999,
      epsilon=1e-6)
  optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "layer_norm", "bias"])
  return optimizer
