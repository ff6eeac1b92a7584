#!/usr/bin/env bash
# The main job on the bundled data: sets up .venv, then
#   1. mines the shared Wikipedia excerpts (bn, el, en, ja, mr, uk, vi) with the shared
#      WikiData entities into out/mining;
#   2. learns a WordPiece vocabulary from the mined text (no mBERT can be downloaded here);
#   3. trains the tiny demo dual encoder (configs/demo_cpu.yaml) into out/models/demo_cpu and
#      exports both towers;
#   4. encodes every entity and builds a ScaNN index;
#   5. mines hard negatives with per-entity label balance;
#   6. trains round 1 on them, starting from round 0's weights; 7. re-encodes and re-indexes.
# A rerun reuses every finished stage (same inputs: same mining output; existing vocabulary;
# a finished training run is not repeated, an interrupted one resumes from its checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${MEL_SHARED_DATA:-../shared/data}"
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3
PY=.venv/bin/python

echo "== 1/8 mining =="
.venv/bin/beam run extract_mentions \
  --wikipedia_dumps="$DATA/wikipedia/excerpts/*.xml.bz2" \
  --wikidata_dump="$DATA/wikidata/entities.jsonl" \
  --output_dir=out/mining "$@"

echo "== 2/8 vocabulary =="
if [[ -s out/vocab.txt ]]; then
  echo "out/vocab.txt exists: reused"
else
  $PY -m mel.build_vocab --mining_dir out/mining --output out/vocab.txt --vocab_size 8000
fi

echo "== 3/8 training round 0 (configs/demo_cpu.yaml) =="
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

echo "== 4/8 entity encodings + ScaNN index (round 0) =="
encode_and_index out/models/demo_cpu

echo "== 5/8 hard-negative mining (per-entity balance, ratio 10) =="
$PY -m mel.mine_negatives --model_dir out/models/demo_cpu --index out/models/demo_cpu/index \
  --output out/negatives/round1

echo "== 6/8 training round 1 on hard negatives, from round 0's weights =="
$PY -m mel.train --config configs/demo_cpu.yaml --model_dir out/models/demo_cpu_round1 \
  --params_override "data.mining_dir=out/mining,data.vocab=out/vocab.txt,train.steps=300,\
train.init_from_model_dir=out/models/demo_cpu,data.hard_negatives=out/negatives/round1/negatives-*.tfrecord.gz,\
data.hard_negatives_per_mention=2"

echo "== 7/8 entity encodings + ScaNN index (round 1) =="
encode_and_index out/models/demo_cpu_round1

echo "== 8/8 done =="
echo
echo "outputs:"
echo "  out/mining             mentions/, entities/, entity_pairs/, documents/, counts/,"
echo "                         dead_letter/, summary.txt, summary.json (layout: mel/records.py)"
echo "  out/vocab.txt          WordPiece vocabulary (mBERT layout)"
echo "  out/models/demo_cpu    round 0: config.yaml, vocab.txt, entities.tsv, checkpoints/,"
echo "                         train/ (TensorBoard), export/{mention,entity}_encoder"
echo "                         (SavedModels), train_summary.json, embeddings/, index/ (ScaNN)"
echo "  out/negatives/round1   MentionWithNegatives records + summary.json"
echo "  out/models/demo_cpu_round1   round 1 (hard negatives), same layout"
