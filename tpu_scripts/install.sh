#!/usr/bin/env bash
# Copies this repo (a git archive of a commit) to the TPU VM and installs mel there.
set -euo pipefail
source "$(dirname "$0")/common.sh"

REF=HEAD
PYTHON=python3.11
TF_TPU_VERSION=2.20.0
LIBTPU_INDEX=https://storage.googleapis.com/libtpu-releases/index.html
WORKER=all

usage() {
  cat <<EOF
Usage: $SCRIPT [flags]

Copies the repo at a commit to the TPU VM (git archive -> tpu-vm scp) and installs it there over
tpu-vm ssh: Python 3.11 (apt, if missing), a venv ~/$REMOTE_VENV, the pinned stack of
constraints.txt with tensorflow-tpu (and libtpu) in place of tensorflow, then
\`pip install -e\` of ~/$REMOTE_REPO. Run it again after a new commit; it replaces ~/$REMOTE_REPO
and reuses the venv. Do not run it while train.sh's trainer is running.

Only committed files are copied: commit first (a warning lists uncommitted changes).

Flags (environment variable in brackets):
  --project ID          GCP project, required [PROJECT]
  --zone ZONE           default europe-west4-a [ZONE]
  --tpu_name NAME       default mel-tpu [TPU_NAME]
  --ref REF             commit to copy, default HEAD
  --python PYTHON       Python on the VM, default python3.11 (what constraints.txt was probed on)
  --tf_tpu_version V    tensorflow-tpu version, default 2.20.0
  --worker W            TPU VM worker(s), default all
  --dry-run             print the commands instead of running them
  --help                this text
EOF
}

while [ $# -gt 0 ]; do
  SHIFT=1
  case "$(flag_name "$1")" in
    --ref) take_value "$@"; REF=$VALUE ;;
    --python) take_value "$@"; PYTHON=$VALUE ;;
    --tf_tpu_version) take_value "$@"; TF_TPU_VERSION=$VALUE ;;
    --worker) take_value "$@"; WORKER=$VALUE ;;
    *) common_flag "$@" ;;
  esac
  shift "$SHIFT"
done

require_common
commit=$(git -C "$REPO_ROOT" rev-parse --verify --quiet "$REF^{commit}") ||
  die "--ref $REF is not a commit of $REPO_ROOT"
if [ "$REF" = HEAD ] && [ -n "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=normal)" ]; then
  warn "uncommitted changes in $REPO_ROOT are not copied (only commit ${commit:0:12} is)"
fi

archive="${TMPDIR:-/tmp}/mel-src-$$.tar.gz"
remote_archive=mel-src.tar.gz
[ "$DRY_RUN" = 1 ] || trap 'rm -f "$archive"' EXIT

# The pinned stack without tensorflow: tensorflow-tpu ships the same `tensorflow` package and the
# two must not both be installed. constraints.txt is a full resolved set, so --no-deps installs it
# as is; tensorflow-tpu then adds libtpu.
py="$REMOTE_VENV/bin/python"
pip=("$py" -m pip install --quiet --progress-bar off)
steps=(
  "set -e"
  "$(quote_words "$PYTHON") -c 'import ensurepip, venv' 2>/dev/null || { sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(quote_words "$PYTHON" "$PYTHON-venv"); }"
  "rm -rf $REMOTE_REPO.new"
  "mkdir $REMOTE_REPO.new"
  "tar -xzf $remote_archive -C $REMOTE_REPO.new"
  "rm -rf $REMOTE_REPO"
  "mv $REMOTE_REPO.new $REMOTE_REPO"
  "rm -f $remote_archive"
  "[ -x $py ] || $(quote_words "$PYTHON") -m venv $REMOTE_VENV"
  "$(quote_words "${pip[@]}" --upgrade 'pip<26' 'setuptools<82' wheel)"
  "grep -v '^tensorflow==' $REMOTE_REPO/constraints.txt > $REMOTE_VENV/constraints-tpu.txt"
  "$(quote_words "${pip[@]}" --no-deps -r "$REMOTE_VENV/constraints-tpu.txt")"
  "$(quote_words "${pip[@]}" -c "$REMOTE_VENV/constraints-tpu.txt" "tensorflow-tpu==$TF_TPU_VERSION" -f "$LIBTPU_INDEX")"
  "$(quote_words "${pip[@]}" --no-deps --no-build-isolation -e "./$REMOTE_REPO")"
  "$py -c 'import tensorflow as tf, mel.train; print(\"mel $commit installed, TensorFlow\", tf.__version__)'"
)
join_steps "${steps[@]}"

run git -C "$REPO_ROOT" archive --format=tar.gz -o "$archive" "$commit"
run gcloud compute tpus tpu-vm scp "$archive" "$TPU_NAME:$remote_archive" --zone="$ZONE" \
  --project="$PROJECT" --worker="$WORKER"
show_steps "${steps[@]}"
run gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" \
  --worker="$WORKER" --command="$REMOTE"
