"""Benchmark: dual-encoder training throughput on this CPU against its matmul FLOP rate.

  python bench/train_step.py [--configs a,b,e5] [--variants base,frozen_emb,dense_grad,xla,bf16,inter1]
      [--seconds 20] [--batch_size 64] [--repeat 1] [--max_other 0.25] [--json PATH]

Configurations (batch 64, sequence 64, mention-entity task only, no hard negatives):
  a  the demo model (configs/demo_cpu.yaml, model section), vocab 7,800 (the demo vocab's size);
  b  the paper's towers: 4-layer mBERT-base shape (hidden 768, 12 heads, intermediate 3072),
     vocab 119,547, embedding_dim 300, dropout 0.1 (EncoderConfig's defaults);
  e5 multilingual-e5-small's towers (configs/demo_e5.yaml, model section): 12 layers, hidden 384,
     12 heads, intermediate 1536, exact GELU, vocab 250,004 (250,002 SentencePiece pieces and
     the two mention markers), mean pooling over the real pieces, no projection (embedding_dim
     384), dropout 0.1; random weights (the bench measures speed, not the e5 initialisation).
     Its word embeddings are 2 x 96M of its 2 x 117M parameters: with AdamW's two moments the
     tables alone hold ~2.3 GB of float32 (peak RSS is in the table). The demo trains it at
     batch 32 (--batch_size 32); the default here is the other configs' 64.
Variants (none changes the model's math):
  base        mel.training.train.build_train_loop as it is, float32;
  frozen_emb  train.freeze_word_embeddings: true (a real training option since the e5 towers,
              set through the config, as `mel train` runs it): both word-embedding tables
              are left out of the trainable set, so their gradient, AdamW update and AdamW
              moments do not exist (the FLOP count is the same; the word embeddings are no
              matmul);
  dense_grad  the word-embedding gradients (IndexedSlices) made dense before AdamW, so AdamW
              takes its dense path (same update; no scatters, so no copy-on-read of the tables);
  xla         model.task_losses compiled with jit_compile=True (forward and its gradient;
              the AdamW update stays outside XLA), inside the same real loop;
  bf16        train.mixed_precision: bfloat16 (tf_keras "mixed_bfloat16": bfloat16 compute,
              float32 variables, float32 tower outputs and losses), as `mel train` runs it;
  inter1      one inter-op thread (TF's default: one per core), so that two big einsums do
              not run side by side on the two cores.

Each (config, variant) runs in its own child process (fresh TF state and a clean peak RSS).
The child measures float32 tf.matmul at the model's biggest shape ([B*L, H] x [H, I]), builds
the model and optimizer with mel.training.train.build_model (seeded, in the config's
precision), feeds synthetic random token ids from an in-memory,
repeated tf.data dataset through the default strategy, compiles and warms up, times whole
train_loop calls for >= --seconds, then measures the matmul again (best of all runs counts).

FLOPs are counted analytically: forward matmul FLOPs (2 per multiply-add) of one tower on one
64-token sequence (QKV, attention scores and context, output projection, FFN), the one-hot
token-type matmul and the final Dense (projection). With [CLS] pooling (a, b) the last layer
has output_range=2, so it projects K and V for every position but Q, scores, context, output
projection and FFN only for the first two positions. With mean pooling (e5) the last layer
computes every position like the others (the pooling reads them all) and there is no Dense
(no projection); the masked mean itself is elementwise and not counted. A pair is one mention
and one entity sequence plus its share of the [B, B] logits matmul; a training step counts 3x
the forward. At batch 64: a 0.194, b 17.59, e5 16.76 GFLOP per pair.

Other processes on the machine halve these figures when they take a core, so /proc/stat is
read around every train_loop call: calls during which other processes used more than
--max_other cores are left out of the rate and timing continues (up to 5x --seconds) until
--seconds of quiet calls are in; a row with no quiet call reports all calls and says so.
"""
import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VOCAB_A = 7800       # out/vocab.txt of the demo chain
VOCAB_B = 119547     # mBERT's vocab.txt
VOCAB_E5 = 250004    # e5's 250,002 SentencePiece pieces + [E], [/E]
SEQ = 64
CONFIGS = ("a", "b", "e5")
STEPS_PER_LOOP = {"a": 20, "b": 1, "e5": 1}
WARMUP_CALLS = {"a": 3, "b": 1, "e5": 1}
VARIANTS = ("base", "frozen_emb", "dense_grad", "xla", "bf16", "inter1")


def model_config(name: str):
  """The ModelConfig of configuration a, b or e5."""
  from mel.training import configs
  if name == "a":
    model = configs.load(str(ROOT / "configs/demo_cpu.yaml")).model
    model.encoder.vocab_size = VOCAB_A
    return model
  if name == "b":
    return configs.ModelConfig(kind="F", embedding_dim=300, encoder=configs.EncoderConfig(
        vocab_size=VOCAB_B, hidden_size=768, num_layers=4, num_attention_heads=12,
        intermediate_size=3072))
  if name == "e5":
    model = configs.load(str(ROOT / "configs/demo_e5.yaml")).model
    model.encoder.vocab_size = VOCAB_E5
    # The demo trains 32-piece sequences; the bench's are SEQ long (e5 has 512 positions).
    model.encoder.max_position_embeddings = max(SEQ, model.encoder.max_position_embeddings)
    return model
  raise ValueError(f"unknown config {name!r} (a, b or e5)")


def tower_flops(enc, seq: int, dim: int, pooling: str = "cls", projection: bool = True) -> int:
  """Forward matmul FLOPs of one text tower on one sequence.

  pooling "cls": the last layer has output_range=2; "mean": it computes every position.
  projection: the final Dense(hidden -> dim); without it there is none.
  """
  h, inner = enc.hidden_size, enc.intermediate_size
  full = 2 * seq * (4 * h * h + 2 * h * inner) + 2 * 2 * seq * seq * h
  if pooling == "mean":
    last = full
  else:
    # output_range=2 (mel/modeling/text_tower.py): K, V for all positions; Q, scores, context,
    # output projection and FFN for the first two positions only.
    q = 2
    last = 2 * 2 * seq * h * h + 2 * 2 * q * h * h + 2 * 2 * q * seq * h + 2 * 2 * q * h * inner
  type_one_hot = 2 * seq * enc.type_vocab_size * h
  dense = 2 * h * dim if projection else 0
  return (enc.num_layers - 1) * full + last + type_one_hot + dense


def model_tower_flops(model, seq: int = SEQ) -> int:
  """tower_flops of a ModelConfig (its pooling and projection)."""
  return tower_flops(model.encoder, seq, model.embedding_dim, model.pooling, model.projection)


def pair_flops(model, batch: int, seq: int = SEQ) -> int:
  """Training FLOPs per mention-entity pair (3x the forward)."""
  forward = 2 * model_tower_flops(model, seq)
  forward += 2 * batch * model.embedding_dim   # this pair's row of the [B, B] logits
  return 3 * forward


def matmul_gflops(tf, m: int, k: int, n: int, dtype, seconds: float = 1.0, runs: int = 5):
  """Best GFLOPS of tf.matmul [m, k] x [k, n] over `runs` runs of >= `seconds` each."""
  a = tf.random.normal([m, k], dtype=tf.float32)
  b = tf.random.normal([k, n], dtype=tf.float32)
  a, b = tf.cast(a, dtype), tf.cast(b, dtype)
  flops = 2 * m * k * n
  start = time.perf_counter()
  tf.matmul(a, b).numpy()
  reps = max(1, int(seconds / max(time.perf_counter() - start, 1e-4)))
  best = 0.0
  for _ in range(runs):
    start = time.perf_counter()
    for _ in range(reps):
      c = tf.matmul(a, b)
    c.numpy()
    best = max(best, reps * flops / (time.perf_counter() - start) / 1e9)
  return best


def synthetic_dataset(tf, batch: int, vocab: int, batches: int = 8):
  """An in-memory, repeated dataset of `batches` distinct random batches."""
  def inputs(seed):
    ids = tf.random.stateless_uniform([batches, batch, SEQ], [seed, 1], 1, vocab, tf.int32)
    types = tf.random.stateless_uniform([batches, batch, SEQ], [seed, 2], 0, 4, tf.int32)
    return {"input_word_ids": ids, "input_mask": tf.ones_like(ids), "input_type_ids": types}
  entity_ids = tf.random.stateless_uniform([batches, batch], [3, 3], 0, 2**31 - 1, tf.int32)
  features = {"mentions": inputs(1), "entities": inputs(2), "entity_ids": entity_ids}
  return tf.data.Dataset.from_tensor_slices(features).repeat().prefetch(2)


def run_one(config_name: str, variant: str, batch: int, seconds: float, steps_per_loop: int,
            max_other: float):
  """Measures one (config, variant) in this process; returns a dict of figures."""
  import mel  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
  import tensorflow as tf
  if variant == "inter1":
    tf.config.threading.set_inter_op_parallelism_threads(1)
  from mel.training import configs, train

  model_cfg = model_config(config_name)
  enc = model_cfg.encoder
  shape = (batch * SEQ, enc.hidden_size, enc.intermediate_size)
  mm = [matmul_gflops(tf, *shape, tf.float32)]
  mm_bf16 = matmul_gflops(tf, *shape, tf.bfloat16) if variant == "bf16" else None

  config = configs.ExperimentConfig(model=model_cfg, train=configs.TrainConfig(
      steps=1_000_000, learning_rate=1e-4, entity_entity_task=False, seed=1,
      mixed_precision="bfloat16" if variant == "bf16" else "float32",
      freeze_word_embeddings=variant == "frozen_emb"))
  strategy = tf.distribute.get_strategy()
  model, optimizer = train.build_model(config, strategy)
  if variant == "xla":
    model.task_losses = tf.function(model.task_losses, jit_compile=True)
  if variant == "dense_grad":
    def apply_gradients(pairs, inner=optimizer.apply_gradients):
      return inner([(tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g, v)
                    for g, v in pairs])
    optimizer.apply_gradients = apply_gradients
  params = sum(int(tf.size(v)) for v in model.trainable_variables)

  dataset = strategy.distribute_datasets_from_function(
      lambda ctx: synthetic_dataset(tf, batch, enc.vocab_size))
  iterator = iter(dataset)
  config.data.batch_size = config.data.pairs_batch_size = batch
  loop = train.build_train_loop(model, optimizer, strategy, config)
  n = tf.constant(steps_per_loop, tf.int32)

  start = time.perf_counter()
  first = loop(iterator, n)
  float(first["mention_entity_loss"])
  compile_s = time.perf_counter() - start
  for _ in range(WARMUP_CALLS.get(config_name, 1)):
    float(loop(iterator, n)["mention_entity_loss"])

  # Calls during which other processes kept more than `max_other` cores busy are timed but
  # left out of the rate, and timing goes on (up to 5x `seconds`) until `seconds` of quiet calls.
  calls, quiet_steps, quiet_time, all_steps, all_time, other_time = [], 0, 0.0, 0, 0.0, 0.0
  while quiet_time < seconds and all_time < 5 * seconds:
    busy0, t0 = busy_seconds(), time.perf_counter()
    out = loop(iterator, n)
    loss = float(out["mention_entity_loss"])
    dt, busy1 = time.perf_counter() - t0, busy_seconds()
    others = max((busy1[0] - busy0[0]) - (busy1[1] - busy0[1]), 0.0) / dt
    calls.append({"seconds": dt, "pairs_per_s": steps_per_loop * batch / dt,
                  "self_cores": (busy1[1] - busy0[1]) / dt, "other_cores": others})
    all_steps, all_time, other_time = all_steps + steps_per_loop, all_time + dt, other_time + others * dt
    if others <= max_other:
      quiet_steps, quiet_time = quiet_steps + steps_per_loop, quiet_time + dt
  mm.append(matmul_gflops(tf, *shape, tf.float32))
  if mm_bf16:
    mm_bf16 = max(mm_bf16, matmul_gflops(tf, *shape, tf.bfloat16))

  steps, elapsed = (quiet_steps, quiet_time) if quiet_steps else (all_steps, all_time)
  pairs_per_s = steps * batch / elapsed
  flops = pair_flops(model_cfg, batch)
  gflops = pairs_per_s * flops / 1e9
  return {
      "config": config_name, "variant": variant, "batch_size": batch, "seq_length": SEQ,
      "steps_per_loop": steps_per_loop, "trainable_params": params, "compile_s": compile_s,
      "steps": steps, "seconds": elapsed, "pairs_per_s": pairs_per_s,
      "quiet": bool(quiet_steps), "pairs_per_s_all_calls": all_steps * batch / all_time,
      "calls": calls,
      "gflop_per_pair": flops / 1e9, "gflops": gflops,
      "matmul_shape": list(shape), "matmul_gflops": max(mm), "matmul_gflops_runs": mm,
      "matmul_bf16_gflops": mm_bf16, "ratio": gflops / max(mm), "final_loss": loss,
      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
      "other_cores_used": other_time / all_time,
      "first_loss": float(first["mention_entity_loss"]),
  }


def busy_seconds():
  """(CPU seconds of all processes on the machine, CPU seconds of this process) so far."""
  with open("/proc/stat") as f:
    fields = [int(x) for x in f.readline().split()[1:]]
  ticks = os.sysconf("SC_CLK_TCK")
  busy = sum(fields[:8]) - fields[3] - fields[4]   # user..steal, less idle and iowait
  t = os.times()
  return busy / ticks, t.user + t.system


def wait_for_quiet(limit: float, threshold: float = 0.25) -> float:
  """Waits (up to `limit` s) until other processes use < `threshold` cores; returns that use."""
  deadline = time.time() + limit
  while True:
    before = busy_seconds()[0]
    time.sleep(3.0)
    others = (busy_seconds()[0] - before) / 3.0
    if others < threshold or time.time() >= deadline:
      return others
    time.sleep(7.0)


def cpu_name() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return "unknown"


def print_table(rows):
  """The summary table, one row per (config, variant)."""
  head = (f"{'config':<6} {'variant':<11} {'pairs/s':>8} {'all runs':>13} {'GFLOP/pair':>10} "
          f"{'GFLOPS':>7} {'matmul':>7} {'ratio':>6} {'vs base':>7} {'compile s':>9} "
          f"{'RSS GB':>6} {'quiet s':>7} {'other':>5}")
  print(head)
  print("-" * len(head))
  print("(pairs/s: the fastest run, over its quiet calls; matmul: float32 GFLOPS at the model's\n"
        " FFN shape, best in that run's process; ratio = GFLOPS / matmul; quiet s: seconds timed\n"
        " while other processes used <= --max_other cores (0: none, all calls counted); other:\n"
        " mean cores other processes used over all timed calls)")
  base = {r["config"]: r["pairs_per_s"] for r in rows if r["variant"] == "base"}
  for r in rows:
    lo, hi = min(r["pairs_per_s_runs"]), max(r["pairs_per_s_runs"])
    rel = r["pairs_per_s"] / base.get(r["config"], float("nan"))
    print(f"{r['config']:<6} {r['variant']:<11} {r['pairs_per_s']:>8.1f} "
          f"{f'{lo:.1f}-{hi:.1f}':>13} {r['gflop_per_pair']:>10.3f} {r['gflops']:>7.1f} "
          f"{r['matmul_gflops']:>7.1f} {r['ratio']:>6.2f} {rel:>7.2f} {r['compile_s']:>9.1f} "
          f"{r['peak_rss_gb']:>6.2f} {r['seconds'] if r['quiet'] else 0:>7.0f} "
          f"{r['other_cores_used']:>5.2f}")
  for r in rows:
    if r["matmul_bf16_gflops"]:
      print(f"\n{r['config']}: bfloat16 matmul at {r['matmul_shape']}: "
            f"{r['matmul_bf16_gflops']:.1f} GFLOPS (float32 {r['matmul_gflops']:.1f})")


def run_child(name: str, variant: str, args):
  """Runs one (config, variant) in a fresh process; returns its figures or None."""
  cmd = [sys.executable, __file__, f"--one={name}:{variant}", f"--seconds={args.seconds}",
         f"--batch_size={args.batch_size}", f"--steps_per_loop={args.steps_per_loop}",
         f"--max_other={args.max_other}"]
  started = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True)
  result = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
  if not result:
    print(f"  {name}/{variant}: FAILED (exit {proc.returncode})\n{proc.stderr[-3000:]}", flush=True)
    return None
  row = json.loads(result[-1][len("RESULT "):])
  row["exit_code"] = proc.returncode
  if proc.returncode:
    print(f"  {name}/{variant}: process exited {proc.returncode} after its figures: "
          f"{proc.stderr.strip().splitlines()[-1:]}", flush=True)
  print(f"  {name}/{variant}: {row['pairs_per_s']:.1f} pairs/s, {row['gflops']:.1f} GFLOPS, "
        f"matmul {row['matmul_gflops']:.0f}, ratio {row['ratio']:.2f}, "
        f"peak RSS {row['peak_rss_gb']:.2f} GB; "
        f"{row['seconds'] if row['quiet'] else 0:.0f} s quiet, other processes "
        f"{row['other_cores_used']:.2f} cores ({time.perf_counter() - started:.0f} s)", flush=True)
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default="a,b",
                      help="comma-separated: a (demo), b (mBERT-base), e5 (multilingual-e5-small)")
  parser.add_argument("--variants", default=",".join(VARIANTS),
                      help=f"comma-separated, from {','.join(VARIANTS)}")
  parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per row (min)")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--steps_per_loop", type=int, default=0,
                      help="steps per train_loop call; 0: 20 for a, 1 for b and e5")
  parser.add_argument("--max_other", type=float, default=0.25,
                      help="calls during which other processes used more cores than this are "
                      "left out of the rate (timing goes on, up to 5x --seconds)")
  parser.add_argument("--repeat", type=int, default=1,
                      help="runs per row; the table shows the fastest and the range")
  parser.add_argument("--quiet_wait", type=float, default=0.0,
                      help="before each run, wait up to this many seconds for other processes "
                      "to leave the CPU idle")
  parser.add_argument("--json", default="", help="write all figures to this file")
  parser.add_argument("--one", default="", help=argparse.SUPPRESS)   # child: config:variant
  args = parser.parse_args()

  if args.one:
    name, variant = args.one.split(":")
    spl = args.steps_per_loop or STEPS_PER_LOOP[name]
    row = run_one(name, variant, args.batch_size, args.seconds, spl, args.max_other)
    print("RESULT " + json.dumps(row))
    return

  names = [c for c in args.configs.split(",") if c]
  variants = [v for v in args.variants.split(",") if v]
  for c in names:
    if c not in CONFIGS:
      sys.exit(f"unknown config {c!r}; known: {','.join(CONFIGS)}")
  for v in variants:
    if v not in VARIANTS:
      sys.exit(f"unknown variant {v!r}; known: {','.join(VARIANTS)}")
  print(f"train-step benchmark: {os.cpu_count()} cores ({cpu_name()}), batch {args.batch_size}, "
        f"seq {SEQ}, >= {args.seconds:.0f} s timed per row", flush=True)
  rows = []
  for name in names:
    model = model_config(name)
    print(f"config {name}: hidden {model.encoder.hidden_size}, layers {model.encoder.num_layers}, "
          f"intermediate {model.encoder.intermediate_size}, vocab {model.encoder.vocab_size}, "
          f"embedding_dim {model.embedding_dim}, pooling {model.pooling}, "
          f"projection {model.projection}: "
          f"{pair_flops(model, args.batch_size) / 1e9:.3f} training GFLOP per pair", flush=True)
    for variant in variants:
      runs = []
      for _ in range(args.repeat):
        if args.quiet_wait:
          wait_for_quiet(args.quiet_wait)
        row = run_child(name, variant, args)
        if row:
          runs.append(row)
      if runs:
        best = max(runs, key=lambda r: r["pairs_per_s"])
        best["pairs_per_s_runs"] = [r["pairs_per_s"] for r in runs]
        best["matmul_gflops_all"] = [r["matmul_gflops"] for r in runs]
        rows.append(best)
  print()
  if rows:
    print_table(rows)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"cpu": cpu_name(), "cores": os.cpu_count(), "rows": rows}, f, indent=2)
      f.write("\n")


if __name__ == "__main__":
  main()
