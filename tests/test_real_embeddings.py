"""bench/real_embeddings.py: the texts the real retrieval vectors are encoded from."""
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import real_embeddings  # noqa: E402

MINI = ROOT.parent / "shared" / "data" / "wikipedia" / "mini"


def test_sentence_around_finds_the_sentence_of_a_position():
  text = "Title line\nFirst one here. Second has the link. Third.\nNext paragraph."
  pos = text.index("link")
  assert real_embeddings.sentence_around(text, pos, "en") == "Second has the link."
  assert real_embeddings.sentence_around(text, text.index("First"), "en") == "First one here."
  assert real_embeddings.sentence_around(text, text.index("Third"), "en") == "Third."
  assert real_embeddings.sentence_around(text, text.index("Next"), "en") == "Next paragraph."
  # a paragraph with no sentence end is one sentence
  assert real_embeddings.sentence_around("a b c", 2, "en") == "a b c"


def test_read_links_cuts_mentions_as_the_mining_pipeline_does():
  mentions, first, counts = real_embeddings.read_links([str(MINI / "viwiki-mini.xml.bz2")])
  assert counts["articles/vi"] == 25 and counts["links/vi"] == len(mentions) > 100
  keys = {m[0] for m in mentions}
  assert keys == set(first) and all(k.startswith("viwiki:") for k in keys)
  for key, lang, title, left, mention, right in mentions[:200]:
    assert lang == "vi" and mention and len(left) <= 256 and len(right) <= 256
  # every distinct target has the sentence of its first link, holding that link's anchor
  key, _, _, _, anchor, _ = mentions[0]
  assert anchor in first[key][2]


def test_choose_is_seeded_sorted_and_bounded():
  a = real_embeddings.choose(1000, 10, seed=1)
  np.testing.assert_array_equal(a, real_embeddings.choose(1000, 10, seed=1))
  assert len(set(a.tolist())) == 10 and (np.diff(a) > 0).all()
  np.testing.assert_array_equal(real_embeddings.choose(5, 10, seed=1), np.arange(5))


def test_no_dump_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="no dump matches"):
    real_embeddings.read_links([str(tmp_path / "*.xml.bz2")])
