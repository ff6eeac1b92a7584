"""train.mixed_precision made concrete: the Keras policy models are built under, and "auto"
resolved from the hardware (mel.training.configs.TrainConfig explains the choice).
"""
import contextlib

import tensorflow as tf
import tf_keras

from mel.training import configs


@contextlib.contextmanager
def precision_policy(precision: str):
  """Keras layers built inside take train.mixed_precision's policy; the global policy is
  restored after, so building one model never changes another's."""
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(configs.PRECISIONS[precision])
  try:
    yield
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)


def resolve_precision(precision: str, strategy: tf.distribute.Strategy) -> str:
  """train.mixed_precision with "auto" made concrete: bfloat16 where the hardware computes it
  natively (TPU; GPUs of compute capability >= 8.0; CPUs with avx512_bf16 / amx_bf16), else
  float32 (emulated bfloat16 is slower than float32)."""
  if precision != configs.AUTO_PRECISION:
    return precision
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return "bfloat16"
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return "bfloat16" if capability and tuple(capability) >= (8, 0) else "float32"
  return "bfloat16" if cpu_has_bfloat16() else "float32"


def cpu_has_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
  """Whether the CPU computes bfloat16 dot products natively (x86 avx512_bf16 or amx_bf16)."""
  try:
    with open(cpuinfo, encoding="utf-8", errors="replace") as f:
      flags = {flag for line in f if line.startswith("flags") for flag in line.split()}
  except OSError:
    return False
  return bool(flags & {"avx512_bf16", "amx_bf16"})
