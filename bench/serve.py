"""Benchmark: `mel serve` under load on loopback, against the tower alone and direct mel.link.

  python bench/serve.py [--model_dir out/models/demo_f/round1] [--mining_dir out/mining]
      [--docs 200] [--doc_chars 2000] [--concurrency 1,8,32] [--requests 400]
      [--rss_requests 10000] [--server_args "--workers 2"] [--json PATH]

Documents: held-out documents of the mining output of at least --doc_chars characters, cut to
--doc_chars (at a space), languages taken in turn (bench/link.py's load_documents); every
request is POST /v1/link {"text", "lang"} in full mode, the documents in turn.

Baselines in this process, on the same documents:
  tower    the mention tower alone on full batches (the linker's max_batch mentions per call,
           the documents' real mentions with their contexts): mentions/s, and documents/s =
           mentions/s / mentions per document;
  direct   `mel.load(model_dir).link(text, lang)` per document, timed in turn with the same
           document sent to the server alone (concurrency 1): each document is linked
           directly, then over HTTP, so that both see the same machine state; p50 / p99 ms.
`mel serve` runs in a child process on 127.0.0.1 (--server_args added to its command line).
Per concurrency C > 1: C client threads, each with its own keep-alive connection, send
--requests requests in all (after a warm-up of 2 C); documents/s = requests / wall time, and
p50 / p99 latency per request. Then --rss_requests more requests at the highest concurrency:
the server's RSS (VmRSS of /proc/PID/status) before and after them, and the documents/s of
that long run. Errors: any answer other than 200, or a failed connection.

Targets (issue 19): at the highest concurrency, documents/s >= 0.7 x the tower's documents/s;
at concurrency 1, p50 <= 1.3 x direct p50; zero errors; RSS growth < 5% over the long run.
The client threads run on the same cores as the server: their CPU time is printed ("client
cores") so that the share they took is visible. The machine may be shared: the cores other
processes used during each section are printed ("other").
"""
import argparse
import http.client
import json
import os
import pathlib
import shlex
import socket
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

import link as link_bench  # noqa: E402  (load_documents)
import train_step  # noqa: E402  (busy_seconds)


def load_documents(mining_dir: str, count: int, chars: int):
  """[(text, lang)]: held-out documents of at least chars characters, cut to chars."""
  docs = link_bench.load_documents(mining_dir, 100_000, chars)
  long = [(t, l) for t, l in docs if len(t) >= chars * 0.9]
  by_lang = {}
  for text, lang in long:
    by_lang.setdefault(lang, []).append((text, lang))
  out = []
  while len(out) < count and any(by_lang.values()):
    for lang in sorted(by_lang):
      if by_lang[lang] and len(out) < count:
        out.append(by_lang[lang].pop(0))
  return out


def mentions_per_doc(linker, docs) -> float:
  return sum(len(linker.link(text, lang)) for text, lang in docs) / len(docs)


def paired(linker, port: int, docs, bodies) -> tuple:
  """(direct, served at concurrency 1): each document linked directly, then by the server."""
  connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
  direct, served, errors = [], [], []
  for (text, lang), body in zip(docs, bodies):
    start = time.perf_counter()
    linker.link(text, lang)
    direct.append(time.perf_counter() - start)
    start = time.perf_counter()
    connection.request("POST", "/v1/link", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    answer = response.read()
    served.append(time.perf_counter() - start)
    if response.status != 200:
      errors.append(answer[:200].decode("utf-8", "replace"))
    json.loads(answer)
  connection.close()

  def row(latencies):
    ms = np.array(latencies) * 1000
    return {"concurrency": 1, "requests": len(latencies), "docs_per_s": len(ms) / sum(latencies),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}

  return row(direct), dict(row(served), errors=len(errors), first_errors=errors[:3])


def tower_baseline(linker, docs, mentions_per_doc: float, seconds: float = 20.0) -> dict:
  """The mention tower on batches of linker.max_batch real mentions."""
  c, inputs = linker.context_chars, []
  for text, lang in docs:
    for s in linker.detector.detect(text, lang):
      inputs.append(("", text[max(0, s.start - c):s.start], s.text, text[s.end:s.end + c]))
  size = linker.max_batch
  batches = [[list(x) for x in zip(*inputs[i:i + size])]
             for i in range(0, len(inputs) - size + 1, size)]
  linker.encoder(*batches[0])
  machine0, own0 = train_step.busy_seconds()
  start, done, calls = time.perf_counter(), 0, 0
  while time.perf_counter() - start < seconds or calls < 2:
    linker.encoder(*batches[calls % len(batches)])
    done += size
    calls += 1
  wall = time.perf_counter() - start
  machine1, own1 = train_step.busy_seconds()
  rate = done / wall
  return {"batch": size, "mentions_per_s": rate, "docs_per_s": rate / mentions_per_doc,
          "other_cores": max(0.0, ((machine1 - machine0) - (own1 - own0)) / wall)}


def rss_mb(pid: int) -> float:
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  raise RuntimeError(f"no VmRSS for {pid}")


def process_cpu_seconds(pid: int) -> float:
  with open(f"/proc/{pid}/stat") as f:
    fields = f.read().rsplit(")", 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port: int, bodies, concurrency: int, requests: int) -> dict:
  """requests POSTs to /v1/link from concurrency threads; latencies, errors, wall time."""
  latencies, errors, lock = [], [], threading.Lock()
  counter = iter(range(requests))

  def client():
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    while True:
      with lock:
        n = next(counter, None)
      if n is None:
        break
      body = bodies[n % len(bodies)]
      start = time.perf_counter()
      try:
        connection.request("POST", "/v1/link", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
        ok = response.status == 200
        if ok:
          json.loads(answer)
      except (OSError, http.client.HTTPException) as e:
        ok, answer = False, repr(e).encode()
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
      elapsed = time.perf_counter() - start
      with lock:
        latencies.append(elapsed)
        if not ok:
          errors.append(answer[:200].decode("utf-8", "replace"))
    connection.close()

  own0 = process_cpu_seconds(os.getpid())
  machine0, _ = train_step.busy_seconds()
  threads = [threading.Thread(target=client) for _ in range(concurrency)]
  start = time.perf_counter()
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  wall = time.perf_counter() - start
  machine1, _ = train_step.busy_seconds()
  own = process_cpu_seconds(os.getpid()) - own0
  ms = np.array(latencies) * 1000
  return {"concurrency": concurrency, "requests": requests, "errors": len(errors),
          "first_errors": errors[:3], "docs_per_s": requests / wall,
          "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
          "client_cores": own / wall, "machine_cores": (machine1 - machine0) / wall}


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_server(model_dir: str, port: int, extra: str) -> subprocess.Popen:
  command = [sys.executable, "-m", "mel", "serve", "--model_dir", model_dir, "--port",
             str(port), "--log_level", "warning"] + shlex.split(extra)
  process = subprocess.Popen(command, cwd=ROOT)
  deadline = time.time() + 600
  while time.time() < deadline:
    if process.poll() is not None:
      raise RuntimeError(f"mel serve exited with {process.returncode}")
    try:
      connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
      connection.request("GET", "/health")
      if connection.getresponse().status == 200:
        return process
    except OSError:
      pass
    time.sleep(0.5)
  process.kill()
  raise RuntimeError("mel serve did not become ready in 600 s")


def run(args) -> dict:
  import mel
  docs = load_documents(args.mining_dir, args.docs, args.doc_chars)
  chars = [len(t) for t, _ in docs]
  print(f"{len(docs)} held-out documents of {min(chars)}-{max(chars)} characters, languages "
        f"{sorted({l for _, l in docs})}", flush=True)
  linker = mel.load(args.model_dir)
  per_doc = mentions_per_doc(linker, docs)   # also the warm-up of the direct linker
  tower = tower_baseline(linker, docs, per_doc)
  print(f"{per_doc:.1f} mentions per document")
  print(f"tower alone ({tower['batch']} per call): {tower['mentions_per_s']:.1f} mentions/s = "
        f"{tower['docs_per_s']:.2f} docs/s (other cores {tower['other_cores']:.2f})", flush=True)
  bodies = [json.dumps({"text": t, "lang": l}).encode("utf-8") for t, l in docs]
  port = free_port()
  server = start_server(args.model_dir, port, args.server_args)
  levels = []
  try:
    load(port, bodies, 1, len(bodies))   # warm-up: every document once
    direct, one = paired(linker, port, docs, bodies)
    levels.append(one)
    print(f"direct mel.link: p50 {direct['p50_ms']:.1f} ms, p99 {direct['p99_ms']:.1f} ms, "
          f"{direct['docs_per_s']:.2f} docs/s", flush=True)
    print(f"concurrency   1: {one['docs_per_s']:.2f} docs/s, p50 {one['p50_ms']:.1f} ms, p99 "
          f"{one['p99_ms']:.1f} ms, errors {one['errors']} (each after the direct call)",
          flush=True)
    del linker
    for c in args.concurrency:
      if c == 1:
        continue
      load(port, bodies, c, 2 * c)   # warm-up
      row = load(port, bodies, c, max(args.requests, 4 * c))
      levels.append(row)
      print(f"concurrency {c:>3}: {row['docs_per_s']:.2f} docs/s, p50 {row['p50_ms']:.1f} ms, "
            f"p99 {row['p99_ms']:.1f} ms, errors {row['errors']}, client cores "
            f"{row['client_cores']:.2f}, machine cores {row['machine_cores']:.2f}", flush=True)
    rss_before = rss_mb(server.pid)
    long = load(port, bodies, args.concurrency[-1], args.rss_requests)
    rss_after = rss_mb(server.pid)
    print(f"{args.rss_requests} requests at concurrency {args.concurrency[-1]}: "
          f"{long['docs_per_s']:.2f} docs/s, errors {long['errors']}; server RSS "
          f"{rss_before:.0f} -> {rss_after:.0f} MB ({100 * (rss_after / rss_before - 1):+.1f}%)",
          flush=True)
  finally:
    server.terminate()
    server.wait(60)
  top, one = levels[-1], levels[0]
  result = {"documents": len(docs), "doc_chars": args.doc_chars, "direct": direct,
            "mentions_per_doc": per_doc,
            "tower": tower, "levels": levels, "long": long, "rss_before_mb": rss_before,
            "rss_after_mb": rss_after, "server_args": args.server_args,
            "ratio_top_vs_tower": top["docs_per_s"] / tower["docs_per_s"],
            "ratio_p50_c1_vs_direct": one["p50_ms"] / direct["p50_ms"],
            "errors": sum(r["errors"] for r in levels) + long["errors"]}
  print(f"targets: docs/s at concurrency {top['concurrency']} / tower docs/s = "
        f"{result['ratio_top_vs_tower']:.2f} (>= 0.7); p50 at concurrency 1 / direct p50 = "
        f"{result['ratio_p50_c1_vs_direct']:.2f} (<= 1.3); errors {result['errors']} (0); RSS "
        f"growth {100 * (rss_after / rss_before - 1):+.1f}% (< 5%)")
  return result


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model_dir", default="out/models/demo_f/round1")
  p.add_argument("--mining_dir", default="out/mining")
  p.add_argument("--docs", type=int, default=200)
  p.add_argument("--doc_chars", type=int, default=2000)
  p.add_argument("--concurrency", default="1,8,32", help="levels above 1 (1 is always run, "
                 "paired with the direct calls)")
  p.add_argument("--requests", type=int, default=400, help="per concurrency level")
  p.add_argument("--rss_requests", type=int, default=10_000)
  p.add_argument("--server_args", default="", help="added to the `mel serve` command line")
  p.add_argument("--json", default="")
  args = p.parse_args()
  args.concurrency = [int(x) for x in args.concurrency.split(",")]
  result = run(args)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
  main()
