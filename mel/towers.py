"""The exported towers as Python callables: lists of strings in, float32 numpy [B, D] out.

    mention = towers.mention_tower(model_dir)     # (titles, lefts, mentions, rights) -> [B, D]
    vectors = mention.encode(records)             # anything with doc_title, left_context,
                                                  # mention, right_context -> [N, D]
    entity = towers.entity_tower(model_dir)       # descriptions (Model F) or ids (E) -> [B, D]
    scorer = towers.reranker(reranker_dir)        # (titles, lefts, mentions, rights,
                                                  #  descriptions) -> logits float32 [N]

One wrapper around `serving_default` of mel's SavedModels (mel.training.export), used by entity
encoding, negative mining, evaluation, linking and the Beam encoder. A tower loads its
SavedModel on first call (TensorFlow + tensorflow_text, whose ops the tokenizer needs); the
Beam encoder hands in the module RunInference loaded.
"""
from typing import Optional, Sequence

import numpy as np

from mel.model_dir import ModelDir


def load_saved_model(path: str):
  """tf.saved_model.load with the tokenizer ops registered."""
  import tensorflow as tf
  import tensorflow_text  # noqa: F401  (registers the tokenizer ops of the SavedModel)
  return tf.saved_model.load(path)


class Tower:
  """An exported tower's serving_default: named string tensors [B] -> float32 [B, D]."""

  OUTPUT = "embeddings"

  def __init__(self, path: str = "", module=None):
    if not path and module is None:
      raise ValueError("a tower needs a SavedModel path or a loaded module")
    self.path = path
    self._module = module
    self._serve = None

  def serve(self, **inputs: Sequence[str]) -> np.ndarray:
    import tensorflow as tf
    if self._serve is None:
      if self._module is None:
        self._module = load_saved_model(self.path)
      self._serve = self._module.signatures["serving_default"]
    tensors = {name: tf.constant(list(values), tf.string) for name, values in inputs.items()}
    return self._serve(**tensors)[self.OUTPUT].numpy()


class MentionTower(Tower):
  """(titles, lefts, mentions, rights) -> float32 [B, D] unit rows."""

  def __call__(self, titles, lefts, mentions, rights) -> np.ndarray:
    return self.serve(title=titles, left=lefts, mention=mentions, right=rights)

  def encode(self, mentions: Sequence, batch_size: int = 256, progress: bool = True
             ) -> np.ndarray:
    """float32 [N, D] for records with doc_title, left_context, mention, right_context
    (mel.schema.Mention, evaluation queries), in batches of batch_size."""
    from tqdm import tqdm
    out = []
    with tqdm(total=len(mentions), unit="mention", desc="encoding mentions",
              disable=not progress, mininterval=5) as bar:
      for start in range(0, len(mentions), batch_size):
        batch = mentions[start:start + batch_size]
        out.append(self([m.doc_title for m in batch], [m.left_context for m in batch],
                        [m.mention for m in batch], [m.right_context for m in batch]))
        bar.update(len(batch))
    return np.concatenate(out) if out else np.zeros([0, 0], np.float32)


class EntityTower(Tower):
  """Inputs [B] -> float32 [B, D]: descriptions for Model F, entity ids for Model E (argument
  "description" or "entity_id", the export manifest's entity_input)."""

  def __init__(self, path: str = "", argument: str = "description", module=None):
    super().__init__(path, module)
    if argument not in ("description", "entity_id"):
      raise ValueError(f"entity tower input must be description or entity_id, got {argument!r}")
    self.argument = argument

  def __call__(self, inputs: Sequence[str]) -> np.ndarray:
    return self.serve(**{self.argument: inputs})


def mention_tower(model_dir: str) -> MentionTower:
  return MentionTower(ModelDir(model_dir).mention_encoder)


def entity_tower(model_dir: str) -> EntityTower:
  directory = ModelDir(model_dir)
  argument = directory.read_export_manifest().get("entity_input", "description")
  return EntityTower(directory.entity_encoder, argument)


class Reranker(Tower):
  """The cross-attention reranker (model.kind CA): mention-entity pairs -> float32 logits [N].

  Pairs are scored max_batch at a time, so memory is bounded whatever N is. With the bce loss
  (the export manifest's "probability": "sigmoid(logit)") sigmoid(logit) is the probability that
  the entity is the mention's.
  """

  OUTPUT = "logits"

  def __init__(self, path: str = "", module=None, max_batch: int = 64,
               manifest: Optional[dict] = None):
    super().__init__(path, module)
    self.max_batch = max_batch
    self.manifest = manifest or {}

  def __call__(self, titles, lefts, mentions, rights, descriptions) -> np.ndarray:
    columns = [list(titles), list(lefts), list(mentions), list(rights), list(descriptions)]
    if len({len(c) for c in columns}) != 1:
      raise ValueError("titles, lefts, mentions, rights and descriptions differ in length: "
                       f"{[len(c) for c in columns]}")
    out = [self.serve(title=t, left=l, mention=m, right=r, description=d)
           for t, l, m, r, d in (
               [c[i:i + self.max_batch] for c in columns]
               for i in range(0, len(columns[0]), self.max_batch))]
    return np.concatenate(out).astype(np.float32) if out else np.zeros([0], np.float32)

  def score(self, title: str, left: str, mention: str, right: str,
            descriptions: Sequence[str]) -> np.ndarray:
    """float32 [len(descriptions)]: one mention's logit with each candidate description."""
    n = len(descriptions)
    return self([title] * n, [left] * n, [mention] * n, [right] * n, descriptions)

  @property
  def gives_probability(self) -> bool:
    return self.manifest.get("probability") == "sigmoid(logit)"


def probability(logits) -> np.ndarray:
  """sigmoid of reranker logits (a bce-trained reranker's pair probabilities), float64."""
  return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


def reranker(model_dir: str, max_batch: int = 64) -> Reranker:
  """The exported reranker of a model dir trained with model.kind CA; ValueError otherwise."""
  directory = ModelDir(model_dir)
  manifest = directory.read_export_manifest()
  if manifest.get("kind") != "CA":
    raise ValueError(f"{model_dir} holds a {manifest.get('kind')!r} model, not a reranker "
                     "(train one with model.kind CA)")
  return Reranker(directory.reranker, max_batch=max_batch, manifest=manifest)
