"""Builds an mBERT-layout WordPiece vocabulary from mined text (for the demo and tests).

    mel vocab --mining_dir out/mining --output out/vocab.txt [--vocab_size 8000] [--overwrite]

The real path uses the vocab.txt of the mBERT release unchanged; no vocabulary can be
downloaded here, so this learns one with tensorflow-text's bert_vocab_from_dataset (cased,
BERT's splitting) from the training mentions' contexts and titles, the entity descriptions and
the entity-pair texts. The layout is mBERT's (mel.training.tokenization.RESERVED_TOKENS first).

An existing --output is reused as it is (a rerun of a pipeline keeps the vocabulary its models
were trained with); --overwrite learns it again.
"""
import os
import random
import sys
import time

from mel import flags


def log(message: str) -> None:
  print(f"[mel vocab] {message}", file=sys.stderr, flush=True)


def training_texts(mining_dir: str, max_texts: int, seed: int = 0):
  """Texts to learn from: a seeded sample when there are more than max_texts."""
  from mel import records
  texts = []
  for m in records.read_output(mining_dir, records.MENTIONS_TRAIN):
    texts.append(f"{m.doc_title} {m.left_context}{m.mention}{m.right_context}")
  for e in records.read_output(mining_dir, records.ENTITIES):
    texts.extend(e.labels.values())
    if e.description:
      texts.append(e.description)
  for p in records.read_output(mining_dir, records.ENTITY_PAIRS):
    texts.extend((p.text_a, p.text_b))
  if len(texts) > max_texts:
    texts = random.Random(seed).sample(texts, max_texts)
  return texts


def learn_vocab(texts, vocab_size: int, max_words: int = 20000, iterations: int = 2):
  """WordPiece pieces learned from texts, after mel's reserved tokens.

  The learner is pure Python and binary-searches a count threshold, running full learning
  passes at each probe: on the shared excerpts its defaults (every word, 4 iterations) took
  6 min. Keeping the 20,000 most frequent words and 2 iterations took 16 s for an [UNK] rate
  of 0.09% (0.20% with 10,000 words) and 1.5% more pieces per text than the default settings.
  """
  import tensorflow as tf
  from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset as bert_vocab
  from mel.training import tokenization
  dataset = tf.data.Dataset.from_tensor_slices(texts).batch(1000)
  vocab = bert_vocab.bert_vocab_from_dataset(
      dataset, vocab_size=vocab_size, reserved_tokens=tokenization.RESERVED_TOKENS,
      bert_tokenizer_params={"lower_case": False},
      learn_params={"max_input_tokens": max_words, "num_iterations": iterations})
  if vocab[:len(tokenization.RESERVED_TOKENS)] != tokenization.RESERVED_TOKENS:
    raise RuntimeError("the learner did not keep the reserved tokens first")
  return vocab


def main(argv=None, prog: str = "mel vocab") -> int:
  parser = flags.parser(prog, __doc__)
  flags.mining_dir(parser, required=True,
                   help="mining run whose text is learned from (beam run extract_mentions)")
  flags.output(parser, help="vocab.txt to write (local or gs://)")
  parser.add_argument("--vocab_size", type=int, default=8000)
  parser.add_argument("--max_texts", type=int, default=40000,
                      help="learn from a seeded sample of at most this many texts")
  parser.add_argument("--max_words", type=int, default=20000,
                      help="the learner keeps this many most frequent words")
  parser.add_argument("--iterations", type=int, default=2)
  flags.overwrite(parser, help="learn the vocabulary again when --output exists (without it "
                  "an existing --output is reused as it is; its inputs are not checked)")
  flags.no_progress(parser)
  args = parser.parse_args(argv)
  flags.require_positive(parser, args, "vocab_size", "max_texts", "max_words", "iterations")
  import tensorflow as tf
  from mel.training import tokenization
  if tf.io.gfile.exists(args.output) and not args.overwrite:
    try:
      tokenization.Tokenizer(tokenization.load_vocab(args.output))   # reused only if usable
    except tokenization.VocabError as e:
      log(f"error: {e} (--overwrite replaces it)")
      return 1
    log(f"{args.output} exists: reused (--overwrite learns it again)")
    return 0
  started = time.time()
  try:
    texts = training_texts(args.mining_dir, args.max_texts)
  except FileNotFoundError as e:
    log(f"error: {e} (run `beam run extract_mentions` first)")
    return 1
  if not args.no_progress:
    log(f"learning {args.vocab_size} pieces from {len(texts)} texts")
  vocab = learn_vocab(texts, args.vocab_size, args.max_words, args.iterations)
  tokenization.Tokenizer(vocab)   # fails here, not in training, if a needed token is missing
  parent = os.path.dirname(args.output)
  if parent:
    tf.io.gfile.makedirs(parent)
  tmp = f"{args.output}.tmp-{os.getpid()}"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write("".join(token + "\n" for token in vocab))
  tf.io.gfile.rename(tmp, args.output, overwrite=True)
  log(f"wrote {len(vocab)} tokens ({len(vocab) - len(tokenization.RESERVED_TOKENS)} learned "
      f"from {len(texts)} texts) to {args.output} in {time.time() - started:.0f}s")
  return 0
