"""gs:// paths end to end, against gcp-storage-emulator on 127.0.0.1 (started by the test).

google-auth would look for credentials on the GCE metadata server; NO_GCE_CHECK keeps every
request on this machine, and Beam then uses an anonymous client that honours
STORAGE_EMULATOR_HOST.
"""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

BUCKET = "mel-test"


@pytest.fixture(scope="module")
def emulator(gcs_emulator):
  """conftest's gcp-storage-emulator, with bucket BUCKET."""
  assert gcs_emulator["bucket"] == BUCKET
  return gcs_emulator


def _upload(path, name):
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import storage
  client = storage.Client(project="mel-test", credentials=AnonymousCredentials())
  client.bucket(BUCKET).blob(name).upload_from_filename(str(path))


def test_dump_reader_reads_gs_paths(emulator, shared_data):
  from mel.wikipedia import dump_reader
  _upload(shared_data / "wikipedia/mini/viwiki-mini.xml.bz2", "dumps/viwiki-mini.xml.bz2")
  from beam_pipelines.read_dumps import open_beam_file
  items = list(dump_reader.read_dump(f"gs://{BUCKET}/dumps/viwiki-mini.xml.bz2",
                                     open_raw=open_beam_file))
  assert items[0].wiki == "viwiki" and len(items) == 1 + 111


def test_extract_mentions_from_and_to_gs(emulator, shared_data, tmp_path):
  _upload(shared_data / "wikipedia/mini/ukwiki-mini.xml.bz2", "dumps/ukwiki-mini.xml.bz2")
  _upload(shared_data / "wikidata/entities.jsonl", "wikidata/entities.jsonl")
  out = f"gs://{BUCKET}/mining"
  result = subprocess.run(
      [sys.executable, "-m", "beam_pipelines.cli", "run", "extract_mentions",
       f"--wikipedia_dumps=gs://{BUCKET}/dumps/ukwiki-*.xml.bz2",
       f"--wikidata_dump=gs://{BUCKET}/wikidata/entities.jsonl", f"--output_dir={out}",
       "--no_auth"],  # a Beam option: anonymous GCS client, no credential look-up retries
      capture_output=True, text=True, timeout=600,
      env={**os.environ, **emulator, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert "[ok]" in result.stdout
  from apache_beam.io.filesystems import FileSystems
  names = [m.path for r in FileSystems.match([f"{out}/**"]) for m in r.metadata_list]
  assert f"{out}/summary.json" in names
  assert any(n.startswith(f"{out}/mentions/train-") for n in names)
  local = tmp_path / "train.tfrecord.gz"
  train = next(n for n in names if n.startswith(f"{out}/mentions/train-"))
  with FileSystems.open(train, compression_type="uncompressed") as src:
    local.write_bytes(src.read())
  from mel import records, schema
  mentions = list(records.read_records(schema.Mention, str(local)))
  assert mentions and {m.lang for m in mentions} == {"uk"}
