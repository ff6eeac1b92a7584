"""NIF 2.0 in Turtle, as GERBIL sends it to an annotator web service: read, and answered.

    documents = nif.parse(turtle)                  # [NifDocument]; ValueError on bad input
    turtle_out = nif.annotate(turtle, {doc.context: mentions, ...})

GERBIL (dice-group/gerbil, NIFBasedAnnotatorWebservice) POSTs one document: a nif:Context
(<http://www.aksw.org/gerbil/NifWebService/request_N#char=0,L>) with nif:isString, and, for
D2KB, one nif:Phrase per mention to link (nif:referenceContext, nif:anchorOf, nif:beginIndex,
nif:endIndex); for A2KB none. It reads the answer back with gerbil.nif.transfer's
AnnotationParser: every resource with a nif:referenceContext to the context and both indexes
is a marking, with itsrdf:taIdentRef its entity and itsrdf:taConfidence (a double) its score.

Offsets are Unicode code points, i.e. Python string indices, and need no conversion: the NIF
2.0 core specification says "strings MUST always be counted in Unicode code points", and
GERBIL, though Java, follows it (gerbil.nif.transfer's AnnotationWriter writes
text.codePointCount(...) as the indexes and #char= of a Java string, and its
NIFPositionHelper.correctAnnotationPositions turns the code points it reads back into Java's
UTF-16 positions). A character outside the BMP (an emoji, a Han extension) is one position.

Every mention becomes (or, for a given phrase, extends) a phrase resource typed nif:String,
nif:RFC5147String and nif:Phrase, with nif:referenceContext, nif:anchorOf, nif:beginIndex and
nif:endIndex (xsd:nonNegativeInteger), itsrdf:taIdentRef and, when finite, the mention's score
as itsrdf:taConfidence (xsd:double). A mention at a given phrase's offsets keeps that phrase's
URI; the others get <document>#char=start,end (RFC 5147, as GERBIL mints them; the document is
the context URI without its fragment). taIdentRef is:

  an entity with a QID     <http://www.wikidata.org/entity/Q64>
  a page-only entity       <http://mel.invalid/entity/{url-encoded entity id}>
  a NIL mention            <http://mel.invalid/nil/{url-encoded mention text}>

GERBIL counts a URI outside its well-known knowledge bases (gerbil.properties
DefaultWellKnownKB: DBpedia, WikiData, DNB, ...) as an emerging entity, and an emerging entity
of the annotator matches an emerging entity of the gold standard whatever the two URIs
(AbstractMeaningMatchingsSearcher); its datasets mark their NIL mentions so, e.g.
http://aksw.org/notInWiki/{url-encoded surface form} for AIDA/CoNLL. NIL mentions are therefore
answered, not dropped, in the same form: a phrase without taIdentRef would be a bare span,
which GERBIL's A2KB and D2KB tasks discard. `.invalid` is reserved (RFC 2606): these URIs can
never name anything else.
"""
import math
import urllib.parse
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import rdflib
from rdflib import RDF, XSD, Literal, URIRef

from mel.linking.results import LinkedMention

NIF = rdflib.Namespace("http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#")
ITSRDF = rdflib.Namespace("http://www.w3.org/2005/11/its/rdf#")
WIKIDATA = "http://www.wikidata.org/entity/"
ENTITY_NS = "http://mel.invalid/entity/"   # entities without a QID
NIL_NS = "http://mel.invalid/nil/"         # NIL mentions, by their text

Span = Tuple[int, int]


class TurtleSyntaxError(ValueError):
  """The body is not Turtle at all (the service answers 400; other ValueErrors are 422)."""


class NifDocument(NamedTuple):
  context: str                  # the nif:Context's URI
  text: str                     # its nif:isString
  lang: Optional[str]           # the language tag of nif:isString ("en"), None if untagged
  spans: Optional[List[Span]]   # (start, end) of the given phrases, sorted; None: none (A2KB)
  phrases: Dict[Span, str]      # (start, end) -> the given phrase's URI (empty for A2KB)


def parse(turtle: str, base: Optional[str] = None) -> List[NifDocument]:
  """The documents of a NIF request, by context URI; ValueError naming what is wrong."""
  return [doc for doc, _ in _documents(_graph(turtle, base))]


def annotate(turtle: str, results: Mapping[str, Sequence[LinkedMention]],
             base: Optional[str] = None) -> str:
  """The request `turtle` and, per context URI in `results`, a phrase per mention."""
  graph = _graph(turtle, base)
  documents = {doc.context: (doc, node) for doc, node in _documents(graph)}
  for context, mentions in results.items():
    if context not in documents:
      raise ValueError(f"no nif:Context {context} in the NIF document to annotate")
    doc, node = documents[context]
    for m in mentions:
      _add_mention(graph, doc, node, m)
  graph.bind("nif", NIF, override=True)
  graph.bind("itsrdf", ITSRDF, override=True)
  graph.bind("xsd", XSD, override=True)
  return graph.serialize(format="turtle")


def entity_uri(mention: LinkedMention) -> str:
  """taIdentRef of a mention: WikiData's URI, or a mel URI GERBIL takes for emerging."""
  if mention.entity_id is None:
    return NIL_NS + urllib.parse.quote(mention.text, safe="")
  if mention.qid:
    return WIKIDATA + mention.qid
  return ENTITY_NS + urllib.parse.quote(mention.entity_id, safe="")


def _graph(turtle: str, base: Optional[str]) -> rdflib.Graph:
  graph = rdflib.Graph()
  try:
    graph.parse(data=turtle, format="turtle", publicID=base)
  except Exception as e:   # rdflib's BadSyntax and friends; their text carries the line
    raise TurtleSyntaxError(f"not valid Turtle: {e}") from None
  return graph


def _documents(graph: rdflib.Graph) -> List[Tuple[NifDocument, URIRef]]:
  contexts = sorted(set(graph.subjects(NIF.isString, None)), key=str)
  if not contexts:
    raise ValueError("no nif:Context with a nif:isString in the NIF document")
  out = []
  for node in contexts:
    if not isinstance(node, URIRef):
      raise ValueError("a nif:Context must be named by a URI, not a blank node")
    strings = list(graph.objects(node, NIF.isString))
    if len(strings) != 1 or not isinstance(strings[0], Literal):
      raise ValueError(f"nif:Context {node} must have one literal nif:isString, "
                       f"not {len(strings)} values")
    text = str(strings[0])
    phrases: Dict[Span, str] = {}
    # sorted, so that of two phrases at the same offsets the first URI is the one kept
    for phrase in sorted(set(graph.subjects(NIF.referenceContext, node)), key=str):
      if phrase == node:
        continue
      span = _phrase_span(graph, phrase, text)
      phrases.setdefault(span, str(phrase))
    doc = NifDocument(context=str(node), text=text, lang=strings[0].language or None,
                      spans=sorted(phrases) or None, phrases=phrases)
    out.append((doc, node))
  return out


def _phrase_span(graph: rdflib.Graph, phrase, text: str) -> Span:
  start = _index(graph, phrase, NIF.beginIndex, "nif:beginIndex")
  end = _index(graph, phrase, NIF.endIndex, "nif:endIndex")
  if not start < end <= len(text):
    raise ValueError(f"phrase {phrase}: offsets [{start}, {end}) are not a span of the text "
                     f"({len(text)} characters)")
  for anchor in graph.objects(phrase, NIF.anchorOf):
    if str(anchor) != text[start:end]:
      raise ValueError(f"phrase {phrase}: nif:anchorOf {str(anchor)!r} is not the text at "
                       f"[{start}, {end}), {text[start:end]!r}")
  return start, end


def _index(graph: rdflib.Graph, phrase, prop: URIRef, name: str) -> int:
  values = list(graph.objects(phrase, prop))
  if len(values) != 1:
    raise ValueError(f"phrase {phrase}: needs one {name}, has {len(values)}")
  value = values[0]
  # typed xsd:nonNegativeInteger as GERBIL writes them, or plain as in the NIF specification
  if isinstance(value, Literal):
    number = value.toPython()
    if isinstance(number, str) and number.isascii() and number.isdigit():
      number = int(number)
    if isinstance(number, int) and not isinstance(number, bool) and number >= 0:
      return number
  raise ValueError(f"phrase {phrase}: {name} {str(value)!r} is not a non-negative integer")


def _add_mention(graph: rdflib.Graph, doc: NifDocument, context: URIRef,
                 m: LinkedMention) -> None:
  if not 0 <= m.start < m.end <= len(doc.text) or doc.text[m.start:m.end] != m.text:
    raise ValueError(f"mention {m.text!r} at [{m.start}, {m.end}) is not a span of the text "
                     f"of {doc.context}")
  given = doc.phrases.get((m.start, m.end))
  phrase = URIRef(given or _phrase_uri(graph, doc, m.start, m.end))
  for kind in (NIF.String, NIF.RFC5147String, NIF.Phrase):
    graph.add((phrase, RDF.type, kind))
  if given is None:
    graph.add((phrase, NIF.referenceContext, context))
    graph.add((phrase, NIF.beginIndex, Literal(m.start, datatype=XSD.nonNegativeInteger)))
    graph.add((phrase, NIF.endIndex, Literal(m.end, datatype=XSD.nonNegativeInteger)))
  if given is None or (phrase, NIF.anchorOf, None) not in graph:
    graph.add((phrase, NIF.anchorOf, Literal(m.text, lang=doc.lang)))
  graph.add((phrase, ITSRDF.taIdentRef, URIRef(entity_uri(m))))
  if math.isfinite(m.score):
    graph.add((phrase, ITSRDF.taConfidence, Literal(float(m.score), datatype=XSD.double)))


def _phrase_uri(graph: rdflib.Graph, doc: NifDocument, start: int, end: int) -> str:
  """<document>#char=start,end; with RFC 5147's ;length= when that URI is taken (a mention
  spanning the whole text would otherwise be GERBIL's context itself)."""
  document = doc.context.rsplit("#", 1)[0]
  uri = f"{document}#char={start},{end}"
  if (URIRef(uri), None, None) in graph:
    uri += f";length={len(doc.text)}"
  return uri
