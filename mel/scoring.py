"""Full mode's ranking: what the linker scores a candidate by, and what mel evaluate chooses full
mode's NIL threshold on, written once.

    score = full_score(cosine, prior)     # cosine + PRIOR_WEIGHT x P(entity | mention text)

Full mode searches FULL_CANDIDATES candidates, looking FULL_LEAVES_FACTOR times wider than a
tree index's defaults, and ranks them by score (ties by entity id); P(entity | text) is the
anchor prior of mel.anchors (the spotter's dictionary holds the same counts). Fast mode ranks
by the cosine alone.
"""
PRIOR_WEIGHT = 0.5
FULL_CANDIDATES = 64      # candidates re-ranked in full mode
FULL_LEAVES_FACTOR = 4    # full mode searches this many times the leaves of a tree index
FULL_SCORE = "cosine + prior_weight x P(entity | text)"


def full_score(cosine: float, prior: float, weight: float = PRIOR_WEIGHT) -> float:
  return cosine + weight * prior


def rank_key(score: float, entity_id: str):
  """Sort key of full mode's candidates: best score first, ties by entity id."""
  return (-score, entity_id)
