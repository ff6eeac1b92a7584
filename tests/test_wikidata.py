"""beam_pipelines.wikidata: dump lines -> Items / Rejected, on the real WikiData entities."""
import copy
import gzip
import json

import pytest

from beam_pipelines import wikidata


@pytest.fixture(scope="module")
def entity_lines(shared_data):
  """The 23 lines of wikidata/entities.jsonl, keyed by entity id (as the raw JSON gives it)."""
  lines = (shared_data / "wikidata" / "entities.jsonl").read_text(encoding="utf-8").splitlines()
  return {json.loads(line)["id"]: line for line in lines if line.strip()}


@pytest.fixture(scope="module")
def parsed(entity_lines):
  """Every entity line parsed: id -> the single Item or Rejected it gives."""
  out = {}
  for qid, line in entity_lines.items():
    results = list(wikidata.parse_line(line))
    assert len(results) == 1
    out[qid] = results[0]
  return out


def _raw(entity_lines, qid):
  return json.loads(entity_lines[qid])


def test_every_line_is_accounted_for(entity_lines, parsed):
  assert len(entity_lines) == 23
  items = sorted(q for q, r in parsed.items() if isinstance(r, wikidata.Item))
  rejected = {q: r.reason for q, r in parsed.items() if isinstance(r, wikidata.Rejected)}
  assert rejected == {
      "P31": wikidata.NOT_AN_ITEM, "P434": wikidata.NOT_AN_ITEM, "P2003": wikidata.NOT_AN_ITEM,
      "P8098": wikidata.NOT_AN_ITEM,
      "Q4115189": wikidata.NO_WIKIPEDIA_SITELINK, "Q22002395": wikidata.NO_WIKIPEDIA_SITELINK,
  }
  assert len(items) == 17
  assert {"Q1", "Q42", "Q571", "Q1040", "Q1299", "Q2112", "Q8646", "Q3571994"} <= set(items)


def test_properties_are_not_items(parsed):
  for pid in ("P31", "P434", "P2003", "P8098"):
    r = parsed[pid]
    assert (r.reason, r.key) == (wikidata.NOT_AN_ITEM, pid)
    assert "property" in r.detail
    assert r.sitelinks == {}


def test_items_without_wikipedia_sitelinks(parsed, entity_lines):
  for qid in ("Q4115189", "Q22002395"):   # Wikidata Sandbox; a book with no article anywhere
    assert not _raw(entity_lines, qid).get("sitelinks")
    r = parsed[qid]
    assert (r.reason, r.key, r.sitelinks) == (wikidata.NO_WIKIPEDIA_SITELINK, qid, {})


def test_hong_kong(parsed, entity_lines):
  item = parsed["Q8646"]
  raw = _raw(entity_lines, "Q8646")
  assert isinstance(item, wikidata.Item) and item.qid == "Q8646"
  assert item.sitelinks["viwiki"] == "Hồng Kông"
  assert item.sitelinks["enwiki"] == raw["sitelinks"]["enwiki"]["title"] == "Hong Kong"
  assert item.sitelinks["zh_yuewiki"] == "香港"
  assert item.sitelinks["be_x_oldwiki"] == "Ганконг"
  assert item.sitelinks["simplewiki"] == "Hong Kong"
  assert item.sitelinks["angwiki"] == raw["sitelinks"]["angwiki"]["title"]
  # Only Wikipedias: Commons, WikiNews, Wikivoyage, Wikiquote... are dropped.
  assert "commonswiki" in raw["sitelinks"] and "commonswiki" not in item.sitelinks
  for project in ("wikiquote", "wikinews", "wikivoyage", "wikisource", "wikibooks"):
    assert any(s.endswith(project) for s in raw["sitelinks"])
    assert not any(s.endswith(project) for s in item.sitelinks)
  wikipedias = {s for s in raw["sitelinks"] if s.endswith("wiki") and s != "commonswiki"}
  assert set(item.sitelinks) == wikipedias
  assert len(item.sitelinks) == 201   # 245 sitelinks, 44 of other projects
  # Texts by language; aliases as tuples in dump order.
  assert item.labels["vi"] == "Hồng Kông"
  assert item.labels["en"] == "Hong Kong"
  assert item.descriptions["en"] == "Special Administrative Region of China"
  assert item.descriptions["vi"] == ("một khu vực hành chính đặc biệt trên bờ biển phía đông nam"
                                     " của Trung Quốc, một thuộc địa cũ của Anh.")
  assert item.aliases["vi"] == ("Hương Cảng", "HK")
  assert item.aliases["en"][:3] == ("HKSAR", "HKG", "HK")
  assert len(item.aliases["en"]) == len(raw["aliases"]["en"])
  assert set(item.labels) == set(raw["labels"])
  # Classes: the P31 values (P279 has none here).
  p31 = [c["mainsnak"]["datavalue"]["value"]["id"] for c in raw["claims"]["P31"]]
  assert "P279" not in raw["claims"]
  assert item.classes == tuple(p31)
  assert item.classes[:2] == ("Q779415", "Q515")


def test_sitelinks_are_exactly_the_wikipedias_for_every_item(parsed, entity_lines):
  # In this file the only non-Wikipedia site ending in 'wiki' is commonswiki.
  for qid, r in parsed.items():
    if not isinstance(r, wikidata.Item):
      continue
    raw = _raw(entity_lines, qid)
    expected = {s: l["title"] for s, l in raw["sitelinks"].items()
                if s.endswith("wiki") and s != "commonswiki"}
    assert r.sitelinks == expected, qid
    assert expected, qid


def test_book_has_instance_and_subclass_classes(parsed, entity_lines):
  item = parsed["Q571"]
  raw = _raw(entity_lines, "Q571")
  p31 = [c["mainsnak"]["datavalue"]["value"]["id"] for c in raw["claims"]["P31"]]
  p279 = [c["mainsnak"]["datavalue"]["value"]["id"] for c in raw["claims"]["P279"]]
  assert p31 and p279
  assert item.classes == tuple(p31 + p279)   # P31 first, then P279
  assert "Q340169" in item.classes and "Q49848" in item.classes


def test_old_claims_with_only_numeric_id(parsed, entity_lines):
  # Q1 and Q42 in this file come from an old API answer whose values have no "id".
  for qid, cls in (("Q1", "Q1454986"), ("Q42", "Q5")):
    value = _raw(entity_lines, qid)["claims"]["P31"][0]["mainsnak"]["datavalue"]["value"]
    assert "id" not in value
    assert parsed[qid].classes[0] == cls


def _with_class(entity_lines, prop, cls):
  raw = copy.deepcopy(_raw(entity_lines, "Q8646"))
  raw["claims"][prop] = [{"mainsnak": {"snaktype": "value", "property": prop,
                                       "datavalue": {"value": {"entity-type": "item", "id": cls},
                                                     "type": "wikibase-entityid"}},
                          "type": "statement", "rank": "normal"}]
  return raw


@pytest.mark.parametrize("prop", ["P31", "P279"])
def test_wikimedia_internal_classes_are_filtered(entity_lines, prop):
  raw = _with_class(entity_lines, prop, "Q4167836")   # Wikimedia category
  (r,) = wikidata.parse_line(json.dumps(raw, ensure_ascii=False))
  assert isinstance(r, wikidata.Rejected)
  assert (r.reason, r.key) == (wikidata.FILTERED_CLASS, "Q8646")
  assert "Q4167836" in r.detail
  # Its sitelinks stay known, so its pages do not become page-only entities.
  assert r.sitelinks["viwiki"] == "Hồng Kông"
  assert "commonswiki" not in r.sitelinks
  assert len(r.sitelinks) == 201


def test_filtered_class_even_without_sitelinks():
  raw = {"type": "item", "id": "Q99", "sitelinks": {},
         "claims": {"P31": [{"mainsnak": {"datavalue": {"value": {"numeric-id": 11266439}}}}]}}
  (r,) = wikidata.parse_line(json.dumps(raw))
  assert (r.reason, r.key, r.sitelinks) == (wikidata.FILTERED_CLASS, "Q99", {})
  assert "Q11266439" in r.detail   # Wikimedia template, given as an old numeric id


def test_every_table8_class_is_filtered():
  for cls in sorted(wikidata.WIKIMEDIA_INTERNAL_CLASSES):
    raw = {"type": "item", "id": "Q7", "sitelinks": {"enwiki": {"title": "X"}},
           "claims": {"P279": [{"mainsnak": {"datavalue": {"value": {"id": cls}}}}]}}
    (r,) = wikidata.parse_line(json.dumps(raw))
    assert r.reason == wikidata.FILTERED_CLASS, cls
  assert len(wikidata.WIKIMEDIA_INTERNAL_CLASSES) == 14


def test_other_classes_are_kept(entity_lines):
  raw = _with_class(entity_lines, "P279", "Q5")
  (r,) = wikidata.parse_line(json.dumps(raw, ensure_ascii=False))
  assert isinstance(r, wikidata.Item)
  assert r.classes[-1] == "Q5"


def test_claims_without_a_value_are_skipped():
  raw = {"type": "item", "id": "Q8", "sitelinks": {"enwiki": {"title": "Happiness"}},
         "claims": {"P31": [{"mainsnak": {"snaktype": "novalue", "property": "P31"}},
                            {"mainsnak": {"snaktype": "somevalue", "property": "P31"}},
                            {"mainsnak": {"datavalue": {"value": "a string"}}},
                            {"mainsnak": {"datavalue": {"value": {"numeric-id": 9415}}}}]}}
  (r,) = wikidata.parse_line(json.dumps(raw))
  assert r.classes == ("Q9415",)


def test_labels_descriptions_aliases_are_cleaned():
  raw = {"type": "item", "id": "Q5", "sitelinks": {"enwiki": {"title": "Human"}},
         "labels": {"en": {"language": "en", "value": "human"}, "xx": {"language": "xx"},
                    "yy": "not a dict"},
         "descriptions": {"de": {"language": "de", "value": "Mensch"}},
         "aliases": {"en": [{"value": "person"}, {"value": ""}, {"value": "people"}],
                     "fr": [{"value": ""}], "de": []}}
  (r,) = wikidata.parse_line(json.dumps(raw))
  assert r.labels == {"en": "human"}
  assert r.descriptions == {"de": "Mensch"}
  assert r.aliases == {"en": ("person", "people")}
  assert r.classes == ()


def test_sitelinks_without_title_are_dropped():
  raw = {"type": "item", "id": "Q5", "sitelinks": {"enwiki": {"title": ""}, "dewiki": "Mensch",
                                                   "frwiki": {"site": "frwiki"}}}
  (r,) = wikidata.parse_line(json.dumps(raw))
  assert (r.reason, r.key) == (wikidata.NO_WIKIPEDIA_SITELINK, "Q5")


# --- dump framing ------------------------------------------------------------------------------

@pytest.mark.parametrize("line, expected", [
    ("[", None), ("]", None), ("", None), ("   \n", None), (" [ \n", None),
    ('{"id": "Q1"},\n', '{"id": "Q1"}'),
    ('{"id": "Q1"}\n', '{"id": "Q1"}'),
    ('  {"id": "Q1"} ,  ', '{"id": "Q1"} '),
])
def test_dump_lines_to_json(line, expected):
  assert wikidata.dump_lines_to_json(line) == expected


def test_framing_lines_give_nothing():
  for line in ("[", "]", "", "\n", "[\n", "]\n"):
    assert list(wikidata.parse_line(line)) == []


def test_real_2015_dump_excerpt(shared_data):
  path = shared_data / "wikidata" / "raw" / "sample-dump-20150815.json.gz"
  with gzip.open(path, "rt", encoding="utf-8") as f:
    lines = f.read().split("\n")
  assert lines[0] == "[" and lines[-2] == "]"
  assert lines[1].endswith("},") and not lines[-3].endswith(",")   # the last entity has no comma
  results = [r for line in lines for r in wikidata.parse_line(line)]
  assert len(results) == 101
  reasons = [r.reason for r in results]
  assert reasons.count(wikidata.NOT_AN_ITEM) == 46
  assert reasons.count(wikidata.NO_WIKIPEDIA_SITELINK) == 55   # the excerpt has no sitelinks
  assert results[0].key == "Q1" and results[2].key == "P16"
  assert not any(r.reason in (wikidata.BAD_JSON, wikidata.BAD_ENTITY) for r in results)


def test_real_2015_numeric_id_claims_give_classes(shared_data):
  # Q8 'happiness' in the 2015 dump has two P31 values given only as numeric ids.
  path = shared_data / "wikidata" / "raw" / "sample-dump-20150815.json.gz"
  with gzip.open(path, "rt", encoding="utf-8") as f:
    line = next(l for l in f if l.startswith('{"type":"item"') and '"id":"Q8",' in l)
  raw = json.loads(wikidata.dump_lines_to_json(line))
  values = [c["mainsnak"]["datavalue"]["value"] for c in raw["claims"]["P31"]]
  assert values == [{"entity-type": "item", "numeric-id": 331769},
                    {"entity-type": "item", "numeric-id": 9415}]
  raw["sitelinks"] = {"enwiki": {"site": "enwiki", "title": "Happiness", "badges": []}}
  item = wikidata.parse_entity(raw)
  assert item.classes == ("Q331769", "Q9415")
  assert item.sitelinks == {"enwiki": "Happiness"}


# --- API answers -------------------------------------------------------------------------------

def test_api_answer_for_a_redirected_qid(shared_data):
  text = (shared_data / "wikidata" / "raw" / "Q16231742.json").read_text(encoding="utf-8")
  (item,) = wikidata.parse_line(text)
  assert item.qid == "Q3571994"   # the item Q16231742 redirects to
  assert item.sitelinks == {"enwiki": "Kangnam (singer)", "frwiki": "Yasuo Namekawa",
                            "idwiki": "Kangnam (penyanyi)", "jawiki": "KangNam",
                            "kowiki": "강남 (가수)", "zhwiki": "滑川康男"}
  assert item.labels["en"] == "Kangnam" and item.labels["ko"] == "강남"
  assert item.descriptions["en"] == "Japanese singer"
  assert item.aliases["en"] == ("Kang-nam", "Yasuo Namekawa", "Namekawa Yasuo")
  assert item.aliases["ko"] == ("강\u3000남",)   # kept as written (ideographic space)
  assert item.classes == ("Q5",)


def test_api_answer_keyed_by_the_redirect(shared_data):
  text = (shared_data / "wikidata" / "raw" / "wbgetentities-Q32063953.json").read_text(
      encoding="utf-8")
  raw = json.loads(text)
  assert list(raw["entities"]) == ["Q32063953"]
  (item,) = wikidata.parse_line(text)
  assert item.qid == "Q1040"
  assert item.sitelinks["dewiki"] == "Karlsruhe"
  assert "commonswiki" not in item.sitelinks and "dewikivoyage" not in item.sitelinks


def test_api_answer_with_several_entities(entity_lines):
  answer = {"entities": {q: _raw(entity_lines, q) for q in ("Q8646", "P31", "Q4115189")}}
  results = list(wikidata.parse_line(json.dumps(answer, ensure_ascii=False)))
  assert [type(r).__name__ for r in results] == ["Item", "Rejected", "Rejected"]
  assert [getattr(r, "reason", None) for r in results] == [
      None, wikidata.NOT_AN_ITEM, wikidata.NO_WIKIPEDIA_SITELINK]


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line", ['{"id": "Q1", "type": "item",,', '{"id": "Q1"', "not json",
                                  '{"id": "Q1", "labels": {"en": {"value": "x}}},'])
def test_bad_json(line):
  (r,) = wikidata.parse_line(line)
  assert isinstance(r, wikidata.Rejected)
  assert r.reason == wikidata.BAD_JSON
  assert r.key == wikidata.dump_lines_to_json(line)[:60]
  assert "column" in r.detail


def test_truncated_real_line_is_bad_json(entity_lines):
  line = entity_lines["Q8646"]
  (r,) = wikidata.parse_line(line[:5000])
  assert r.reason == wikidata.BAD_JSON
  assert r.key == line[:60]


@pytest.mark.parametrize("line", ['{"type": "item"}', '{"id": 42, "type": "item"}', "[1, 2]",
                                  '"Q1"', "42", "null"])
def test_entities_without_string_id(line):
  (r,) = wikidata.parse_line(line)
  assert r.reason == wikidata.BAD_ENTITY


def test_unexpected_structure_is_bad_entity():
  for raw in ({"type": "item", "id": "Q1", "claims": {"P31": [["not", "a", "claim"]]}},
              {"type": "item", "id": "Q1", "sitelinks": ["enwiki"]},
              {"type": "item", "id": "Q1", "aliases": {"en": 5}}):
    r = wikidata.parse_entity(raw)
    assert (r.reason, r.key) == (wikidata.BAD_ENTITY, "Q1"), raw


def test_lexemes_and_mediainfo_are_not_items():
  assert wikidata.parse_entity({"type": "lexeme", "id": "L1"}).reason == wikidata.NOT_AN_ITEM
  assert wikidata.parse_entity({"type": "mediainfo", "id": "M1"}).reason == wikidata.NOT_AN_ITEM
  # An item-typed entity whose id is not a QID is not an item either.
  assert wikidata.parse_entity({"type": "item", "id": "P1"}).reason == wikidata.NOT_AN_ITEM
