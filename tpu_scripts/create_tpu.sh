#!/usr/bin/env bash
# Creates the Cloud TPU VM that install.sh and train.sh use.
set -euo pipefail
source "$(dirname "$0")/common.sh"

ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v3-8}"
RUNTIME_VERSION="${RUNTIME_VERSION:-tpu-vm-tf-2.20.0-pjrt}"
CAPACITY=""

usage() {
  cat <<EOF
Usage: $SCRIPT [flags]

Creates a Cloud TPU VM:
  gcloud compute tpus tpu-vm create TPU_NAME --zone --accelerator-type --version --project

Flags (environment variable in brackets):
  --project ID             GCP project, required [PROJECT]
  --zone ZONE              default europe-west4-a [ZONE]
  --tpu_name NAME          default mel-tpu [TPU_NAME]
  --accelerator_type TYPE  default v3-8 [ACCELERATOR_TYPE]; single-host types (v2-8, v3-8,
                           v4-8) are what the other scripts target
  --version VERSION        TPU VM runtime, default tpu-vm-tf-2.20.0-pjrt [RUNTIME_VERSION]
                           (gcloud compute tpus tpu-vm versions list --zone ZONE)
  --preemptible            a preemptible TPU (cheaper; can be stopped, at most 24 h)
  --spot                   a Spot TPU (cheaper; can be preempted at any time)
  --dry-run                print the gcloud command instead of running it
  --help                   this text

A preempted VM must be deleted (delete_tpu.sh) and created again; training then resumes from
the latest checkpoint in its model dir (see train.sh --help).
EOF
}

while [ $# -gt 0 ]; do
  SHIFT=1
  case "$(flag_name "$1")" in
    --accelerator_type) take_value "$@"; ACCELERATOR_TYPE=$VALUE ;;
    --version|--runtime_version) take_value "$@"; RUNTIME_VERSION=$VALUE ;;
    --preemptible|--spot)
      capacity="--${1#--}"
      [ -z "$CAPACITY" ] || [ "$CAPACITY" = "$capacity" ] ||
        die "--preemptible and --spot exclude each other"
      CAPACITY=$capacity ;;
    *) common_flag "$@" ;;
  esac
  shift "$SHIFT"
done

require_common
require "$ACCELERATOR_TYPE" "--accelerator_type (or ACCELERATOR_TYPE)"
require "$RUNTIME_VERSION" "--version (or RUNTIME_VERSION)"

cmd=(gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE"
     --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION" --project="$PROJECT")
[ -z "$CAPACITY" ] || cmd+=("$CAPACITY")
run "${cmd[@]}"
