"""What the typing heads of a model.typing run learned: type prediction on held-out data.

  python bench/typing_heads.py --model_dir out/ablation_typing/typing_on_seed1
      [--mining_dir out/mining_types] [--json PATH]

The model is rebuilt from the model dir's config.yaml and its latest checkpoint (the exported
towers return the retrieval vector only). Targets are the model dir's entity_types.tsv (the
gold entity's types in the model's type vocabulary), the rows its classifiers predict.

  mention side  every held-out mention whose gold entity has types: the mention with its
                context (as the mention tower reads it) -> the gold entity's types;
  entity side   every entity of those mentions, from its description; and separately the
                "unseen" ones no training mention links to (the [0, 1) bin's entities).

Per side: micro precision / recall / F1 at sigmoid >= 0.5, and P@1 (the highest scored type
is one of the gold's) against a prior baseline that always answers the vocabulary's most
frequent type (its P@1 is the share of examples carrying that type).
"""
import argparse
import collections
import json
import os
import pathlib
import sys

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

BATCH = 64


def scores(encode, inputs_of, examples) -> np.ndarray:
  """float32 [N, T] type logits of examples, BATCH at a time."""
  out = []
  for i in range(0, len(examples), BATCH):
    chunk = examples[i:i + BATCH]
    _, logits = encode(inputs_of(chunk), training=False)
    out.append(np.asarray(logits))
  return np.concatenate(out) if out else np.zeros([0, 0], np.float32)


def figures(logits: np.ndarray, targets: np.ndarray, most_frequent: int) -> dict:
  predicted = logits >= 0.0                       # sigmoid >= 0.5
  gold = targets > 0
  tp = float((predicted & gold).sum())
  fp = float((predicted & ~gold).sum())
  fn = float((~predicted & gold).sum())
  precision = tp / (tp + fp) if tp + fp else 0.0
  recall = tp / (tp + fn) if tp + fn else 0.0
  f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
  top = logits.argmax(axis=1)
  return {"examples": int(len(targets)), "precision": precision, "recall": recall, "f1": f1,
          "p_at_1": float(gold[np.arange(len(top)), top].mean()) if len(top) else 0.0,
          "prior_p_at_1": float(gold[:, most_frequent].mean()) if len(top) else 0.0,
          "predicted_per_example": float(predicted.sum(axis=1).mean()) if len(top) else 0.0,
          "gold_per_example": float(gold.sum(axis=1).mean()) if len(top) else 0.0}


def main():
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model_dir", required=True)
  p.add_argument("--mining_dir", default="out/mining_types")
  p.add_argument("--json", default="")
  args = p.parse_args()

  import tensorflow as tf
  from mel import records
  from mel.model_dir import ModelDir
  from mel.modeling.dual_encoder import build_dual_encoder
  from mel.training import configs, train
  from mel.training.input_layout import InputBuilder
  from mel.training.type_task import read_vocabulary

  model_dir = ModelDir(args.model_dir)
  config = configs.load(model_dir.join("config.yaml"))
  if not config.model.typing.enabled:
    raise SystemExit(f"{args.model_dir} was not trained with model.typing")
  tokenizer = train.load_tokenizer(config, model_dir)
  builder = InputBuilder.from_config(tokenizer, config.data)
  model = build_dual_encoder(config.model)
  latest = tf.train.latest_checkpoint(model_dir.checkpoints)
  tf.train.Checkpoint(model=model).read(latest).expect_partial()

  vocabulary = read_vocabulary(model_dir.type_vocabulary)
  num_types = len(vocabulary)
  rows_of = {}
  with open(model_dir.entity_types, encoding="utf-8") as f:
    for line in f:
      entity_id, rows = line.rstrip("\n").split("\t")
      rows_of[entity_id] = [int(r) for r in rows.split()]

  def targets(entity_ids):
    out = np.zeros([len(entity_ids), num_types], np.float32)
    for i, e in enumerate(entity_ids):
      out[i, rows_of[e]] = 1.0
    return out

  trained = collections.Counter(m.entity_id for m in records.read_output(
      args.mining_dir, records.MENTIONS_TRAIN))
  held_out = [m for m in records.read_output(args.mining_dir, records.MENTIONS_HOLDOUT)
              if m.entity_id in rows_of]
  descriptions = {e.entity_id: e.description
                  for e in records.read_output(args.mining_dir, records.ENTITIES)}
  entities = sorted({m.entity_id for m in held_out})
  unseen = [e for e in entities if not trained[e]]

  mention_logits = scores(
      model.mention_tower.encode,
      lambda ms: builder.mentions([m.doc_title for m in ms], [m.left_context for m in ms],
                                  [m.mention for m in ms], [m.right_context for m in ms]),
      held_out)
  entity_logits = scores(model.entity_tower.encode,
                         lambda es: builder.entities([descriptions.get(e, "") for e in es]),
                         entities)
  position = {e: i for i, e in enumerate(entities)}
  result = {
      "model_dir": args.model_dir, "checkpoint": latest, "types": num_types,
      "most_frequent_type": vocabulary[0][0],
      "mention side (held-out mentions)": figures(
          mention_logits, targets([m.entity_id for m in held_out]), 0),
      "entity side (their entities)": figures(entity_logits, targets(entities), 0),
      "entity side (unseen entities)": figures(
          entity_logits[[position[e] for e in unseen]] if unseen else np.zeros([0, num_types]),
          targets(unseen), 0)}
  print(f"{args.model_dir} ({latest}): {num_types} types; most frequent "
        f"{result['most_frequent_type']}")
  for name, row in result.items():
    if isinstance(row, dict):
      print(f"  {name:<34} n={row['examples']:>5}  P {row['precision']:.3f}  R "
            f"{row['recall']:.3f}  F1 {row['f1']:.3f}  P@1 {row['p_at_1']:.3f} (prior "
            f"{row['prior_p_at_1']:.3f})  predicted/gold per example "
            f"{row['predicted_per_example']:.2f}/{row['gold_per_example']:.2f}")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
  main()
