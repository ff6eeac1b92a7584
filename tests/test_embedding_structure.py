"""bench/embedding_structure.py: the structure measurements and the fitted generator."""
import math
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import embedding_structure as es  # noqa: E402


def sphere_in(dim_sphere: int, ambient: int, n: int, seed: int = 0) -> np.ndarray:
  """n points uniform on the unit sphere S^(dim_sphere - 1) of a random dim_sphere-d subspace."""
  rng = np.random.default_rng(seed)
  basis, _ = np.linalg.qr(rng.standard_normal((ambient, dim_sphere)))
  x = rng.standard_normal((n, dim_sphere))
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  return (x @ basis.T).astype(np.float32)


@pytest.mark.parametrize("dim_sphere", [3, 6])
def test_lid_of_a_sphere_is_its_dimension(dim_sphere):
  # The unit sphere of a d-dim subspace is a (d - 1)-dim manifold, whatever the ambient space.
  x = sphere_in(dim_sphere, 48, 40_000)
  rows, scores = es.top_k(x[:300], x, 101)
  assert (rows[:, 0] == np.arange(300)).all()      # each point finds itself first
  lid = np.median(es.lid_mle(scores[:, 1:], 100))
  assert abs(lid - (dim_sphere - 1)) < 0.5, lid


def test_top_k_streamed_in_shards_equals_one_pass():
  rng = np.random.default_rng(1)
  data = es.normalize(rng.standard_normal((5000, 16)).astype(np.float32))
  queries = es.normalize(rng.standard_normal((20, 16)).astype(np.float32))
  rows, scores = es.top_k(queries, data, 30)
  best = None
  for start in range(0, 5000, 1700):
    best = es.top_k(queries, data[start:start + 1700], 30, chunk=600, offset=start, best=best)
  np.testing.assert_array_equal(best[0], rows)
  np.testing.assert_allclose(best[1], scores, rtol=1e-5)   # matmul blocking differs
  assert (np.diff(scores, axis=1) <= 0).all()


def test_oracle_shares_worked_by_hand():
  # 3 leaves on the axes, sizes 2, 3, 5 (N = 10). The query scores leaf 0 > leaf 1 > leaf 2.
  centres = np.eye(3, dtype=np.float32)
  labels = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
  query = np.array([[0.9, 0.4, 0.1]], np.float32)
  # Its top-4: rows 0 (leaf 0), 2 (leaf 1), 5 and 6 (leaf 2). Finding ceil(0.5 * 4) = 2 of them
  # probes leaves 0 and 1: 5 points; 3 or 4 of them (0.75, 1.0) all three leaves: 10 points.
  truth = np.array([[0, 2, 5, 6]])
  shares = es.oracle_shares(query, centres, labels, truth, targets=(0.5, 0.75, 1.0))
  assert shares == {"0.5": 0.5, "0.75": 1.0, "1": 1.0}
  # ceil(0.25 * 4) = 1: leaf 0 alone, 2 of 10 points.
  assert es.oracle_shares(query, centres, labels, truth, targets=(0.25,)) == {"0.25": 0.2}


def test_spherical_kmeans_nears_the_true_partition():
  rng = np.random.default_rng(2)
  centres = es.normalize(rng.standard_normal((8, 32)).astype(np.float32))
  truth = rng.integers(8, size=4000)
  x = es.normalize(centres[truth] + 0.05 * rng.standard_normal((4000, 32)).astype(np.float32))
  found, labels = es.spherical_kmeans(x, 16, iterations=10, seed=0)
  np.testing.assert_array_equal(labels, es.assign(x, found))
  # with twice the leaves (random starts can leave a pair of clusters under one centre), every
  # found leaf is nearly pure: its points come from one true cluster
  purity = sum(np.bincount(truth[labels == c]).max() for c in np.unique(labels)) / len(x)
  assert purity > 0.99


def known_params(dim=24, seed=3):
  rng = np.random.default_rng(seed)
  def factor(scale):
    return (scale * np.linalg.qr(rng.standard_normal((dim, dim)))[0]
            * np.linspace(1.5, 0.2, dim)).astype(np.float32)
  shift = np.zeros(dim, np.float32)
  shift[0] = 0.3
  return es.FittedParams(
      mean=(0.8 * es.normalize(rng.standard_normal((1, dim)))[0]).astype(np.float32),
      topic_factor=factor(0.1), leaf_factor=factor(0.1),
      leaf_spectrum=np.array([0.02, 0.01, 0.005, 0.005], np.float32),
      shape_factor=factor(0.1), point_spectrum=np.linspace(0.01, 0.001, 8).astype(np.float32),
      query_factor=factor(0.05), query_shift=shift, query_in_leaf=0.5, leaf_size=50.0,
      leaves_per_topic=16.0, leaf_spread=0.4, topic_spread=0.3, popularity_spread=0.5)


def test_fitted_generator_is_deterministic_per_shard():
  gen = es.Fitted(known_params(), 2500, shard_size=1000)
  again = es.Fitted(known_params(), 2500, shard_size=1000)
  x2, labels2 = again.shard(2)
  np.testing.assert_array_equal(gen.shard(2)[0], x2)
  assert gen.all().shape == (2500, 24)
  np.testing.assert_array_equal(gen.labels()[2000:], labels2)
  np.testing.assert_allclose(np.linalg.norm(gen.all(), axis=1), 1.0, atol=1e-5)
  assert gen.num_clusters == 50 and len(gen.centers) == 50
  ids, vectors = next(gen.id_shards())
  assert ids[:2] == ["E0", "E1"] and len(vectors) == 1000


def test_fit_recovers_a_known_mixture():
  true = known_params()
  gen = es.Fitted(true, 40_000)
  mentions, _ = gen.queries(20_000)
  fitted = es.FittedParams.fit(gen.all(), mentions)
  # k-means leaves of LEAF_SIZE over data made of leaves of ~50: sizes of the same order
  assert 40 <= fitted.leaf_size <= 60
  # the mention shift: mostly along axis 0, as drawn
  shift = fitted.query_shift / np.linalg.norm(fitted.query_shift)
  assert shift[0] > 0.9, shift[:3]
  # the unit points' spread around their true leaf's mean (root mean square), within 25%
  x, leaves = gen.all(), gen.labels()
  means = np.zeros((gen.num_clusters, x.shape[1]))
  np.add.at(means, leaves, x)
  means /= np.maximum(np.bincount(leaves, minlength=gen.num_clusters), 1)[:, None]
  truth_scale = np.sqrt(((x - means[leaves]) ** 2).sum(axis=1).mean())
  assert abs(fitted.summary()["point_scale"] / truth_scale - 1) < 0.25
  # and a generator drawn from the fit has neighbours as close as the original's
  regenerated = es.Fitted(fitted, 40_000)
  def cos_at_10(g):
    x = g.all()
    return np.median(es.top_k(x[:300], x, 11)[1][:, 10])
  assert abs(cos_at_10(regenerated) - cos_at_10(gen)) < 0.02


def test_fitted_params_save_and_load(tmp_path):
  params = known_params()
  path = str(tmp_path / "fit.npz")
  params.save(path)
  loaded = es.FittedParams.load(path)
  assert loaded.leaf_size == 50.0 and isinstance(loaded.leaf_size, float)
  np.testing.assert_array_equal(loaded.point_spectrum, params.point_spectrum)
  assert loaded.query_in_leaf == 0.5


def test_real_data_set_names_its_size_limit():
  x = sphere_in(8, 16, 500)
  with pytest.raises(ValueError, match="500 real vectors.*asked for 600|600 real vectors"):
    es.Real(x, x[:100], 600)
  real = es.Real(x, x[:100], 400)
  assert real.all().shape == (400, 16) and real.num_clusters == round(4 * math.sqrt(400))
  with pytest.raises(ValueError, match="100"):
    real.queries(101)


def test_the_benchmark_names_the_command_that_makes_missing_real_vectors(tmp_path):
  import retrieval as bench_retrieval
  for kind in ("real", "fitted"):
    with pytest.raises(FileNotFoundError, match="bench/real_embeddings.py --model_dir"):
      bench_retrieval.make_data((kind, str(tmp_path)), 1000)
  with pytest.raises(ValueError, match="unknown data"):
    bench_retrieval.make_data(("uniform", str(tmp_path)), 1000)


def test_the_benchmark_streams_the_exact_top_k_and_structure_of_any_data_set():
  import retrieval as bench_retrieval
  x = sphere_in(6, 32, 3000, seed=4)
  real = es.Real(x, x[:200] + 0.01, 3000, shard_size=1000)
  queries, _ = real.queries(50)
  truth, structure = bench_retrieval.exact_and_structure(real, queries)
  np.testing.assert_array_equal(truth, es.top_k(queries, real.all(), 100)[0])
  assert 4.0 < structure["lid@100"] < 6.0     # a 5-sphere
  assert structure["entity_knn"]["cos@1"] > structure["entity_knn"]["cos@100"]
