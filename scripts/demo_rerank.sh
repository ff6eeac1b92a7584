#!/usr/bin/env bash
# The cross-attention reranker ("+CA", paper Sec. 5.5.2) and its distillation into the dual
# encoder, on the demo's outputs: run after scripts/demo.sh (a second command: about an hour on
# 2 cores, the reranker's training 24 min of it, which the demo's budget does not hold; README
# "Reranking (+CA) and distillation").
#   1. trains the reranker from e5's 12 layers (configs/demo_reranker.yaml) on the dual
#      encoder's hard negatives (out/models/demo_f/negatives_round1) + random entities;
#   2. distils it into the dual encoder: `mel rounds` with rounds.distill_from mines round 1's
#      candidates (negatives_round2), scores each mention's gold and first 3 with the reranker
#      (`mel teacher`) and trains round1_distilled from round 1's weights on them, distilling
#      over those 4 (finished rounds are reused);
#   3. evaluates on the held-out split: F+ round 1, F+ distilled and F+ round 1 +CA (its top 5
#      reranked) side by side, with NIL thresholds (the reranker's goes to round 1's nil.json,
#      where `mel.load(..., reranker=...)` finds it); then e5 off the shelf and its +CA (a weak
#      retriever leaves the reranker room);
#   4. links the example sentences with the reranker (full mode) and times reranking.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL=3
MEL=.venv/bin/mel
STARTED=$(date +%s)
HOLDOUT='holdout:out/mining/mentions/holdout-*.tfrecord.gz'
if [ ! -d out/models/demo_f/round1/index ] || [ ! -d out/models/demo_f/negatives_round1 ]; then
  echo "run scripts/demo.sh first (it trains the dual encoder this builds on)" >&2
  exit 1
fi

echo "== 1/4 the reranker (model.kind CA) =="
$MEL train --config configs/demo_reranker.yaml --model_dir out/models/demo_reranker

echo "== 2/4 distillation: teacher scores + a distilled round from round 1 =="
$MEL rounds --config configs/demo_e5.yaml --output out/models/demo_f \
  --params_override "data.mining_dir=out/mining,rounds.distill_from=out/models/demo_reranker,data.hard_negatives_per_mention=3${MEL_DISTILL_OVERRIDES:+,$MEL_DISTILL_OVERRIDES}"

echo "== 3/4 evaluation: DE, DE distilled, +CA =="
$MEL evaluate \
  --model_dir out/models/demo_f/round1 --name "F+ round 1" --index out/models/demo_f/round1/index \
  --model_dir out/models/demo_f/round1_distilled --name "F+ distilled" \
  --index out/models/demo_f/round1_distilled/index \
  --reranker out/models/demo_reranker --rerank "F+ round 1" --rerank_top 5 \
  --dataset "$HOLDOUT" --recall_at 1,5,10,100 --nil_fraction 0.2 --save_threshold \
  --output out/eval/rerank --no_progress
cat out/eval/rerank/evaluation.md
if [ ! -d out/models/e5_off_the_shelf/index ]; then
  $MEL train --config configs/demo_e5.yaml --model_dir out/models/e5_off_the_shelf \
    --params_override "data.mining_dir=out/mining,train.steps=0,data.mention_layout=mention_only"
  $MEL encode --model_dir out/models/e5_off_the_shelf
  $MEL index --model_dir out/models/e5_off_the_shelf --kind brute_force
fi
$MEL evaluate --model_dir out/models/e5_off_the_shelf --name "e5 off the shelf" \
  --reranker out/models/demo_reranker --rerank_top 5 --no_alias_table \
  --dataset "$HOLDOUT" --recall_at 1,5,10,100 --output out/eval/rerank_e5 --no_progress
cat out/eval/rerank_e5/evaluation.md

echo "== 4/4 linking with the reranker; its cost =="
[ -d out/models/demo_f/round1/dictionary ] ||   # scripts/demo.sh builds it (stage 10)
  $MEL dictionary --mining_dir out/mining --output out/models/demo_f/round1/dictionary
MEL_MODEL_DIR=out/models/demo_f/round1 $MEL link --reranker out/models/demo_reranker \
  --input scripts/link_examples.jsonl --output out/linked_examples_rerank.jsonl --no_progress
.venv/bin/python bench/link.py --model_dir out/models/demo_f/round1 \
  --configs demo --reranker out/models/demo_reranker --json out/eval/rerank/link_bench.json

echo
echo "outputs:"
echo "  out/models/demo_reranker         the reranker: config.yaml, checkpoints/, train/,"
echo "                                   export/reranker (SavedModel: raw strings -> logits)"
echo "  out/models/demo_f/teacher_round1 round 1's candidates with the reranker's logits"
echo "  out/models/demo_f/round1_distilled   the distilled dual encoder (+ embeddings/, index/)"
echo "  out/eval/rerank, out/eval/rerank_e5  evaluation.json, evaluation.md, plots"
echo "  out/linked_examples_rerank.jsonl     the example sentences linked with the reranker"
echo "reranking demo finished in $(( $(date +%s) - STARTED )) s"
