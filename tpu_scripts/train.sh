#!/usr/bin/env bash
# Starts `python -m mel.train --tpu local` in the background on the TPU VM, logging to a file.
set -euo pipefail
source "$(dirname "$0")/common.sh"

CONFIG=""
MODEL_DIR=""
MINING_DIR=""
INIT_CHECKPOINT=""
PARAMS_OVERRIDE=""
WORKER=0

usage() {
  cat <<EOF
Usage: $SCRIPT --config CONFIG --model_dir DIR [flags]

Starts on the TPU VM (over tpu-vm ssh, in the background with nohup; the command returns at once):
  python -m mel.train --tpu local --config configs/CONFIG.yaml --model_dir DIR \\
      --params_override data.mining_dir=MINING_DIR[,train.init_checkpoint=...][,OVERRIDES]
with its output appended to ~/$REMOTE_LOGS/RUN.log on the VM (fetch_results.sh copies it back).

Resuming: training resumes automatically from the latest checkpoint in --model_dir, so after a
preemption, a crash or a stop, re-running the very same command continues the run (on a new VM:
create_tpu.sh and install.sh first). A second trainer on a VM that runs one is refused.

Flags (environment variable in brackets):
  --config CONFIG        model_f, model_e, model_f_plus, demo_cpu or a path (configs/X.yaml);
                         required
  --model_dir DIR        gs:// model dir, or a bare NAME for gs://BUCKET/mel/models/NAME; required
                         (use a new one per run and per hard-negative round)
  --mining_dir DIR       the mining output, default gs://BUCKET/mel/mining
  --init_checkpoint CK   sets train.init_checkpoint; by default a gs://YOUR_BUCKET/... placeholder
                         in the config becomes gs://BUCKET/... (the same path in your bucket)
  --params_override K=V,...  more overrides, applied last (e.g. train.steps=250000,
                         train.init_from_model_dir=gs://...,data.hard_negatives=gs://.../*.gz)
  --bucket BUCKET        bucket name, for the defaults above [BUCKET]
  --project ID           GCP project, required [PROJECT]
  --zone ZONE            default europe-west4-a [ZONE]
  --tpu_name NAME        default mel-tpu [TPU_NAME]
  --worker W             TPU VM worker to run on, default 0
  --dry-run              print the gcloud command instead of running it
  --help                 this text

Watch it with:
  gcloud compute tpus tpu-vm ssh TPU_NAME --zone ZONE --command 'tail -f ~/$REMOTE_LOGS/RUN.log'
or TensorBoard on DIR/train.
EOF
}

while [ $# -gt 0 ]; do
  SHIFT=1
  case "$(flag_name "$1")" in
    --config) take_value "$@"; CONFIG=$VALUE ;;
    --model_dir) take_value "$@"; MODEL_DIR=$VALUE ;;
    --mining_dir) take_value "$@"; MINING_DIR=$VALUE ;;
    --init_checkpoint) take_value "$@"; INIT_CHECKPOINT=$VALUE ;;
    --params_override) take_value "$@"; PARAMS_OVERRIDE=$VALUE ;;
    --worker) take_value "$@"; WORKER=$VALUE ;;
    *) common_flag "$@" ;;
  esac
  shift "$SHIFT"
done

require "$CONFIG" "--config"
require "$MODEL_DIR" "--model_dir"
require_common

# configs/NAME.yaml for a bare name; the VM has the same repo layout (install.sh).
[[ $CONFIG == */* || $CONFIG == *.yaml ]] || CONFIG="configs/$CONFIG.yaml"
[ -f "$REPO_ROOT/$CONFIG" ] || die "--config: no $CONFIG in $REPO_ROOT"

MODEL_DIR=$(resolve_model_dir "$MODEL_DIR")
if [ -z "$MINING_DIR" ]; then
  require "$BUCKET" "--mining_dir (or BUCKET for gs://BUCKET/mel/mining)"
  MINING_DIR="gs://$BUCKET/mel/mining"
fi

overrides="data.mining_dir=${MINING_DIR%/}"
placeholder=$(sed -n 's|^ *init_checkpoint: *gs://YOUR_BUCKET/||p' "$REPO_ROOT/$CONFIG")
if [ -n "$INIT_CHECKPOINT" ]; then
  overrides+=",train.init_checkpoint=$INIT_CHECKPOINT"
elif [ -n "$placeholder" ] && [[ $PARAMS_OVERRIDE != *train.init_checkpoint=* ]]; then
  require "$BUCKET" "--init_checkpoint (or BUCKET): $CONFIG has a gs://YOUR_BUCKET placeholder"
  overrides+=",train.init_checkpoint=gs://$BUCKET/$placeholder"
fi
for value in "$MINING_DIR" "$INIT_CHECKPOINT"; do
  [[ $value != *,* ]] || die "a path with a comma cannot go into --params_override: $value"
done
[ -z "$PARAMS_OVERRIDE" ] || overrides+=",$PARAMS_OVERRIDE"

log=$(remote_log "$MODEL_DIR")
pid_file="$REMOTE_LOGS/train.pid"
trainer=(nohup "../$REMOTE_VENV/bin/python" -u -m mel.train --tpu local --config "$CONFIG"
         --model_dir "$MODEL_DIR" --params_override "$overrides")
steps=(
  "set -e"
  "cd $REMOTE_REPO"
  "mkdir -p ../$REMOTE_LOGS"
  "pid=\$(cat ../$pid_file 2>/dev/null || true)"
  "if [ -n \"\$pid\" ] && grep -qs mel.train /proc/\$pid/cmdline; then echo \"mel.train is already running on this VM (pid \$pid); not starting another\" >&2; exit 1; fi"
  "printf '=== %s %s\\n' \"\$(date -u +%FT%TZ)\" $(quote_words "${trainer[*]:1}") >> ../$log"
  "$(quote_words "${trainer[@]}") >> ../$log 2>&1 < /dev/null &"
  "echo \$! > ../$pid_file"
  "echo \"started mel.train (pid \$!); log: ~/$log\""
)
join_steps "${steps[@]}"

show_steps "${steps[@]}"
run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" \
  --worker="$WORKER" --command="$REMOTE"
