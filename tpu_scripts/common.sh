# Shared helpers for tpu_scripts/*.sh (sourced, not run). Each script defines usage() and parses
# its own flags, handing the rest to common_flag.
#
# Flags take `--flag value` or `--flag=value`; `-` and `_` are interchangeable in flag names
# (--model_dir = --model-dir, --dry-run = --dry_run).

SCRIPT=$(basename "$0")
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Settings shared by every script; flags override these environment variables.
PROJECT="${PROJECT:-}"
ZONE="${ZONE:-europe-west4-a}"
TPU_NAME="${TPU_NAME:-mel-tpu}"
BUCKET="${BUCKET:-}"
DRY_RUN=0

# Layout on the VM, relative to the login user's home (where `tpu-vm ssh --command` starts).
REMOTE_REPO=mel
REMOTE_VENV=mel-venv
REMOTE_LOGS=mel-logs

die() {
  echo "$SCRIPT: error: $*" >&2
  exit 2
}

warn() {
  echo "$SCRIPT: warning: $*" >&2
}

# Prints the normalised name of a flag: --dry-run -> --dry_run, --zone=x -> --zone, -h -> --h.
flag_name() {
  local name=${1%%=*}
  name=${name#-}
  name=${name#-}
  printf -- '--%s' "${name//-/_}"
}

# Reads the value of the flag at "$@" into VALUE and the number of words used into SHIFT.
take_value() {
  if [[ $1 == *=* ]]; then
    VALUE=${1#*=}
    SHIFT=1
  elif [ $# -ge 2 ] && [[ $2 != --* ]]; then
    VALUE=$2
    SHIFT=2
  else
    die "$1 needs a value (see --help)"
  fi
}

# Handles the flags every script has; anything else is an error.
common_flag() {
  case "$(flag_name "$1")" in
    --project) take_value "$@"; PROJECT=$VALUE ;;
    --zone) take_value "$@"; ZONE=$VALUE ;;
    --tpu_name) take_value "$@"; TPU_NAME=$VALUE ;;
    --bucket) take_value "$@"; BUCKET=${VALUE#gs://}; BUCKET=${BUCKET%/} ;;
    --dry_run) DRY_RUN=1 ;;
    --help|--h) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
}

# Fails with a clear message when a required setting is empty: require VALUE "what is missing".
require() {
  [ -n "$1" ] || die "missing $2 (see --help)"
}

require_common() {
  require "$PROJECT" "--project (or PROJECT)"
  require "$ZONE" "--zone (or ZONE)"
  require "$TPU_NAME" "--tpu_name (or TPU_NAME)"
}

# Runs a command, or with --dry-run prints it as `+ word word ...` (one line, quoted with
# printf %q so it can be pasted back into bash). Real runs echo the command to stderr first.
run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+'
    printf ' %q' "$@"
    printf '\n'
  else
    { printf '+'; printf ' %q' "$@"; printf '\n'; } >&2
    "$@"
  fi
}

# Quotes words for the remote bash of `tpu-vm ssh --command`: quote_words a b -> 'a b' quoted.
quote_words() {
  local out="" word
  for word in "$@"; do
    out+="${out:+ }$(printf '%q' "$word")"
  done
  printf '%s' "$out"
}

# A model dir is a gs:// path, or a NAME (may hold /) for gs://$BUCKET/mel/models/NAME.
resolve_model_dir() {
  local dir=${1%/}
  if [[ $dir == gs://?* ]]; then
    printf '%s' "$dir"
  elif [[ $dir == *://* || $dir == /* || $dir == .* ]]; then
    die "--model_dir must be gs://... or a NAME under gs://BUCKET/mel/models/ (got $1)"
  else
    require "$BUCKET" "BUCKET (or --bucket), needed to expand --model_dir $dir"
    printf 'gs://%s/mel/models/%s' "$BUCKET" "$dir"
  fi
}

# The trainer's log on the VM for a model dir: mel-logs/<run>.log, where <run> is the path after
# /models/ (or the whole path) with / turned into -, e.g. gs://b/mel/models/fp/round1 -> fp-round1.
remote_log() {
  local run=${1#*://}
  [[ $run != */models/* ]] || run=${run#*/models/}
  run=${run%/}
  printf '%s/%s.log' "$REMOTE_LOGS" "${run//\//-}"
}

# With --dry-run, prints the steps of a remote command (joined with "; ") as comment lines.
show_steps() {
  [ "$DRY_RUN" = 1 ] || return 0
  echo "# remote command, one step a line:"
  printf '#   %s\n' "$@"
}

# Joins the steps of a remote command with "; " (just " " after a step ending in "&") into
# REMOTE; start them with "set -e".
join_steps() {
  REMOTE=""
  local step sep=""
  for step in "$@"; do
    REMOTE+="$sep$step"
    if [[ $step == *"&" ]]; then sep=" "; else sep="; "; fi
  done
}
