"""Entity encoding: the local loop and the Beam (RunInference) pipeline, resume per shard."""
import json
import os

import numpy as np
import pytest

from conftest import run_module
from mel.retrieval import embeddings
from mel import entity_table

pytestmark = pytest.mark.slow


def _load_all(directory):
  ids, vectors = [], []
  for shard_ids, shard_vectors in embeddings.iter_shards(str(directory)):
    ids.extend(shard_ids)
    vectors.append(np.asarray(shard_vectors))
  return ids, np.concatenate(vectors)


@pytest.fixture(scope="module")
def local_embeddings(mini_model, tmp_path_factory):
  model_dir, _ = mini_model
  output = tmp_path_factory.mktemp("emb") / "local"
  result = run_module("mel", "encode", "--model_dir", model_dir, "--output", output,
                      "--shard_size", 20, "--batch_size", 64)
  assert result.returncode == 0, result.stderr[-3000:]
  return output, result


def test_every_entity_is_encoded_once_as_a_unit_vector(mini_model, local_embeddings):
  model_dir, _ = mini_model
  output, _ = local_embeddings
  ids, vectors = _load_all(output)
  table = entity_table.read(str(model_dir / "entities.tsv"))
  assert ids == [entity_id for entity_id, _ in table]
  assert vectors.shape == (len(table), 32)
  np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
  manifest = embeddings.read_manifest(str(output))
  assert manifest["model"]["step"] == 120 and manifest["model"]["kind"] == "F"
  assert len(manifest["shards"]) == -(-len(table) // 20)


def test_a_killed_run_resumes_per_shard(mini_model, local_embeddings, tmp_path):
  import shutil
  model_dir, _ = mini_model
  source, _ = local_embeddings
  output = tmp_path / "resumed"
  shutil.copytree(source, output)
  # As if killed after shard 2: no manifest, later shards missing.
  os.remove(output / embeddings.MANIFEST)
  for name in os.listdir(output):
    if name.startswith(("vectors-", "ids-")) and int(name.split("-")[1].split(".")[0]) > 2:
      os.remove(output / name)
  before = os.stat(output / "vectors-00001.npy").st_mtime_ns
  result = run_module("mel", "encode", "--model_dir", model_dir, "--output", output,
                      "--shard_size", 20, "--batch_size", 64)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "(3 reused)" in result.stderr
  assert os.stat(output / "vectors-00001.npy").st_mtime_ns == before
  ids_a, vectors_a = _load_all(source)
  ids_b, vectors_b = _load_all(output)
  assert ids_a == ids_b
  np.testing.assert_allclose(vectors_a, vectors_b, rtol=1e-5, atol=1e-6)


def test_a_corrupted_shard_is_detected(local_embeddings, tmp_path):
  import shutil
  source, _ = local_embeddings
  output = tmp_path / "corrupt"
  shutil.copytree(source, output)
  data = bytearray((output / "vectors-00000.npy").read_bytes())
  data[-3] ^= 0xFF
  (output / "vectors-00000.npy").write_bytes(bytes(data))
  with pytest.raises(embeddings.EmbeddingsError, match="vectors-00000.npy: checksum"):
    list(embeddings.iter_shards(str(output)))


def test_beam_run_inference_gives_the_same_embeddings(mini_model, local_embeddings, tmp_path):
  model_dir, _ = mini_model
  output = tmp_path / "beam"
  result = run_module("beam_pipelines.cli", "run", "encode_entities", "--model_dir", model_dir,
                      "--output", output, "--num_shards", 3)
  assert result.returncode == 0, result.stderr[-3000:]
  manifest = json.loads((output / "manifest.json").read_text())
  counts = manifest["counts"]
  assert counts["lines_read"] == counts["encoded"] > 0 and counts["rejected"] == 0
  assert "[ok]" in result.stdout
  ids_beam, vectors_beam = _load_all(output)
  ids_local, vectors_local = _load_all(local_embeddings[0])
  assert sorted(ids_beam) == ids_local
  position = {entity_id: i for i, entity_id in enumerate(ids_local)}
  order = [position[i] for i in ids_beam]
  np.testing.assert_allclose(vectors_beam, vectors_local[order], rtol=1e-4, atol=1e-5)


def test_missing_export_is_a_clear_error(tmp_path):
  result = run_module("mel", "encode", "--model_dir", tmp_path, "--output",
                      tmp_path / "out")
  assert result.returncode == 1
  assert "train (and export) the model first" in result.stderr
