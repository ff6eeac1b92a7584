#!/usr/bin/env bash
# Deletes the TPU VM (after a confirmation unless --yes). Model dirs in gs:// are kept.
set -euo pipefail
source "$(dirname "$0")/common.sh"

YES=0

usage() {
  cat <<EOF
Usage: $SCRIPT [--yes] [flags]

Deletes the TPU VM:
  gcloud compute tpus tpu-vm delete TPU_NAME --zone --project --quiet
It asks first unless --yes. Everything on the VM goes (the venv, ~/$REMOTE_LOGS: run
fetch_results.sh before); model dirs in gs:// are kept, so a later run can resume there.

Flags (environment variable in brackets):
  --yes             do not ask
  --project ID      GCP project, required [PROJECT]
  --zone ZONE       default europe-west4-a [ZONE]
  --tpu_name NAME   default mel-tpu [TPU_NAME]
  --dry-run         print the gcloud command instead of running it (does not ask)
  --help            this text
EOF
}

while [ $# -gt 0 ]; do
  SHIFT=1
  case "$(flag_name "$1")" in
    --yes|--y) YES=1 ;;
    *) common_flag "$@" ;;
  esac
  shift "$SHIFT"
done

require_common
if [ "$YES" = 0 ] && [ "$DRY_RUN" = 0 ]; then
  answer=""
  read -r -p "Delete TPU VM $TPU_NAME in $ZONE (project $PROJECT)? [y/N] " answer || true
  case "$answer" in
    y|Y|yes|YES) ;;
    *) echo "$SCRIPT: not deleted" >&2; exit 1 ;;
  esac
fi
run gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" --quiet
