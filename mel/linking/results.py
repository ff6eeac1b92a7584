"""What linking returns: a LinkedMention per mention, with its ranked Candidates."""
import dataclasses
import math
from typing import Optional, Tuple


@dataclasses.dataclass(frozen=True)
class Candidate:
  entity_id: str
  qid: str               # the QID, "" for an entity known only by its Wikipedia page
  score: float           # the mode's score (cosine, + prior in full mode)
  cosine: float          # mention-entity cosine
  prior: float           # P(entity | mention text) from the dictionary (0 when unseen)
  description: str
  rerank: Optional[float] = None   # the reranker's probability, sigmoid(logit), for the
                                   # candidates it re-scored (full mode with a reranker: they
                                   # are ranked by it); None otherwise

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LinkedMention:
  """One mention: [start, end) in the input text, and its entity (None = NIL)."""
  start: int
  end: int
  text: str
  entity_id: Optional[str]    # None when the best candidate's cosine is below the threshold
  qid: Optional[str]          # QID, "" for page-only entities, None for NIL
  score: float                # the best candidate's score (also for NIL: what was rejected;
                              # -inf when the index returned no candidate); with a reranker
                              # (full mode), its probability: the best candidate's `rerank`
  description: Optional[str]  # the entity's description (None for NIL)
  candidates: Tuple[Candidate, ...]   # top_k, best first
  link_prob: Optional[float]  # the spotter's link probability (None for caller spans)

  @property
  def is_nil(self) -> bool:
    return self.entity_id is None

  def to_dict(self) -> dict:
    """JSON-ready: candidates as dicts; the score of a mention without candidates is None."""
    out = dataclasses.asdict(self)
    out["candidates"] = [c.to_dict() for c in self.candidates]
    if not math.isfinite(self.score):
      out["score"] = None
    return out
