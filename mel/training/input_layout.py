"""The encoders' input layout (paper Fig. 1), built from token ids in TF ops.

Mention:  [CLS] title [SEP] left [E] mention [/E] right [SEP]
  segment  0     0     0     1    2     2      2    3     3
  At most max_seq_length pieces; the title at most max_title_length of them; the mention is
  cut only when it alone overflows; the context left after title and mention is shared
  between left and right, half each, and a side that needs less gives the rest to the other.
  Left keeps its last pieces (those next to the mention), right its first.
Entity (Model F): [CLS] description [SEP], segment 0.
Mention, data.mention_layout "mention_only": [CLS] mention [SEP], segment 0 (how e5 is queried
off the shelf).
Mention-entity pair (the cross-attention reranker, model.kind CA; paper Sec. 5.5.2):
  [CLS] title [SEP] left [E] mention [/E] right [SEP] description [SEP]
  segment  0 ...   (the mention part as above)    0 ...     0
  The description keeps at most max_seq_length // 2 - 1 pieces (its first ones) and the mention
  part takes the rest, cut as above: with 128 pieces, at least 64 for title and context. The
  description's segment is 0, the segment the entity tower reads descriptions with.
With data.text_prefixes (e5) the mention's first text (the title, or the mention alone) starts
with "query: " and the description with "passage: ", as e5 was trained.

Outputs are dense int32 [B, max_seq_length] (static shapes for TPU), padded with 0:
  input_word_ids, input_mask (1 on real pieces), input_type_ids.
"""
import tensorflow as tf

TITLE_SEGMENT, LEFT_SEGMENT, MENTION_SEGMENT, RIGHT_SEGMENT = 0, 1, 2, 3
# e5's input prefixes (its model card): queries and passages are told apart by them.
QUERY_PREFIX, PASSAGE_PREFIX = "query: ", "passage: "


def _lengths(ids: tf.RaggedTensor) -> tf.Tensor:
  return tf.cast(ids.row_lengths(), tf.int32)


def _keep_first(ids: tf.RaggedTensor, n: tf.Tensor) -> tf.RaggedTensor:
  """The first n[b] pieces of each row. ids [B, (k)], n [B]."""
  positions = tf.ragged.range(_lengths(ids))
  return tf.ragged.boolean_mask(ids, positions < tf.expand_dims(n, 1))


def _keep_last(ids: tf.RaggedTensor, n: tf.Tensor) -> tf.RaggedTensor:
  """The last n[b] pieces of each row. ids [B, (k)], n [B]."""
  lengths = _lengths(ids)
  positions = tf.ragged.range(lengths)
  return tf.ragged.boolean_mask(ids, positions >= tf.expand_dims(lengths - n, 1))


def _constant_column(value, batch_size, dtype=tf.int32) -> tf.RaggedTensor:
  """[B, (1)] ragged holding `value` in every row."""
  return tf.RaggedTensor.from_tensor(tf.fill([batch_size, 1], tf.cast(value, dtype)))


def _segments_like(ids: tf.RaggedTensor, segment: int) -> tf.RaggedTensor:
  return tf.ones_like(ids) * segment


def _to_dense(ids: tf.RaggedTensor, types: tf.RaggedTensor, max_seq_length: int) -> dict:
  shape = [None, max_seq_length]
  word_ids = ids.to_tensor(0, shape=shape)
  mask = tf.ones_like(ids).to_tensor(0, shape=shape)
  type_ids = types.to_tensor(0, shape=shape)
  return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}


def _mention_pieces(title, left, mention, right, length, *, cls_id: int, sep_id: int,
                    mention_start_id: int, mention_end_id: int, max_title_length: int):
  """The mention layout as ragged (ids, segment ids) [B, (<= length[b])]; length: int32 [B]."""
  batch_size = title.nrows(out_type=tf.int32)
  budget = length - 5   # [CLS] [SEP] [E] [/E] [SEP]
  title = title[:, :max_title_length]
  title_len = _lengths(title)
  mention = _keep_first(mention, budget - title_len)
  room = budget - title_len - _lengths(mention)
  left_len = _lengths(left)
  right_len = _lengths(right)
  left_keep = tf.minimum(left_len, tf.maximum(room // 2, room - right_len))
  right_keep = tf.minimum(right_len, room - left_keep)
  left = _keep_last(left, left_keep)
  right = _keep_first(right, right_keep)

  def special(token_id):
    return _constant_column(token_id, batch_size)

  pieces = [
      (special(cls_id), TITLE_SEGMENT), (title, TITLE_SEGMENT), (special(sep_id), TITLE_SEGMENT),
      (left, LEFT_SEGMENT),
      (special(mention_start_id), MENTION_SEGMENT), (mention, MENTION_SEGMENT),
      (special(mention_end_id), MENTION_SEGMENT),
      (right, RIGHT_SEGMENT), (special(sep_id), RIGHT_SEGMENT)]
  ids = tf.concat([p for p, _ in pieces], axis=1)
  types = tf.concat([_segments_like(p, s) for p, s in pieces], axis=1)
  return ids, types


def mention_inputs(title, left, mention, right, *, cls_id: int, sep_id: int,
                   mention_start_id: int, mention_end_id: int, max_seq_length: int = 64,
                   max_title_length: int = 16) -> dict:
  """title/left/mention/right: int32 RaggedTensor [B, (pieces)] -> dict of int32 [B, L]."""
  length = tf.fill([title.nrows(out_type=tf.int32)], max_seq_length)
  ids, types = _mention_pieces(title, left, mention, right, length, cls_id=cls_id,
                               sep_id=sep_id, mention_start_id=mention_start_id,
                               mention_end_id=mention_end_id, max_title_length=max_title_length)
  return _to_dense(ids, types, max_seq_length)


def pair_inputs(title, left, mention, right, description, *, cls_id: int, sep_id: int,
                mention_start_id: int, mention_end_id: int, max_seq_length: int = 128,
                max_title_length: int = 16) -> dict:
  """The reranker's mention-entity pairs: int32 RaggedTensor [N, (pieces)] each -> dict of
  int32 [N, max_seq_length] (layout in the module docstring)."""
  description = description[:, :max_seq_length // 2 - 1]
  length = max_seq_length - 1 - _lengths(description)
  ids, types = _mention_pieces(title, left, mention, right, length, cls_id=cls_id,
                               sep_id=sep_id, mention_start_id=mention_start_id,
                               mention_end_id=mention_end_id, max_title_length=max_title_length)
  end = _constant_column(sep_id, description.nrows(out_type=tf.int32))
  ids = tf.concat([ids, description, end], axis=1)
  types = tf.concat([types, _segments_like(description, TITLE_SEGMENT),
                     _segments_like(end, TITLE_SEGMENT)], axis=1)
  return _to_dense(ids, types, max_seq_length)


def entity_inputs(description, *, cls_id: int, sep_id: int, max_seq_length: int = 64) -> dict:
  """description: int32 RaggedTensor [B, (pieces)] -> dict of int32 [B, L]."""
  batch_size = description.nrows(out_type=tf.int32)
  description = description[:, :max_seq_length - 2]
  ids = tf.concat([_constant_column(cls_id, batch_size), description,
                   _constant_column(sep_id, batch_size)], axis=1)
  return _to_dense(ids, tf.zeros_like(ids), max_seq_length)


class InputBuilder:
  """Strings -> encoder inputs, with one tokenizer and one layout config.

  Used by the training input pipeline and inside the exported SavedModels, so both build
  inputs the same way.
  """

  def __init__(self, tokenizer, max_seq_length: int = 64, max_title_length: int = 16,
               mention_layout: str = "context", text_prefixes: bool = False):
    self.tokenizer = tokenizer
    self.max_seq_length = max_seq_length
    self.max_title_length = max_title_length
    self.mention_layout = mention_layout
    self.text_prefixes = text_prefixes

  @classmethod
  def from_config(cls, tokenizer, data_config) -> "InputBuilder":
    """The builder of a DataConfig's layout (mel.training.configs)."""
    return cls(tokenizer, data_config.max_seq_length, data_config.max_title_length,
               data_config.mention_layout, data_config.text_prefixes)

  def _prefixed(self, strings, prefix: str):
    return tf.strings.join([prefix, strings]) if self.text_prefixes else strings

  def mentions(self, title, left, mention, right) -> dict:
    """tf.string [B] each -> dict of int32 [B, max_seq_length]."""
    t = self.tokenizer
    if self.mention_layout == "mention_only":
      return entity_inputs(t.tokenize(self._prefixed(mention, QUERY_PREFIX)), cls_id=t.cls_id,
                           sep_id=t.sep_id, max_seq_length=self.max_seq_length)
    title = self._prefixed(title, QUERY_PREFIX)
    return mention_inputs(
        t.tokenize(title), t.tokenize(left), t.tokenize(mention), t.tokenize(right),
        cls_id=t.cls_id, sep_id=t.sep_id, mention_start_id=t.mention_start_id,
        mention_end_id=t.mention_end_id, max_seq_length=self.max_seq_length,
        max_title_length=self.max_title_length)

  def pairs(self, title, left, mention, right, description) -> dict:
    """tf.string [N] each (a mention and one candidate's description per row) -> dict of int32
    [N, max_seq_length], the reranker's input."""
    t = self.tokenizer
    title = self._prefixed(title, QUERY_PREFIX)
    description = self._prefixed(description, PASSAGE_PREFIX)
    return pair_inputs(
        t.tokenize(title), t.tokenize(left), t.tokenize(mention), t.tokenize(right),
        t.tokenize(description), cls_id=t.cls_id, sep_id=t.sep_id,
        mention_start_id=t.mention_start_id, mention_end_id=t.mention_end_id,
        max_seq_length=self.max_seq_length, max_title_length=self.max_title_length)

  def entities(self, description) -> dict:
    """tf.string [B] -> dict of int32 [B, max_seq_length]."""
    t = self.tokenizer
    description = self._prefixed(description, PASSAGE_PREFIX)
    return entity_inputs(t.tokenize(description), cls_id=t.cls_id, sep_id=t.sep_id,
                         max_seq_length=self.max_seq_length)
