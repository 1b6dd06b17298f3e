#!/usr/bin/env bash
# weekly-retrain.sh: retrain only when drift calls for it. Run weekly on the training machine
# (a laptop or a home server; recipes/systemd/tradekit-retrain@.timer), never on the Pi:
#   fetch the newest candles -> tradekit drift of the last trained model on them
#   -> retrain with remote-train.sh (here) or vastai-train.sh (--vastai) when the drift check
#      raised an alert or recommends a retrain (the model is older than [drift] max_age_days),
#      or with --force; otherwise stop: the deployed model still fits the market.
# Each week's files go to WORKDIR/DATE/; a local retrain trains in WORKDIR/DATE/train and, when
# it passes (exit 0), points WORKDIR/model at its model: next week judges that one.
# Exit: 0 nothing to do, or the retrain's exit (0 deployed, 1 the gate said no, ...);
# 2 usage; the failing stage's tradekit exit code otherwise (3 input, 4 exchange, 70 bug).
set -euo pipefail

usage() {
    cat <<'EOF2'
usage: weekly-retrain.sh [options] [-- RETRAIN_ARGS...]

  --model DIR       the model to judge (its manifest holds the drift reference); with
                    --vastai a copy of the deployed one (e.g. rsync of the Pi's
                    /opt/tradekit/current) [$TK_RETRAIN_MODEL, default WORKDIR/model]
  --workdir DIR     the weeks' files [$TK_RETRAIN_DIR, default ./tradekit-weekly]
  --since AGE       how much recent data to fetch [$TK_RETRAIN_SINCE, default 30d]
  --days N          days of it drift judges [default [drift] window_days]
  --data FILE       judge this features or OHLCV file instead of fetching
  --force           retrain whatever drift says
  --vastai          retrain on a rented GPU (recipes/vastai-train.sh) instead of here
                    (recipes/remote-train.sh --no-install with $TRADEKIT_BIN)
  --dry-run         check drift and say what would run; retrain nothing
  RETRAIN_ARGS      passed on to remote-train.sh or vastai-train.sh

environment: TRADEKIT_BIN (default: tradekit on PATH), TRADEKIT_CONFIG, TRADEKIT_* overrides.
The drift report is WORKDIR/DATE/drift.json.
EOF2
}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TK=${TRADEKIT_BIN:-tradekit}
MODEL=${TK_RETRAIN_MODEL:-}
WORKDIR=${TK_RETRAIN_DIR:-tradekit-weekly}
SINCE=${TK_RETRAIN_SINCE:-30d}
DAYS=""
DATA=""
FORCE=0
VASTAI=0
DRY=0
while (($#)); do
    case $1 in
        --model|--workdir|--since|--days|--data)
            (($# >= 2)) || { printf 'weekly-retrain: error: %s needs a value\n' "$1" >&2; exit 2; } ;;
    esac
    case $1 in
        --model) MODEL=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --since) SINCE=$2; shift 2 ;;
        --days) DAYS=$2; shift 2 ;;
        --data) DATA=$2; shift 2 ;;
        --force) FORCE=1; shift ;;
        --vastai) VASTAI=1; shift ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) printf 'weekly-retrain: error: unknown argument: %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done
RETRAIN_ARGS=("$@")

log() { printf 'weekly-retrain: %s\n' "$*" >&2; }

MODEL=${MODEL:-$WORKDIR/model}
WEEK=$WORKDIR/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$WEEK"
if [[ -z $DATA ]]; then
    DATA=$WEEK/recent.parquet
    log "fetching the newest candles (since $SINCE)"
    "$TK" fetch --since "$SINCE" -o "$DATA"
fi

RETRAIN=$FORCE
WHY="--force"
if [[ ! -f $MODEL/manifest.json ]]; then
    log "no trained model at $MODEL: training one"
    RETRAIN=1
    WHY="no model yet"
else
    # --state: no ledger here (drift's live-against-replay check is the Pi's daily one).
    args=(drift "$MODEL" "$DATA" --state "$WEEK/no-ledger.db" -o "$WEEK/drift.json")
    [[ -n $DAYS ]] && args+=(--days "$DAYS")
    rc=0
    "$TK" "${args[@]}" || rc=$?
    ((rc <= 1)) || exit "$rc"
    # retrain.recommended: feature or prediction drift, or a model past [drift] max_age_days
    # (an alert about live against replay needs a person, not a retrain).
    why=$("${PYTHON:-python3}" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("; ".join(d["retrain"]["why"]) if d["retrain"]["recommended"] else "")' "$WEEK/drift.json")
    if [[ -n $why ]]; then
        RETRAIN=1
        WHY=$why
    fi
fi

if ((!RETRAIN)); then
    log "no drift that calls for retraining: the model stays (report: $WEEK/drift.json)"
    exit 0
fi
if ((VASTAI)); then
    cmd=("$HERE/vastai-train.sh" "${RETRAIN_ARGS[@]}")
else
    cmd=("$HERE/remote-train.sh" --no-install --workdir "$WEEK/train" "${RETRAIN_ARGS[@]}")
fi
log "retraining ($WHY): ${cmd[*]}"
if ((DRY)); then
    log "dry run: not retraining"
    exit 0
fi
rc=0
TRADEKIT_BIN=$TK "${cmd[@]}" || rc=$?
if ((rc == 0 && !VASTAI)); then
    ln -sfn "$(cd "$WEEK/train/model" && pwd)" "$WORKDIR/model"
    log "next week judges $WEEK/train/model ($WORKDIR/model)"
fi
exit "$rc"
