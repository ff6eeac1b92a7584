"""mel.retrieval's indexes: ScaNN against exact search, save/load, rejected indexes and
embeddings, shards, streamed builds, the `mel index` CLI."""
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT, run_module
from mel import manifest, retrieval
from mel.retrieval import build_index, embeddings, scann, scann_memory
from mel.retrieval import IndexLoadError


def clustered(n, dim, clusters, noise, seed):
  """Unit vectors around random unit centres: [n, dim] float32."""
  rng = np.random.default_rng(seed)
  centers = rng.standard_normal((clusters, dim)).astype(np.float32)
  centers /= np.linalg.norm(centers, axis=1, keepdims=True)
  x = centers[rng.integers(clusters, size=n)]
  x += noise * rng.standard_normal((n, dim), dtype=np.float32)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_ids(n, prefix="Q"):
  return [f"{prefix}{i}" for i in range(n)]


@pytest.fixture(scope="module")
def data():
  """20k x 64 clustered database + 200 queries from the same clusters."""
  x = clustered(20_200, 64, 100, 0.15, seed=0)
  return x[:20_000], x[20_000:]


@pytest.fixture(scope="module")
def scann_index(data):
  return retrieval.ScannIndex.build(make_ids(len(data[0])), data[0])


def recall(found, truth):
  return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())])


def test_scann_recall_against_brute_force(data, scann_index):
  db, queries = data
  exact = retrieval.BruteForceIndex.build(make_ids(len(db)), db)
  assert scann_index.params["algorithm"] == "tree_ah"   # a real tree, not the small-N fallback
  for k, bound in ((10, 0.95), (100, 0.9)):
    truth, _ = exact.search(queries, k)
    found, scores = scann_index.search(queries, k)
    assert found.shape == (len(queries), k) and found.dtype == np.int64
    assert scores.dtype == np.float32
    assert np.all(np.diff(scores, axis=1) <= 1e-6)       # best first
    assert recall(found, truth) >= bound
  # leaves_to_search is the accuracy knob: all leaves searched ~ exact
  found, _ = scann_index.search(queries, 10, leaves_to_search=scann_index.params["num_leaves"])
  assert recall(found, exact.search(queries, 10)[0]) >= 0.99


@pytest.mark.parametrize("n", [5_000, 20_000, 100_000, 1_000_000, 5_000_000, 20_000_000])
def test_scann_params_scale_with_n(n):
  # The documented rule: ~4 sqrt(n) leaves with >= 100 points each, >= 8 searched, a k-means
  # sample of 128 per leaf within [100k, 2M] and never above n.
  params = retrieval.scann_params_for(n)
  leaves = params["num_leaves"]
  assert leaves == min(round(4 * n ** 0.5), n // 100)
  assert params["num_leaves_to_search"] == min(
      leaves, max(8, math.ceil(scann.LEAVES_TO_SEARCH * leaves)))
  assert params["training_sample_size"] == min(n, max(100_000, min(2_000_000, 128 * leaves)))
  assert params["reorder_dtype"] == ("int8" if n >= 1_000_000 else "float32")


def test_scann_shard_budget_fits_the_build():
  # 20M x 300-d in one tree was killed at 24 GB; a 6.7M shard of a shared 20M tree peaked at
  # 20.9 GB, a 5M one at 19.1 GB; shards are capped at 5M x 300-d.
  assert retrieval.default_shard_size(300, "scann") == 5_000_000
  assert retrieval.default_shard_size(768, "scann") == 1_953_125


def test_brute_force_is_exact(monkeypatch):
  rng = np.random.default_rng(1)
  db = rng.standard_normal((3000, 32)).astype(np.float32)
  queries = rng.standard_normal((40, 32)).astype(np.float32)
  full = queries.astype(np.float64) @ db.T.astype(np.float64)
  want = np.argsort(-full, axis=1)[:, :25]
  index = retrieval.BruteForceIndex.build(make_ids(len(db)), db)
  # small chunks: the per-chunk top-k and the merge across chunks are exercised
  monkeypatch.setattr(retrieval.BruteForceIndex, "CHUNK_BYTES", 40 * 4 * 700)
  rows, scores = index.search(queries, 25)
  np.testing.assert_array_equal(rows, want)
  np.testing.assert_allclose(scores, np.take_along_axis(full, want, 1), rtol=1e-5, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(1, 80), st.integers(1, 5), st.integers(0, 2**16))
def test_brute_force_any_shape(n, k, q, seed):
  rng = np.random.default_rng(seed)
  db = rng.standard_normal((n, 6)).astype(np.float32)
  queries = rng.standard_normal((q, 6)).astype(np.float32)
  rows, scores = retrieval.BruteForceIndex.build(make_ids(n), db).search(queries, k)
  assert rows.shape == scores.shape == (q, k)
  found = min(n, k)
  want = np.argsort(-(queries.astype(np.float64) @ db.T), axis=1, kind="stable")[:, :found]
  np.testing.assert_array_equal(rows[:, :found], want)
  assert np.all(rows[:, found:] == -1) and np.all(np.isneginf(scores[:, found:]))


def test_save_load_round_trip(tmp_path, data, scann_index):
  db, queries = data
  ids = make_ids(len(db))
  for index in (retrieval.BruteForceIndex.build(ids, db), scann_index):
    path = tmp_path / index.kind
    manifest = index.save(str(path), model={"name": "test-model", "step": 3})
    assert manifest["count"] == len(db) and manifest["dimension"] == 64
    assert manifest["kind"] == index.kind and manifest["model"]["step"] == 3
    assert all(set(info) == {"bytes", "sha256"} for info in manifest["files"].values())
    assert "ids.txt" in manifest["files"]
    loaded = retrieval.load_index(str(path))
    assert type(loaded) is type(index) and len(loaded) == len(db)
    assert loaded.dimension == 64 and loaded.model == {"name": "test-model", "step": 3}
    assert list(loaded.ids[:3]) == ids[:3] and loaded.ids[-1] == ids[-1]
    for k in (10, 100):
      want_rows, want_scores = index.search(queries, k)
      rows, scores = loaded.search(queries, k)
      np.testing.assert_array_equal(rows, want_rows)
      np.testing.assert_array_equal(scores, want_scores)
    # single queries and batches agree
    one_rows, _ = loaded.search(queries[3], 10)
    np.testing.assert_array_equal(one_rows[0], loaded.search(queries, 10)[0][3])
    found_ids, found_scores = loaded.search_ids(queries[:2], 5)
    assert found_ids[0] == [ids[r] for r in loaded.search(queries[:2], 5)[0][0]]
    assert found_scores.shape == (2, 5)
    assert retrieval.Index.load(str(path), verify=False).search(queries, 10)[0].tolist() == \
        loaded.search(queries, 10)[0].tolist()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_sharded_brute_force_equals_unsharded(tmp_path, data):
  db, queries = data
  ids = make_ids(len(db))
  exact = retrieval.BruteForceIndex.build(ids, db)
  bounds = [0, 7000, 7001, 15000, 20000]   # uneven, one shard of a single vector
  shards = [(ids[a:b], db[a:b]) for a, b in zip(bounds, bounds[1:])]
  manifest = retrieval.build_sharded(iter(shards), str(tmp_path / "sharded"),
                                     kind="brute_force", model={"name": "m"})
  assert manifest["kind"] == "sharded" and len(manifest["shards"]) == 4
  assert manifest["count"] == len(db) and manifest["model"] == {"name": "m"}
  sharded = retrieval.load_index(str(tmp_path / "sharded"))
  assert isinstance(sharded, retrieval.ShardedIndex) and len(sharded) == len(db)
  assert sharded.ids[7000] == "Q7000" and sharded.ids[7001] == "Q7001"
  for k in (1, 10, 100):
    want_rows, want_scores = exact.search(queries, k)
    rows, scores = sharded.search(queries, k)
    np.testing.assert_array_equal(rows, want_rows)
    # float32 sgemm may round a product differently (last bits) depending on where its row
    # falls in the blocks BLAS works on; shard boundaries move rows between blocks (the
    # difference depends on the CPU's kernels: 2 ULP on one machine, 5 on another)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6)
  found_ids, _ = sharded.search_ids(queries, 10)
  assert found_ids == [[ids[r] for r in row] for row in exact.search(queries, 10)[0].tolist()]
  # an in-memory ShardedIndex saves and loads to the same results
  in_memory = retrieval.ShardedIndex([retrieval.BruteForceIndex.build(i, v) for i, v in shards])
  in_memory.save(str(tmp_path / "again"))
  rows, _ = retrieval.load_index(str(tmp_path / "again")).search(queries, 10)
  np.testing.assert_array_equal(rows, exact.search(queries, 10)[0])


def test_sharded_scann_round_trip(tmp_path, data):
  db, queries = data
  ids = make_ids(len(db))
  shards = [(ids[:10_000], db[:10_000]), (ids[10_000:], db[10_000:])]
  retrieval.build_sharded(iter(shards), str(tmp_path / "s"), kind="scann")
  index = retrieval.load_index(str(tmp_path / "s"))
  rows, scores = index.search(queries, 10)
  assert recall(rows, retrieval.BruteForceIndex.build(ids, db).search(queries, 10)[0]) >= 0.95
  assert rows.max() >= 10_000 and rows.min() < 10_000   # both shards answer, global rows
  again = retrieval.load_index(str(tmp_path / "s"), verify=False).search(queries, 10)
  np.testing.assert_array_equal(again[0], rows)
  np.testing.assert_array_equal(again[1], scores)
  # one query at a time (shards searched side by side on a thread pool) gives the batch's rows
  index.threads = 2
  one_by_one = [index.search(queries[i:i + 1], 10) for i in range(20)]
  assert index._pool is not None
  np.testing.assert_array_equal(np.concatenate([r for r, _ in one_by_one]), rows[:20])
  np.testing.assert_allclose(np.concatenate([s for _, s in one_by_one]), scores[:20], rtol=1e-6)


def pieces_of(ids, vectors, sizes):
  """A re-readable source: (ids, vectors) pieces of the given sizes."""
  bounds = np.cumsum([0] + sizes).tolist()
  return lambda: ((ids[a:b], vectors[a:b]) for a, b in zip(bounds, bounds[1:]))


def test_scann_streaming_build(data):
  db, queries = data
  ids = make_ids(len(db))
  index = retrieval.ScannIndex.build_streaming(pieces_of(ids, db, [3000, 9000, 8000]),
                                               len(db), params={"training_sample_size": 10_000,
                                                                "num_leaves": 50,
                                                                "num_leaves_to_search": 4})
  assert len(index) == len(db) and index.searcher.size() == len(db)
  assert sorted(index.ids) == sorted(ids)      # rows: the sample first, then insertion order
  assert list(index.ids[:2]) == [ids[0], ids[2]]  # every 2nd row of 20k trains (10k)
  # each row's id is that row's vector: a vector finds itself first, under its own id
  found_ids, scores = index.search_ids(db[[0, 1, 4, 19_999]], 1)
  assert [f[0] for f in found_ids] == [ids[0], ids[1], ids[4], ids[19_999]]
  exact = retrieval.BruteForceIndex.build(ids, db)
  found, _ = index.search_ids(queries, 10)
  truth, _ = exact.search_ids(queries, 10)
  assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]) >= 0.95
  with pytest.raises(ValueError, match="expected 20001"):
    retrieval.ScannIndex.build_streaming(pieces_of(ids, db, [20_000]), 20_001)


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
def test_build_streaming_shards(tmp_path, data, kind):
  db, queries = data
  ids = make_ids(len(db))
  manifest = retrieval.build_streaming(pieces_of(ids, db, [7000, 7000, 6000]),
                                       str(tmp_path / "index"), len(db), kind=kind,
                                       shard_size=9000, model={"name": "m"})
  counts = [s["count"] for s in manifest["shards"]]
  assert sum(counts) == len(db) and max(counts) - min(counts) <= 1   # 3 even shards
  index = retrieval.load_index(str(tmp_path / "index"))
  assert index.model == {"name": "m"} and sorted(index.ids) == sorted(ids)
  found_ids, _ = index.search_ids(db[[0, 6667, 13_334, 19_999]], 1)
  assert [f[0] for f in found_ids] == [ids[0], ids[6667], ids[13_334], ids[19_999]]
  exact = retrieval.BruteForceIndex.build(ids, db)
  found, _ = index.search_ids(queries, 10)
  truth, _ = exact.search_ids(queries, 10)
  assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)]) >= (
      1.0 if kind == "brute_force" else 0.95)
  if kind == "scann":
    # the shards share one tree and one AH codebook, trained once on a sample of all rows
    assert manifest["params"]["shared_tree"] is True
    for name in ("serialized_partitioner.pb", "ah_codebook.pb"):
      files = {(tmp_path / "index" / s["path"] / "scann" / name).read_bytes()
               for s in manifest["shards"]}
      assert len(files) == 1, name
    first = retrieval.read_manifest(str(tmp_path / "index" / manifest["shards"][0]["path"]))
    assert first["params"]["num_leaves"] == retrieval.scann_params_for(len(db))["num_leaves"]


def test_scann_save_estimate():
  params = retrieval.scann_params_for(20_000_000)
  assert params["num_leaves"] == 17_889 and params["dims_per_block"] == 2
  # 17,889 leaves x 150 blocks x 16 centres x 270 B: the codebook copies in each 20M save
  # (which raised RSS by ~14 GB, the shard's data copies included)
  overhead = retrieval.scann_save_overhead_bytes(params, 300)
  assert 11e9 < overhead < 12e9
  assert retrieval.scann_save_overhead_bytes({**params, "dims_per_block": 4}, 300) == overhead // 2
  assert retrieval.scann_save_overhead_bytes(retrieval.scann_params_for(1000), 300) == 0
  # the measured peak of a 5M shard of that tree was 19.1 GB: the bound stays below it
  assert 14e9 < retrieval.scann_save_peak_bytes(params, 300, 5_000_000) < 19.1e9


def test_build_streaming_warns_before_training_when_the_save_cannot_fit(tmp_path, data,
                                                                        monkeypatch):
  db, _ = data
  ids = make_ids(len(db))
  monkeypatch.setattr(scann_memory, "available_memory", lambda: 1_000_000)
  trained = []
  monkeypatch.setattr(retrieval.ScannIndex, "build_streaming",
                      classmethod(lambda cls, *a, **k: trained.append(1) or 1 / 0))
  with pytest.warns(RuntimeWarning, match=r"200 leaves.*only 0.0 GB is available"):
    with pytest.raises(ZeroDivisionError):
      retrieval.build_streaming(pieces_of(ids, db, [20_000]), str(tmp_path / "i"), len(db))
  assert trained == [1]   # the warning came first
  monkeypatch.setattr(scann_memory, "available_memory", lambda: 10**12)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    with pytest.raises(ZeroDivisionError):
      retrieval.build_streaming(pieces_of(ids, db, [20_000]), str(tmp_path / "i"), len(db))


@pytest.mark.parametrize("kind", ["brute_force", "scann"])
@pytest.mark.parametrize("n", [1, 2, 7, 100])
def test_small_n_and_k_above_n(tmp_path, kind, n):
  db = clustered(n, 16, 3, 0.3, seed=n)
  index = (retrieval.ScannIndex.build if kind == "scann" else retrieval.BruteForceIndex.build)(
      make_ids(n), db)
  index.save(str(tmp_path / "i"))
  index = retrieval.load_index(str(tmp_path / "i"))
  rows, scores = index.search(db[:1], n + 5)
  assert rows.shape == (1, n + 5)
  assert rows[0, 0] == 0 and np.isclose(scores[0, 0], 1.0, atol=1e-5)
  assert sorted(rows[0, :n].tolist()) == list(range(n))
  assert np.all(rows[0, n:] == -1) and np.all(np.isneginf(scores[0, n:]))
  found_ids, _ = index.search_ids(db[:1], n + 5)
  assert len(found_ids[0]) == n and found_ids[0][0] == "Q0"


def test_scann_tree_with_k_above_what_the_leaves_hold(data):
  db, queries = data
  index = retrieval.ScannIndex.build(make_ids(6000), db[:6000])
  assert index.params["algorithm"] == "tree_ah"
  rows, scores = index.search(queries[:3], 7000, leaves_to_search=2)
  assert rows.shape == (3, 7000)
  for row, score in zip(rows, scores):
    valid = row[row >= 0]
    assert 0 < len(valid) < 6000 and len(set(valid.tolist())) == len(valid)
    assert np.all(row[len(valid):] == -1) and np.all(np.isneginf(score[len(valid):]))
    assert np.all(np.isfinite(score[:len(valid)]))


def test_queries_of_the_wrong_dimension_are_rejected(data, scann_index):
  with pytest.raises(ValueError, match="expected"):
    scann_index.search(np.zeros((2, 32), np.float32), 10)


@pytest.fixture
def saved(tmp_path, data):
  """A saved brute-force index and a saved ScaNN index (int8 reordering, as for large N)."""
  db = data[0][:6000]
  out = {}
  for index in (retrieval.BruteForceIndex.build(make_ids(len(db)), db),
                retrieval.ScannIndex.build(make_ids(len(db)), db,
                                           params={"reorder_dtype": "int8"})):
    out[index.kind] = str(tmp_path / index.kind)
    index.save(out[index.kind])
  return out


def flip_byte(path, offset=-100):
  with open(path, "r+b") as f:
    f.seek(offset, os.SEEK_END)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("kind,name", [("brute_force", "vectors.npy"),
                                       ("brute_force", "ids.txt"),
                                       ("scann", "scann/hashed_dataset.npy"),
                                       ("scann", "scann/int8_dataset.npy")])
def test_corrupted_file_is_rejected(saved, kind, name):
  path = os.path.join(saved[kind], name)
  flip_byte(path, offset=-2 if name == "ids.txt" else -100)
  with pytest.raises(IndexLoadError, match="checksum") as e:
    retrieval.load_index(saved[kind])
  assert path in str(e.value)


@pytest.mark.parametrize("kind,name", [("brute_force", "vectors.npy"),
                                       ("brute_force", "ids.txt"),
                                       ("scann", "scann/hashed_dataset.npy"),
                                       ("scann", "scann/serialized_partitioner.pb")])
def test_truncated_file_is_rejected_even_without_checksums(saved, kind, name):
  path = os.path.join(saved[kind], name)
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 2)
  with pytest.raises(IndexLoadError, match="truncated") as e:
    retrieval.load_index(saved[kind], verify=False)
  assert path in str(e.value)


def test_missing_manifest_file_or_index(saved, tmp_path):
  os.remove(os.path.join(saved["scann"], "manifest.json"))
  with pytest.raises(IndexLoadError, match="manifest.json: missing"):
    retrieval.load_index(saved["scann"])
  with pytest.raises(IndexLoadError, match="not a directory"):
    retrieval.load_index(str(tmp_path / "nowhere"))
  os.remove(os.path.join(saved["brute_force"], "vectors.npy"))
  with pytest.raises(IndexLoadError, match="vectors.npy: missing"):
    retrieval.load_index(saved["brute_force"])


def edit_manifest(path, **changes):
  manifest_path = os.path.join(path, "manifest.json")
  with open(manifest_path) as f:
    manifest = json.load(f)
  manifest.update(changes)
  with open(manifest_path, "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)   # as written: same size for same widths


@pytest.mark.parametrize("kind,name", [("brute_force", "vectors.npy"),
                                       ("scann", "int8_dataset.npy")])
def test_dimension_mismatch_is_rejected(saved, kind, name):
  with pytest.raises(IndexLoadError, match="dimension 64, the queries have 32"):
    retrieval.load_index(saved[kind], dimension=32)
  assert retrieval.load_index(saved[kind], dimension=64).dimension == 64
  edit_manifest(saved[kind], dimension=32)
  with pytest.raises(IndexLoadError, match=f"({name}): shape") as e:
    retrieval.load_index(saved[kind])
  assert saved[kind] in str(e.value)


def test_count_and_format_mismatch_are_rejected(saved):
  edit_manifest(saved["brute_force"], count=5999)
  with pytest.raises(IndexLoadError, match="ids.txt: 6000 ids, manifest.json says 5999"):
    retrieval.load_index(saved["brute_force"])
  edit_manifest(saved["scann"], format="mel-index/0")
  with pytest.raises(IndexLoadError, match="manifest.json: format 'mel-index/0'"):
    retrieval.load_index(saved["scann"])


def test_sharded_corruption_names_the_shard_file(tmp_path, data):
  db = data[0][:3000]
  ids = make_ids(len(db))
  path = str(tmp_path / "sharded")
  retrieval.build_sharded(iter([(ids[:1500], db[:1500]), (ids[1500:], db[1500:])]), path,
                          kind="brute_force")
  flip_byte(os.path.join(path, "shard-00001", "vectors.npy"))
  with pytest.raises(IndexLoadError, match="shard-00001/vectors.npy: checksum"):
    retrieval.load_index(path)
  edit_manifest(os.path.join(path, "shard-00000"), count=1501)
  with pytest.raises(IndexLoadError, match="shard-00000/manifest.json: checksum"):
    retrieval.load_index(path)


def test_save_is_atomic(tmp_path, data, monkeypatch):
  db, queries = data
  target = str(tmp_path / "index")
  old = retrieval.BruteForceIndex.build(make_ids(100), db[:100])
  old.save(target)
  new = retrieval.BruteForceIndex.build(make_ids(200), db[:200])

  def fail(*args, **kwargs):
    raise OSError("disk full")
  monkeypatch.setattr(manifest, "write", fail)
  with pytest.raises(OSError, match="disk full"):
    new.save(target)
  with pytest.raises(OSError, match="disk full"):
    new.save(str(tmp_path / "fresh"))
  monkeypatch.undo()
  assert sorted(os.listdir(tmp_path)) == ["index"]     # no half index, no temp left behind
  assert len(retrieval.load_index(target)) == 100      # the old index is intact
  new.save(target)                                     # a complete save replaces it
  assert len(retrieval.load_index(target)) == 200
  assert sorted(os.listdir(tmp_path)) == ["index"]


def test_build_sharded_failure_leaves_nothing(tmp_path, data):
  db = data[0]

  def shards():
    yield make_ids(1000), db[:1000]
    raise RuntimeError("encoder died")
  with pytest.raises(RuntimeError, match="encoder died"):
    retrieval.build_sharded(shards(), str(tmp_path / "index"), kind="brute_force")
  assert os.listdir(tmp_path) == []


def write_embeddings(directory, db, sizes, model):
  """mel.retrieval.embeddings shards of the given sizes over db's first rows; returns all ids."""
  ids = []
  for i, size in enumerate(sizes):
    shard_ids = [f"E{len(ids) + j}" for j in range(size)]
    embeddings.write_shard(directory, i, shard_ids, db[len(ids):len(ids) + size])
    ids += shard_ids
  embeddings.write_manifest(directory, len(sizes), model=model)
  return ids


def test_build_index_from_embeddings(tmp_path, data):
  db, queries = data
  db = db[:1500]
  emb = str(tmp_path / "emb")
  ids = write_embeddings(emb, db, [700, 500, 300], {"name": "model-f", "step": 1000})
  manifest = retrieval.build_index_from_embeddings(emb, str(tmp_path / "index"),
                                                   kind="brute_force", shard_size=600)
  assert [s["count"] for s in manifest["shards"]] == [500, 500, 500]   # re-chunked evenly
  assert manifest["model"]["name"] == "model-f" and manifest["model"]["step"] == 1000
  index = retrieval.load_index(str(tmp_path / "index"))
  assert list(index.ids) == ids and index.model["name"] == "model-f"
  exact = retrieval.BruteForceIndex.build(ids, db)
  np.testing.assert_array_equal(index.search(queries, 20)[0], exact.search(queries, 20)[0])
  # ScaNN (default kind), one shard
  manifest = retrieval.build_index_from_embeddings(emb, str(tmp_path / "scann"))
  assert len(manifest["shards"]) == 1 and manifest["shards"][0]["kind"] == "scann"
  rows, _ = retrieval.load_index(str(tmp_path / "scann")).search(queries, 10)
  np.testing.assert_array_equal(rows, exact.search(queries, 10)[0])   # small N: exact


def test_build_index_from_embeddings_scann_tree(tmp_path, data):
  db, queries = data
  emb = str(tmp_path / "emb")
  ids = write_embeddings(emb, db[:12_000], [5000, 5000, 2000], {"name": "model-f"})
  retrieval.build_index_from_embeddings(emb, str(tmp_path / "index"))
  index = retrieval.load_index(str(tmp_path / "index"))
  assert index.shards[0].params["algorithm"] == "tree_ah"
  found_ids, _ = index.search_ids(db[[0, 5001, 11_999]], 1)
  assert [f[0] for f in found_ids] == [ids[0], ids[5001], ids[11_999]]
  flip_byte(os.path.join(emb, "vectors-00001.npy"))
  with pytest.raises(embeddings.EmbeddingsError, match="vectors-00001.npy: checksum"):
    retrieval.build_index_from_embeddings(emb, str(tmp_path / "again"))
  assert not os.path.exists(tmp_path / "again")


def test_cli(tmp_path, data):
  db, queries = data
  emb = str(tmp_path / "emb")
  ids = write_embeddings(emb, db[:900], [400, 500], {"name": "tiny"})
  out = str(tmp_path / "index")
  result = run_module("mel", "index", "--embeddings", emb, "--output", out,
                      "--shard_size", 300, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "900 vectors of dimension 64, 3 shard(s)" in result.stdout
  index = retrieval.load_index(out)
  assert list(index.ids) == ids and index.model["name"] == "tiny"
  # The same embeddings again: the index is reused; another kind or --overwrite rebuilds.
  built = os.path.getmtime(os.path.join(out, "manifest.json"))
  result = run_module("mel", "index", "--embeddings", emb, "--output", out, timeout=300)
  assert result.returncode == 0 and "reused" in result.stdout
  assert os.path.getmtime(os.path.join(out, "manifest.json")) == built
  assert not retrieval.index_is_current(out, emb, "brute_force")
  result = run_module("mel", "index", "--embeddings", emb, "--output", out,
                      "--shard_size", 300, "--overwrite", timeout=300)
  assert result.returncode == 0 and "3 shard(s)" in result.stdout
  assert os.path.getmtime(os.path.join(out, "manifest.json")) != built
  result = run_module("mel", "index", "--embeddings", str(tmp_path / "none"),
                      "--output", out, timeout=300)
  assert result.returncode == 1 and f"{tmp_path / 'none'}: not a directory" in result.stderr
  os.remove(os.path.join(emb, "manifest.json"))   # as if encoding had not finished
  result = run_module("mel", "index", "--embeddings", emb, "--output", out, "--overwrite",
                      timeout=300)
  assert result.returncode == 1 and "manifest.json: missing" in result.stderr
  assert len(retrieval.load_index(out)) == 900   # a failed run left the old index alone


def test_cli_scann_params(tmp_path, data):
  db, _ = data
  emb = str(tmp_path / "emb")
  write_embeddings(emb, db[:12_000], [6000, 6000], {"name": "m"})
  out = str(tmp_path / "index")
  result = run_module("mel", "index", "--embeddings", emb, "--output", out,
                      "--scann_param", "dims_per_block=4", "--scann_param", "num_leaves=50",
                      timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  # the memory line comes before training: 50 leaves x 64 / 4 blocks
  assert "ScaNN: 50 leaves, 16 AH blocks; saving a shard of 12,000 rows" in result.stderr
  params = retrieval.load_index(out).shards[0].params
  assert params["dims_per_block"] == 4 and params["num_leaves"] == 50
  result = run_module("mel", "index", "--embeddings", emb, "--output", out, "--overwrite",
                      "--scann_param", "leaves=50", timeout=300)
  assert result.returncode == 2 and "'leaves=50'" in result.stderr
  assert "num_leaves" in result.stderr   # names the keys it knows


def test_embeddings_manifest_lists_every_file(tmp_path, data):
  emb = str(tmp_path / "emb")
  write_embeddings(emb, data[0][:900], [400, 500], {"name": "m"})
  written = embeddings.read_manifest(emb)
  assert written["format"] == "mel-embeddings/2" and written["count"] == 900
  assert written["dimension"] == 64 and written["model"] == {"name": "m"}
  assert written["shards"] == [
      {"vectors": "vectors-00000.npy", "ids": "ids-00000.txt", "count": 400},
      {"vectors": "vectors-00001.npy", "ids": "ids-00001.txt", "count": 500}]
  assert written["files"] == manifest.describe_files(emb)   # every file, sizes and checksums
  edit_manifest(emb, format="mel-embeddings/1")
  with pytest.raises(embeddings.EmbeddingsError, match="manifest.json: format"):
    embeddings.read_manifest(emb)


@pytest.mark.parametrize("name", ["vectors-00001.npy", "ids-00000.txt"])
def test_corrupted_embeddings_file_is_rejected_naming_it(tmp_path, data, capsys, name):
  emb = str(tmp_path / "emb")
  write_embeddings(emb, data[0][:900], [400, 500], {"name": "m"})
  path = os.path.join(emb, name)
  with open(path, "r+b") as f:   # one byte changed, still ASCII: the ids file stays readable
    f.seek(-2, os.SEEK_END)
    f.write(b"#")
  with pytest.raises(embeddings.EmbeddingsError, match="checksum") as e:
    list(embeddings.iter_shards(emb))
  assert path in str(e.value)
  list(embeddings.iter_shards(emb, verify=False))   # the size is right: only checksums tell
  assert build_index.main(["--embeddings", emb, "--output", str(tmp_path / "index"),
                           "--kind", "brute_force", "--no_progress"]) == 1
  assert f"{path}: checksum" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "index")
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 1)
  with pytest.raises(embeddings.EmbeddingsError, match="truncated") as e:
    list(embeddings.iter_shards(emb, verify=False))
  assert path in str(e.value)


def test_index_cli_defaults_from_model_dir(tmp_path, data):
  model_dir = tmp_path / "model"
  ids = write_embeddings(str(model_dir / "embeddings"), data[0][:500], [500], {"name": "m"})
  assert build_index.main(["--model_dir", str(model_dir), "--kind", "brute_force",
                           "--no_progress"]) == 0
  index = retrieval.load_index(str(model_dir / "index"))
  assert list(index.ids) == ids and index.model["name"] == "m"
  args = build_index.parse_args(["--model_dir", "M", "--output", "I"])
  assert (args.embeddings, args.output) == (os.path.join("M", "embeddings"), "I")
  args = build_index.parse_args(["--model_dir", "M", "--embeddings", "E"])
  assert (args.embeddings, args.output) == ("E", os.path.join("M", "index"))
  assert build_index.parse_args(["--embeddings", "E", "--output", "I"]).output == "I"


@pytest.mark.parametrize("argv", [[], ["--embeddings", "E"], ["--output", "I"]])
def test_index_cli_needs_model_dir_or_embeddings_and_output(argv, capsys):
  with pytest.raises(SystemExit) as e:
    build_index.main(argv)
  assert e.value.code == 2
  assert "give --model_dir, or both --embeddings and --output" in capsys.readouterr().err


def test_index_command_without_inputs_is_a_usage_error(tmp_path):
  result = run_module("mel", "index", "--embeddings", tmp_path, timeout=120)
  assert result.returncode == 2 and "--model_dir" in result.stderr


def test_serving_does_not_import_tensorflow(tmp_path, data):
  path = str(tmp_path / "index")
  retrieval.ScannIndex.build(make_ids(6000), data[0][:6000]).save(path)
  code = ("import sys, numpy as np; from mel import retrieval; "
          f"i = retrieval.load_index({path!r}); i.search(np.ones((1, 64), np.float32), 5); "
          "print('tensorflow' in sys.modules)")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.strip() == "False"
