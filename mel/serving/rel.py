"""REL's HTTP API (informagi/REL, src/REL/server.py): its request read, its answer written.

    request = rel.parse_request(json_body)   # RelRequest(text, spans); ValueError on bad input
    json_answer = rel.response(mentions)     # [[start, length, text, entity, ed, md, tag]]

The request is a JSON object (REL's NamedEntityConfig):

    {"text": "Nijmegen is in the Netherlands", "spans": [[0, 8], [19, 11]], "tagger": "ner-fast"}

  text    the document (required).
  spans   [start, length] pairs: disambiguation only (REL's "ED"). Absent, null or [] means
          REL finds the mentions itself (end to end, "EL"); RelRequest.spans is then None.
          REL's older server and the GERBIL middleware it ships (scripts/gerbil_middleware)
          send {"start": s, "length": n} objects instead; both forms are read.
  tagger  REL's choice of NER model ("ner-fast", "ner-fast-with-lowercase"): accepted for
          REL clients and ignored, mel has one mention detector.
Other keys are ignored. Offsets are Python string indices (Unicode code points), as in REL,
which is Python too.

The answer is a JSON list, one 7-element list per linked mention, as REL's NEAnnotation:

  0 start     code-point offset of the mention
  1 length    its length in code points (not its end, whatever REL's schema text says)
  2 mention   the mention's text
  3 entity    REL: a Wikipedia title ("Charles_Bukowski"); mel: the entity's WikiData QID
              ("Q312654"), or mel's own entity id for an entity known only by its Wikipedia
              page (see mel.linking.results)
  4 conf_ed   REL: the disambiguation confidence; mel: the mention's score (null if not finite)
  5 conf_md   REL: the NER confidence, 0.0 for given spans; mel: the spotter's link
              probability, 0.0 for given spans
  6 tag       REL: the NER tag ("PER", ...), "NULL" when none; mel has no NER tag: "NULL"

NIL mentions are left out, as REL does (REL.utils.process_results keeps only predictions that
are not "NIL").
"""
import math
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from mel.linking.results import LinkedMention

NO_TAG = "NULL"   # REL's tag for a mention without an NER tag


class RelRequest(NamedTuple):
  text: str
  spans: Optional[List[Tuple[int, int]]]   # mel (start, end) pairs; None: mel finds the mentions


def parse_request(body: Any) -> RelRequest:
  """A decoded REL JSON request; ValueError naming the field or span at fault."""
  if not isinstance(body, dict):
    raise ValueError(f"REL request must be a JSON object, not {_json_type(body)}")
  if "text" not in body:
    raise ValueError('REL request has no "text"')
  text = body["text"]
  if not isinstance(text, str):
    raise ValueError(f'REL request "text" must be a string, not {_json_type(text)}')
  tagger = body.get("tagger")
  if tagger is not None and not isinstance(tagger, str):
    raise ValueError(f'REL request "tagger" must be a string, not {_json_type(tagger)}')
  raw = body.get("spans")
  if raw is None:
    return RelRequest(text, None)
  if not isinstance(raw, list):
    raise ValueError(f'REL request "spans" must be a list of [start, length] pairs, '
                     f'not {_json_type(raw)}')
  spans = [_span(text, i, span) for i, span in enumerate(raw)]
  return RelRequest(text, spans or None)


def _span(text: str, i: int, span: Any) -> Tuple[int, int]:
  where = f'REL request "spans"[{i}]'
  if isinstance(span, dict):   # the GERBIL middleware's form
    if "start" not in span or "length" not in span:
      raise ValueError(f'{where} must have "start" and "length"')
    start, length = span["start"], span["length"]
  elif isinstance(span, list):
    if len(span) != 2:
      raise ValueError(f"{where} must be a [start, length] pair, not {len(span)} values")
    start, length = span
  else:
    raise ValueError(f"{where} must be a [start, length] pair, not {_json_type(span)}")
  # bool is an int in Python, and JSON's true is not an offset
  for name, value in (("start", start), ("length", length)):
    if isinstance(value, bool) or not isinstance(value, int):
      raise ValueError(f"{where} {name} must be an integer, not {_json_type(value)}")
  if start < 0:
    raise ValueError(f"{where} start {start} is negative")
  if length <= 0:
    raise ValueError(f"{where} length {length} must be positive")
  if start + length > len(text):
    raise ValueError(f"{where} [{start}, {length}] ends at {start + length}, past the end of "
                     f"the text ({len(text)} characters)")
  return start, start + length


def response(mentions: Sequence[LinkedMention]) -> list:
  """REL's answer for `mentions`: the linked ones, in the order given."""
  out = []
  for m in mentions:
    if m.entity_id is None:
      continue
    out.append([m.start, m.end - m.start, m.text, m.qid or m.entity_id,
                m.score if math.isfinite(m.score) else None,
                m.link_prob if m.link_prob is not None else 0.0,
                NO_TAG])
  return out


def _json_type(value: Any) -> str:
  """The JSON name of a decoded value's type, for messages."""
  if value is None:
    return "null"
  if isinstance(value, bool):
    return "a boolean"
  if isinstance(value, (int, float)):
    return "a number"
  if isinstance(value, str):
    return "a string"
  if isinstance(value, list):
    return "a list"
  if isinstance(value, dict):
    return "an object"
  return type(value).__name__
