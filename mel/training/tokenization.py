"""WordPiece tokenisation over an mBERT-format vocabulary, in TensorFlow ops.

The real path takes the vocab.txt of the multi_cased_L-12_H-768_A-12 release unchanged
(119,547 entries, cased: no lower-casing or accent stripping). `mel vocab`
writes a vocabulary in the same layout from mined text, for the demo and the tests:
  0 [PAD], 1-99 [unused1]..[unused99], 100 [UNK], 101 [CLS], 102 [SEP], 103 [MASK], pieces...
The mention markers [E] and [/E] are two [unusedN] entries (configurable), so an mBERT
checkpoint's embedding table keeps its shape.

Everything here is TF ops (tensorflow-text FastBertTokenizer), so it runs in a TPU host input
pipeline and inside the exported SavedModels.
"""
from typing import List, Sequence

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
NUM_UNUSED = 99
RESERVED_TOKENS = ([PAD] + [f"[unused{i}]" for i in range(1, NUM_UNUSED + 1)]
                   + [UNK, CLS, SEP, MASK])


class VocabError(ValueError):
  """A vocabulary file is missing, empty or lacks a token mel needs."""


def load_vocab(path: str) -> List[str]:
  """The tokens of a vocab.txt (one per line, line number = id); local or gs://."""
  import tensorflow as tf
  if not tf.io.gfile.exists(path):
    raise VocabError(f"vocabulary file {path} does not exist")
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise VocabError(f"{path}: not UTF-8 ({e})") from None
  tokens = text.split("\n")
  if tokens and tokens[-1] == "":
    tokens.pop()
  tokens = [t.rstrip("\r") for t in tokens]
  if not tokens:
    raise VocabError(f"{path}: empty vocabulary")
  seen = {}
  for i, token in enumerate(tokens):
    if not token:
      raise VocabError(f"{path}: line {i + 1} is empty")
    if token in seen:
      raise VocabError(f"{path}: token {token!r} on lines {seen[token] + 1} and {i + 1}")
    seen[token] = i
  return tokens


class Tokenizer:
  """Cased WordPiece (BERT basic splitting + FastWordpiece) with mel's special ids.

  tokenize(strings [B]) -> int32 RaggedTensor [B, (pieces)]; specials are not added.
  """

  kind = "wordpiece"

  def __init__(self, vocab: Sequence[str], mention_start_token: str = "[unused1]",
               mention_end_token: str = "[unused2]", source: str = "vocabulary"):
    import tensorflow as tf
    import tensorflow_text as tf_text
    self.source = source
    index = {token: i for i, token in enumerate(vocab)}
    for token in (PAD, UNK, CLS, SEP, mention_start_token, mention_end_token):
      if token not in index:
        raise VocabError(f"{source}: lacks the token {token!r}")
    if mention_start_token == mention_end_token:
      raise VocabError("mention start and end markers must differ")
    self.vocab_size = len(vocab)
    self.pad_id = index[PAD]
    self.unk_id = index[UNK]
    self.cls_id = index[CLS]
    self.sep_id = index[SEP]
    self.mention_start_id = index[mention_start_token]
    self.mention_end_id = index[mention_end_token]
    if self.pad_id != 0:
      raise VocabError(f"{source}: [PAD] must be id 0 (padding is 0), it is {self.pad_id}")
    self._tokenizer = tf_text.FastBertTokenizer(
        vocab=list(vocab), token_out_type=tf.int32, unknown_token=UNK,
        lower_case_nfd_strip_accents=False)

  @classmethod
  def from_file(cls, path: str, mention_start_token: str = "[unused1]",
                mention_end_token: str = "[unused2]") -> "Tokenizer":
    return cls(load_vocab(path), mention_start_token, mention_end_token, source=path)

  def tokenize(self, strings):
    """strings: tf.string [B] -> int32 RaggedTensor [B, (pieces)]."""
    return self._tokenizer.tokenize(strings)   # FastBertTokenizer merges words already

  @property
  def module(self):
    """The tf.Module to keep alive in a SavedModel (holds the vocabulary)."""
    return self._tokenizer
