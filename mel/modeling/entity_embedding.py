"""Model E's entity tower: one trainable vector per entity (Févry et al. 2020a)."""
import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="mel")
class EntityEmbedding(tf_keras.Model):
  """Entity rows int32 [B] -> float32 unit vectors [B, embedding_dim].

  Rows index the entity table (mel.entity_table, line number = row). Initialised
  randomly (the paper: Model E embeddings are not pretrained). On TPU a table of 20M rows
  belongs in TPU embedding; here a plain Keras embedding.
  """

  def __init__(self, num_entities: int, embedding_dim: int = 300, **kwargs):
    super().__init__(**kwargs)
    if num_entities < 1:
      raise ValueError(f"num_entities must be positive, got {num_entities}")
    self._num_entities = num_entities
    self._embedding_dim = embedding_dim
    self.table = tf_keras.layers.Embedding(
        num_entities, embedding_dim, name="entity_table",
        embeddings_initializer=tf_keras.initializers.RandomNormal(stddev=0.02))

  def call(self, rows, training=False):
    # float32 out under any precision policy, like TextTower.
    return tf.math.l2_normalize(tf.cast(self.table(rows), tf.float32), axis=-1)

  def get_config(self):
    return {"num_entities": self._num_entities, "embedding_dim": self._embedding_dim,
            "name": self.name}

  @classmethod
  def from_config(cls, config):
    return cls(**config)
