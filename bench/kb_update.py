"""Benchmark: growing a knowledge base (mel.retrieval.kb) against rebuilding its index.

  python bench/kb_update.py [--base 1M] [--added 10k] [--replaced 1k] [--queries 1000]
                            [--repeats 3] [--json out.json] [--work_dir /tmp/kbbench]

The issue's targets: adding 10k entities to a 1M-entity index, the index update (not the
encoding) in under 60 s on 2 cores; search latency after the addition within 10% of a rebuilt
index. Steps (everything timed runs in a fresh child process; see bench/retrieval.py):

1. A model directory as `mel encode` + `mel index` leave it: export/manifest.json (model F),
   entities.tsv, embeddings/ (the first --base rows of bench/retrieval.py's Synthetic
   generator over base + added rows: clustered 300-d unit vectors) and index/ built by
   mel.retrieval.build_index_from_embeddings (kind scann; int8 reordering at >= 1M). The
   base build is timed but is not a target.
2. The added entities are the generator's last --added rows (the same clusters), written as a
   separate embeddings directory with the model's tower identity, as `mel kb encode` would.
   `kb_changes.add` is timed end to end (--repeats times, each from generation 0), with a
   breakdown of its phases; then a fresh `kb.open_kb` with verify=False and verify=True
   (what a serving reload costs).
3. The rebuilt index: `build_index_from_embeddings` over one embeddings directory of base +
   added (mel's parameters for that N), timed.
4. Queries: half near added entities, half near base entities (an entity's vector + Gaussian
   noise --query_noise per dimension, normalised). Exact top-100 over base + added (streamed,
   bench/retrieval.py's exact_top_k). For the knowledge base's index as serving loads it
   (kb.open_search_index: added segments of up to 10% of the base inserted into the base's
   ScaNN tree in memory, masks applied at search) and for the rebuilt index:
   recall@10/@100 against the exact top-100 (all queries, and per group), source@1/@10 (the
   entity a query was drawn near is the first / among the first 10 results: does an added
   entity link as well as one indexed from the start?), single-query p50/p99 (k = 100, one
   query per call, every query) and batched QPS (all queries in one call, both cores). Each
   measurement is a fresh child that loads the index; the two alternate over --repeats rounds
   (A/B, then B/A) and the KB/rebuilt ratios are given per round (median, min-max).
5. With --replaced R (> 0): R random base entities are then replaced (new vectors from the
   generator, drawn in random clusters; `add(..., replace=True)` masks their old rows), and
   steps 2-4 are repeated for that generation against an index rebuilt over its live
   entities, with a third query group near the replacements: the masked search's cost.

Everything is written under --work_dir and deleted at the end (unless --keep; --reuse_base
reuses a base model directory kept by an earlier run with the same --base and --added).
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import retrieval as bench  # noqa: E402  (Synthetic, exact_top_k, measure, run_child, ...)

K = bench.K
EXPORT = {"kind": "F", "step": 1, "embedding_dim": bench.DIM, "entity_input": "description",
          "tokenizer": "wordpiece", "entity_names": False}


# ---------------------------------------------------------------------------------------------
# data


def entity_id(row: int) -> str:
  """The id of the generator's row (int(id[1:]) gives the row back)."""
  return f"E{row:07d}"


def gen_pieces(gen: bench.Synthetic, start: int, stop: int, subs=None):
  """(ids, vectors) of the generator's rows [start, stop), one piece per generator shard;
  subs = (rows int [m], vectors [m, D]) replaces those rows' vectors."""
  for i in range(gen.num_shards):
    lo = i * gen.shard_size
    hi = lo + gen._count(i)
    a, b = max(start, lo), min(stop, hi)
    if a >= b:
      continue
    vectors = gen.shard(i)[0][a - lo:b - lo]
    if subs is not None:
      rows, new = subs
      inside = (rows >= a) & (rows < b)
      vectors[rows[inside] - a] = new[inside]
    yield [entity_id(r) for r in range(a, b)], vectors


class Substituted:
  """exact_top_k's view of the generator with some rows' vectors replaced, in pieces of
  piece_size rows (smaller pieces: a lower peak for the [Q, piece] score matrix)."""

  def __init__(self, gen: bench.Synthetic, subs=None, piece_size: int = 50_000):
    assert gen.shard_size % piece_size == 0
    self.gen, self.subs, self.n = gen, subs, gen.n
    self.shard_size = piece_size
    self.num_shards = -(-gen.n // piece_size)
    self._cached = (None, None)

  def shard(self, i: int):
    start = i * self.shard_size
    j = start // self.gen.shard_size
    if self._cached[0] != j:
      vectors, labels = self.gen.shard(j)
      if self.subs is not None:
        rows, new = self.subs
        lo = j * self.gen.shard_size
        inside = (rows >= lo) & (rows < lo + len(vectors))
        vectors[rows[inside] - lo] = new[inside]
      self._cached = (j, (vectors, labels))
    vectors, labels = self._cached[1]
    local = start - j * self.gen.shard_size
    return vectors[local:local + self.shard_size], labels[local:local + self.shard_size]


def vectors_of(gen: bench.Synthetic, rows: np.ndarray) -> np.ndarray:
  """The generator's vectors of rows (any order)."""
  out = np.empty((len(rows), bench.DIM), np.float32)
  for i in range(gen.num_shards):
    lo = i * gen.shard_size
    inside = np.flatnonzero((rows >= lo) & (rows < lo + gen._count(i)))
    if len(inside):
      out[inside] = gen.shard(i)[0][rows[inside] - lo]
  return out


def near(vectors: np.ndarray, noise: float, rng) -> np.ndarray:
  """Queries near vectors: + Gaussian noise per dimension, normalised."""
  q = vectors + noise * rng.standard_normal(vectors.shape, dtype=np.float32)
  return q / np.linalg.norm(q, axis=1, keepdims=True)


def write_embeddings(directory: str, pieces, model: dict) -> int:
  from mel.retrieval import embeddings
  shutil.rmtree(directory, ignore_errors=True)
  count = shards = 0
  for ids, vectors in pieces:
    embeddings.write_shard(directory, shards, list(ids), vectors)
    count += len(ids)
    shards += 1
  embeddings.write_manifest(directory, shards, model=model)
  return count


def kb_entities(rows, suffix: str = ""):
  from mel.retrieval.kb_entities import KBEntity
  out = []
  for r in np.asarray(rows).tolist():
    text = f"entity {r}{suffix}"
    out.append(KBEntity(entity_id(r), text, text, {"en": f"entity {r}"}, {}, ""))
  return out


def count_name(n: int) -> str:
  return bench.size_name(n) if n % 1000 == 0 else f"{n:,}"


def du(path: str) -> int:
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)


# ---------------------------------------------------------------------------------------------
# children


def base_child(model_dir: str, base: int, total: int) -> dict:
  """Model dir (export manifest, entities.tsv, embeddings/) + index/ as `mel index` builds it."""
  from mel.model_dir import ModelDir
  gen = bench.Synthetic(total)
  shutil.rmtree(model_dir, ignore_errors=True)
  os.makedirs(os.path.join(model_dir, "export"))
  with open(os.path.join(model_dir, "export", "manifest.json"), "w") as f:
    json.dump(EXPORT, f)
  with open(os.path.join(model_dir, "entities.tsv"), "w", encoding="utf-8") as f:
    f.writelines(f"{entity_id(r)}\tentity {r}\n" for r in range(base))
  directory = ModelDir(model_dir)
  started = time.perf_counter()
  write_embeddings(directory.embeddings, gen_pieces(gen, 0, base), directory.identity())
  out = {"write_embeddings_s": time.perf_counter() - started}
  return {**out, **_build(directory.embeddings, directory.index)}


def _build(embeddings_dir: str, index_dir: str) -> dict:
  """`mel index`'s build (build_index_from_embeddings, kind scann, mel's parameters), timed."""
  from mel.retrieval import build_index_from_embeddings, read_manifest
  machine_before, own_before = bench.busy_cores_seconds()
  started = time.perf_counter()
  manifest = build_index_from_embeddings(embeddings_dir, index_dir, kind="scann")
  seconds = time.perf_counter() - started
  machine_after, own_after = bench.busy_cores_seconds()
  first = read_manifest(os.path.join(index_dir, manifest["shards"][0]["path"]))
  return {"build_s": seconds, "build_peak_bytes": bench.memory_status()[1],
          "index_bytes": du(index_dir), "shards": len(manifest["shards"]),
          "params": first["params"],
          "other_processes_cores": max(0.0, ((machine_after - machine_before) -
                                             (own_after - own_before)) / seconds)}


def rebuild_child(model_dir: str, embeddings_dir: str, index_dir: str, total: int, subs) -> dict:
  """One index over every live row (base + added, replacements in place): `mel index` over
  embeddings as a re-encode of the whole knowledge base would leave them."""
  from mel.model_dir import ModelDir
  gen = bench.Synthetic(total)
  started = time.perf_counter()
  write_embeddings(embeddings_dir, gen_pieces(gen, 0, total, subs),
                   ModelDir(model_dir).tower_identity())
  out = {"write_embeddings_s": time.perf_counter() - started}
  return {**out, **_build(embeddings_dir, index_dir)}


def add_child(model_dir: str, embeddings_dir: str, rows, suffix: str, replace: bool,
              quiet_wait: float) -> dict:
  """kb_changes.add timed end to end, and its phases (wrapped timers, in this child only)."""
  from mel import manifest as manifests
  from mel.retrieval import kb as kb_lib
  from mel.retrieval import kb_changes
  entities = kb_entities(rows, suffix)
  phases = {}

  def timed(name, fn):
    def wrapper(*args, **kwargs):
      started = time.perf_counter()
      try:
        return fn(*args, **kwargs)
      finally:
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - started
    return wrapper

  kb_changes.open_kb = timed("open_kb (verify=False)", kb_changes.open_kb)
  kb_changes.check_embeddings = timed("check_embeddings", kb_changes.check_embeddings)
  kb_lib.KnowledgeBase.locate = timed("locate (ids already in the KB)",
                                      kb_lib.KnowledgeBase.locate)
  kb_changes.shutil.copytree = timed("copy embeddings", kb_changes.shutil.copytree)
  kb_changes.build_index_from_embeddings = timed("segment index build",
                                                 kb_changes.build_index_from_embeddings)
  kb_changes._commit = timed("commit (manifests)", kb_changes._commit)
  kb_changes._write_change = timed("write change (all of it)", kb_changes._write_change)
  others = bench.wait_for_quiet(quiet_wait) if quiet_wait else None
  machine_before, own_before = bench.busy_cores_seconds()
  started = time.perf_counter()
  manifest = kb_changes.add(model_dir, entities, embeddings_dir, replace=replace)
  seconds = time.perf_counter() - started
  machine_after, own_after = bench.busy_cores_seconds()
  change = os.path.join(model_dir, manifest["changes"][-1]["path"])
  return {"add_s": seconds, "phases": phases, "generation": manifest["generation"],
          "summary": manifest["summary"], "change_bytes": du(change),
          "peak_bytes": bench.memory_status()[1], "others_before": others,
          "other_processes_cores": max(0.0, ((machine_after - machine_before) -
                                             (own_after - own_before)) / seconds)}


def open_child(model_dir: str, verify: bool, quiet_wait: float) -> dict:
  """A fresh open_search_index, as serving loads a generation (added segments merged into the
  base's tree; ScaNN's module imported first: a serving process has it loaded)."""
  from mel.retrieval import kb as kb_lib
  from mel.retrieval.scann import scann_modules
  started = time.perf_counter()
  scann_modules()
  import_s = time.perf_counter() - started
  others = bench.wait_for_quiet(quiet_wait) if quiet_wait else None
  rss_before = bench.memory_status()[0]
  started = time.perf_counter()
  index, knowledge_base = kb_lib.open_search_index(model_dir, verify=verify)
  seconds = time.perf_counter() - started
  return {"open_s": seconds, "scann_import_s": import_s, "others_before": others,
          "generation": knowledge_base.generation, "rows": len(index),
          "live": knowledge_base.live_count, "merged_segments": knowledge_base.merged,
          "rss_added_bytes": bench.memory_status()[0] - rss_before}


def serve_child(kind: str, path: str, queries, truth, sources, groups, quiet_wait: float
                ) -> dict:
  """Loads the KB's index (kind "kb", path = model dir) or a rebuilt index and measures it."""
  from mel.retrieval import kb as kb_lib
  from mel.retrieval import load_index
  others = bench.wait_for_quiet(quiet_wait) if quiet_wait else None
  rss_before = bench.memory_status()[0]
  started = time.perf_counter()
  if kind == "kb":
    index, _ = kb_lib.open_search_index(path, verify=False)   # as mel.load serves it
  else:
    index = load_index(path, verify=False)
  load_s = time.perf_counter() - started
  rss = bench.memory_status()[0]
  to_row = np.fromiter((int(e[1:]) for e in index.ids), np.int64, len(index))
  batch = {}

  def search(q):
    rows = index.search(q, K)[0]
    rows = np.where(rows >= 0, to_row[np.maximum(rows, 0)], -1)
    if len(q) == len(queries):
      batch["rows"] = rows
    return rows

  out = bench.measure(search, queries, truth, len(queries), batch_repeats=3)
  out.update({"kind": kind, "load_s": load_s, "serving_rss_bytes": rss - rss_before,
              "others_before": others, "groups": {}})
  rows = batch["rows"]
  for name, (a, b) in groups.items():
    out["groups"][name] = {
        "recall@10": bench.recall(rows[a:b], truth[a:b], 10),
        "recall@100": bench.recall(rows[a:b], truth[a:b], 100),
        "source@1": float(np.mean(rows[a:b, 0] == sources[a:b])),
        "source@10": float(np.mean((rows[a:b, :10] == sources[a:b, None]).any(axis=1)))}
  return out


def breakdown_child(model_dir: str, queries, sources, quiet_wait: float) -> dict:
  """Where the knowledge base's single-query latency goes if its segments are searched apart
  (open_kb without merge, as writers open it; readers merge small segments into the base's
  tree): p50 ms, every query, one process: its parts side by side, in turn, each part alone;
  for a part with masked rows, its inner index at k and at MaskedIndex's first search; and for
  each added segment with a ScaNN tree, how often the entity a query was drawn near (among that
  segment's) comes first, by leaves searched."""
  from mel.retrieval import kb as kb_lib
  from mel.retrieval.masked import EXTRA
  knowledge_base = kb_lib.open_kb(model_dir, verify=False)
  index = knowledge_base.index
  parts = getattr(index, "shards", [index])
  others = bench.wait_for_quiet(quiet_wait) if quiet_wait else None

  def p50(search):
    search(queries[:20])
    times = []
    for i in range(len(queries)):
      started = time.perf_counter()
      search(queries[i:i + 1])
      times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)

  machine_before, own_before = bench.busy_cores_seconds()
  wall_before = time.perf_counter()
  out = {"p50_ms": {"as served (parts side by side)": p50(lambda q: index.search(q, K))},
         "others_before": others, "segment_source@1": {}}
  if len(parts) > 1:
    threads, index.threads = index.threads, 1
    out["p50_ms"]["parts in turn"] = p50(lambda q: index.search(q, K))
    index.threads = threads
  for segment, part in zip(knowledge_base.segments, parts):
    dead = len(getattr(part, "dead", ()))
    name = f"part {segment.path} alone ({len(part):,} rows, {dead:,} masked)"
    out["p50_ms"][name] = p50(lambda q: part.search(q, K))
    if dead:
      out["p50_ms"][f"part {segment.path}: inner index, k = {K}"] = p50(
          lambda q: part.inner.search(q, K))
      first = K + min(dead, EXTRA + K // 4)   # MaskedIndex's first search
      out["p50_ms"][f"part {segment.path}: inner index, k = {first} (MaskedIndex's first "
                    f"search, {dead:,} dead)"] = p50(lambda q: part.inner.search(q, first))
    tree = part.tree_leaves()
    if segment.path == kb_lib.BASE or tree is None:
      continue
    to_row = np.fromiter((int(e[1:]) for e in part.ids), np.int64, len(part))
    mine = np.flatnonzero(np.isin(sources, to_row))
    default, leaves = tree
    hits = {}
    for searched in sorted({default, min(leaves, 2 * default), min(leaves, 4 * default),
                            leaves}):
      rows = part.search(queries[mine], K, leaves_to_search=searched)[0]
      found = np.where(rows[:, 0] >= 0, to_row[np.maximum(rows[:, 0], 0)], -1)
      hits[f"{searched} of {leaves} leaves"] = float(np.mean(found == sources[mine]))
    out["segment_source@1"][segment.path] = {"queries": len(mine), **hits}
  machine_after, own_after = bench.busy_cores_seconds()
  out["other_processes_cores"] = max(0.0, ((machine_after - machine_before) -
                                           (own_after - own_before)) /
                                     (time.perf_counter() - wall_before))
  return out


# ---------------------------------------------------------------------------------------------
# the scenario runs


def check(result: dict, what: str) -> dict:
  if "error" in result:
    raise RuntimeError(f"{what}: {result['error']}")
  return result


def spread(values):
  values = [v for v in values if v is not None]
  if not values:
    return None
  return {"median": float(np.median(values)), "min": float(min(values)),
          "max": float(max(values)), "all": [float(v) for v in values]}


def compare(model_dir: str, rebuilt_dir: str, queries, truth, sources, groups, repeats: int,
            quiet_wait: float) -> dict:
  """KB index and rebuilt index, each measured in a fresh child, alternating A/B then B/A."""
  rounds = []
  for r in range(repeats):
    order = ("kb", "rebuilt") if r % 2 == 0 else ("rebuilt", "kb")
    result = {}
    for kind in order:
      path = model_dir if kind == "kb" else rebuilt_dir
      result[kind] = check(bench.run_child(serve_child, kind, path, queries, truth, sources,
                                           groups, quiet_wait), f"serving {kind}")
      s = result[kind]
      print(f"    round {r + 1} {kind}: p50 {s['p50_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms, "
            f"QPS {s['qps']:.0f}, recall@10 {s['recall@10']:.3f}, recall@100 "
            f"{s['recall@100']:.3f}, other cores {s['other_processes_cores']:.2f}", flush=True)
    rounds.append(result)
  summary = {}
  for metric in ("p50_ms", "p99_ms", "qps"):
    summary[metric] = {kind: spread([r[kind][metric] for r in rounds])
                       for kind in ("kb", "rebuilt")}
    summary[metric]["ratio_kb_over_rebuilt"] = spread(
        [r["kb"][metric] / r["rebuilt"][metric] for r in rounds])
  for metric in ("recall@10", "recall@100", "load_s", "serving_rss_bytes"):
    summary[metric] = {kind: spread([r[kind][metric] for r in rounds])
                       for kind in ("kb", "rebuilt")}
  summary["groups"] = {name: {kind: rounds[0][kind]["groups"][name] for kind in ("kb", "rebuilt")}
                       for name in groups}
  summary["other_processes_cores"] = spread(
      [r[k]["other_processes_cores"] for r in rounds for k in ("kb", "rebuilt")])
  return {"rounds": rounds, "summary": summary}


def timed_adds(model_dir, embeddings_dir, rows, suffix, replace, restore, repeats,
               quiet_wait) -> list:
  """kb_changes.add --repeats times, each from the same generation (restore() puts kb/ back)."""
  adds = []
  for r in range(repeats):
    restore()
    result = check(bench.run_child(add_child, model_dir, embeddings_dir, rows, suffix, replace,
                                   quiet_wait), "kb add")
    phases = ", ".join(f"{k} {v:.2f}" for k, v in result["phases"].items())
    print(f"    add {r + 1}: {result['add_s']:.2f} s (generation {result['generation']}; "
          f"{phases}; other cores {result['other_processes_cores']:.2f})", flush=True)
    adds.append(result)
  return adds


def timed_opens(model_dir, repeats, quiet_wait) -> dict:
  out = {}
  for verify in (False, True):
    key = f"verify={verify}"
    out[key] = [check(bench.run_child(open_child, model_dir, verify, quiet_wait), "open_kb")
                for _ in range(repeats)]
    print(f"    open_kb {key}: " + ", ".join(f"{o['open_s']:.2f}" for o in out[key]) + " s",
          flush=True)
  return out


def scenario(name, args, gen, model_dir, rebuilt_dir, rebuilt_embeddings, subs, adds,
             queries, sources, groups) -> dict:
  print(f"== {name}: rebuilding one index over the live entities", flush=True)
  rebuilt = check(bench.run_child(rebuild_child, model_dir, rebuilt_embeddings, rebuilt_dir,
                                  gen.n, subs), "rebuild")
  shutil.rmtree(rebuilt_embeddings, ignore_errors=True)
  print(f"    rebuilt in {rebuilt['build_s']:.1f} s (peak {rebuilt['build_peak_bytes'] / 1e9:.2f}"
        f" GB, {rebuilt['params'].get('num_leaves')} leaves)", flush=True)
  opens = timed_opens(model_dir, args.repeats, args.quiet_wait)
  print(f"== {name}: exact top-{K} of {len(queries)} queries", flush=True)
  started = time.perf_counter()
  truth = bench.exact_top_k(Substituted(gen, subs), queries)[0]
  exact_s = time.perf_counter() - started
  print(f"== {name}: serving, KB index vs rebuilt, {args.repeats} rounds", flush=True)
  served = compare(model_dir, rebuilt_dir, queries, truth, sources, groups, args.repeats,
                   args.quiet_wait)
  breakdown = check(bench.run_child(breakdown_child, model_dir, queries, sources,
                                    args.quiet_wait), "breakdown")
  for what, ms in breakdown["p50_ms"].items():
    print(f"    p50 {what}: {ms:.3f} ms", flush=True)
  for path, hits in breakdown["segment_source@1"].items():
    print(f"    source@1 in segment {path}: {hits}", flush=True)
  shutil.rmtree(rebuilt_dir, ignore_errors=True)
  return {"adds": adds, "add_s": spread([a["add_s"] for a in adds]),
          "opens": opens, "open_s": {k: spread([o["open_s"] for o in v])
                                     for k, v in opens.items()},
          "rebuilt": rebuilt, "exact_s": exact_s, "queries": len(queries),
          "groups": {k: list(v) for k, v in groups.items()}, "breakdown": breakdown,
          **served}


# ---------------------------------------------------------------------------------------------


def fmt_spread(s, scale=1.0, digits=2) -> str:
  if s is None:
    return "-"
  if len(s["all"]) == 1:
    return f"{s['median'] * scale:.{digits}f}"
  return (f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}–"
          f"{s['max'] * scale:.{digits}f})")


def print_report(results: dict) -> None:
  base = results["base_build"]
  print(f"\nbase: {results['args']['base']:,} entities, index built in {base['build_s']:.1f} s "
        f"(peak {base['build_peak_bytes'] / 1e9:.2f} GB, {base['params'].get('num_leaves')} "
        f"leaves, reorder {base['params'].get('reorder_dtype')}; other processes "
        f"{base['other_processes_cores']:.2f} cores)")
  for name, s in results["scenarios"].items():
    add = s["adds"][-1]
    print(f"\n### {name}: {add['summary']}")
    print("values: median (min–max) over the repeats")
    print("| figure | knowledge base | rebuilt index | KB / rebuilt |")
    print("|---|---|---|---|")
    phases = {k: spread([a["phases"].get(k) for a in s["adds"]]) for k in add["phases"]}
    print(f"| index update: kb_changes.add, s | {fmt_spread(s['add_s'])} | "
          f"rebuild {s['rebuilt']['build_s']:.1f} | |")
    for k, v in phases.items():
      print(f"| &nbsp; of which {k}, s | {fmt_spread(v)} | | |")
    for k, v in s["open_s"].items():
      print(f"| fresh open_kb({k}), s | {fmt_spread(v)} | | |")
    m = s["summary"]
    print(f"| load in the serving child, s | {fmt_spread(m['load_s']['kb'])} | "
          f"{fmt_spread(m['load_s']['rebuilt'])} | |")
    print(f"| serving RSS after load, GB | {fmt_spread(m['serving_rss_bytes']['kb'], 1e-9)} | "
          f"{fmt_spread(m['serving_rss_bytes']['rebuilt'], 1e-9)} | |")
    for metric, digits in (("p50_ms", 3), ("p99_ms", 3), ("qps", 0)):
      print(f"| {metric} | {fmt_spread(m[metric]['kb'], digits=digits)} | "
            f"{fmt_spread(m[metric]['rebuilt'], digits=digits)} | "
            f"{fmt_spread(m[metric]['ratio_kb_over_rebuilt'], digits=3)} |")
    for metric in ("recall@10", "recall@100"):
      print(f"| {metric}, all queries | {fmt_spread(m[metric]['kb'], digits=3)} | "
            f"{fmt_spread(m[metric]['rebuilt'], digits=3)} | |")
    for group, g in m["groups"].items():
      for metric in ("recall@10", "recall@100", "source@1", "source@10"):
        print(f"| {metric}, queries near {group} | {g['kb'][metric]:.3f} | "
              f"{g['rebuilt'][metric]:.3f} | |")
    print(f"| other processes, cores (while serving) | "
          f"{fmt_spread(m['other_processes_cores'])} | | |")
    print("\nsingle-query p50 breakdown (one process, ms):")
    for what, ms in s["breakdown"]["p50_ms"].items():
      print(f"  {what}: {ms:.3f}")
    for path, hits in s["breakdown"]["segment_source@1"].items():
      print(f"  source@1 within segment {path}: {hits}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--base", default="1M", help="entities in the model's index (1M, 50k)")
  parser.add_argument("--added", default="10k", help="entities added")
  parser.add_argument("--replaced", default="0",
                      help="then replace this many base entities (masks); 0: skip")
  parser.add_argument("--queries", type=int, default=1000,
                      help="half near added, half near base entities (with --replaced, "
                      "half as many again near the replacements)")
  parser.add_argument("--query_noise", type=float, default=0.06,
                      help="Gaussian noise per dimension added to an entity's vector (the "
                      "generator's entities are a cluster centre + 0.12)")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--quiet_wait", type=float, default=60.0,
                      help="before each timed child, wait up to this long for other jobs to "
                      "go quiet (bench/retrieval.py's wait_for_quiet)")
  parser.add_argument("--work_dir", default="/tmp/kbbench")
  parser.add_argument("--json", default="", help="write all figures here")
  parser.add_argument("--keep", action="store_true", help="keep --work_dir's contents")
  parser.add_argument("--reuse_base", action="store_true",
                      help="reuse the base model dir an earlier --keep run left (same sizes)")
  args = parser.parse_args(argv)
  base, added = bench.parse_size(args.base), bench.parse_size(args.added)
  replaced = bench.parse_size(args.replaced)
  total = base + added
  gen = bench.Synthetic(total)
  rng = np.random.default_rng([7, total])
  os.makedirs(args.work_dir, exist_ok=True)
  model_dir = os.path.join(args.work_dir, "model")
  started_all = time.perf_counter()
  results = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
             "args": {**vars(args), "base": base, "added": added, "replaced": replaced},
             "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "commit": subprocess.run(["git", "-C", str(ROOT), "rev-parse",
                                                   "--short", "HEAD"], capture_output=True,
                                                  text=True).stdout.strip()},
             "scenarios": {}}

  def save():
    if args.json:
      with open(args.json + ".tmp", "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
      os.replace(args.json + ".tmp", args.json)

  # 1. the model dir and its index (mel encode + mel index)
  marker = os.path.join(args.work_dir, "base.json")
  if args.reuse_base and os.path.exists(marker):
    with open(marker) as f:
      kept = json.load(f)
    if kept["base"] != base or kept["total"] != total:
      parser.error(f"{marker}: a base of {kept['base']} / {kept['total']}, not {base} / {total}")
    results["base_build"] = {**kept["build"], "reused": True}
    print(f"== base model dir reused ({base:,} entities, built in "
          f"{kept['build']['build_s']:.1f} s)", flush=True)
  else:
    print(f"== building the base: {base:,} entities, {gen.num_clusters} clusters", flush=True)
    results["base_build"] = check(bench.run_child(base_child, model_dir, base, total),
                                  "base build")
    with open(marker, "w") as f:
      json.dump({"base": base, "total": total, "build": results["base_build"]}, f)
  b = results["base_build"]
  print(f"    base index built in {b['build_s']:.1f} s (peak {b['build_peak_bytes'] / 1e9:.2f} "
        f"GB, {b['index_bytes'] / 1e6:.0f} MB, params {b['params']})", flush=True)
  shutil.rmtree(os.path.join(model_dir, "kb"), ignore_errors=True)
  save()

  # the added entities' embeddings (as `mel kb encode` writes them), and the queries
  from mel.model_dir import ModelDir
  tower = ModelDir(model_dir).tower_identity()
  added_dir = os.path.join(args.work_dir, "added_embeddings")
  write_embeddings(added_dir, gen_pieces(gen, base, total), tower)
  half = args.queries // 2
  added_src = rng.choice(np.arange(base, total), half, replace=half > added)
  replaced_rows = (np.sort(rng.choice(base, replaced, replace=False)) if replaced
                   else np.zeros(0, np.int64))
  base_pool = np.setdiff1d(np.arange(base), replaced_rows)
  base_src = rng.choice(base_pool, args.queries - half, replace=False)
  sources = np.concatenate([added_src, base_src]).astype(np.int64)
  queries = near(vectors_of(gen, sources), args.query_noise, rng)
  groups = {"added": (0, half), "base": (half, args.queries)}

  # 2-4. add, reload, rebuild, serve
  print(f"== adding {added:,} entities ({args.repeats} times, each from generation 0)",
        flush=True)
  kb_dir = os.path.join(model_dir, "kb")
  adds = timed_adds(model_dir, added_dir, list(range(base, total)), "", False,
                    lambda: shutil.rmtree(kb_dir, ignore_errors=True), args.repeats,
                    args.quiet_wait)
  name = f"add {count_name(added)} to {count_name(base)}"
  results["scenarios"][name] = scenario(
      name, args, gen, model_dir, os.path.join(args.work_dir, "rebuilt-1"),
      os.path.join(args.work_dir, "rebuilt-1-embeddings"), None, adds, queries, sources, groups)
  save()

  # 5. replace base entities: their old rows are masked
  if replaced:
    new = gen._draw(np.random.default_rng([0, total, 2**31 + 7]), replaced)[0]
    replaced_dir = os.path.join(args.work_dir, "replaced_embeddings")
    write_embeddings(replaced_dir, [([entity_id(r) for r in replaced_rows.tolist()], new)],
                     tower)
    snapshot = os.path.join(args.work_dir, "kb-generation-1")
    shutil.rmtree(snapshot, ignore_errors=True)
    shutil.copytree(kb_dir, snapshot)

    def restore():
      shutil.rmtree(kb_dir, ignore_errors=True)
      shutil.copytree(snapshot, kb_dir)

    print(f"== replacing {replaced:,} base entities ({args.repeats} times, each from "
          "generation 1)", flush=True)
    adds = timed_adds(model_dir, replaced_dir, replaced_rows, " (new description)", True,
                      restore, args.repeats, args.quiet_wait)
    shutil.rmtree(snapshot, ignore_errors=True)
    third = min(half, replaced)
    pick = rng.choice(replaced, third, replace=False)
    sources2 = np.concatenate([sources, replaced_rows[pick]])
    queries2 = np.concatenate([queries, near(new[pick], args.query_noise, rng)])
    groups2 = {**groups, "replaced": (args.queries, args.queries + third)}
    name = f"then replace {count_name(replaced)} base entities"
    results["scenarios"][name] = scenario(
        name, args, gen, model_dir, os.path.join(args.work_dir, "rebuilt-2"),
        os.path.join(args.work_dir, "rebuilt-2-embeddings"), (replaced_rows, new), adds,
        queries2, sources2, groups2)
    shutil.rmtree(replaced_dir, ignore_errors=True)
  results["total_s"] = time.perf_counter() - started_all
  save()
  print_report(results)
  if not args.keep:
    for path in (model_dir, added_dir, marker):
      if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
      elif os.path.exists(path):
        os.remove(path)
  return 0


if __name__ == "__main__":
  sys.exit(main())
