"""beam_pipelines.splits: stable hashes, document fractions and whole-document holdout selection."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_pipelines import splits


# --- stable_hash / doc_fraction ----------------------------------------------------------------

def test_stable_hash_known_values():
  # Checked with coreutils: printf 'a\x1fb' | b2sum -l 64  ->  f84c4d669fe0d410
  assert splits.stable_hash("a", "b") == 0xF84C4D669FE0D410
  assert splits.stable_hash("a", "b") == splits.stable_hash("a", "b")


def test_stable_hash_depends_on_part_boundaries_and_order():
  assert splits.stable_hash("ab", "c") != splits.stable_hash("a", "bc")
  assert splits.stable_hash("a", "b") != splits.stable_hash("b", "a")
  assert splits.stable_hash("Hồng Kông") != splits.stable_hash("Hong Kong")
  assert 0 <= splits.stable_hash("Hồng Kông") < 2**64


def test_doc_fraction_known_value():
  # printf '7\x1fholdout\x1fviwiki\x1f12345' | b2sum -l 64  ->  4b18a02f60555a4b; the top
  # 53 bits of it, as a fraction of 2**53.
  assert splits.doc_fraction(7, "viwiki", 12345) == (0x4B18A02F60555A4B >> 11) / 2.0**53
  assert splits.doc_fraction(7, "viwiki", 12345) == splits.doc_fraction(7, "viwiki", 12345)


def test_doc_fraction_range_and_spread():
  fractions = [splits.doc_fraction(0, "enwiki", i) for i in range(2000)]
  assert all(0.0 <= f < 1.0 for f in fractions)
  assert len(set(fractions)) == 2000
  # Roughly uniform: each tenth of [0, 1) gets some of 2000 documents.
  assert all(100 < sum(int(f * 10) == k for f in fractions) < 300 for k in range(10))
  assert splits.doc_fraction(1, "enwiki", 0) != splits.doc_fraction(0, "enwiki", 0)
  assert splits.doc_fraction(0, "viwiki", 0) != splits.doc_fraction(0, "enwiki", 0)


@given(st.integers(0, 2**31), st.sampled_from(["enwiki", "viwiki", "zh_yuewiki"]),
       st.integers(0, 10**9))
@settings(max_examples=200, deadline=None)
def test_doc_fraction_in_unit_interval(seed, wiki, doc_id):
  assert 0.0 <= splits.doc_fraction(seed, wiki, doc_id) < 1.0


# Was a bug, fixed: hash / 2.0**64 rounds to 1.0 for the top 2**10 hash values (floats hold 53
#  bits), breaking [0, 1); such a document is never a candidate
def test_doc_fraction_of_the_largest_hashes(monkeypatch):
  monkeypatch.setattr(splits, "stable_hash", lambda *parts: 2**64 - 1)
  assert splits.doc_fraction(0, "enwiki", 1) < 1.0


def test_candidate_threshold():
  assert splits.candidate_threshold(100, 10_000) == pytest.approx(0.04)
  assert splits.candidate_threshold(100, 10_000, oversample=2.0) == pytest.approx(0.02)
  assert splits.candidate_threshold(5_000, 10_000) == 1.0
  assert splits.candidate_threshold(100, 0) == 0.0
  assert splits.candidate_threshold(0, 10_000) == 0.0


# --- select_holdout ----------------------------------------------------------------------------

def test_takes_whole_docs_in_hash_order_until_the_target():
  docs = [(0.4, "w", 4, 5), (0.1, "w", 1, 5), (0.3, "w", 3, 5), (0.2, "w", 2, 5)]
  # 5 < 8, then 10 >= 8: two whole documents, so the holdout overshoots the target.
  assert splits.select_holdout(docs, target=8, language_total=100, max_fraction=0.5) == [
      ("w", 1), ("w", 2)]
  assert splits.select_holdout(docs, target=10, language_total=100, max_fraction=0.5) == [
      ("w", 1), ("w", 2)]
  assert splits.select_holdout(docs, target=11, language_total=100, max_fraction=0.5) == [
      ("w", 1), ("w", 2), ("w", 3)]


def test_takes_everything_when_the_target_is_out_of_reach():
  docs = [(0.2, "w", 2, 3), (0.1, "w", 1, 4)]
  assert splits.select_holdout(docs, 100, 1000, 1.0) == [("w", 1), ("w", 2)]


def test_max_fraction_caps_the_holdout():
  # Cap 0.2 * 100 = 20: doc 1 (30 mentions) would pass it, so it is skipped; smaller ones fit.
  docs = [(0.1, "w", 1, 30), (0.2, "w", 2, 5), (0.3, "w", 3, 15), (0.4, "w", 4, 10)]
  assert splits.select_holdout(docs, 20, 100, 0.2) == [("w", 2), ("w", 3)]
  assert splits.select_holdout(docs, 25, 100, 0.2) == [("w", 2), ("w", 3)]
  # The cap may be met exactly.
  assert splits.select_holdout([(0.5, "w", 9, 20)], 20, 100, 0.2) == [("w", 9)]
  assert splits.select_holdout([(0.5, "w", 9, 21)], 20, 100, 0.2) == []


def test_greedy_in_hash_order_can_miss_a_target_that_other_docs_reach():
  # Documents {2, 3} would hold exactly 10 = target = cap, but doc 1 comes first in hash order
  # and then neither 5-mention document fits: the rule is hash order, not best fit.
  docs = [(0.1, "w", 1, 6), (0.2, "w", 2, 5), (0.3, "w", 3, 5)]
  assert splits.select_holdout(docs, 10, 100, 0.1) == [("w", 1)]


def test_zero_budget_takes_nothing():
  docs = [(0.1, "w", 1, 5), (0.2, "w", 2, 0)]
  assert splits.select_holdout(docs, 0, 100, 0.5) == []
  assert splits.select_holdout(docs, -3, 100, 0.5) == []
  assert splits.select_holdout([], 10, 100, 0.5) == []
  # A zero cap keeps out every document that has mentions.
  assert splits.select_holdout(docs, 10, 100, 0.0) == [("w", 2)]
  assert splits.select_holdout(docs, 10, 0, 0.5) == [("w", 2)]


def test_ties_in_fraction_are_broken_by_wiki_and_doc_id():
  docs = [(0.5, "viwiki", 1, 1), (0.5, "enwiki", 2, 1), (0.5, "enwiki", 1, 1)]
  assert splits.select_holdout(docs, 2, 100, 1.0) == [("enwiki", 1), ("enwiki", 2)]


def test_with_real_fractions():
  docs = [(splits.doc_fraction(42, "viwiki", i), "viwiki", i, 1 + i % 7) for i in range(300)]
  chosen = splits.select_holdout(docs, 50, sum(d[3] for d in docs), 0.1)
  by_id = {d[2]: d for d in docs}
  taken = sum(by_id[i][3] for _, i in chosen)
  assert 50 <= taken < 50 + 7
  # They are the documents with the smallest fractions (nothing was capped here).
  ranked = sorted(docs)
  assert chosen == [(w, i) for _, w, i, _ in ranked[:len(chosen)]]


# --- properties --------------------------------------------------------------------------------

_DOCS = st.lists(
    st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.sampled_from(["enwiki", "viwiki"]),
              st.integers(0, 10_000), st.integers(0, 60)),
    max_size=40, unique_by=lambda d: (d[1], d[2]))


@given(docs=_DOCS, target=st.integers(-5, 500), extra=st.integers(0, 500),
       max_fraction=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
@settings(max_examples=300, deadline=None)
def test_select_holdout_properties(docs, target, extra, max_fraction, seed):
  total = sum(d[3] for d in docs) + extra
  cap = max_fraction * total
  chosen = splits.select_holdout(docs, target, total, max_fraction)
  mentions = {(w, i): n for _, w, i, n in docs}
  taken = sum(mentions[k] for k in chosen)

  # Never more than max_fraction of the language's mentions.
  assert taken <= cap
  # Whole documents, each once, in hash order.
  assert len(set(chosen)) == len(chosen) and set(chosen) <= set(mentions)
  order = [(w, i) for _, w, i, _ in sorted(docs)]
  assert chosen == [k for k in order if k in set(chosen)]
  # Nothing when there is no budget.
  if target <= 0:
    assert chosen == []
  # It stops as soon as the target is met: without its last document the holdout was short.
  if chosen:
    assert taken - mentions[chosen[-1]] < target
  # Short of the target only if no remaining document fits under the cap.
  if taken < target:
    assert all(taken + n > cap for k, n in mentions.items() if k not in set(chosen))
  # So if every document fits under the cap together, the target (or all there is) is reached.
  if sum(mentions.values()) <= cap:
    assert taken >= min(target, sum(mentions.values()))
  # The input order does not matter.
  shuffled = list(docs)
  random.Random(seed).shuffle(shuffled)
  assert splits.select_holdout(shuffled, target, total, max_fraction) == chosen
