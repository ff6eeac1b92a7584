#!/usr/bin/env bash
# The main job on the bundled data: sets up .venv, then
#   1. mines the shared Wikipedia excerpts (bn, el, en, ja, mr, uk, vi) with the shared
#      WikiData entities into out/mining;
#   2. learns a WordPiece vocabulary from the mined text (no mBERT can be downloaded here);
#   3. trains the tiny demo dual encoder (configs/demo_cpu.yaml) into out/models/demo_cpu and
#      exports both towers;
#   4. encodes every entity and builds a ScaNN index;
#   5. mines hard negatives with per-entity label balance;
#   6. trains round 1 on them, starting from round 0's weights; 7. re-encodes and re-indexes;
#   8. trains Model E (one embedding per entity) for comparison, encodes and indexes it;
#   9. evaluates F round 1, F round 0, E and the alias-table baseline on the held-out split
#      (R@k by training-frequency bin and by language, JSON + markdown + plots);
#  10. builds the mention dictionary and links example sentences in several languages.
# A rerun reuses every finished stage (same inputs: same mining output; existing vocabulary;
# a finished training run is not repeated, an interrupted one resumes from its checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${MEL_SHARED_DATA:-../shared/data}"
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3
PY=.venv/bin/python

echo "== 1/10 mining =="
.venv/bin/beam run extract_mentions \
  --wikipedia_dumps="$DATA/wikipedia/excerpts/*.xml.bz2" \
  --wikidata_dump="$DATA/wikidata/entities.jsonl" \
  --output_dir=out/mining "$@"

echo "== 2/10 vocabulary =="
if [[ -s out/vocab.txt ]]; then
  echo "out/vocab.txt exists: reused"
else
  $PY -m mel.build_vocab --mining_dir out/mining --output out/vocab.txt --vocab_size 8000
fi

echo "== 3/10 training round 0 (configs/demo_cpu.yaml) =="
$PY -m mel.train --config configs/demo_cpu.yaml --model_dir out/models/demo_cpu \
  --params_override data.mining_dir=out/mining,data.vocab=out/vocab.txt

# Entity encodings and a ScaNN index of a model dir (reused when already built for it).
encode_and_index() {
  local model_dir="$1"
  $PY -m mel.encode_entities --model_dir "$model_dir" --output "$model_dir/embeddings"
  if [[ "$model_dir/index/manifest.json" -nt "$model_dir/embeddings/manifest.json" ]]; then
    echo "$model_dir/index is up to date: reused"
  else
    $PY -m mel.build_index --embeddings "$model_dir/embeddings" --output "$model_dir/index" \
      --kind scann
  fi
}

echo "== 4/10 entity encodings + ScaNN index (round 0) =="
encode_and_index out/models/demo_cpu

echo "== 5/10 hard-negative mining (per-entity balance, ratio 10) =="
$PY -m mel.mine_negatives --model_dir out/models/demo_cpu --index out/models/demo_cpu/index \
  --output out/negatives/round1

echo "== 6/10 training round 1 on hard negatives, from round 0's weights =="
$PY -m mel.train --config configs/demo_cpu.yaml --model_dir out/models/demo_cpu_round1 \
  --params_override "data.mining_dir=out/mining,data.vocab=out/vocab.txt,train.steps=300,\
train.init_from_model_dir=out/models/demo_cpu,data.hard_negatives=out/negatives/round1/negatives-*.tfrecord.gz,\
data.hard_negatives_per_mention=2"

echo "== 7/10 entity encodings + ScaNN index (round 1) =="
encode_and_index out/models/demo_cpu_round1

echo "== 8/10 Model E (an embedding per entity), encodings + index =="
$PY -m mel.train --config configs/demo_cpu.yaml --model_dir out/models/demo_e \
  --params_override data.mining_dir=out/mining,data.vocab=out/vocab.txt,model.kind=E,\
train.entity_entity_task=false
encode_and_index out/models/demo_e

echo "== 9/10 evaluation on the held-out split: F round 1, F round 0, E, alias table =="
$PY -m mel.evaluate \
  --model_dir out/models/demo_cpu_round1 --name "F round 1" \
  --model_dir out/models/demo_cpu --name "F round 0" \
  --model_dir out/models/demo_e --name E \
  --dataset 'holdout:out/mining/mentions/holdout-*.tfrecord.gz' --k 1,10,100 \
  --output out/eval/holdout

echo "== 10/10 mention dictionary + linking example sentences (el, uk, vi, ja, bn, mr) =="
$PY -m mel.build_dictionary --mining_dir out/mining --output out/models/demo_cpu_round1/dictionary
MEL_MODEL_DIR=out/models/demo_cpu_round1 .venv/bin/mel link \
  --input scripts/link_examples.jsonl --output out/linked_examples.jsonl
$PY - <<'PY'
import json
for line in open("out/linked_examples.jsonl", encoding="utf-8"):
  doc = json.loads(line)
  print(f"[{doc['lang']}] {doc['text']}")
  for m in doc.get("mentions", []):
    target = m["entity_id"] or "NIL"
    print(f"    {m['text']!r} [{m['start']}:{m['end']}] -> {target} ({m['score']:.2f})"
          f"  {(m['description'] or '')[:60]}")
PY

echo
echo "outputs:"
echo "  out/mining             mentions/, entities/, entity_pairs/, documents/, counts/,"
echo "                         dead_letter/, summary.txt, summary.json (layout: mel/records.py)"
echo "  out/vocab.txt          WordPiece vocabulary (mBERT layout)"
echo "  out/models/demo_cpu    round 0: config.yaml, vocab.txt, entities.tsv, checkpoints/,"
echo "                         train/ (TensorBoard), export/{mention,entity}_encoder"
echo "                         (SavedModels), train_summary.json, embeddings/, index/ (ScaNN)"
echo "  out/negatives/round1   MentionWithNegatives records + summary.json"
echo "  out/models/demo_cpu_round1   round 1 (hard negatives), same layout, + dictionary/"
echo "                         (mention spotter; MEL_MODEL_DIR for mel.link / mel link -i)"
echo "  out/models/demo_e      Model E (entity embeddings), same layout"
echo "  out/eval/holdout       evaluation.json, evaluation.md (binned R@k, per language),"
echo "                         recall_by_bin.png, recall_by_language.png"
echo "  out/linked_examples.jsonl   the example sentences linked by mel link"
