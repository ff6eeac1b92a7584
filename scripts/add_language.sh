#!/usr/bin/env bash
# Entities added after training, on a language left out of training: do they link as well as
# if they had been in the index from the start?
#   bash scripts/add_language.sh [LANGUAGE]      (default bn; after scripts/leave_out.sh)
# Works on a copy of out/models/leave_out_<LANGUAGE> (scripts/leave_out.sh: trained without the
# language's mentions; its index/ holds every entity, encoded from scratch):
#   1. the language's wiki is mined alone (beam run extract_mentions on its excerpt), as a
#      newer or another wiki would be;
#   2. `mel kb remove`: the entities only that wiki knows (<lang>wiki:* ids) leave the copy's
#      knowledge base, which is now one built without that wiki;
#   3. `mel kb add --mining_dir <that run> --skip_existing`: its new entities are encoded by the
#      trained entity tower and added as one index segment (a new generation);
#   4. `mel evaluate --languages <LANGUAGE>` on the held-out mentions in that language: the
#      knowledge base without the wiki's entities (after 2, in out/eval/add_<LANGUAGE>/before),
#      with them added (after 3), and the index built from scratch over all entities
#      (`--index`, in out/eval/add_<LANGUAGE>/after). Tables printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ADD="${1:-${MEL_LEAVE_OUT_LANG:-bn}}"
DATA="${MEL_DATA:-../shared/data}"
MINING="${MEL_MINING_DIR:-out/mining}"
export TF_CPP_MIN_LOG_LEVEL=3
MEL=.venv/bin/mel
SOURCE="out/models/leave_out_$ADD"
MODEL="out/models/add_$ADD"
EVAL="out/eval/add_$ADD"
if [ ! -f "$SOURCE/index/manifest.json" ]; then
  echo "add_language: no $SOURCE/index; run scripts/leave_out.sh first" >&2; exit 1
fi
DUMPS=("$DATA"/wikipedia/excerpts/"$ADD"wiki-*.xml.bz2)
if [ ! -f "${DUMPS[0]}" ]; then
  echo "add_language: no $ADD excerpt in $DATA/wikipedia/excerpts" >&2; exit 1
fi

echo "== 1/4 mining the $ADD wiki alone into out/mining_$ADD =="
.venv/bin/beam run extract_mentions --wikipedia_dumps="${DUMPS[0]}" \
  --wikidata_dump="$DATA/wikidata/entities.jsonl" --output="out/mining_$ADD"

echo "== 2/4 $MODEL: a copy of $SOURCE's serving parts without the entities only $ADD knows =="
rm -rf "$MODEL" && mkdir -p "$MODEL"
cp -r "$SOURCE"/{export,index,embeddings,entities.tsv,config.yaml} "$MODEL"/
cut -f1 "$MODEL/entities.tsv" | grep "^${ADD}wiki:" > "$MODEL/only_$ADD.txt" || true
$MEL kb remove --model_dir "$MODEL" --ids "$MODEL/only_$ADD.txt"
EVAL_ARGS=(--dataset "holdout:$MINING/mentions/holdout-*.tfrecord.gz" --recall_at 1,10,100
           --languages "$ADD" --no_alias_table --no_progress)
$MEL evaluate --model_dir "$MODEL" --name "without $ADD's entities" "${EVAL_ARGS[@]}" \
  --output "$EVAL/before"

echo "== 3/4 adding out/mining_$ADD's new entities (encoded now by the trained entity tower) =="
$MEL kb add --model_dir "$MODEL" --mining_dir "out/mining_$ADD" --skip_existing --no_progress
$MEL kb status --model_dir "$MODEL"

echo "== 4/4 evaluation on the held-out mentions in $ADD =="
$MEL evaluate \
  --model_dir "$MODEL" --index kb --name "$ADD added after training" \
  --model_dir "$MODEL" --index "$MODEL/index" --name "index from scratch" \
  "${EVAL_ARGS[@]}" --output "$EVAL/after"
