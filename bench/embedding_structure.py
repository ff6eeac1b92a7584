"""Structure of entity and mention vectors, and a generator fitted to it (for bench/retrieval.py).

Measurements (the same functions on real and generated vectors, so a fit compares like with like):
  lid_mle           local intrinsic dimensionality, the maximum-likelihood estimate of Levina and
                    Bickel (2004) from the k nearest neighbours' distances, per point
  knn_cosines       cosine of the 1st / 10th / 100th nearest entity, per query
  oracle_shares     share of the data a partition scans per query to reach recall@100 r: leaves
                    probed nearest centre first, whole leaves counted, exact scoring inside
  spherical_kmeans  the partition for real vectors (4 sqrt(N) leaves, mel's ScaNN rule)

The generator (FittedParams.fit, Fitted): a two-level mixture of unit vectors whose levels
spread along few directions of their own, as trained embeddings do (a Gaussian with the pooled
covariance spreads in every direction: its neighbours are too far and its LID too high):
  topic means   t ~ N(m, S1)
  leaf means    l = t + sum_j z_j sqrt(a_j) u_j      the topic's own RT directions u (a basis
                                                     drawn from the leaf means' pooled
                                                     covariance), variances a (the topics' mean
                                                     spectrum, RT fitted to the real 10th/100th
                                                     neighbour cosines)
  entities      e = normalize(l + sum_j z_j sqrt(b_j) v_j)   the leaf's own R = 48 directions
  mentions      q = normalize(l + d + noise)          the leaf drawn by mention popularity (its
                                                     entity weight times a lognormal factor);
                                                     noise: a share along the leaf's
                                                     directions, the rest N(0, Sq), scaled
Leaves per topic and entities per leaf are lognormal with the real spread. Leaves draw their
directions from a pool of bases. The pool's size and the mention noise's share and scale are
fitted together (FIT_GRID) so that an oracle partition must scan as much of the generated data
as of the real to find a mention's neighbours (oracle_curve).
Queries are drawn as mentions are, around the entities' leaves, offset by the mention tower's
mean shift d, not as perturbed entities. Everything is measured on the real
vectors: spherical k-means leaves of LEAF_SIZE entities, topics = k-means of the leaf means. N
grows by adding topics and leaves of the fitted sizes.
"""
import dataclasses
import math
from typing import Dict, Sequence, Tuple

import numpy as np

LEAF_SIZE = 50            # entities per leaf of the fit
LEAVES_PER_TOPIC = 16
TOPIC_SHRINK = 0.1        # S1 from a few hundred topic means is rank-deficient; blend in S2
SUBSPACE_RANK = 48        # a leaf's own directions (a leaf of LEAF_SIZE has at most 49)
TOPIC_RANKS = (4, 8, 15)  # candidates for a topic's own directions (16 leaves: at most 15)
NUM_BASES = 256           # bases for topics' directions (and leaves', before the fit)
# candidates for (leaves' pool of bases, leaves a mention mixes, its noise's scale); the noise's
# share along the leaf's own directions is 0.5
FIT_GRID = tuple((b, leaves, scale) for b in (8, 16) for leaves in (1, 2, 4)
                 for scale in (1.0, 1.25, 1.5))
QUERY_IN_LEAF = 0.5
COSINE_TOLERANCE = 0.05   # the fit weighs a 0.05 miss in a neighbour cosine like a factor e
ORACLE_TARGETS_100 = (0.3, 0.5, 0.7, 0.9, 0.95, 0.99)
ORACLE_TARGETS_10 = (0.5, 0.7, 0.9)
GEN_SHARD = 250_000


def normalize(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def top_k(queries: np.ndarray, data: np.ndarray, k: int, chunk: int = 65536,
          offset: int = 0, best=None) -> Tuple[np.ndarray, np.ndarray]:
  """Exact top-k by inner product: (rows int64 [Q, k], scores float32 [Q, k]), best first.

  best = (rows, scores) from earlier chunks (rows already offset) is merged in, so data can be
  streamed shard by shard: top_k(q, shard, k, offset=start, best=previous). The merge is mel's
  (retrieval.select_top_k: ties by row).
  """
  from mel.retrieval import select_top_k
  rows, scores = best if best is not None else (np.zeros((len(queries), 0), np.int64),
                                                 np.zeros((len(queries), 0), np.float32))
  for start in range(0, len(data), chunk):
    s = queries @ data[start:start + chunk].T
    kk = min(k, s.shape[1])
    part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    rows, scores = select_top_k(np.concatenate([rows, part + offset + start], 1),
                                np.concatenate([scores, np.take_along_axis(s, part, 1)], 1), k)
  return rows, scores


# ---------------------------------------------------------------------------------------------
# measurements


def lid_mle(neighbour_cosines: np.ndarray, k: int) -> np.ndarray:
  """Per point [P], from the cosines of its nearest neighbours [P, >= k] (best first, the point
  itself excluded): -1 / mean_{i<k} log(d_i / d_k), with Euclidean distances of unit vectors."""
  d = np.sqrt(np.maximum(2.0 - 2.0 * neighbour_cosines[:, :k].astype(np.float64), 1e-12))
  logs = np.log(d[:, :-1] / d[:, -1:])
  return -1.0 / np.minimum(logs.mean(axis=1), -1e-12)


def knn_cosines(scores: np.ndarray, ranks: Sequence[int] = (1, 10, 100)) -> Dict[str, float]:
  """Median cosine of the r-th nearest neighbour over queries, from top-k scores [Q, >= r]."""
  return {f"cos@{r}": float(np.median(scores[:, r - 1])) for r in ranks}


def spherical_kmeans(x: np.ndarray, k: int, iterations: int = 10, seed: int = 0,
                     sample: int = 0) -> Tuple[np.ndarray, np.ndarray]:
  """(unit centres [k, D], label of every row of x [N]); trained on `sample` rows (all if 0)."""
  rng = np.random.default_rng(seed)
  train = x if not sample or sample >= len(x) else x[rng.choice(len(x), sample, replace=False)]
  centres = train[rng.choice(len(train), k, replace=False)].copy()
  for _ in range(iterations):
    labels = assign(train, centres)
    sums = np.zeros_like(centres)
    np.add.at(sums, labels, train)
    empty = np.linalg.norm(sums, axis=1) == 0
    sums[empty] = train[rng.choice(len(train), int(empty.sum()), replace=False)]
    centres = normalize(sums)
  return centres, assign(x, centres)


def assign(x: np.ndarray, centres: np.ndarray, chunk: int = 32768) -> np.ndarray:
  """Nearest centre (by inner product) of every row [N]."""
  return np.concatenate([np.argmax(x[s:s + chunk] @ centres.T, axis=1)
                         for s in range(0, len(x), chunk)]) if len(x) else np.zeros(0, int)


def oracle_shares(queries: np.ndarray, centres: np.ndarray, labels: np.ndarray,
                  truth: np.ndarray, targets: Sequence[float] = (0.9, 0.95, 0.99),
                  chunk: int = 128) -> Dict[str, float]:
  """Mean share of the N points scanned per query to find ceil(r * k) of its exact top-k,
  probing leaves (labels [N] into centres [C, D]) in order of the query's centre score.

  A floor for any index that partitions and scans (IVF, ScaNN's tree) with these leaves.
  """
  sizes = np.bincount(labels, minlength=len(centres))
  k = truth.shape[1]
  scanned = {t: [] for t in targets}
  for s in range(0, len(queries), chunk):
    order = np.argsort(-(queries[s:s + chunk] @ centres.T), axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(len(centres))[None, :], axis=1)
    cumulative = np.cumsum(sizes[order], axis=1)
    neighbour_ranks = np.sort(np.take_along_axis(rank, labels[truth[s:s + chunk]], 1), axis=1)
    for t in targets:
      needed = neighbour_ranks[:, math.ceil(t * k) - 1]
      scanned[t].append(np.take_along_axis(cumulative, needed[:, None], 1)[:, 0])
  return {f"{t:g}": float(np.concatenate(v).mean() / len(labels)) for t, v in scanned.items()}


def oracle_curve(entities: np.ndarray, queries: np.ndarray, seed: int = 0) -> np.ndarray:
  """(shares of the data an oracle partition (spherical k-means, 4 sqrt(N) leaves) scans for
  recall@100 ORACLE_TARGETS_100 and recall@10 ORACLE_TARGETS_10 [9], the queries' median
  cosine to their 10th and 100th nearest entity [2])."""
  leaves = max(1, round(4 * math.sqrt(len(entities))))
  centres, labels = spherical_kmeans(entities, leaves, seed=seed, sample=128 * leaves)
  truth, scores = top_k(queries, entities, 100)
  at_100 = oracle_shares(queries, centres, labels, truth, ORACLE_TARGETS_100)
  at_10 = oracle_shares(queries, centres, labels, truth[:, :10], ORACLE_TARGETS_10)
  return (np.array(list(at_100.values()) + list(at_10.values())),
          np.median(scores[:, [9, 99]], axis=0))


# ---------------------------------------------------------------------------------------------
# the fitted generator


def _factor(cov: np.ndarray) -> np.ndarray:
  """L with L L^T = cov (symmetric PSD), float32: x @ L.T draws N(0, cov) from x ~ N(0, I)."""
  values, vectors = np.linalg.eigh((cov + cov.T) / 2)
  return (vectors * np.sqrt(np.maximum(values, 0))).astype(np.float32)


def _pooled_cov(x: np.ndarray, centred_by: np.ndarray) -> np.ndarray:
  r = (x - centred_by).astype(np.float64)
  return r.T @ r / max(1, len(r) - 1)


def _log_spread(counts: np.ndarray) -> float:
  counts = counts[counts > 0].astype(np.float64)
  return float(np.std(np.log(counts))) if len(counts) > 1 else 0.0


def _leaf_spectrum(x: np.ndarray, leaf_means: np.ndarray, labels: np.ndarray, rank: int
                   ) -> np.ndarray:
  """Mean sorted variance spectrum [rank] of the residuals inside leaves with > rank points
  (rank at most the dimension)."""
  rank = min(rank, x.shape[1])
  order = np.argsort(labels, kind="stable")
  bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=len(leaf_means)))])
  total, count = np.zeros(rank), 0
  for leaf in range(len(leaf_means)):
    rows = order[bounds[leaf]:bounds[leaf + 1]]
    if len(rows) <= rank:
      continue
    values = np.linalg.svd(x[rows] - leaf_means[leaf], compute_uv=False) ** 2 / (len(rows) - 1)
    total += values[:rank]
    count += 1
  if not count:
    raise ValueError(f"no leaf has more than {rank} points: too few vectors to fit")
  return total / count


@dataclasses.dataclass
class FittedParams:
  mean: np.ndarray            # m [D]
  topic_factor: np.ndarray    # L1 [D, D]: topic means m + z L1^T
  leaf_factor: np.ndarray     # the pooled covariance of leaf means around their topic's
                              # mean, as a factor: the topics' directions are drawn from it
  leaf_spectrum: np.ndarray   # [RT] variances along a topic's own directions (sum: the pooled
                              # variance of leaf means around their topic's)
  shape_factor: np.ndarray    # the pooled within-leaf covariance's factor: the leaf subspaces'
                              # directions are drawn from it
  point_spectrum: np.ndarray  # [R] variances along a leaf's R own directions (sum: the pooled
                              # within-leaf variance)
  query_factor: np.ndarray    # Lq: the Gaussian part of a mention around its leaf mean + shift
  query_shift: np.ndarray     # d [D]: mean mention - mean entity
  query_in_leaf: float        # share of a mention's variance along its leaf's own directions
  leaf_size: float            # mean entities per leaf
  leaves_per_topic: float
  leaf_spread: float          # std of log(entities per leaf)
  topic_spread: float         # std of log(leaves per topic)
  popularity_spread: float    # std of log(mentions per leaf / entities per leaf)
  num_bases: float = NUM_BASES  # leaves draw their own directions from this many bases: the
                                # fewer, the more leaves share directions and intermingle
  query_noise_scale: float = 1.0  # a mention's noise, relative to the real residuals' spread
  query_leaves: float = 1.0       # a mention sits at the mean of this many leaves of one topic

  @classmethod
  def fit(cls, entities: np.ndarray, mentions: np.ndarray, seed: int = 0) -> "FittedParams":
    entities = entities.astype(np.float32)
    n, dim = entities.shape
    num_leaves = max(2, round(n / LEAF_SIZE))
    num_topics = max(2, round(num_leaves / LEAVES_PER_TOPIC))
    _, labels = spherical_kmeans(entities, num_leaves, seed=seed)
    sizes = np.bincount(labels, minlength=num_leaves)
    used = sizes > 0
    leaf_means = np.zeros((num_leaves, dim), np.float64)
    np.add.at(leaf_means, labels, entities)
    leaf_means = (leaf_means[used] / sizes[used, None]).astype(np.float32)
    labels, sizes = (np.cumsum(used) - 1)[labels], sizes[used]
    _, topic_of_leaf = spherical_kmeans(normalize(leaf_means), num_topics, seed=seed + 1)
    leaves_per_topic = np.bincount(topic_of_leaf, minlength=num_topics)
    # Topic means: the size-weighted mean of their leaf means.
    topic_means = np.zeros((num_topics, dim), np.float64)
    np.add.at(topic_means, topic_of_leaf, leaf_means * sizes[:, None])
    topic_sizes = np.bincount(topic_of_leaf, weights=sizes, minlength=num_topics)
    has = topic_sizes > 0
    topic_means[has] /= topic_sizes[has, None]
    s1 = np.cov(topic_means[has].T, bias=False)
    s2 = _pooled_cov(leaf_means, topic_means[topic_of_leaf])
    s1 = (1 - TOPIC_SHRINK) * s1 + TOPIC_SHRINK * np.trace(s1) / np.trace(s2) * s2
    s3 = _pooled_cov(entities, leaf_means[labels])
    spectrum = _leaf_spectrum(entities, leaf_means, labels, SUBSPACE_RANK)
    spectrum *= np.trace(s3) / spectrum.sum()
    topic_spectrum = _leaf_spectrum(leaf_means, topic_means.astype(np.float32), topic_of_leaf,
                                    max(TOPIC_RANKS))
    shift = (mentions.mean(axis=0) - entities.mean(axis=0)).astype(np.float32)
    mention_leaf = assign(mentions - shift, normalize(leaf_means))
    sq = _pooled_cov(mentions - shift, leaf_means[mention_leaf])
    mention_counts = np.bincount(mention_leaf, minlength=len(sizes))
    ratio = (mention_counts + 0.5) / (sizes + 0.5) * (sizes.sum() / max(1, len(mentions)))
    params = cls(mean=entities.mean(axis=0), topic_factor=_factor(s1),
                 leaf_factor=_factor(s2), leaf_spectrum=np.zeros(1, np.float32),
                 shape_factor=_factor(s3),
                 point_spectrum=spectrum.astype(np.float32), query_factor=_factor(sq),
                 query_shift=shift, query_in_leaf=QUERY_IN_LEAF, leaf_size=float(sizes.mean()),
                 leaves_per_topic=float(leaves_per_topic[leaves_per_topic > 0].mean()),
                 leaf_spread=_log_spread(sizes), topic_spread=_log_spread(leaves_per_topic),
                 popularity_spread=float(np.std(np.log(ratio))))
    params.leaf_spectrum = params._fit_topic_rank(entities, topic_spectrum, np.trace(s2), seed)
    params.num_bases, params.query_leaves, params.query_noise_scale = \
        params._fit_partition_shape(entities, mentions, seed)
    return params

  def _fit_topic_rank(self, entities, topic_spectrum, variance, seed, sample: int = 300):
    """The leading part of the topics' spectrum (rank from TOPIC_RANKS) whose generated
    entities have the real entities' 10th and 100th neighbour cosines."""
    pick = np.random.default_rng([seed, 6]).choice(len(entities), sample, replace=False)
    target = _neighbour_cosines(entities[pick], entities)
    best = None
    for rank in sorted({min(r, len(topic_spectrum)) for r in TOPIC_RANKS}):
      self.leaf_spectrum = (topic_spectrum[:rank] * variance /
                            topic_spectrum[:rank].sum()).astype(np.float32)
      x = Fitted(self, len(entities), seed=seed).all()
      error = float(((_neighbour_cosines(x[:sample], x) - target) ** 2).sum())
      if best is None or error < best[0]:
        best = (error, self.leaf_spectrum)
    return best[1]

  def _fit_partition_shape(self, entities, mentions, seed, queries: int = 1000):
    """(num_bases, query_leaves, query_noise_scale) from FIT_GRID whose generated data an
    oracle partition (spherical k-means, 4 sqrt(N) leaves) must scan as much of as the real
    data to find a mention's neighbours (oracle_curve: the shares scanned for recall@100 0.3 ...
    0.99 and recall@10 0.5 / 0.7 / 0.9, compared in logs), with mentions as near their 10th and
    100th nearest entity as real ones. The oracle's shares are what limit IVF and tree indexes:
    the fewer bases, the more leaves share directions and intermingle; the more leaves a
    mention mixes and the wider its noise, the less its nearest leaf says where its neighbours
    are."""
    pick = np.random.default_rng([seed, 8]).choice(len(mentions), min(queries, len(mentions)),
                                                   replace=False)
    target, target_cos = oracle_curve(entities, mentions[pick], seed)
    best = None
    self.query_in_leaf = QUERY_IN_LEAF
    for bases, leaves, scale in FIT_GRID:
      self.num_bases, self.query_leaves, self.query_noise_scale = (float(bases), float(leaves),
                                                                   scale)
      generated = Fitted(self, len(entities), seed=seed)
      curve, cos = oracle_curve(generated.all(), generated.queries(len(pick))[0], seed)
      error = float((np.log(curve / target) ** 2).sum() +
                    (((cos - target_cos) / COSINE_TOLERANCE) ** 2).sum())
      if best is None or error < best[0]:
        best = (error, (float(bases), float(leaves), scale))
    return best[1]

  def save(self, path: str) -> None:
    import os
    tmp = path + ".tmp.npz"
    np.savez(tmp, **dataclasses.asdict(self))
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> "FittedParams":
    with np.load(path) as f:
      values = {k: f[k] for k in f.files}
    return cls(**{k: (float(v) if v.ndim == 0 else v) for k, v in values.items()})

  def summary(self) -> Dict[str, float]:
    def scale(factor):   # root mean square length of a draw: sqrt(trace of the covariance)
      return float(np.sqrt((factor.astype(np.float64) ** 2).sum()))
    spectrum = self.point_spectrum.astype(np.float64)
    return {"mean_norm": float(np.linalg.norm(self.mean)), "topic_scale": scale(
        self.topic_factor), "leaf_scale": float(np.sqrt(self.leaf_spectrum.sum())),
        "topic_rank": len(self.leaf_spectrum),
        "point_scale": float(np.sqrt(spectrum.sum())),
        "point_top10_share": float(spectrum[:10].sum() / spectrum.sum()),
        "query_scale": scale(self.query_factor), "query_in_leaf": self.query_in_leaf,
        "query_shift_norm": float(np.linalg.norm(self.query_shift)),
        "leaf_size": self.leaf_size, "leaves_per_topic": self.leaves_per_topic,
        "leaf_spread": self.leaf_spread, "topic_spread": self.topic_spread,
        "popularity_spread": self.popularity_spread, "num_bases": self.num_bases,
        "query_noise_scale": self.query_noise_scale, "query_leaves": self.query_leaves}


def _neighbour_cosines(points, data):
  """Median cosine of the 10th and 100th nearest other point [2] (points are rows of data)."""
  scores = top_k(points, data, 101)[1][:, 1:]
  return np.array([np.median(scores[:, 9]), np.median(scores[:, 99])])


def _draw_bases(rng, shape_factor: np.ndarray, rank: int, count: int = NUM_BASES) -> np.ndarray:
  """count orthonormal bases [count, rank, D], their directions drawn from the pooled shape."""
  dim = len(shape_factor)
  out = np.empty((count, rank, dim), np.float32)
  for b in range(count):
    q, _ = np.linalg.qr(shape_factor @ rng.standard_normal((dim, rank), dtype=np.float32))
    out[b] = q.T
  return out


def _subspace_noise(rng, labels, bases, leaf_basis, spectrum) -> np.ndarray:
  """[n, D]: each row's noise along its leaf's basis, with variances spectrum [R]."""
  z = rng.standard_normal((len(labels), len(spectrum)), dtype=np.float32) * np.sqrt(spectrum)
  out = np.empty((len(labels), bases.shape[2]), np.float32)
  which = leaf_basis[labels]
  order = np.argsort(which, kind="stable")
  bounds = np.concatenate([[0], np.cumsum(np.bincount(which, minlength=len(bases)))])
  for b in range(len(bases)):
    rows = order[bounds[b]:bounds[b + 1]]
    if len(rows):
      out[rows] = z[rows] @ bases[b]
  return out


def _query_noise(params, rng, labels, bases, leaf_basis) -> np.ndarray:
  """A mention's offset from its leaf mean + shift: query_in_leaf of the Gaussian part's
  variance along the leaf's own directions, the rest Gaussian."""
  gaussian = rng.standard_normal((len(labels), len(params.mean)), dtype=np.float32) @ \
      params.query_factor.T
  total = float((params.query_factor.astype(np.float64) ** 2).sum())
  spectrum = params.point_spectrum * (total / float(params.point_spectrum.sum()))
  inside = _subspace_noise(rng, labels, bases, leaf_basis, spectrum)
  return params.query_noise_scale * (math.sqrt(params.query_in_leaf) * inside +
                                     math.sqrt(1 - params.query_in_leaf) * gaussian)


class ShardedData:
  """Rows [n, D] served in generation shards of shard_size: subclasses define shard(i) ->
  (vectors, labels), and set n, shard_size, num_shards."""

  def shards(self):
    for i in range(self.num_shards):
      yield self.shard(i)[0]

  def id_shards(self):
    """(ids "E<row>", vectors) per shard, the form mel's builders take."""
    for i, vectors in enumerate(self.shards()):
      yield [f"E{i * self.shard_size + j}" for j in range(len(vectors))], vectors

  def all(self) -> np.ndarray:
    return np.concatenate(list(self.shards()))


def _lognormal_weights(rng, count: int, spread: float) -> np.ndarray:
  w = np.exp(spread * rng.standard_normal(count))
  return w / w.sum()


class Fitted(ShardedData):
  """n entity vectors [n, D] from FittedParams, shard i a pure function of (seed, n, i); the
  interface of bench/retrieval.py's Synthetic (shard, shards, id_shards, all, labels, queries,
  centers: the leaves, a true partition for the oracle)."""

  def __init__(self, params: FittedParams, n: int, seed: int = 0,
               shard_size: int = GEN_SHARD):
    self.params, self.n, self.seed, self.shard_size = params, n, seed, shard_size
    self.dim = len(params.mean)
    self.num_shards = math.ceil(n / shard_size)
    rng = np.random.default_rng([seed, n, 2**31])
    num_leaves = max(1, round(n / params.leaf_size))
    num_topics = max(1, round(num_leaves / params.leaves_per_topic))
    topic_of_leaf = rng.choice(num_topics, size=num_leaves,
                               p=_lognormal_weights(rng, num_topics, params.topic_spread))
    topics = params.mean + self._noise(rng, num_topics, params.topic_factor)
    topic_bases = _draw_bases(rng, params.leaf_factor, len(params.leaf_spectrum))
    topic_basis = rng.integers(len(topic_bases), size=num_topics)
    self.leaf_means = topics[topic_of_leaf] + _subspace_noise(
        rng, topic_of_leaf, topic_bases, topic_basis, params.leaf_spectrum)
    del topics
    self.topic_of_leaf = topic_of_leaf
    self.leaf_weights = _lognormal_weights(rng, num_leaves, params.leaf_spread)
    popularity = _lognormal_weights(rng, num_leaves, params.popularity_spread)
    self.query_weights = self.leaf_weights * popularity / (self.leaf_weights * popularity).sum()
    self.bases = _draw_bases(rng, params.shape_factor, len(params.point_spectrum),
                             int(params.num_bases))
    self.leaf_basis = rng.integers(len(self.bases), size=num_leaves)
    self.num_clusters = num_leaves
    self.centers = normalize(self.leaf_means)

  def _noise(self, rng, count, factor):
    return rng.standard_normal((count, self.dim), dtype=np.float32) @ factor.T

  def _count(self, i: int) -> int:
    return min(self.shard_size, self.n - i * self.shard_size)

  @staticmethod
  def _draw_labels(rng, count, weights):
    return np.minimum(np.searchsorted(np.cumsum(weights), rng.random(count)),
                      len(weights) - 1)

  def shard(self, i: int):
    """(vectors float32 [m, D], leaf labels int32 [m]) of generation shard i."""
    rng = np.random.default_rng([self.seed, self.n, i])
    labels = self._draw_labels(rng, self._count(i), self.leaf_weights)
    x = self.leaf_means[labels] + _subspace_noise(rng, labels, self.bases, self.leaf_basis,
                                                  self.params.point_spectrum)
    return normalize(x).astype(np.float32), labels.astype(np.int32)

  def labels(self) -> np.ndarray:
    return np.concatenate([
        self._draw_labels(np.random.default_rng([self.seed, self.n, i]), self._count(i),
                          self.leaf_weights) for i in range(self.num_shards)]).astype(np.int32)

  def queries(self, q: int):
    """(mention vectors [q, D], their leaves [q])."""
    rng = np.random.default_rng([self.seed, self.n, 2**31 + 1])
    labels = self._draw_labels(rng, q, self.query_weights)
    x = self.leaf_means[labels] + self.params.query_shift + _query_noise(
        self.params, rng, labels, self.bases, self.leaf_basis)
    others = int(self.params.query_leaves) - 1
    if others > 0:   # the mean of its leaf's and `others` more leaves' of the same topic
      order = np.argsort(self.topic_of_leaf, kind="stable")
      counts = np.bincount(self.topic_of_leaf)
      starts = np.concatenate([[0], np.cumsum(counts)])[self.topic_of_leaf[labels]]
      picked = order[starts[:, None] + (rng.random((q, others)) *
                                        counts[self.topic_of_leaf[labels]][:, None]).astype(int)]
      x += (self.leaf_means[picked].sum(axis=1) - others * self.leaf_means[labels]) / (others + 1)
    return normalize(x).astype(np.float32), labels.astype(np.int32)


class Real(ShardedData):
  """The first n of a seeded permutation of real entity vectors, with real mention vectors as
  queries; the same interface as Fitted. Its partition (centers, labels), made on first use, is
  spherical k-means with 4 sqrt(n) leaves, mel's ScaNN rule, trained on up to 128 points a
  leaf."""

  def __init__(self, entities: np.ndarray, mentions: np.ndarray, n: int, seed: int = 0,
               shard_size: int = GEN_SHARD):
    if n > len(entities):
      raise ValueError(f"{n:,} real vectors asked for; the real data set has {len(entities):,} "
                       "(bench/real_embeddings.py --entities)")
    rng = np.random.default_rng([seed, 7])
    self.data = entities[rng.permutation(len(entities))[:n]]
    self.mentions = mentions[rng.permutation(len(mentions))]
    self.n, self.seed, self.shard_size = n, seed, shard_size
    self.dim = entities.shape[1]
    self.num_shards = math.ceil(n / shard_size)
    self.num_clusters = max(1, round(4 * math.sqrt(n)))
    self._partition = None

  @property
  def centers(self) -> np.ndarray:
    return self._partitioned()[0]

  def _partitioned(self):
    if self._partition is None:
      self._partition = spherical_kmeans(self.data, self.num_clusters, seed=self.seed,
                                         sample=128 * self.num_clusters)
    return self._partition

  def shard(self, i: int):
    s = slice(i * self.shard_size, (i + 1) * self.shard_size)
    return self.data[s], self.labels()[s]

  def labels(self) -> np.ndarray:
    return self._partitioned()[1].astype(np.int32)

  def shards(self):
    for i in range(self.num_shards):
      yield self.data[i * self.shard_size:(i + 1) * self.shard_size]

  def all(self) -> np.ndarray:
    return self.data

  def queries(self, q: int):
    if q > len(self.mentions):
      raise ValueError(f"{q:,} queries asked for; the real data set has {len(self.mentions):,}")
    queries = np.ascontiguousarray(self.mentions[:q])
    return queries, assign(queries, self.centers).astype(np.int32)
