"""mel.model_dir: the one place that names a model dir's paths and reads what later stages need."""
import json

import pytest

from mel import model_dir
from mel.files import sha256_file
from mel.model_dir import ModelDir


def _model(tmp_path, step=7):
  (tmp_path / "export").mkdir()
  (tmp_path / "export" / "manifest.json").write_text(json.dumps(
      {"kind": "F", "step": step, "embedding_dim": 4, "entity_input": "description"}))
  (tmp_path / "entities.tsv").write_text("Q1\tone\nQ2\ttwo\n")
  (tmp_path / "config.yaml").write_text("data:\n  mining_dir: /data/mining\n")
  return ModelDir(str(tmp_path))


def test_paths_are_named_once(tmp_path):
  d = ModelDir(str(tmp_path))
  assert d.mention_encoder == str(tmp_path / "export" / "mention_encoder")
  assert d.index == str(tmp_path / model_dir.INDEX)
  assert d.eval("holdout") == str(tmp_path / "eval" / "holdout")
  assert set(model_dir.SERVING_PARTS) == {"export/manifest.json", "export/mention_encoder/",
                                          "export/entity_encoder/", "entities.tsv",
                                          "nil.json"}
  assert d.nil_threshold == str(tmp_path / "nil.json")


def test_identity_and_mining_dir(tmp_path):
  d = _model(tmp_path)
  identity = d.identity()
  assert identity["step"] == 7 and identity["embedding_dim"] == 4
  assert identity["entity_table_sha256"] == sha256_file(tmp_path / "entities.tsv")
  assert d.mining_dir() == "/data/mining"


def test_check_index_names_what_differs(tmp_path):
  d = _model(tmp_path)
  good = d.identity()
  assert d.check_index({**good, "embeddings": "/x"}, "I") == good
  with pytest.raises(ValueError, match="I was built from another model: its step is 6"):
    d.check_index({**good, "step": 6}, "I")
  with pytest.raises(ValueError, match="its entity_table_sha256"):
    d.check_index({**good, "entity_table_sha256": "0" * 64}, "I")
  assert d.check_index({}, "I") == good   # an index that recorded nothing is not refused


def test_missing_parts_say_what_makes_them(tmp_path):
  d = ModelDir(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="`mel train`"):
    d.identity()
  assert d.export_step() is None
  with pytest.raises(FileNotFoundError, match="--mining_dir"):
    d.mining_dir()
  (tmp_path / "config.yaml").write_text("model: {}\n")
  with pytest.raises(ValueError, match="no data.mining_dir"):
    d.mining_dir()
  with pytest.raises(ValueError):
    ModelDir("")
