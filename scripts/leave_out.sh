#!/usr/bin/env bash
# Leave-languages-out on the bundled data: a model trained without a language, evaluated on
# that language's held-out mentions.
#   bash scripts/leave_out.sh [CONFIG] [LANGUAGE]
# CONFIG: the experiment config (default configs/demo_e5.yaml, or $MEL_LEAVE_OUT_CONFIG);
# LANGUAGE: the language left out (default bn, or $MEL_LEAVE_OUT_LANG; several as bn+mr).
#   1. `mel train` CONFIG into out/models/leave_out_<LANGUAGE> with
#      data.exclude_languages=<LANGUAGE>: that language's training mentions (and hard-negative
#      records) and every entity pair with a description in it are left out;
#   2. `mel encode` every entity (the entity table is the whole mining run's, so the left-out
#      language's entities are encoded by the trained entity tower) and `mel index` them;
#   3. `mel evaluate --languages <LANGUAGE>`: the left-out language's held-out mentions only,
#      the model against the alias-table baseline. The alias table is built from the mining
#      run's training anchors of every language and ranks by P(e | string, language) first, so
#      a left-out language's query is answered from that language's own training anchors
#      (else pooled over all languages). Tables printed, files in out/eval/leave_out_<LANGUAGE>.
# Needs scripts/demo.sh's mining output (out/mining, or $MEL_MINING_DIR) and .venv. Extra
# config overrides as in demo.sh, e.g. when the config names no vocabulary:
#   MEL_DEMO_OVERRIDES=data.vocab=out/vocab.txt bash scripts/leave_out.sh configs/demo_cpu.yaml
# MEL_LEAVE_OUT_COMPARE=<model dir with an index> adds that model (e.g. one trained on every
# language) to the evaluation, as "all languages".
# A rerun reuses finished stages (training resumes or is skipped; encodings and index reused).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG="${1:-${MEL_LEAVE_OUT_CONFIG:-configs/demo_e5.yaml}}"
LEAVE_OUT="${2:-${MEL_LEAVE_OUT_LANG:-bn}}"   # not $LANG: that is the locale
MINING="${MEL_MINING_DIR:-out/mining}"
export TF_CPP_MIN_LOG_LEVEL=3
MEL=.venv/bin/mel
MODEL="out/models/leave_out_$LEAVE_OUT"
EVAL="out/eval/leave_out_$LEAVE_OUT"

if [ ! -x "$MEL" ]; then
  echo "leave_out: no $MEL; run scripts/setup.sh (or scripts/demo.sh) first" >&2; exit 1
fi
if [ ! -f "$MINING/summary.json" ]; then
  echo "leave_out: no finished mining run in $MINING; run scripts/demo.sh first" >&2; exit 1
fi
if [ ! -f "$CONFIG" ]; then
  echo "leave_out: config $CONFIG does not exist" >&2; exit 1
fi
OVERRIDES="data.mining_dir=$MINING,data.exclude_languages=$LEAVE_OUT${MEL_DEMO_OVERRIDES:+,$MEL_DEMO_OVERRIDES}"

echo "== 1/3 training $CONFIG without $LEAVE_OUT into $MODEL =="
$MEL train --config "$CONFIG" --model_dir "$MODEL" --params_override "$OVERRIDES"

echo "== 2/3 every entity encoded (the left-out language's too), index =="
$MEL encode --model_dir "$MODEL"
$MEL index --model_dir "$MODEL"

echo "== 3/3 evaluation on the held-out mentions in $LEAVE_OUT: model vs alias table =="
COMPARE=()
if [ -n "${MEL_LEAVE_OUT_COMPARE:-}" ]; then
  COMPARE=(--model_dir "$MEL_LEAVE_OUT_COMPARE" --name "all languages")
fi
$MEL evaluate \
  --model_dir "$MODEL" --name "without $LEAVE_OUT" "${COMPARE[@]}" \
  --dataset "holdout:$MINING/mentions/holdout-*.tfrecord.gz" --recall_at 1,10,100 \
  --languages "${LEAVE_OUT//+/,}" --output "$EVAL" --no_progress

echo
echo "outputs:"
echo "  $MODEL    the model trained without $LEAVE_OUT (config.yaml: data.exclude_languages;"
echo "                         train_summary.json), embeddings/, index/"
echo "  $EVAL      evaluation.json, evaluation.md (R@k on $LEAVE_OUT's held-out mentions),"
echo "                         recall_by_bin.png, recall_by_language.png"
