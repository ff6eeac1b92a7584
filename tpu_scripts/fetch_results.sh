#!/usr/bin/env bash
# Copies a run's exports, TensorBoard summaries, config and summary from gs://, and its VM log.
set -euo pipefail
source "$(dirname "$0")/common.sh"

MODEL_DIR=""
OUT=""
LOG=1

usage() {
  cat <<EOF
Usage: $SCRIPT --model_dir DIR [--out LOCAL_DIR] [flags]

Copies to LOCAL_DIR (default out/tpu/RUN in this repo):
  DIR/export/             SavedModels of both towers        (gcloud storage rsync --recursive)
  DIR/train/              TensorBoard summaries             (gcloud storage rsync --recursive)
  DIR/config.yaml, DIR/train_summary.json                   (gcloud storage cp)
  ~/$REMOTE_LOGS/RUN.log  the trainer's log on the TPU VM   (gcloud compute tpus tpu-vm scp)
Safe to run during training (export/ and train_summary.json appear when it ends; a missing one
is a warning). Checkpoints stay in gs://.

Flags (environment variable in brackets):
  --model_dir DIR   gs:// model dir, or a bare NAME for gs://BUCKET/mel/models/NAME; required
  --out LOCAL_DIR   where to put the copies
  --no_log          skip the VM log (e.g. after delete_tpu.sh)
  --bucket BUCKET   bucket name, for a bare --model_dir NAME [BUCKET]
  --project ID      GCP project, required [PROJECT]
  --zone ZONE       default europe-west4-a [ZONE]
  --tpu_name NAME   default mel-tpu [TPU_NAME]
  --dry-run         print the commands instead of running them
  --help            this text
EOF
}

while [ $# -gt 0 ]; do
  SHIFT=1
  case "$(flag_name "$1")" in
    --model_dir) take_value "$@"; MODEL_DIR=$VALUE ;;
    --out) take_value "$@"; OUT=$VALUE ;;
    --no_log) LOG=0 ;;
    *) common_flag "$@" ;;
  esac
  shift "$SHIFT"
done

require "$MODEL_DIR" "--model_dir"
require_common
MODEL_DIR=$(resolve_model_dir "$MODEL_DIR")
log=$(remote_log "$MODEL_DIR")
run_name=$(basename "$log" .log)
[ -n "$OUT" ] || OUT="$REPO_ROOT/out/tpu/$run_name"
OUT=${OUT%/}

run mkdir -p "$OUT"
for sub in export train; do
  run gcloud storage rsync "$MODEL_DIR/$sub" "$OUT/$sub" --recursive --project="$PROJECT" ||
    warn "could not copy $MODEL_DIR/$sub (not written yet?)"
done
for file in config.yaml train_summary.json; do
  run gcloud storage cp "$MODEL_DIR/$file" "$OUT/$file" --project="$PROJECT" ||
    warn "could not copy $MODEL_DIR/$file (not written yet?)"
done
if [ "$LOG" = 1 ]; then
  run gcloud compute tpus tpu-vm scp "$TPU_NAME:$log" "$OUT/$run_name.log" --zone="$ZONE" \
    --project="$PROJECT" --worker=0 || warn "could not copy the log ~/$log from $TPU_NAME"
fi
[ "$DRY_RUN" = 1 ] || echo "$SCRIPT: results in $OUT"
