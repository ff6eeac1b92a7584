"""The formats `mel serve` speaks besides its own: REL's JSON (mel.serving.rel) and NIF 2.0 Turtle
as GERBIL sends it (mel.serving.nif). Requests are written as REL and GERBIL write them."""
import urllib.parse

import pytest
import rdflib
from rdflib import Literal, URIRef

from mel.linking.results import Candidate, LinkedMention
from mel.serving import nif, rel

INF = float("inf")
NIF = nif.NIF
ITSRDF = nif.ITSRDF
WD = "http://www.wikidata.org/entity/"


def linked(text, mention, qid, score=0.8, entity_id=None, link_prob=0.6, at=None):
  """A mention of `mention` in `text` linked to `qid` (or NIL when qid and entity_id are None)."""
  start = text.index(mention) if at is None else at
  entity_id = entity_id or qid
  nil = entity_id is None
  candidate = Candidate(entity_id="Q1", qid="Q1", score=score, cosine=score, prior=0.0,
                        description="")
  return LinkedMention(start=start, end=start + len(mention), text=mention, entity_id=entity_id,
                       qid=None if nil else (qid or ""), score=score,
                       description=None if nil else "", candidates=(candidate,),
                       link_prob=link_prob)


# ---- REL ----

# REL's tutorial (docs/tutorials/e2e_entity_linking.md) and its server's example
BUKOWSKI = "If you're going to try, go all the way - Charles Bukowski."


def test_rel_end_to_end_request_has_no_spans():
  for body in ({"text": BUKOWSKI, "spans": []}, {"text": BUKOWSKI},
               {"text": BUKOWSKI, "spans": None, "tagger": "ner-fast"}):
    assert rel.parse_request(body) == rel.RelRequest(BUKOWSKI, None)


def test_rel_spans_are_start_length_pairs_and_become_start_end():
  text = "Nijmegen is in the Netherlands"
  request = rel.parse_request({"text": text, "spans": [[0, 8], [19, 11]]})
  assert request == rel.RelRequest(text, [(0, 8), (19, 30)])
  assert [text[s:e] for s, e in request.spans] == ["Nijmegen", "Netherlands"]


def test_rel_spans_as_the_gerbil_middleware_sends_them():
  body = {"spans": [{"start": 41, "length": 16}], "text": BUKOWSKI}
  assert rel.parse_request(body).spans == [(41, 57)]


def test_rel_unknown_keys_are_ignored():
  assert rel.parse_request({"text": "x", "lang": "en", "mode": "ne"}) == ("x", None)


def test_rel_offsets_are_code_points():
  text = "😀 Berlin"
  assert rel.parse_request({"text": text, "spans": [[2, 6]]}).spans == [(2, 8)]
  assert rel.response([linked(text, "Berlin", "Q64")])[0][:3] == [2, 6, "Berlin"]


@pytest.mark.parametrize("body, names", [
    ([], "JSON object"),
    ("text", "JSON object"),
    ({"spans": []}, '"text"'),
    ({"text": 3}, '"text" must be a string'),
    ({"text": None}, '"text" must be a string'),
    ({"text": "abc", "tagger": 1}, '"tagger"'),
    ({"text": "abc", "spans": "0,1"}, '"spans" must be a list'),
    ({"text": "abc", "spans": {"start": 0, "length": 1}}, '"spans" must be a list'),
    ({"text": "abc", "spans": [[0, 1], 5]}, '"spans"[1] must be a [start, length] pair'),
    ({"text": "abc", "spans": [[0, 1, 2]]}, '"spans"[0] must be a [start, length] pair'),
    ({"text": "abc", "spans": [[0]]}, '"spans"[0] must be a [start, length] pair'),
    ({"text": "abc", "spans": [[True, 1]]}, '"spans"[0] start must be an integer'),
    ({"text": "abc", "spans": [[0, False]]}, '"spans"[0] length must be an integer'),
    ({"text": "abc", "spans": [[0.0, 1]]}, '"spans"[0] start must be an integer'),
    ({"text": "abc", "spans": [["0", 1]]}, '"spans"[0] start must be an integer'),
    ({"text": "abc", "spans": [[-1, 1]]}, '"spans"[0] start -1 is negative'),
    ({"text": "abc", "spans": [[0, 1], [1, -1]]}, '"spans"[1] length -1'),
    ({"text": "abc", "spans": [[1, 0]]}, '"spans"[0] length 0'),
    ({"text": "abc", "spans": [[2, 2]]}, '"spans"[0] [2, 2] ends at 4, past the end'),
    ({"text": "abc", "spans": [{"start": 0}]}, '"spans"[0] must have "start" and "length"'),
])
def test_rel_bad_requests_name_the_field(body, names):
  with pytest.raises(ValueError) as e:
    rel.parse_request(body)
  assert names in str(e.value)


def test_rel_response_has_rels_seven_elements_and_drops_nil():
  text = "Paris Hilton met Nobody in Αθήνα."
  mentions = [
      linked(text, "Paris Hilton", "Q47899", score=0.91, link_prob=0.75),
      linked(text, "Nobody", None, score=0.2),                                  # NIL
      # known only by its Wikipedia page, and a caller's span (no link probability)
      linked(text, "Αθήνα", "", entity_id="el:Αθήνα", score=0.5, link_prob=None),
  ]
  assert rel.response(mentions) == [
      [0, 12, "Paris Hilton", "Q47899", 0.91, 0.75, "NULL"],
      [27, 5, "Αθήνα", "el:Αθήνα", 0.5, 0.0, "NULL"],
  ]
  assert rel.response([]) == []


def test_rel_response_score_that_is_not_finite_is_null():
  m = linked("Berlin", "Berlin", "Q64", score=-INF)
  assert rel.response([m]) == [[0, 6, "Berlin", "Q64", None, 0.6, "NULL"]]


# ---- NIF (GERBIL) ----

PREFIXES = """\
@prefix rdf:    <http://www.w3.org/1999/02/22-rdf-syntax-ns#> .
@prefix xsd:    <http://www.w3.org/2001/XMLSchema#> .
@prefix nif:    <http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#> .
@prefix itsrdf: <http://www.w3.org/2005/11/its/rdf#> .
"""
# KORE50's first sentence, as GERBIL's NIFBasedAnnotatorWebservice writes it (gerbil.nif.transfer
# DocumentWriter/AnnotationWriter): A2KB sends the context alone, D2KB adds a phrase per mention.
KORE = "Angelina, her father Jon, and her partner Brad never played together in the same movie."
REQ = "http://www.aksw.org/gerbil/NifWebService/request_0"
CONTEXT = f"{REQ}#char=0,87"
A2KB = PREFIXES + f"""
<{CONTEXT}>
        a               nif:RFC5147String , nif:String , nif:Context ;
        nif:beginIndex  "0"^^xsd:nonNegativeInteger ;
        nif:endIndex    "87"^^xsd:nonNegativeInteger ;
        nif:isString    "{KORE}"^^xsd:string .
"""


def phrase(context, start, end, anchor, uri=None):
  uri = uri or f"{context.rsplit('#', 1)[0]}#char={start},{end}"
  return f"""
<{uri}>
        a                     nif:RFC5147String , nif:String , nif:Phrase ;
        nif:anchorOf          "{anchor}"^^xsd:string ;
        nif:beginIndex        "{start}"^^xsd:nonNegativeInteger ;
        nif:endIndex          "{end}"^^xsd:nonNegativeInteger ;
        nif:referenceContext  <{context}> .
"""


D2KB = (A2KB + phrase(CONTEXT, 0, 8, "Angelina") + phrase(CONTEXT, 21, 24, "Jon")
        + phrase(CONTEXT, 42, 46, "Brad"))


def annotations(turtle):
  """{(begin, end): (phrase URI, anchorOf, taIdentRef, taConfidence)} of an answer, re-parsed."""
  graph = rdflib.Graph().parse(data=turtle, format="turtle")
  out = {}
  for p in graph.subjects(ITSRDF.taIdentRef, None):
    assert {NIF.String, NIF.RFC5147String, NIF.Phrase} <= set(graph.objects(p, rdflib.RDF.type))
    begin, end = graph.value(p, NIF.beginIndex), graph.value(p, NIF.endIndex)
    assert begin.datatype == end.datatype == rdflib.XSD.nonNegativeInteger
    assert graph.value(p, NIF.referenceContext) is not None
    confidence = graph.value(p, ITSRDF.taConfidence)
    assert confidence is None or confidence.datatype == rdflib.XSD.double
    out[(begin.toPython(), end.toPython())] = (
        str(p), str(graph.value(p, NIF.anchorOf)), str(graph.value(p, ITSRDF.taIdentRef)),
        None if confidence is None else confidence.toPython())
  return out


def test_nif_a2kb_request_has_no_spans():
  (doc,) = nif.parse(A2KB)
  assert doc == nif.NifDocument(context=CONTEXT, text=KORE, lang=None, spans=None, phrases={})


def test_nif_d2kb_request_gives_its_phrases():
  (doc,) = nif.parse(D2KB)
  assert doc.context == CONTEXT and doc.text == KORE and doc.lang is None
  assert doc.spans == [(0, 8), (21, 24), (42, 46)]
  assert doc.phrases == {(0, 8): f"{REQ}#char=0,8", (21, 24): f"{REQ}#char=21,24",
                         (42, 46): f"{REQ}#char=42,46"}


def test_nif_a2kb_answer_mints_rfc5147_phrases():
  mentions = [linked(KORE, "Angelina", "Q13909", score=0.9), linked(KORE, "Brad", "Q35332"),
              linked(KORE, "Jon", None, score=-INF)]                         # NIL, no candidate
  out = nif.annotate(A2KB, {CONTEXT: mentions})
  assert annotations(out) == {
      (0, 8): (f"{REQ}#char=0,8", "Angelina", WD + "Q13909", 0.9),
      (42, 46): (f"{REQ}#char=42,46", "Brad", WD + "Q35332", 0.8),
      (21, 24): (f"{REQ}#char=21,24", "Jon", "http://mel.invalid/nil/Jon", None),
  }
  assert "@prefix nif:" in out and "@prefix itsrdf:" in out and "@prefix xsd:" in out
  # the request is all there, and the answer parses as a request again
  request = rdflib.Graph().parse(data=A2KB, format="turtle")
  assert set(request) <= set(rdflib.Graph().parse(data=out, format="turtle"))
  (again,) = nif.parse(out)
  assert again.text == KORE and again.spans == [(0, 8), (21, 24), (42, 46)]


def test_nif_d2kb_answer_reuses_the_given_phrases():
  mentions = [linked(KORE, "Angelina", "Q13909"), linked(KORE, "Jon", "Q312674"),
              linked(KORE, "Brad", "Q35332")]
  out = nif.annotate(D2KB, {CONTEXT: mentions})
  found = annotations(out)
  assert {span: v[0] for span, v in found.items()} == nif.parse(D2KB)[0].phrases
  assert {span: v[2] for span, v in found.items()} == {
      (0, 8): WD + "Q13909", (21, 24): WD + "Q312674", (42, 46): WD + "Q35332"}
  # the given phrases keep one anchorOf and one pair of indexes: no duplicates added
  graph = rdflib.Graph().parse(data=out, format="turtle")
  brad = URIRef(f"{REQ}#char=42,46")
  assert len(list(graph.objects(brad, NIF.anchorOf))) == 1
  assert len(list(graph.objects(brad, NIF.beginIndex))) == 1
  assert len(list(graph.subjects(NIF.referenceContext, None))) == 3


def test_nif_given_phrase_left_unanswered_has_no_identref():
  out = nif.annotate(D2KB, {CONTEXT: [linked(KORE, "Brad", "Q35332")]})
  assert set(annotations(out)) == {(42, 46)}


def test_nif_non_bmp_characters_are_one_position_each():
  # NIF counts code points, GERBIL too (gerbil.nif.transfer writes codePointCount): the emoji
  # before the mention is one position, though two UTF-16 units in GERBIL's Java strings
  text = "🎉 Angela Merkel besuchte am Montag Paris."
  assert len(text) == 41 and len(text.encode("utf-16-le")) // 2 == 42
  context = "http://example.org/doc/1#char=0,41"
  request = PREFIXES + f"""
<{context}> a nif:Context , nif:String , nif:RFC5147String ;
    nif:beginIndex "0"^^xsd:nonNegativeInteger ; nif:endIndex "41"^^xsd:nonNegativeInteger ;
    nif:isString "{text}"@de .
""" + phrase(context, 2, 15, "Angela Merkel")
  (doc,) = nif.parse(request)
  assert doc.lang == "de" and doc.text == text and doc.spans == [(2, 15)]
  assert text[2:15] == "Angela Merkel"
  mentions = [linked(text, "Angela Merkel", "Q567"), linked(text, "Paris", "Q90")]
  found = annotations(nif.annotate(request, {context: mentions}))
  assert found[(2, 15)][:3] == ("http://example.org/doc/1#char=2,15", "Angela Merkel", WD + "Q567")
  assert found[(35, 40)][:3] == ("http://example.org/doc/1#char=35,40", "Paris", WD + "Q90")
  # the new phrase's anchor carries the context's language
  graph = rdflib.Graph().parse(data=nif.annotate(request, {context: mentions}), format="turtle")
  assert graph.value(URIRef("http://example.org/doc/1#char=35,40"), NIF.anchorOf) == \
      Literal("Paris", lang="de")


def test_nif_han_extension_and_page_only_entity():
  text = "𩸽を食べに北海道へ行った。"   # U+29E3D, outside the BMP
  context = "http://example.org/ja#char=0,13"
  request = PREFIXES + f'<{context}> a nif:Context ; nif:isString "{text}"@ja .\n'
  (doc,) = nif.parse(request)
  assert (doc.lang, doc.spans, len(doc.text)) == ("ja", None, 13)
  mentions = [linked(text, "北海道", "Q35581"),
              linked(text, "𩸽", "", entity_id="ja:ホッケ", score=0.4)]
  found = annotations(nif.annotate(request, {context: mentions}))
  assert found[(5, 8)][2] == WD + "Q35581"
  entity = found[(0, 1)][2]
  assert entity == "http://mel.invalid/entity/" + urllib.parse.quote("ja:ホッケ", safe="")
  assert urllib.parse.unquote(entity.rsplit("/", 1)[1]) == "ja:ホッケ"


def test_nif_mention_spanning_the_whole_text_is_not_the_context():
  text = "Berlin"
  context = "http://example.org/d#char=0,6"
  request = PREFIXES + f'<{context}> a nif:Context ; nif:isString "{text}" .\n'
  out = nif.annotate(request, {context: [linked(text, "Berlin", "Q64")]})
  assert annotations(out) == {
      (0, 6): ("http://example.org/d#char=0,6;length=6", "Berlin", WD + "Q64", 0.8)}
  graph = rdflib.Graph().parse(data=out, format="turtle")
  assert graph.value(URIRef(context), ITSRDF.taIdentRef) is None


def test_nif_relative_uris_resolve_against_base():
  request = PREFIXES + '<doc#char=0,6> a nif:Context ; nif:isString "Berlin" .\n'
  (doc,) = nif.parse(request, base="http://example.org/")
  assert doc.context == "http://example.org/doc#char=0,6"
  out = nif.annotate(request, {doc.context: [linked("Berlin", "Berlin", "Q64", at=0)]},
                     base="http://example.org/")
  assert set(annotations(out)) == {(0, 6)}


def test_nif_plain_indexes_as_in_the_nif_specification():
  request = PREFIXES + """
<http://ex.org/d#char=0,40> a nif:Context ;
    nif:isString "My favourite actress is Natalie Portman." .
<http://ex.org/d#char=24,39> nif:referenceContext <http://ex.org/d#char=0,40> ;
    nif:beginIndex "24" ; nif:endIndex 39 ; nif:anchorOf "Natalie Portman" .
"""
  assert nif.parse(request)[0].spans == [(24, 39)]


def test_nif_several_contexts_come_sorted():
  request = PREFIXES + ('<http://ex.org/b> a nif:Context ; nif:isString "bee" .\n'
                        '<http://ex.org/a> a nif:Context ; nif:isString "ant" .\n')
  assert [(d.context, d.text) for d in nif.parse(request)] == [
      ("http://ex.org/a", "ant"), ("http://ex.org/b", "bee")]


@pytest.mark.parametrize("turtle, names", [
    ("this is not turtle", "not valid Turtle"),
    (PREFIXES + '<http://ex.org/a> nif:isString "x" \n<http://ex.org/b> nif:y "z" .',
     "line 6"),
    (PREFIXES + '<http://ex.org/a> a nif:Context .', "no nif:Context with a nif:isString"),
    ("", "no nif:Context with a nif:isString"),
    (PREFIXES + '[] a nif:Context ; nif:isString "x" .', "blank node"),
    (PREFIXES + '<http://ex.org/a> nif:isString "x", "y" .', "http://ex.org/a"),
    (A2KB + phrase(CONTEXT, 80, 90, "movie.XXX"), f"phrase {REQ}#char=80,90: offsets [80, 90)"),
    (A2KB + phrase(CONTEXT, 8, 0, "x"), f"phrase {REQ}#char=8,0: offsets"),
    (A2KB + phrase(CONTEXT, 42, 46, "Brat"),
     f"phrase {REQ}#char=42,46: nif:anchorOf 'Brat' is not the text at [42, 46), 'Brad'"),
    (A2KB + phrase(CONTEXT, 42, 46, "Brad").replace('"42"^^xsd:nonNegativeInteger', '"x"'),
     f"phrase {REQ}#char=42,46: nif:beginIndex 'x'"),
    (A2KB + phrase(CONTEXT, 42, 46, "Brad").replace('"42"^^xsd:nonNegativeInteger', '"-1"'),
     f"phrase {REQ}#char=42,46: nif:beginIndex '-1'"),
    (A2KB + phrase(CONTEXT, 42, 46, "Brad").replace('nif:endIndex', 'nif:notEndIndex'),
     f"phrase {REQ}#char=42,46: needs one nif:endIndex, has 0"),
])
def test_nif_bad_requests_name_the_fault(turtle, names):
  with pytest.raises(ValueError) as e:
    nif.parse(turtle)
  assert names in str(e.value)
  # the service answers 400 for what is not Turtle (TurtleSyntaxError), 422 for the rest
  assert isinstance(e.value, nif.TurtleSyntaxError) == (names in ("not valid Turtle", "line 6"))


def test_nif_annotate_rejects_results_that_do_not_fit():
  with pytest.raises(ValueError, match="no nif:Context http://ex.org/other"):
    nif.annotate(A2KB, {"http://ex.org/other": []})
  with pytest.raises(ValueError, match="mention 'Brad' at \\[0, 4\\) is not a span"):
    nif.annotate(A2KB, {CONTEXT: [linked(KORE, "Brad", "Q35332", at=0)]})
  with pytest.raises(ValueError, match="not valid Turtle"):
    nif.annotate("nope", {})


def test_nif_round_trip_of_a_whole_gerbil_exchange():
  # GERBIL's request -> parse -> link (by hand) -> annotate -> GERBIL reads markings back
  text = "Leipzig 🦁 liegt in Sachsen, 🇩🇪."
  context = "http://www.aksw.org/gerbil/NifWebService/request_7#char=0,%d" % len(text)
  request = PREFIXES + f'<{context}> a nif:Context ; nif:isString "{text}"^^xsd:string .\n'
  (doc,) = nif.parse(request)
  mentions = [linked(doc.text, "Leipzig", "Q2079"), linked(doc.text, "Sachsen", "Q1202"),
              linked(doc.text, "🇩🇪", "Q183")]
  found = annotations(nif.annotate(request, {doc.context: mentions}))
  for m in mentions:
    uri, anchor, entity, _ = found[(m.start, m.end)]
    assert text[m.start:m.end] == anchor == m.text
    assert uri.endswith(f"#char={m.start},{m.end}") and entity == WD + m.qid
