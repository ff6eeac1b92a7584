"""Per-entity-balanced hard-negative selection (pure) and a mining round on a trained model."""
import collections

from hypothesis import given, settings, strategies as st

from mel.mine_negatives import select_negatives, visiting_order

ENTITIES = [f"Q{i}" for i in range(12)]


@st.composite
def mining_inputs(draw):
  n = draw(st.integers(0, 40))
  gold = [draw(st.sampled_from(ENTITIES)) for _ in range(n)]
  candidates = [draw(st.lists(st.sampled_from(ENTITIES), max_size=8, unique=True))
                for _ in range(n)]
  positives = collections.Counter(gold)
  ratio = draw(st.integers(1, 3))
  max_per_mention = draw(st.integers(1, 5))
  return gold, candidates, dict(positives), ratio, max_per_mention


@settings(max_examples=300, deadline=None)
@given(mining_inputs(), st.integers(0, 3))
def test_balance_properties(inputs, seed):
  gold, candidates, positives, ratio, max_per_mention = inputs
  order = visiting_order([f"m{i}" for i in range(len(gold))], seed)
  negatives, used, skipped = select_negatives(order, candidates, gold, positives, ratio,
                                              max_per_mention)
  counted = collections.Counter(e for n in negatives for e in n)
  assert counted == collections.Counter(used)
  for entity_id, n in counted.items():
    assert n <= ratio * positives.get(entity_id, 0)      # never over its negative budget
  for g, c, n in zip(gold, candidates, negatives):
    assert g not in n                                   # the gold entity is never a negative
    assert len(n) <= max_per_mention and len(set(n)) == len(n)
    assert n == [e for e in c if e in n]                # kept in rank order
  again = select_negatives(order, candidates, gold, positives, ratio, max_per_mention)
  assert again.negatives == negatives and again.skipped_by_budget == skipped   # deterministic


def test_budget_worked_example():
  # Q1 has 1 positive, ratio 2: it may be a negative twice; the third mention to want it
  # (in visiting order) is refused and takes the next candidate instead.
  gold = ["Q1", "Q2", "Q2", "Q2"]
  candidates = [["Q1", "Q2"], ["Q1", "Q3"], ["Q1", "Q3"], ["Q1", "Q3"]]
  positives = {"Q1": 1, "Q2": 3, "Q3": 5}
  negatives, used, skipped = select_negatives([0, 1, 2, 3], candidates, gold, positives,
                                              ratio=2, max_per_mention=1)
  assert negatives == [["Q2"], ["Q1"], ["Q1"], ["Q3"]]
  assert used == {"Q2": 1, "Q1": 2, "Q3": 1} and skipped == 1


def test_entities_without_positives_are_never_negatives():
  negatives, used, skipped = select_negatives([0], [["Q9", "Q2"]], ["Q1"], {"Q2": 1}, 10, 5)
  assert negatives == [["Q2"]] and skipped == 1


def test_visiting_order_is_a_seeded_permutation():
  ids = [f"m{i}" for i in range(50)]
  a, b = visiting_order(ids, 0), visiting_order(ids, 1)
  assert sorted(a) == list(range(50)) and a != list(range(50)) and a != b
  assert visiting_order(ids, 0) == a
