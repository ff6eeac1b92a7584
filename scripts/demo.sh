#!/usr/bin/env bash
# The main job on the bundled data: sets up .venv, then
#   1. mines the shared Wikipedia excerpts (bn, el, en, ja, mr, uk, vi) with the shared
#      WikiData entities into out/mining;
#   2. learns a WordPiece vocabulary from the mined text (no mBERT can be downloaded here);
#   3. trains the tiny demo dual encoder (configs/demo_cpu.yaml) into out/models/demo_cpu and
#      exports both towers.
# A rerun reuses every finished stage (same inputs: same mining output; existing vocabulary;
# a finished training run is not repeated, an interrupted one resumes from its checkpoint).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${MEL_SHARED_DATA:-../shared/data}"
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3
PY=.venv/bin/python

echo "== 1/3 mining =="
.venv/bin/beam run extract_mentions \
  --wikipedia_dumps="$DATA/wikipedia/excerpts/*.xml.bz2" \
  --wikidata_dump="$DATA/wikidata/entities.jsonl" \
  --output_dir=out/mining "$@"

echo "== 2/3 vocabulary =="
if [[ -s out/vocab.txt ]]; then
  echo "out/vocab.txt exists: reused"
else
  $PY -m mel.build_vocab --mining_dir out/mining --output out/vocab.txt --vocab_size 8000
fi

echo "== 3/3 training (configs/demo_cpu.yaml) =="
$PY -m mel.train --config configs/demo_cpu.yaml --model_dir out/models/demo_cpu \
  --params_override data.mining_dir=out/mining,data.vocab=out/vocab.txt

echo
echo "outputs:"
echo "  out/mining             mentions/, entities/, entity_pairs/, documents/, counts/,"
echo "                         dead_letter/, summary.txt, summary.json (layout: mel/records.py)"
echo "  out/vocab.txt          WordPiece vocabulary (mBERT layout)"
echo "  out/models/demo_cpu    config.yaml, vocab.txt, entities.tsv, checkpoints/, train/"
echo "                         (TensorBoard), export/{mention,entity}_encoder (SavedModels),"
echo "                         train_summary.json"
