#!/usr/bin/env bash
# The main job on the bundled data: sets up .venv, then mines the shared Wikipedia excerpts
# (bn, el, en, ja, mr, uk, vi) with the shared WikiData entities into out/mining.
# A rerun with the same inputs reuses the finished output.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${MEL_SHARED_DATA:-../shared/data}"
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=3
.venv/bin/beam run extract_mentions \
  --wikipedia_dumps="$DATA/wikipedia/excerpts/*.xml.bz2" \
  --wikidata_dump="$DATA/wikidata/entities.jsonl" \
  --output_dir=out/mining "$@"
echo
echo "outputs: out/mining (mentions/, entities/, entity_pairs/, documents/, counts/,"
echo "         dead_letter/, summary.txt, summary.json); layout in mel/records.py"
