"""Entity encoding: the local loop and the Beam (RunInference) pipeline, resume per shard."""
import json
import os

import numpy as np
import pytest

from conftest import run_module
from mel import entity_table, towers
from mel.retrieval import embeddings, encode


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_corrupted_shard_is_detected(local_embeddings, tmp_path):
  import shutil
  source, _ = local_embeddings
  output = tmp_path / "corrupt"
  shutil.copytree(source, output)
  data = bytearray((output / "vectors-00000.npy").read_bytes())
  data[-3] ^= 0xFF
  (output / "vectors-00000.npy").write_bytes(bytes(data))
  with pytest.raises(embeddings.EmbeddingsError, match="vectors-00000.npy: checksum") as e:
    list(embeddings.iter_shards(str(output)))
  assert str(output / "vectors-00000.npy") in str(e.value)


@pytest.mark.slow
def test_beam_run_inference_gives_the_same_embeddings(mini_model, local_embeddings, tmp_path):
  model_dir, _ = mini_model
  output = tmp_path / "beam"
  result = run_module("beam_pipelines.cli", "run", "encode_entities", "--model_dir", model_dir,
                      "--output", output, "--num_shards", 3)
  assert result.returncode == 0, result.stderr[-3000:]
  manifest = json.loads((output / "manifest.json").read_text())
  counts = manifest["counts"]
  assert counts["lines_read"] == counts["encoded"] > 0 and counts["rejected"] == 0
  # the manifest Beam wrote is the local one's format: every file checks against it
  assert embeddings.read_manifest(str(output))["model"] == \
      embeddings.read_manifest(str(local_embeddings[0]))["model"]
  assert sorted(manifest["files"]) == sorted(
      name for name in os.listdir(output) if name.startswith(("vectors-", "ids-")))
  embeddings.check(str(output), manifest)
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


class FakeEntityTower:
  """Stands in for the exported entity tower: a unit vector per input string."""
  made = []

  def __init__(self, path, argument="description", module=None):
    FakeEntityTower.made.append((path, argument))

  def __call__(self, inputs):
    vectors = np.array([[len(text), sum(map(ord, text)) % 97, 1.0] for text in inputs],
                       np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fake_model_dir(root, entity_input="description"):
  """A model dir with an export manifest and an entity table (no SavedModels)."""
  (root / "export").mkdir(parents=True)
  (root / "export" / "manifest.json").write_text(json.dumps(
      {"kind": "F", "step": 7, "embedding_dim": 3, "entity_input": entity_input}))
  (root / "entities.tsv").write_text("".join(f"Q{i}\tentity number {i}\n" for i in range(25)))
  return root


def test_encode_defaults_to_the_model_dirs_embeddings(tmp_path, monkeypatch):
  model_dir = fake_model_dir(tmp_path / "model")
  monkeypatch.setattr(towers, "EntityTower", FakeEntityTower)
  FakeEntityTower.made.clear()
  assert encode.main(["--model_dir", str(model_dir), "--shard_size", "10",
                      "--no_progress"]) == 0
  assert FakeEntityTower.made == [(str(model_dir / "export" / "entity_encoder"), "description")]
  output = model_dir / "embeddings"
  manifest = embeddings.read_manifest(str(output))
  assert manifest["count"] == 25 and len(manifest["shards"]) == 3
  assert manifest["model"]["step"] == 7 and manifest["model"]["model_dir"] == str(model_dir)
  ids, vectors = _load_all(output)
  assert ids == [f"Q{i}" for i in range(25)] and vectors.shape == (25, 3)
  # a finished run is reused; --overwrite encodes again
  FakeEntityTower.made.clear()
  assert encode.main(["--model_dir", str(model_dir), "--no_progress"]) == 0
  assert FakeEntityTower.made == []
  assert encode.main(["--model_dir", str(model_dir), "--shard_size", "30", "--overwrite",
                      "--no_progress"]) == 0
  assert len(embeddings.read_manifest(str(output))["shards"]) == 1


def test_encode_flags_are_checked(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    encode.main(["--model_dir", str(tmp_path), "--shard_size", "0"])
  assert e.value.code == 2 and "--shard_size must be a positive integer" in capsys.readouterr().err
