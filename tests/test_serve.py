"""`mel serve` through real HTTP on 127.0.0.1: every endpoint against direct mel.link calls, the
limits and bad input, micro-batching, metrics, reload under load, and the command itself.
(REL and NIF shapes by themselves: test_serve_formats.py; the page: test_serve_page.py.)"""
import concurrent.futures
import copy
import dataclasses
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import MINI_LINK_OPTIONS, ROOT, RunningServer, run_module
from mel.serving import nif
from mel.serving.service import ServeConfig, load_linker

GREEK = "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και η Θεσσαλονίκη η δεύτερη πόλη."


def call(url, body=None, *, method=None, data=None, headers=None, timeout=120):
  """(status, parsed JSON or text, headers with lower-case names) of one request; body: JSON,
  data: raw bytes."""
  if body is not None:
    data = json.dumps(body).encode("utf-8")
  request = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None
                                                                      else "GET"))
  request.add_header("Content-Type", "application/json")
  for k, v in (headers or {}).items():
    request.add_header(k, v)
  try:
    with urllib.request.urlopen(request, timeout=timeout) as r:
      status, raw, got = r.status, r.read(), r.headers
  except urllib.error.HTTPError as e:
    status, raw, got = e.code, e.read(), e.headers
  text = raw.decode("utf-8")
  got = {k.lower(): v for k, v in got.items()}
  try:
    return status, json.loads(text), got
  except json.JSONDecodeError:
    return status, text, got


@pytest.fixture(scope="module")
def documents(mini_mining):
  """Held-out documents of three scripts (first 1,500 characters) with their gold spans."""
  import collections
  from mel import records
  gold = collections.defaultdict(list)
  for m in records.read_output(str(mini_mining[0]), records.MENTIONS_HOLDOUT):
    if m.end <= 1500:
      gold[(m.wiki, m.doc_id)].append([m.start, m.end])
  out = []
  for d in records.read_output(str(mini_mining[0]), records.DOCUMENTS):
    if (d.wiki, d.doc_id) in gold and d.lang in ("el", "uk", "ja"):
      out.append({"text": d.text[:1500], "lang": d.lang, "title": d.title,
                  "spans": sorted(gold[(d.wiki, d.doc_id)])})
  assert len({d["lang"] for d in out}) == 3
  return out[:12]


def direct(server, doc, **options):
  """What mel.link gives for doc on the server's own linker, as the service writes it."""
  mentions = server.service.linker.link(doc["text"], doc["lang"], spans=doc.get("spans"),
                                        title=doc.get("title", ""), **options)
  return json.loads(json.dumps([m.to_dict() for m in mentions]))


def same(a, b, tolerance=1e-5) -> bool:
  """JSON values equal, floats within tolerance: a mention encoded in a batch with other
  documents' mentions (micro-batching) differs from one encoded alone in the last bits."""
  if isinstance(a, float) and isinstance(b, float):
    return abs(a - b) <= tolerance
  if isinstance(a, dict) and isinstance(b, dict):
    return a.keys() == b.keys() and all(same(a[k], b[k], tolerance) for k in a)
  if isinstance(a, list) and isinstance(b, list):
    return len(a) == len(b) and all(same(x, y, tolerance) for x, y in zip(a, b))
  return a == b


@pytest.fixture(scope="module")
def shared_linker(mini_serving_dir):
  """The mini model loaded once; servers with other settings serve copies of it."""
  return load_linker(str(mini_serving_dir), "", ServeConfig(
      model_dir="", link_options=dict(MINI_LINK_OPTIONS)))


def start(mini_serving_dir, shared_linker, load=None, **settings) -> RunningServer:
  config = ServeConfig(model_dir=str(mini_serving_dir), link_options=dict(MINI_LINK_OPTIONS),
                       **settings)
  return RunningServer(config, load=load or (lambda *_: copy.copy(shared_linker)))


# ---------------------------------------------------------------------------------------------
# endpoints


def test_link_answers_what_mel_link_gives(mini_server, documents):
  for doc in documents[:6]:
    for body in (doc, {**doc, "spans": None, "fast": True, "top_k": 3}):
      body = {k: v for k, v in body.items() if v is not None}
      status, answer, headers = call(mini_server.url + "/v1/link", body)
      assert status == 200, answer
      options = {k: body[k] for k in ("fast", "top_k") if k in body}
      assert answer["mentions"] == direct(mini_server, body, **options)
      assert headers["x-request-id"]
  # spans given: one mention per span, in order
  status, answer, _ = call(mini_server.url + "/v1/link", documents[0])
  assert [[m["start"], m["end"]] for m in answer["mentions"]] == documents[0]["spans"]


def test_batch_answers_each_document_as_link_does(mini_server, documents):
  status, answer, _ = call(mini_server.url + "/v1/link/batch", {"documents": documents})
  assert status == 200
  assert same([d["mentions"] for d in answer["documents"]],
              [direct(mini_server, d) for d in documents])


def test_concurrent_requests_share_tower_calls(mini_serving_dir, shared_linker, documents):
  server = start(mini_serving_dir, shared_linker, max_wait_s=0.5)
  try:
    expected = [direct(server, d) for d in documents]
    with concurrent.futures.ThreadPoolExecutor(len(documents)) as pool:
      answers = list(pool.map(lambda d: call(server.url + "/v1/link", d), documents))
    assert same([a[1]["mentions"] for a in answers], expected)
    histogram = _samples(call(server.url + "/metrics")[1], "mel_batch_documents")
    # 12 requests within the 0.5 s wait: far fewer batches than documents, none lost
    assert histogram["_sum"] == len(documents) and histogram["_count"] <= 3
  finally:
    server.stop()


def _samples(text: str, name: str) -> dict:
  """{suffix: value} of an unlabelled Prometheus histogram or counter in /metrics text."""
  out = {}
  for line in text.splitlines():
    if line.startswith(name) and not line.startswith("#") and "{" not in line:
      key, value = line.split()
      out[key[len(name):]] = float(value)
  return out


def test_health_info_and_metrics(mini_server, documents):
  status, body, _ = call(mini_server.url + "/health")
  assert status == 200 and body["status"] == "ready"
  status, info, _ = call(mini_server.url + "/v1/info")
  assert info["model_dir"] == mini_server.service.model_dir
  assert {"el", "uk", "ja"} <= set(info["dictionary_languages"])
  call(mini_server.url + "/v1/link", documents[0])
  call(mini_server.url + "/v1/link", {"text": "x", "lang": "en us!"})
  status, text, headers = call(mini_server.url + "/metrics")
  assert status == 200 and headers["content-type"].startswith("text/plain")
  assert 'mel_requests_total{endpoint="/v1/link",status="200"}' in text
  assert 'mel_requests_total{endpoint="/v1/link",status="422"}' in text
  assert 'mel_request_seconds_bucket{endpoint="/v1/link",le="0.5"}' in text
  assert _samples(text, "mel_tower_batch_mentions")["_sum"] >= len(documents[0]["spans"])
  linked = sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("mel_mentions_total{"))
  assert linked >= len(documents[0]["spans"])
  assert f'mel_model_info{{kb_generation="0",model_dir="{mini_server.service.model_dir}"}} 1.0' \
      in text


def test_health_is_503_until_the_model_is_loaded(mini_serving_dir, shared_linker):
  gate = threading.Event()

  def slow(*_):
    gate.wait(60)
    return copy.copy(shared_linker)

  config = ServeConfig(model_dir=str(mini_serving_dir))
  server = RunningServer.__new__(RunningServer)
  loading = threading.Thread(target=lambda: RunningServer.__init__(server, config, load=slow))
  loading.start()
  try:
    url = None
    for _ in range(500):
      if getattr(server, "server", None) is not None and server.server.started:
        port = server.server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        break
      time.sleep(0.02)
    assert url, "the server did not start listening"
    status, body, _ = call(url + "/health")
    assert status == 503 and body["status"] == "loading"
    status, body, _ = call(url + "/v1/link", {"text": "Αθήνα", "lang": "el"})
    assert status == 503 and "loading" in body["error"]
    gate.set()
    loading.join(60)
    assert call(url + "/health")[0] == 200
  finally:
    gate.set()
    loading.join(60)
    server.stop()


def test_a_model_that_fails_to_load_is_reported(tmp_path):
  server = RunningServer(ServeConfig(model_dir=str(tmp_path / "missing")))
  try:
    status, body, _ = call(server.url + "/health")
    assert status == 503 and body["status"] == "failed" and "no such model directory" in \
        body["error"]
  finally:
    server.stop()


# ---------------------------------------------------------------------------------------------
# limits and bad input


@pytest.mark.parametrize("data,status,message", [
    (b'{"text": "x", "lang": ', 400, "not valid JSON"),
    (b'\xff\xfe', 400, "not valid JSON"),
    (b'[1, 2]', 422, "body: Input should be an object"),
    (b'{"text": "x"}', 422, "lang: Field required"),
    (b'{"text": 5, "lang": "el"}', 422, "text: Input should be a valid string"),
    (b'{"text": "a", "lang": "el", "top_k": "3"}', 422, "top_k: Input should be a valid integer"),
    (b'{"text": "a", "lang": "el", "top_k": 0}', 422, "top_k: Input should be greater than"),
    (b'{"text": "a", "lang": "el", "fast": 1}', 422, "fast: Input should be a valid boolean"),
    (b'{"text": "a", "lang": "el", "language": "el"}', 422, "language: Extra inputs"),
    (b'{"text": "a", "lang": "en us!"}', 422, "invalid language 'en us!'"),
    (b'{"text": "abc", "lang": "el", "spans": [[2, 9]]}', 422,
     "span 0 [2, 9) is out of range for a text of 3 characters"),
    (b'{"text": "abcdef", "lang": "el", "spans": [[0, 3], [2, 4]]}', 422,
     "spans 0 [0, 3) and 1 [2, 4) overlap"),
    (b'{"text": "abc", "lang": "el", "spans": [[0, "x"]]}', 422,
     "start and end must be integers"),
])
def test_bad_input_gets_the_reason(mini_server, data, status, message):
  got, body, headers = call(mini_server.url + "/v1/link", data=data,
                            headers={"X-Request-ID": "client-42"})
  assert got == status and message in body["error"], body
  assert body["request_id"] == headers["x-request-id"] == "client-42"
  assert "Traceback" not in json.dumps(body)


def test_the_batch_names_the_bad_document(mini_server, documents):
  bad = [documents[0], {"text": "a", "lang": "el", "spans": [[0, 5]]}]
  status, body, _ = call(mini_server.url + "/v1/link/batch", {"documents": bad})
  assert status == 422 and body["error"].startswith("documents.1: span 0 [0, 5)")
  status, body, _ = call(mini_server.url + "/v1/link/batch", {"documents": [{"text": "a"}]})
  assert status == 422 and "documents.0.lang: Field required" in body["error"]


def test_unknown_paths_and_methods(mini_server):
  status, body, _ = call(mini_server.url + "/v2/nothing")
  assert status == 404 and body["error"] == "Not Found" and body["request_id"]
  assert call(mini_server.url + "/v1/link")[0] == 405


def test_size_limits(mini_serving_dir, shared_linker, documents):
  server = start(mini_serving_dir, shared_linker, max_text_chars=100, max_request_bytes=4000,
                 max_batch_documents=2)
  try:
    status, body, _ = call(server.url + "/v1/link", {"text": "α" * 101, "lang": "el"})
    assert status == 413 and "text has 101 characters" in body["error"]
    status, body, _ = call(server.url + "/v1/link", {"text": "a" * 5000, "lang": "el"})
    assert status == 413 and "--max_request_bytes" in body["error"]
    small = {"text": "Αθήνα", "lang": "el"}
    status, body, _ = call(server.url + "/v1/link/batch", {"documents": [small] * 3})
    assert status == 413 and "at most 2 per request" in body["error"]
    assert call(server.url + "/v1/link/batch", {"documents": [small] * 2})[0] == 200
  finally:
    server.stop()


class SlowLinker:
  """A linker whose link_many takes `delay` seconds longer (or raises `error`)."""

  def __init__(self, linker, delay=0.0, error=None):
    self.linker, self.delay, self.error = linker, delay, error

  def link_many(self, requests):
    time.sleep(self.delay)
    if self.error is not None:
      raise self.error
    return self.linker.link_many(requests)

  def __getattr__(self, name):
    return getattr(self.linker, name)

  def __setattr__(self, name, value):
    if name in ("linker", "delay", "error"):
      object.__setattr__(self, name, value)
    else:
      setattr(self.linker, name, value)


def test_timeouts_are_504_and_do_not_disturb_other_requests(mini_serving_dir, shared_linker,
                                                            documents):
  slow = SlowLinker(copy.copy(shared_linker))
  server = start(mini_serving_dir, shared_linker, load=lambda *_: slow, timeout_s=1.0,
                 max_wait_s=0.0)
  try:
    slow.delay = 1.5
    status, body, _ = call(server.url + "/v1/link", documents[0])
    assert status == 504 and "not answered within 1 s" in body["error"]
    slow.delay = 0.0
    time.sleep(1.0)   # the timed-out batch finishes on the inference thread
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
      good = [pool.submit(call, server.url + "/v1/link", d) for d in documents[:4]]
      bad = [pool.submit(call, server.url + "/v1/link", data=b"{") for _ in range(4)]
      bad += [pool.submit(call, server.url + "/v1/link", {"text": "a", "lang": "!"})]
    assert [f.result()[0] for f in bad] == [400] * 4 + [422]
    assert same([f.result()[1]["mentions"] for f in good],
                [direct(server, d) for d in documents[:4]])
  finally:
    server.stop()


def test_an_internal_error_is_500_with_the_request_id_only(mini_serving_dir, shared_linker,
                                                           caplog):
  failing = SlowLinker(copy.copy(shared_linker), error=RuntimeError("secret detail"))
  server = start(mini_serving_dir, shared_linker, load=lambda *_: failing)
  try:
    with caplog.at_level(logging.ERROR, logger="mel.serve"):
      status, body, _ = call(server.url + "/v1/link", {"text": "Αθήνα", "lang": "el"},
                             headers={"X-Request-ID": "req-500"})
    assert status == 500 and body == {"error": "internal error; the server log has the details",
                                      "request_id": "req-500"}
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "req-500" in logged and "secret detail" in caplog.text
    failing.error = None
    assert call(server.url + "/v1/link", {"text": "Αθήνα", "lang": "el"})[0] == 200
  finally:
    server.stop()


# ---------------------------------------------------------------------------------------------
# REL and NIF


def test_rel_endpoint(mini_server, documents):
  doc = documents[0]
  spans = [[a, b - a] for a, b in doc["spans"]]
  for path in ("/", "/v1/rel"):
    status, answer, _ = call(f"{mini_server.url}{path}?lang={doc['lang']}",
                             {"text": doc["text"], "spans": spans})
    assert status == 200
    linked = [m for m in direct(mini_server, doc) if m["entity_id"] is not None]
    assert [a[:4] for a in answer] == [[m["start"], m["end"] - m["start"], m["text"],
                                        m["qid"] or m["entity_id"]] for m in linked]
  status, answer, _ = call(f"{mini_server.url}/?lang={doc['lang']}",
                           {"text": doc["text"], "spans": []})
  detected = [m for m in direct(mini_server, {**doc, "spans": None})
              if m["entity_id"] is not None]
  assert status == 200 and [a[0] for a in answer] == [m["start"] for m in detected]
  status, body, _ = call(mini_server.url + "/", {"text": "abc", "spans": []})
  assert status == 422 and "?lang=CODE" in body["error"]
  status, body, _ = call(mini_server.url + "/?lang=el", {"spans": []})
  assert status == 422 and "text" in body["error"]


def _nif_document(text, phrases=(), lang="el"):
  from rdflib import Graph, Literal, Namespace, URIRef
  from rdflib.namespace import RDF, XSD
  NIF = Namespace("http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#")
  g = Graph()
  base = "http://www.aksw.org/gerbil/NifWebService/request_0"
  context = URIRef(f"{base}#char=0,{len(text)}")
  for t in (NIF.String, NIF.Context, NIF.RFC5147String):
    g.add((context, RDF.type, t))
  g.add((context, NIF.isString, Literal(text, lang=lang)))
  g.add((context, NIF.beginIndex, Literal(0, datatype=XSD.nonNegativeInteger)))
  g.add((context, NIF.endIndex, Literal(len(text), datatype=XSD.nonNegativeInteger)))
  for a, b in phrases:
    phrase = URIRef(f"{base}#char={a},{b}")
    for t in (NIF.String, NIF.RFC5147String, NIF.Phrase):
      g.add((phrase, RDF.type, t))
    g.add((phrase, NIF.referenceContext, context))
    g.add((phrase, NIF.anchorOf, Literal(text[a:b])))
    g.add((phrase, NIF.beginIndex, Literal(a, datatype=XSD.nonNegativeInteger)))
    g.add((phrase, NIF.endIndex, Literal(b, datatype=XSD.nonNegativeInteger)))
  return g.serialize(format="turtle"), str(context)


def test_nif_endpoint_as_gerbil_calls_it(mini_server, documents):
  doc = next(d for d in documents if d["lang"] == "el")
  for phrases in ((), [tuple(s) for s in doc["spans"]]):
    turtle, context = _nif_document(doc["text"], phrases)
    status, answer, headers = call(mini_server.url + "/v1/nif", data=turtle.encode("utf-8"),
                                   headers={"Content-Type": "application/x-turtle"})
    assert status == 200 and headers["content-type"].startswith("text/turtle")
    expected = direct(mini_server, {**doc, "spans": list(phrases) or None})
    (parsed,) = nif.parse(answer)
    assert parsed.text == doc["text"]
    links = _links(answer)
    assert links == {(m["start"], m["end"]): "http://www.wikidata.org/entity/" + m["qid"]
                     for m in expected if m["entity_id"] is not None and m["qid"]}
  status, body, _ = call(mini_server.url + "/v1/nif", data=b"this is not turtle <",
                         headers={"Content-Type": "application/x-turtle"})
  assert status == 400 and body["request_id"]


def _links(turtle):
  """{(begin, end): entity URI} of the annotated phrases (taIdentRef)."""
  from rdflib import Graph, Namespace
  NIF = Namespace("http://persistence.uni-leipzig.org/nlp2rdf/ontologies/nif-core#")
  ITS = Namespace("http://www.w3.org/2005/11/its/rdf#")
  g = Graph().parse(data=turtle, format="turtle")
  return {(int(g.value(p, NIF.beginIndex)), int(g.value(p, NIF.endIndex))): str(e)
          for p, e in g.subject_objects(ITS.taIdentRef)
          if str(e).startswith("http://www.wikidata.org/")}


# ---------------------------------------------------------------------------------------------
# reload


def test_reload_swaps_the_model_without_dropping_requests(mini_serving_dir, shared_linker,
                                                          tmp_path, documents):
  other = tmp_path / "other"
  shutil.copytree(mini_serving_dir, other)

  def load(model_dir, reranker, config):
    linker = copy.copy(shared_linker)
    if model_dir == str(other):
      time.sleep(1.0)                              # loading takes a while: requests go on
      linker.thresholds = {"fast": 9.0, "full": 9.0}   # the other model: every mention NIL
    return linker

  server = start(mini_serving_dir, shared_linker, load=load)
  doc = documents[0]
  stop = threading.Event()
  seen = []

  def client():
    mine = []
    while not stop.is_set():
      status, body, _ = call(server.url + "/v1/link", doc)
      mine.append("error" if status != 200 else
                  "new" if all(m["entity_id"] is None for m in body["mentions"]) else "old")
    seen.append(mine)

  threads = [threading.Thread(target=client) for _ in range(4)]
  try:
    assert any(m["entity_id"] for m in direct(server, doc))   # the old model links something
    for t in threads:
      t.start()
    time.sleep(0.5)
    status, body, _ = call(server.url + "/v1/reload", {"model_dir": str(other)})
    assert status == 200 and body["reloaded"] and body["model_dir"] == str(other)
    time.sleep(0.5)
  finally:
    stop.set()
    for t in threads:
      t.join(60)
    server.stop()
  for mine in seen:
    assert "error" not in mine
    # each client saw the old model, then (after the swap) only the new one
    assert mine[0] == "old" and mine[-1] == "new"
    assert mine == sorted(mine, key=lambda x: x == "new")


def test_reload_errors_keep_the_old_model(mini_server, tmp_path):
  status, body, _ = call(mini_server.url + "/v1/reload", {"model_dir": str(tmp_path / "nope")})
  assert status == 422 and "still serving" in body["error"]
  assert call(mini_server.url + "/health")[1]["model_dir"] == mini_server.service.model_dir
  status, body, _ = call(mini_server.url + "/v1/reload", {"model_dir": 5})
  assert status == 422 and "model_dir" in body["error"]


def test_reload_can_be_turned_off(mini_serving_dir, shared_linker):
  server = start(mini_serving_dir, shared_linker, allow_reload=False)
  try:
    status, body, _ = call(server.url + "/v1/reload", {})
    assert status == 403 and "--no_reload" in body["error"]
  finally:
    server.stop()


@pytest.mark.slow
def test_reload_serves_a_new_knowledge_base_generation(mini_serving_dir, mini_model, tmp_path):
  target = tmp_path / "model"
  shutil.copytree(mini_serving_dir, target)
  shutil.copy(mini_model[0] / "config.yaml", target / "config.yaml")
  new = tmp_path / "new.jsonl"
  new.write_text(json.dumps({
      "id": "mykb:zorbulon", "description": "Zorbulon is a fictional moon of Neptune.",
      "labels": {"en": "Zorbulon"}, "qid": "Q999999999"}) + "\n", encoding="utf-8")
  server = RunningServer(ServeConfig(model_dir=str(target),
                                     link_options=dict(MINI_LINK_OPTIONS, threshold=-1.0)))
  try:
    text = {"text": "Astronomers observed Zorbulon last night.", "lang": "en"}
    assert call(server.url + "/v1/link", text)[1]["mentions"] == []
    result = run_module("mel", "kb", "add", "--model_dir", target, "--entities", new,
                        "--no_progress")
    assert result.returncode == 0, result.stderr[-3000:]
    status, body, _ = call(server.url + "/v1/reload", {})
    assert status == 200 and body["reloaded"] and body["kb_generation"] == 1
    mentions = call(server.url + "/v1/link", text)[1]["mentions"]
    assert [(m["text"], m["candidates"][0]["qid"] if m["candidates"] else None)
            for m in mentions if m["text"] == "Zorbulon"]
    assert "Q999999999" in [c["qid"] for m in mentions for c in m["candidates"]]
    assert call(server.url + "/v1/reload", {})[1]["reloaded"] is False
  finally:
    server.stop()


# ---------------------------------------------------------------------------------------------
# the command


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_mel_serve_command(mini_serving_dir, tmp_path):
  port = _free_port()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  process = subprocess.Popen(
      [sys.executable, "-m", "mel", "serve", "--model_dir", str(mini_serving_dir), "--port",
       str(port), "--min_linked", "1", "--min_link_prob", "0.01"],
      cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
  try:
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
      try:
        if call(url + "/health", timeout=5)[0] == 200:
          break
      except OSError:
        pass
      time.sleep(0.2)
    status, body, _ = call(url + "/v1/link", {"text": GREEK, "lang": "el"})
    assert status == 200 and isinstance(body["mentions"], list)
    assert call(url + "/")[1].lstrip().lower().startswith("<!doctype html")
  finally:
    process.terminate()
    _, err = process.communicate(timeout=60)
  # a graceful stop: uvicorn finishes the requests and shutdown, then re-raises SIGTERM
  assert process.returncode in (0, -signal.SIGTERM), err[-3000:]
  assert "Application shutdown complete" in err
  failed = subprocess.run([sys.executable, "-m", "mel", "serve", "--model_dir",
                           str(tmp_path / "missing"), "--port", str(_free_port())],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert failed.returncode == 1 and "no such model directory" in failed.stderr
