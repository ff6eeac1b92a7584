"""Benchmark: mel's ScaNN index against FAISS (IVF-PQ, IVF-PQ + RefineFlat, HNSW) and exact search.

  python bench/retrieval.py [--sizes 1M,5M,20M] [--queries 1000] [--methods all]
                            [--json results.json] [--work_dir /tmp/mel-bench-retrieval]

Data: synthetic clustered unit vectors, 300-d. N/1000 cluster centres (random unit vectors);
each entity is a centre plus Gaussian noise (0.12 per dimension), normalised; queries are drawn
the same way. Generated shard by shard, deterministically from (seed, N, shard index), so the
exact top-100 is computed by streaming the same shards (20M x 300 float32 = 24 GB never sits
in memory) and each build regenerates what it needs. The generator's difficulty is printed:
the share of each query's exact top-100 that lies in the query's own cluster (noise 0.10 gives
99.9%, trivially separable; 0.12 gives ~92% at 1M, 80% at 5M, 64% at 20M: more clusters crowd
the sphere), and the share of the data an oracle partition (the true clusters, probed nearest
centre first) must scan to reach recall@100 0.95, a floor for any IVF/tree index on this data.

Each build runs in a child process (peak build memory = its RSS high-water mark, VmHWM, data
generation included) and saves the index under --work_dir; each serving measurement runs in a
fresh child that loads the index (serving RSS = VmRSS after load). Per search setting: recall@10
and recall@100 against the exact top-100 (k = 100), single-query p50/p99 latency (one query per
call, k = 100), and batched QPS (all queries in one call, both cores). Methods:

  exact              numpy brute force in memory (mel's BruteForceIndex); needs N x 1.2 KB RAM
  scann              mel's ScaNN index as mel.retrieval.build_index makes it (retrieval.build_streaming:
                     one tree trained on a global sample, every row inserted), float32 reorder
  scann_int8         the same with int8 reordering (mel's choice for >= 1M vectors)
  faiss_ivfpq        FAISS IVF{nlist},PQ150x4fs (4-bit fast scan, ScaNN AH's analogue)
  faiss_ivfpq_refine the same + RefineFlat (exact float32 rerank of k_factor x k candidates)
  faiss_ivfpq8_refine IVF{nlist},PQ75 (classic 8-bit PQ, also 75 bytes per vector) + RFlat
  hnsw               FAISS HNSWFlat M=32
  ablation           partition quality, one change at a time on scann_int8 (at the largest
                     size <= 5M given, or --ablation_size): independent-shards (the first
                     design: 2M in-memory shards, each its own tree), before (one global tree
                     with ScaNN's defaults: 100k k-means sample, generic k-means, 12
                     iterations, no spilling), + large sample (200 per leaf), + spherical,
                     + 25 iterations, + SOAR spilling, all (+ 25 iterations + SOAR); these
                     use mel's earlier 2 sqrt(N) leaves. +leaves: mel's current rule (4
                     sqrt(N) leaves, 128 sample points per leaf up to 2M). +4dims: that rule
                     with 4 dims per AH block (75 blocks, not 150).

faiss-cpu is a benchmark-only dependency: pip install -r requirements-bench.txt.
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

DIM = 300
NOISE = 0.12
CLUSTER_SIZE = 1000
GEN_SHARD = 250_000
K = 100
METHODS = ("exact", "scann", "scann_int8", "faiss_ivfpq", "faiss_ivfpq_refine",
           "faiss_ivfpq8_refine", "hnsw",
           "ablation")
# Methods that cannot serve beyond these sizes in ~20 GB (float32 vectors alone: N x 1.2 KB).
FLOAT_LIMIT = 6_000_000


# ---------------------------------------------------------------------------------------------
# data


class Synthetic:
  """Clustered unit vectors [n, DIM], shard i a pure function of (seed, n, i)."""

  def __init__(self, n: int, seed: int = 0, noise: float = NOISE, shard_size: int = GEN_SHARD):
    self.n, self.seed, self.noise, self.shard_size = n, seed, noise, shard_size
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

  def shards(self):
    for i in range(self.num_shards):
      yield self.shard(i)[0]

  def id_shards(self):
    """(ids, vectors) per generation shard, the form mel's builders take."""
    for i in range(self.num_shards):
      start = i * self.shard_size
      vectors = self.shard(i)[0]
      yield [f"E{start + j}" for j in range(len(vectors))], vectors

  def all(self) -> np.ndarray:
    out = np.empty((self.n, DIM), dtype=np.float32)
    for i in range(self.num_shards):
      out[i * self.shard_size:(i + 1) * self.shard_size] = self.shard(i)[0]
    return out

  def queries(self, q: int):
    return self._draw(np.random.default_rng([self.seed, self.n, 2**31 + 1]), q)


def exact_top_k(gen: Synthetic, queries: np.ndarray, k: int = K):
  """Streams every shard: (rows int64 [Q, k], scores [Q, k], labels of the rows [Q, k])."""
  from mel import retrieval
  best_rows = np.zeros((len(queries), 0), np.int64)
  best_scores = np.zeros((len(queries), 0), np.float32)
  labels = np.empty(gen.n, np.int32)
  for i in range(gen.num_shards):
    vectors, shard_labels = gen.shard(i)
    start = i * gen.shard_size
    labels[start:start + len(vectors)] = shard_labels
    rows, scores = _chunk_top_k(queries, vectors, k)
    best_rows, best_scores = retrieval.select_top_k(
        np.concatenate([best_rows, rows + start], 1), np.concatenate([best_scores, scores], 1),
        k)
  return best_rows, best_scores, labels[best_rows]


def oracle_scan_share(gen: Synthetic, queries: np.ndarray, truth_labels: np.ndarray,
                      target: float = 0.95) -> float:
  """Share of the data an oracle partition scans to reach recall@100 = target.

  The oracle's leaves are the generator's true clusters, probed in order of the query's score
  against the true centres: what a perfect tree partitioner would do. The share of clusters it
  needs is a floor for any partition-based index on this data (IVF, ScaNN's tree), before any
  scoring error; it grows with N as out-of-cluster neighbours spread over more clusters.
  """
  order = np.argsort(-(queries @ gen.centers.T), axis=1)
  rank = np.empty_like(order)
  np.put_along_axis(rank, order, np.arange(gen.num_clusters)[None, :], axis=1)
  neighbour_ranks = np.take_along_axis(rank, truth_labels.astype(np.int64), axis=1)
  clusters = int(np.ceil(np.quantile(neighbour_ranks, target))) + 1
  return clusters / gen.num_clusters


def _chunk_top_k(queries, vectors, k):
  scores = queries @ vectors.T
  part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
  return part.astype(np.int64), np.take_along_axis(scores, part, 1)


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


def build_child(method: str, n: int, path: str, shard_size: int, variant: str = "") -> dict:
  from mel import retrieval
  gen = Synthetic(n)
  started = time.perf_counter()
  machine_before, own_before = busy_cores_seconds()
  out = {}
  if method in ("scann", "scann_int8") and variant == "independent-shards":
    # The first design: in-memory shards of at most 2M (mel's brute-force shard budget), each
    # with its own tree trained on its own rows.
    num_shards = math.ceil(n / retrieval.default_shard_size(DIM))
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
    codes = f"PQ{DIM // 4}" if method == "faiss_ivfpq8_refine" else f"PQ{DIM // 2}x4fs"
    base = faiss.index_factory(DIM, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
    train = []
    need = min(n, 64 * nlist)  # the data are i.i.d.: a prefix is a random sample
    for vectors in gen.shards():
      train.append(vectors[:need - sum(map(len, train))])
      if sum(map(len, train)) >= need:
        break
    base.train(np.concatenate(train))
    del train
    out["params"] = {"factory": f"IVF{nlist},{codes}", "train_points": need}
    # RefineFlat keeps the float32 vectors beside the codes and reranks k_factor x k of them.
    index = base if method == "faiss_ivfpq" else faiss.IndexRefineFlat(base)
    for vectors in gen.shards():
      index.add(vectors)
    if method != "faiss_ivfpq":
      out["params"]["factory"] += ",RFlat"
    faiss.write_index(index, path)
  elif method == "hnsw":
    import faiss
    index = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
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


def serve_child(method: str, n: int, path: str, queries, truth, latency_queries: int,
                settings, quiet_wait: float = 0.0) -> dict:
  rss_before = memory_status()[0]
  started = time.perf_counter()
  if quiet_wait:
    wait_for_quiet(quiet_wait)  # other jobs on the 2 cores skew latency and QPS
  started = time.perf_counter()
  if method == "exact":
    from mel import retrieval
    gen = Synthetic(n)
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
    # Past 8% of the leaves only the larger reorders: where the generator's cross-cluster
    # neighbours dominate what is missing (5M and up), recall keeps rising with leaves searched.
    leaves = build["params"].get("num_leaves", 1)
    # int8 reordering of 4,000 candidates costs ~1 ms: it shows what the AH scores lose.
    fractions = (0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2) + ((0.3,) if n > 5_000_000 else ())
    return [(l, r) for f in fractions for l in [max(1, round(f * leaves))]
            for r in ((400, 1000, 4000) if f <= 0.08 else (1000, 4000))]
  if method == "hnsw":
    return [64, 128, 256, 512, 1024]
  nlist = faiss_nlist(n)
  probes = sorted({max(1, round(f * nlist)) for f in (0.005, 0.01, 0.02, 0.04)})
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


def fits(method: str, n: int) -> str:
  """'' if the method can run at n here, else why not."""
  if method in ("exact", "scann", "faiss_ivfpq_refine", "faiss_ivfpq8_refine", "hnsw") and \
      n > FLOAT_LIMIT:
    return (f"float32 vectors alone are {n * DIM * 4 / 1e9:.0f} GB (machine: 24 GB, other "
            "jobs included)")
  return ""


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="1M,5M,20M")
  parser.add_argument("--queries", type=int, default=1000)
  parser.add_argument("--latency_queries", type=int, default=0,
                      help="single-query timings per setting (default: all queries; exact: 50)")
  parser.add_argument("--methods", default="all", help=f"comma list of {','.join(METHODS)}")
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
  methods = METHODS if args.methods == "all" else tuple(args.methods.split(","))
  sizes = [parse_size(s) for s in args.sizes.split(",")]
  ablation_size = (parse_size(args.ablation_size) if args.ablation_size
                   else max([s for s in sizes if s <= 5_000_000] or [min(sizes)]))
  shard_size = args.scann_shard_size or retrieval.default_shard_size(DIM, "scann")
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
  results.setdefault("sizes", {})
  results["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "faiss": faiss_version, "dim": DIM, "noise": NOISE,
                        "cluster_size": CLUSTER_SIZE, "k": K, "queries": args.queries}

  def save():
    if args.json:
      tmp = args.json + ".tmp"
      with open(tmp, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
      os.replace(tmp, args.json)

  for n in sizes:
    name = size_name(n)
    entry = results["sizes"].setdefault(name, {"n": n, "methods": {}})
    gen = Synthetic(n)
    queries, query_labels = gen.queries(args.queries)
    truth_path = os.path.join(args.work_dir, f"truth-{name}-{args.queries}.npz")
    if os.path.exists(truth_path):
      truth = np.load(truth_path)["rows"]
      share = float(np.load(truth_path)["share"])
      labels = gen.labels()[truth]
    else:
      started = time.perf_counter()
      truth, _, labels = exact_top_k(gen, queries)
      seconds = time.perf_counter() - started
      share = float((labels == query_labels[:, None]).mean())
      np.savez(truth_path, rows=truth, share=share)
      entry["exact_streaming_s"] = seconds
    entry["own_cluster_share_top100"] = share
    oracle = oracle_scan_share(gen, queries, labels)
    entry["oracle_scan_share_0.95"] = oracle
    print(f"== N = {name}: {gen.num_clusters} clusters, noise {NOISE}: {share:.1%} of each "
          f"query's exact top-100 lies in its own cluster; an oracle partition (the true "
          f"clusters, probed nearest centre first) scans {oracle:.1%} of the data to reach "
          f"recall@100 0.95", flush=True)
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
      path = os.path.join(args.work_dir, f"{name}-{key.replace(':', '-').replace('+', '')}")
      if args.serve_only:
        record = entry["methods"].get(key, {})
        if "build" in record and "error" not in record["build"] and (
            os.path.exists(path) or method == "exact"):
          print(f"  {key}: serving again", flush=True)
          record["serve"] = run_child(
              serve_child, method, n, path, queries, truth,
              args.latency_queries or (50 if method == "exact" else args.queries),
              settings_for(method, n, record["build"]), args.quiet_wait)
          save()
        continue
      if args.resume and key in entry["methods"] and "error" not in entry["methods"][key]:
        continue
      why = fits(method, n)
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
        build = run_child(build_child, "scann_int8" if method == "ablation" else method, n,
                          path, shard_size, variant)
      record = {"build": build}
      if "error" not in build:
        print(f"  {key}: built in {build['build_s']:.0f}s, peak "
              f"{build.get('build_peak_bytes', 0) / 1e9:.2f} GB; serving", flush=True)
        latency_queries = args.latency_queries or (50 if method == "exact" else args.queries)
        record["index_bytes"] = (retrieval.index_bytes(path) if os.path.isdir(path) else
                                 os.path.getsize(path) if os.path.exists(path) else 0)
        record["serve"] = run_child(serve_child, method, n, path, queries, truth,
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
    print_table(results, name)
  return 0


def print_table(results, name):
  entry = results["sizes"][name]
  print(f"\nN = {name} (own-cluster share of exact top-100: "
        f"{entry['own_cluster_share_top100']:.1%})")
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


if __name__ == "__main__":
  sys.exit(main())
