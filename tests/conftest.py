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
