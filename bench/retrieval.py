"""Benchmark: mel's ScaNN index against FAISS (IVF-PQ, IVF-PQ + RefineFlat, HNSW) and exact search.

  python bench/retrieval.py [--data fitted|real|synthetic[,...]] [--sizes 1M,5M,20M]
                            [--queries 1000] [--methods all] [--json results.json]
                            [--real_dir out/retrieval_real] [--work_dir /tmp/mel-bench-retrieval]

Data (--data; several run one after the other):
  real       the demo model's real entity and mention vectors (384-d), made from the shared
             dumps by `python bench/real_embeddings.py --model_dir out/models/demo_f/round1`
             (not committed); sizes up to their count (120k), a seeded random subset below it.
             Queries are real mentions.
  fitted     (default) a two-level Gaussian mixture fitted to the real vectors
             (bench/embedding_structure.py: topics, leaves, full covariances, lognormal sizes,
             mentions drawn around the leaves with the mention tower's own shift and spread),
             any size; `--data real,fitted` at the same sizes prints the fit: recall of both at
             every index setting, and the largest gap.
  synthetic  the earlier worst case: N/1000 random centres on the 300-d sphere, noise 0.12 per
             dimension, queries drawn the same way; near uniform.
Every data set is generated shard by shard, deterministically from (seed, N, shard index), so the
exact top-100 is computed by streaming the same shards (20M x 384 float32 = 31 GB never sits in
memory) and each build regenerates what it needs. The same pass measures the data's structure:
LID (maximum likelihood, k = 20 and 100) and the cosine of the 1st/10th/100th neighbour of 500
entities, the mentions' neighbour cosines, and the share of the data an oracle partition scans
for recall@100 0.9 / 0.95 / 0.99 (leaves probed nearest centre first, whole leaves scanned
exactly: a floor for any IVF/tree index with those leaves). Its leaves: the generator's own
(fitted: ~50 entities a leaf; synthetic: its clusters), or spherical k-means with mel's 4 sqrt(N)
leaves on real vectors.

Each build runs in a child process (peak build memory = its RSS high-water mark, VmHWM, data
generation included) and saves the index under --work_dir; each serving measurement runs in a
fresh child that loads the index (serving RSS = VmRSS after load). Per search setting: recall@10
and recall@100 against the exact top-100 (k = 100), single-query p50/p99 latency (one query per
call, k = 100), and batched QPS (all queries in one call, both cores). Methods:

  exact              numpy brute force in memory (mel's BruteForceIndex); needs N x 4D bytes
  scann              mel's ScaNN index as mel.retrieval.build_index makes it (retrieval.build_streaming:
                     one tree trained on a global sample, every row inserted), float32 reorder
  scann_int8         the same with int8 reordering (mel's choice for >= 1M vectors)
  faiss_ivfpq        FAISS IVF{nlist},PQ{D/2}x4fs (4-bit fast scan, ScaNN AH's analogue)
  faiss_ivfpq_refine the same + RefineFlat (exact float32 rerank of k_factor x k candidates)
  faiss_ivfpq_sq8    the same + Refine(SQ8): rerank from int8 vectors, ScaNN int8's memory
  faiss_ivfpq8_refine IVF{nlist},PQ{D/4} (classic 8-bit PQ, the same bytes per vector) + RFlat
  hnsw               FAISS HNSWFlat M=32
  ablation           partition quality, one change at a time on scann_int8 (at the largest
                     size <= 5M given, or --ablation_size): independent-shards (the first
                     design: 2M in-memory shards, each its own tree), before (one global tree
                     with ScaNN's defaults: 100k k-means sample, generic k-means, 12
                     iterations, no spilling), + large sample (200 per leaf), + spherical,
                     + 25 iterations, + SOAR spilling, all (+ 25 iterations + SOAR); these
                     use mel's earlier 2 sqrt(N) leaves. +leaves: mel's current rule (4
                     sqrt(N) leaves, 128 sample points per leaf up to 2M). +4dims: that rule
                     with 4 dims per AH block (D/4 blocks, not D/2).

Results go to --json under "sizes" (synthetic), "sizes_real" and "sizes_fitted"; "fit" holds
the fitted generator's summary. faiss-cpu is a benchmark-only dependency: pip install -r
requirements-bench.txt.
The machine may be shared with other jobs: timings are wall clock on whatever cores are free.
"""
import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import pathlib
import platform
import shutil
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from embedding_structure import (ShardedData, knn_cosines, lid_mle, oracle_shares,  # noqa: E402
                                 top_k)

DIM = 300
NOISE = 0.12
CLUSTER_SIZE = 1000
GEN_SHARD = 250_000
K = 100
METHODS = ("exact", "scann", "scann_int8", "faiss_ivfpq", "faiss_ivfpq_refine",
           "faiss_ivfpq_sq8", "faiss_ivfpq8_refine", "hnsw",
           "ablation")
# Methods that cannot serve beyond these sizes in ~20 GB (float32 vectors alone: N x 1.2 KB).
FLOAT_LIMIT = 6_000_000


# ---------------------------------------------------------------------------------------------
# data


class Synthetic(ShardedData):
  """Clustered unit vectors [n, DIM], shard i a pure function of (seed, n, i)."""

  def __init__(self, n: int, seed: int = 0, noise: float = NOISE, shard_size: int = GEN_SHARD):
    self.n, self.seed, self.noise, self.shard_size = n, seed, noise, shard_size
    self.dim = DIM
    self.num_clusters = max(1, n // CLUSTER_SIZE)
    rng = np.random.default_rng([seed, n, 2**31])
    centers = rng.standard_normal((self.num_clusters, DIM)).astype(np.float32)
    self.centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    self.num_shards = math.ceil(n / shard_size)

  def _count(self, i: int) -> int:
    return min(self.shard_size, self.n - i * self.shard_size)

  def _draw_labels(self, rng, count):
    return rng.integers(self.num_clusters, size=count)

  def _draw(self, rng, count):
    labels = self._draw_labels(rng, count)
    x = self.centers[labels]
    x += self.noise * rng.standard_normal((count, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, labels.astype(np.int32)

  def shard(self, i: int):
    """(vectors float32 [m, DIM], cluster labels int32 [m]) of generation shard i."""
    return self._draw(np.random.default_rng([self.seed, self.n, i]), self._count(i))

  def labels(self) -> np.ndarray:
    """Cluster label of every row [n], without drawing the vectors (_draw draws labels first)."""
    return np.concatenate([
        self._draw_labels(np.random.default_rng([self.seed, self.n, i]), self._count(i))
        for i in range(self.num_shards)]).astype(np.int32)

  def all(self) -> np.ndarray:
    out = np.empty((self.n, DIM), dtype=np.float32)
    for i in range(self.num_shards):
      out[i * self.shard_size:(i + 1) * self.shard_size] = self.shard(i)[0]
    return out

  def queries(self, q: int):
    return self._draw(np.random.default_rng([self.seed, self.n, 2**31 + 1]), q)


DATA_KINDS = ("fitted", "real", "synthetic")
_REAL = {}


def real_vectors(real_dir: str):
  """(entities, mentions) float32 of bench/real_embeddings.py's output, loaded once."""
  if real_dir not in _REAL:
    paths = [os.path.join(real_dir, f) for f in ("entities.npy", "mentions.npy")]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
      raise FileNotFoundError(
          f"{missing[0]} does not exist: make the real vectors first with `python "
          f"bench/real_embeddings.py --model_dir out/models/demo_f/round1 --output {real_dir}` "
          "(the model dir comes from `bash scripts/demo.sh`)")
    _REAL[real_dir] = tuple(np.load(p) for p in paths)
  return _REAL[real_dir]


def fitted_params(real_dir: str):
  """The generator fitted to the real vectors (cached in real_dir/fit.npz, refitted when the
  vectors are newer)."""
  from embedding_structure import FittedParams
  path = os.path.join(real_dir, "fit.npz")
  entities, mentions = real_vectors(real_dir)
  source = os.path.join(real_dir, "entities.npy")
  if os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(source):
    return FittedParams.load(path)
  started = time.perf_counter()
  params = FittedParams.fit(entities, mentions)
  params.save(path)
  print(f"  fitted the generator to {len(entities):,} entity and {len(mentions):,} mention "
        f"vectors in {time.perf_counter() - started:.0f} s -> {path}", flush=True)
  return params


def make_data(data, n: int):
  """data = (kind, real_dir) -> the data set of n vectors (Synthetic's interface)."""
  kind, real_dir = data
  if kind == "synthetic":
    return Synthetic(n)
  from embedding_structure import Fitted, Real
  if kind == "real":
    return Real(*real_vectors(real_dir), n)
  if kind == "fitted":
    return Fitted(fitted_params(real_dir), n)
  raise ValueError(f"unknown data {kind!r}; expected one of {DATA_KINDS}")


STRUCTURE_SAMPLE = 500   # entities whose neighbours give the LID and the entity kNN profile


def exact_and_structure(gen, queries: np.ndarray):
  """Streams every shard once: (exact top-K rows of the queries int64 [Q, K], structure dict).

  The same pass finds the K + 1 nearest entities of STRUCTURE_SAMPLE entities (from the first
  shard; rows are i.i.d., or a random subset for real data) for their LID and kNN cosines.
  """
  best, last = None, None
  for i, vectors in enumerate(gen.shards()):
    if i == 0:
      sample = vectors[:STRUCTURE_SAMPLE].copy()
      both = np.concatenate([queries, sample])
    best = top_k(both, vectors, K + 1, offset=i * gen.shard_size, best=best)
    last = vectors
  rows, scores = best
  q = len(queries)
  # an entity's own row is its first hit (cosine 1); drop it
  entity_scores = scores[q:, 1:]
  return rows[:q, :K], {
      "lid@20": float(np.median(lid_mle(entity_scores, 20))),
      "lid@100": float(np.median(lid_mle(entity_scores, 100))),
      "entity_knn": knn_cosines(entity_scores),
      "mention_knn": knn_cosines(scores[:q]),
      "mean_pair_cosine": float(np.mean(sample[:200] @ last[-2000:].T)),
  }


def describe_structure(s: dict) -> str:
  oracle = s["oracle_scan_share"]
  return (f"LID {s['lid@20']:.1f} (k 20) / {s['lid@100']:.1f} (k 100); mention->entity cosine "
          f"@1/10/100 {s['mention_knn']['cos@1']:.3f}/{s['mention_knn']['cos@10']:.3f}/"
          f"{s['mention_knn']['cos@100']:.3f}, entity->entity {s['entity_knn']['cos@1']:.3f}/"
          f"{s['entity_knn']['cos@10']:.3f}/{s['entity_knn']['cos@100']:.3f}, random pair "
          f"{s['mean_pair_cosine']:.3f}; {s['own_leaf_share_top100']:.1%} of a query's exact "
          f"top-100 in its own leaf of {s['leaves']:,}; an oracle partition with those leaves "
          f"scans {oracle['0.9']:.1%} / {oracle['0.95']:.1%} / {oracle['0.99']:.1%} of the data "
          "for recall@100 0.9 / 0.95 / 0.99")


# ---------------------------------------------------------------------------------------------
# measuring


def memory_status():
  """(VmRSS, VmHWM) of this process in bytes."""
  out = {}
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(("VmRSS:", "VmHWM:")):
        key, value = line.split(":")
        out[key] = int(value.split()[0]) * 1024
  return out["VmRSS"], out["VmHWM"]


def busy_cores_seconds():
  """(CPU-seconds busy on the whole machine, CPU-seconds of this process) so far."""
  with open("/proc/stat") as f:
    fields = [int(x) for x in f.readline().split()[1:]]
  ticks = os.sysconf("SC_CLK_TCK")
  t = os.times()
  return (sum(fields[:8]) - fields[3] - fields[4]) / ticks, t.user + t.system


def wait_for_quiet(limit: float, threshold: float = 0.25) -> float:
  """Waits (up to limit s) until other processes use < threshold cores; returns their use."""
  deadline = time.time() + limit
  while True:
    before = busy_cores_seconds()[0]
    time.sleep(3.0)
    others = (busy_cores_seconds()[0] - before) / 3.0
    if others < threshold or time.time() >= deadline:
      return others
    time.sleep(5.0)


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
  hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
  return float(np.mean(hits)) / k


def measure(search, queries, truth, latency_queries: int, batch_repeats: int = 1) -> dict:
  """search(queries [Q, D]) -> rows [Q, K]; recall, single-query latency, batched QPS."""
  search(queries[:min(50, len(queries))])  # warm-up
  machine_before, own_before = busy_cores_seconds()
  wall_before = time.perf_counter()
  started = time.perf_counter()
  for _ in range(batch_repeats):
    rows = search(queries)
  batch_seconds = (time.perf_counter() - started) / batch_repeats
  latencies = []
  for i in range(min(latency_queries, len(queries))):
    started = time.perf_counter()
    search(queries[i:i + 1])
    latencies.append(time.perf_counter() - started)
  latencies = np.array(latencies) * 1000
  machine_after, own_after = busy_cores_seconds()
  others = ((machine_after - machine_before) - (own_after - own_before)) / (
      time.perf_counter() - wall_before)
  return {"other_processes_cores": max(0.0, others), "recall@10": recall(rows, truth, 10),
          "recall@100": recall(rows, truth, 100),
          "p50_ms": float(np.percentile(latencies, 50)),
          "p99_ms": float(np.percentile(latencies, 99)),
          "latency_queries": len(latencies), "qps": len(queries) / batch_seconds}


def run_child(fn, *args):
  """fn(*args) in a fresh spawned process (own RSS high-water mark); result or an error dict."""
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
    try:
      return pool.submit(fn, *args).result()
    except concurrent.futures.process.BrokenProcessPool:
      return {"error": "the child process died (killed: most likely out of memory)"}
    except Exception as e:  # a failure in one method must not lose the others' figures
      return {"error": f"{type(e).__name__}: {e}"}


# ---------------------------------------------------------------------------------------------
# builds (run in children)


def scann_params(method: str, n: int, variant: str = "") -> dict:
  """Overrides of mel's scann_params_for for a method / ablation variant at n vectors."""
  params = {"reorder_dtype": "int8" if method != "scann" else "float32"}
  # mel's rule before 2026-12-02: 2 sqrt(N) leaves, 200 sample points per leaf. The partition
  # variants below were measured from it; "+leaves" is mel's current rule (4 sqrt(N)).
  leaves2 = round(2 * math.sqrt(n))
  earlier = {"num_leaves": leaves2, "num_leaves_to_search": math.ceil(0.03 * leaves2),
             "training_sample_size": min(n, max(100_000, 200 * leaves2))}
  before = {**earlier, "training_sample_size": 100_000, "spherical": False,
            "training_iterations": 12, "soar_lambda": None}
  variants = {
      "before": before,
      "+sample": {**before, "training_sample_size": earlier["training_sample_size"]},
      "+spherical": {**before, "spherical": True},
      "+iterations": {**before, "training_iterations": 25},
      "+soar": {**before, "soar_lambda": 1.5, "overretrieve_factor": 2.0},
      "all": {**earlier, "training_iterations": 25, "soar_lambda": 1.5,
              "overretrieve_factor": 2.0},
      "+leaves": {},  # mel's current rule: the earlier one with twice the leaves
      # mel's current rule with half the AH blocks: half the codes, half ScaNN's save overhead
      "+4dims": {"dims_per_block": 4},
      "independent-shards": {},  # mel's parameters, but shards built apart (see build_child)
      "": {},
  }
  params.update({k: v for k, v in variants[variant].items() if v is not None})
  return params


def faiss_nlist(n: int) -> int:
  # FAISS's guidance is 4-16 sqrt(N) lists; the low end, a power of two, keeps the flat coarse
  # quantizer's training and assignment affordable on 2 cores.
  return 2 ** round(math.log2(4 * math.sqrt(n)))


def build_child(data, method: str, n: int, path: str, shard_size: int, variant: str = ""
                ) -> dict:
  from mel import retrieval
  gen = make_data(data, n)
  dim = gen.dim
  started = time.perf_counter()
  machine_before, own_before = busy_cores_seconds()
  out = {}
  if method in ("scann", "scann_int8") and variant == "independent-shards":
    # The first design: in-memory shards of at most 2M (mel's brute-force shard budget), each
    # with its own tree trained on its own rows.
    num_shards = math.ceil(n / retrieval.default_shard_size(dim))
    chunks = retrieval.rechunk(gen.id_shards(), math.ceil(n / num_shards))
    manifest = retrieval.build_sharded(chunks, path, kind="scann",
                                       params=scann_params(method, n, variant), total=n)
  elif method in ("scann", "scann_int8"):
    # mel's streaming build: one tree trained on a sample spread over all n rows, shared by
    # the index shards (of at most shard_size), each filled by insertion in turn; the
    # generator is re-read (regenerated) for each pass, so the float32 data never sit in
    # memory at once.
    manifest = retrieval.build_streaming(gen.id_shards, path, n, kind="scann",
                                         params=scann_params(method, n, variant),
                                         shard_size=shard_size)
  if method in ("scann", "scann_int8"):
    first = retrieval.read_manifest(os.path.join(path, manifest["shards"][0]["path"]))
    out["params"] = first["params"]
    out["shards"] = len(manifest["shards"])
  elif method.startswith("faiss_ivfpq"):
    import faiss
    nlist = faiss_nlist(n)
    codes = f"PQ{dim // 4}" if method == "faiss_ivfpq8_refine" else f"PQ{dim // 2}x4fs"
    base = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    train = []
    need = min(n, 64 * nlist)  # the data are i.i.d.: a prefix is a random sample
    for vectors in gen.shards():
      train.append(vectors[:need - sum(map(len, train))])
      if sum(map(len, train)) >= need:
        break
    base.train(np.concatenate(train))
    del train
    out["params"] = {"factory": f"IVF{nlist},{codes}", "train_points": need}
    # RefineFlat keeps the float32 vectors beside the codes and reranks k_factor x k of them;
    # Refine(SQ8) keeps them as int8 (trained per dimension on the same sample).
    if method == "faiss_ivfpq_sq8":
      refine = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
      refine.train(next(gen.shards())[:need])   # per-dimension ranges: one shard is plenty
      index = faiss.IndexRefine(base, refine)
      out["params"]["factory"] += ",Refine(SQ8)"
    elif method == "faiss_ivfpq":
      index = base
    else:
      index = faiss.IndexRefineFlat(base)
      out["params"]["factory"] += ",RFlat"
    for vectors in gen.shards():
      index.add(vectors)
    faiss.write_index(index, path)
  elif method == "hnsw":
    import faiss
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    for vectors in gen.shards():
      index.add(vectors)
    faiss.write_index(index, path)
    out["params"] = {"M": 32, "efConstruction": 80}
  else:
    raise ValueError(method)
  out["build_s"] = time.perf_counter() - started
  out["build_peak_bytes"] = memory_status()[1]
  machine_after, own_after = busy_cores_seconds()
  out["other_processes_cores"] = max(0.0, ((machine_after - machine_before) -
                                           (own_after - own_before)) / out["build_s"])
  return out


# ---------------------------------------------------------------------------------------------
# serving (run in children)


def serve_child(data, method: str, n: int, path: str, queries, truth, latency_queries: int,
                settings, quiet_wait: float = 0.0) -> dict:
  rss_before = memory_status()[0]
  started = time.perf_counter()
  if quiet_wait:
    wait_for_quiet(quiet_wait)  # other jobs on the 2 cores skew latency and QPS
  started = time.perf_counter()
  if method == "exact":
    from mel import retrieval
    gen = make_data(data, n)
    index = retrieval.BruteForceIndex.build([f"E{i}" for i in range(n)], gen.all())
    search = lambda q, _: index.search(q, K)[0]  # noqa: E731
  elif method.startswith("scann") or method == "ablation":
    from mel import retrieval
    index = retrieval.load_index(path, verify=False)
    to_generator_row = None  # set after the RSS reading below

    def search(q, setting):
      # index rows follow the streaming build's order (its sample first): map them to the
      # generator's rows (ids are "E<row>") to compare with the exact top-100
      rows = index.search(q, K, leaves_to_search=setting[0], reorder=setting[1])[0]
      return np.where(rows >= 0, to_generator_row[np.maximum(rows, 0)], -1)
  else:
    import faiss
    index = faiss.read_index(path)

    def search(q, setting):
      if method == "hnsw":
        index.hnsw.efSearch = setting
      elif method == "faiss_ivfpq":
        index.nprobe = setting[0]
      else:
        faiss.extract_index_ivf(index.base_index).nprobe = setting[0]
        index.k_factor = setting[1]
      return index.search(q, K)[1]
  load_s = time.perf_counter() - started
  rss = memory_status()[0]
  if method.startswith("scann") or method == "ablation":
    to_generator_row = np.fromiter((int(i[1:]) for i in index.ids), np.int64, len(index))
  out = {"load_s": load_s, "serving_rss_bytes": rss, "process_base_rss_bytes": rss_before,
         "sweep": []}
  for setting in settings:
    result = measure(lambda q: search(q, setting), queries, truth, latency_queries)
    result["setting"] = setting
    out["sweep"].append(result)
    print(f"    {method} {setting}: " + ", ".join(
        f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float)), flush=True)
  out["peak_serving_bytes"] = memory_status()[1]
  return out


def settings_for(method: str, n: int, build: dict):
  if method == "exact":
    return [None]
  if method.startswith("scann") or method == "ablation":
    # (leaves searched per shard, candidates reordered per shard)
    leaves = build["params"].get("num_leaves", 1)
    # int8 reordering of 4,000 candidates costs ~1 ms: it shows what the AH scores lose.
    fractions = (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2) + ((0.3,) if n >= 1_000_000 else ())
    return [(l, r) for f in fractions for l in [max(1, round(f * leaves))]
            for r in (400, 1000, 4000)]
  if method == "hnsw":
    return [64, 128, 256, 512, 1024]
  nlist = faiss_nlist(n)
  # Past 4%: the fitted data (like the real vectors) need ~20% of the lists for 0.95.
  probes = sorted({max(1, round(f * nlist)) for f in (0.005, 0.01, 0.02, 0.04, 0.08, 0.12, 0.2,
                                                       0.3)})
  if method == "faiss_ivfpq":
    return [(p, None) for p in probes]
  # k_factor 10 reranks 1000 candidates for k = 100, as ScaNN's reorder 1000 does
  return [(p, f) for p in probes for f in (4, 10)]


# ---------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
  text = text.strip().upper()
  scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
  return int(float(text.rstrip("KM")) * scale)


def size_name(n: int) -> str:
  return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"


def best_setting(sweep, target=0.95):
  """The fastest (QPS) setting at recall@100 >= target, else the most accurate one."""
  ok = [s for s in sweep if s["recall@100"] >= target]
  if ok:
    return max(ok, key=lambda s: s["qps"])
  return max(sweep, key=lambda s: s["recall@100"])


def fits(method: str, n: int, dim: int = DIM) -> str:
  """'' if the method can run at n here, else why not."""
  if method in ("exact", "scann", "faiss_ivfpq_refine", "faiss_ivfpq8_refine", "hnsw") and \
      n * dim > FLOAT_LIMIT * DIM:
    return (f"float32 vectors alone are {n * dim * 4 / 1e9:.0f} GB (machine: 24 GB, other "
            "jobs included)")
  return ""


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", default="fitted",
                      help=f"comma list of {','.join(DATA_KINDS)}: the generator fitted to real "
                      "vectors, the real vectors themselves (sizes up to their count), the "
                      "near-uniform synthetic worst case")
  parser.add_argument("--real_dir", default=str(ROOT / "out/retrieval_real"),
                      help="bench/real_embeddings.py's output")
  parser.add_argument("--sizes", default="1M,5M,20M")
  parser.add_argument("--queries", type=int, default=1000)
  parser.add_argument("--latency_queries", type=int, default=0,
                      help="single-query timings per setting (default: all queries; exact: 50)")
  parser.add_argument("--methods", default="all", help=f"comma list of {','.join(METHODS)}; "
                      "none: only the exact top-100 and the data's structure")
  parser.add_argument("--ablation_size", default="", help="size for the ablation (default: "
                      "the largest of --sizes that is at most 5M)")
  parser.add_argument("--ablation_variants",
                      default="independent-shards,before,+sample,+spherical,+iterations,+soar,"
                      "all,+leaves,+4dims")
  parser.add_argument("--scann_shard_size", type=int, default=0,
                      help="max vectors per ScaNN index shard (default: mel's, 5M at 300-d)")
  parser.add_argument("--json", default="", help="write (and update) all figures here")
  parser.add_argument("--work_dir", default="/tmp/mel-bench-retrieval")
  parser.add_argument("--resume", action="store_true",
                      help="skip (size, method) pairs already in --json without an error")
  parser.add_argument("--delete_indexes", action="store_true",
                      help="delete each index after measuring it (default: keep for --serve_only)")
  parser.add_argument("--serve_only", action="store_true",
                      help="re-measure serving of the indexes kept in --work_dir (build figures "
                      "from --json), e.g. once the machine is quiet")
  parser.add_argument("--quiet_wait", type=float, default=120.0,
                      help="before serving, wait up to this long for other jobs to go quiet")
  args = parser.parse_args(argv)
  from mel import retrieval
  methods = (METHODS if args.methods == "all" else () if args.methods == "none"
             else tuple(args.methods.split(",")))
  unknown = [m for m in methods if m not in METHODS]
  if unknown:
    parser.error(f"--methods {','.join(unknown)}: expected some of {','.join(METHODS)} or none")
  sizes = [parse_size(s) for s in args.sizes.split(",")]
  ablation_size = (parse_size(args.ablation_size) if args.ablation_size
                   else max([s for s in sizes if s <= 5_000_000] or [min(sizes)]))
  kinds = args.data.split(",")
  for kind in kinds:
    if kind not in DATA_KINDS:
      parser.error(f"--data {kind}: expected one of {', '.join(DATA_KINDS)}")
  try:
    import faiss
    faiss_version = faiss.__version__
  except ImportError:
    faiss_version = None
    if any(m.startswith("faiss") or m == "hnsw" for m in methods):
      print("faiss is not installed: the FAISS rows are skipped. Install the benchmark's "
            "dependency with: pip install -r requirements-bench.txt", file=sys.stderr)
      methods = tuple(m for m in methods if not (m.startswith("faiss") or m == "hnsw"))
  os.makedirs(args.work_dir, exist_ok=True)
  results = {}
  if args.json and os.path.exists(args.json):
    with open(args.json) as f:
      results = json.load(f)
  results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "faiss": faiss_version, "k": K, "queries": args.queries}

  def save():
    if args.json:
      tmp = args.json + ".tmp"
      with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
      os.replace(tmp, args.json)

  for kind, n in [(kind, n) for kind in kinds for n in sizes]:
    data = (kind, args.real_dir)
    name = size_name(n)
    sizes_key = "sizes" if kind == "synthetic" else f"sizes_{kind}"
    entry = results.setdefault(sizes_key, {}).setdefault(name, {"n": n, "methods": {}})
    gen = make_data(data, n)
    if kind == "fitted":
      results["fit"] = gen.params.summary()
    shard_size = args.scann_shard_size or retrieval.default_shard_size(gen.dim, "scann")
    queries, query_labels = gen.queries(args.queries)
    tag = kind
    if kind == "fitted":   # exact results of another fit are stale
      from mel.files import sha256_file
      tag += "-" + sha256_file(os.path.join(args.real_dir, "fit.npz"))[:10]
    truth_path = os.path.join(args.work_dir, f"truth-{tag}-{name}-{args.queries}.npz")
    if os.path.exists(truth_path):
      with np.load(truth_path) as f:
        truth, structure = f["rows"], json.loads(str(f["structure"]))
    else:
      started = time.perf_counter()
      truth, structure = exact_and_structure(gen, queries)
      structure["exact_streaming_s"] = time.perf_counter() - started
      np.savez(truth_path, rows=truth, structure=json.dumps(structure))
    labels = gen.labels()
    structure["own_leaf_share_top100"] = float((labels[truth] == query_labels[:, None]).mean())
    structure["leaves"] = int(gen.num_clusters)
    structure["oracle_scan_share"] = oracle_shares(queries, gen.centers, labels, truth)
    del labels
    entry["structure"] = structure
    print(f"== {kind} N = {name}, {gen.dim}-d: {describe_structure(structure)}", flush=True)
    save()
    runs = []
    for method in methods:
      if method == "ablation":
        if n == ablation_size:
          runs += [("ablation", v) for v in args.ablation_variants.split(",")]
      else:
        runs.append((method, ""))
    for method, variant in runs:
      key = f"{method}:{variant}" if variant else method
      path = os.path.join(args.work_dir, f"{kind}-{name}-{key.replace(':', '-').replace('+', '')}")
      if args.serve_only:
        record = entry["methods"].get(key, {})
        if "build" in record and "error" not in record["build"] and (
            os.path.exists(path) or method == "exact"):
          print(f"  {key}: serving again", flush=True)
          record["serve"] = run_child(
              serve_child, data, method, n, path, queries, truth,
              args.latency_queries or (50 if method == "exact" else args.queries),
              settings_for(method, n, record["build"]), args.quiet_wait)
          save()
        continue
      if args.resume and key in entry["methods"] and "error" not in entry["methods"][key]:
        continue
      why = fits(method, n, gen.dim)
      if why:
        entry["methods"][key] = {"skipped": why}
        print(f"  {key}: skipped: {why}", flush=True)
        save()
        continue
      print(f"  {key}: building", flush=True)
      shutil.rmtree(path, ignore_errors=True)
      if os.path.isfile(path):
        os.remove(path)
      if method == "exact":
        build = {"build_s": 0.0, "params": {}}
      else:
        build = run_child(build_child, data, "scann_int8" if method == "ablation" else method, n,
                          path, shard_size, variant)
      record = {"build": build}
      if "error" not in build:
        print(f"  {key}: built in {build['build_s']:.0f}s, peak "
              f"{build.get('build_peak_bytes', 0) / 1e9:.2f} GB; serving", flush=True)
        latency_queries = args.latency_queries or (50 if method == "exact" else args.queries)
        record["index_bytes"] = (retrieval.index_bytes(path) if os.path.isdir(path) else
                                 os.path.getsize(path) if os.path.exists(path) else 0)
        record["serve"] = run_child(serve_child, data, method, n, path, queries, truth,
                                    latency_queries, settings_for(method, n, build),
                                    args.quiet_wait)
      else:
        print(f"  {key}: build failed: {build['error']}", flush=True)
      entry["methods"][key] = record
      save()
      if args.delete_indexes:
        shutil.rmtree(path, ignore_errors=True)
        if os.path.isfile(path):
          os.remove(path)
    print_table(entry, f"{kind} N = {name}")
  for name in results.get("sizes_real", {}):
    if name in results.get("sizes_fitted", {}):
      print_fit(results, name)
  return 0


def print_table(entry, title):
  print(f"\n{title}: {describe_structure(entry['structure'])}")
  print("| method | setting | build s | build peak GB | serving GB | recall@10 | recall@100 | "
        "p50 ms | p99 ms | QPS |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for key, record in entry["methods"].items():
    if "skipped" in record or "error" in record.get("build", {}) or \
        "error" in record.get("serve", {"error": 1}):
      why = record.get("skipped") or record.get("build", {}).get("error") or \
          record.get("serve", {}).get("error")
      print(f"| {key} | not run: {why} | | | | | | | | |")
      continue
    build, serve = record["build"], record["serve"]
    for s in [best_setting(serve["sweep"])]:
      print(f"| {key} | {s['setting']} | {build['build_s']:.0f} | "
            f"{build.get('build_peak_bytes', 0) / 1e9:.2f} | "
            f"{serve['serving_rss_bytes'] / 1e9:.2f} | {s['recall@10']:.3f} | "
            f"{s['recall@100']:.3f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | "
            f"{s['qps']:.0f} |")


def fit_rows(results, name):
  """(method, setting, real sweep point, fitted sweep point) at every setting both measured."""
  real = results["sizes_real"][name]["methods"]
  fitted = results["sizes_fitted"][name]["methods"]
  for key in real:
    a = {json.dumps(p["setting"]): p for p in real[key].get("serve", {}).get("sweep", [])}
    b = {json.dumps(p["setting"]): p for p in fitted.get(key, {}).get("serve", {}).get("sweep", [])}
    for setting in a:
      if setting in b:
        yield key, setting, a[setting], b[setting]


def print_fit(results, name):
  """Real against fitted data at equal settings: recall and latency, and the largest gap."""
  print(f"\nFit at N = {name}: real vs fitted, the same index settings")
  print("| method | setting | recall@100 real | fitted | diff | recall@10 real | fitted | "
        "p50 ms real | fitted |")
  print("|---|---|---|---|---|---|---|---|---|")
  worst = {}
  for key, setting, a, b in fit_rows(results, name):
    diff = b["recall@100"] - a["recall@100"]
    worst[key] = max(worst.get(key, 0.0), abs(diff), abs(b["recall@10"] - a["recall@10"]))
    print(f"| {key} | {setting} | {a['recall@100']:.3f} | {b['recall@100']:.3f} | {diff:+.3f} | "
          f"{a['recall@10']:.3f} | {b['recall@10']:.3f} | {a['p50_ms']:.2f} | "
          f"{b['p50_ms']:.2f} |")
  for key, gap in worst.items():
    print(f"  {key}: largest recall gap {gap:.3f} ({'within' if gap <= 0.02 else 'NOT within'} "
          "0.02)")


if __name__ == "__main__":
  sys.exit(main())
