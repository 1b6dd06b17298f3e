#!/usr/bin/env bash
# vastai-train.sh: train on the cheapest matching Vast.ai GPU. It:
#   1. searches offers (GPU, region, reliability, disk, CUDA, price cap) and picks the cheapest,
#      refusing one above the cap;
#   2. creates an instance whose on-start script runs recipes/remote-train.sh
#      (fetch -> check -> featurize -> train -> backtest -> gate -> deploy if passed);
#   3. follows its log, enforcing MAX_RUNTIME (seconds) and MAX_SPEND (USD, dph_total x time);
#   4. fetches the result JSON from the log, and
#   5. destroys the instance on EVERY exit path: success, failure, Ctrl-C/TERM, timeout, spend
#      cap. It destroys exactly once, from the EXIT trap.
#
# Exit: 0 gate passed (deployed), 1 gate failed (nothing deployed), 2 usage,
#       4 provider failure (no offer under the cap, create failed, instance died, timeout,
#       spend cap), 130/143 interrupted.
#
# The `vastai` CLI (its own venv: `make vastai`; env VASTAI) reads its key from
# $VAST_API_KEY or ~/.config/vastai/vast_api_key.
set -euo pipefail
if ((BASH_VERSINFO[0] < 5)); then
    echo "vastai-train: error: needs bash >= 5 (EPOCHREALTIME)" >&2
    exit 2
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    cat <<'EOF'
usage: vastai-train.sh --max-dph USD [options]

offer search (flags, or the environment variable in brackets):
  --gpu NAME            GPU model, e.g. RTX_3090, RTX_4090, A100_SXM4 [VAST_GPU, RTX_3090]
  --num-gpus N          [VAST_NUM_GPUS, 1]
  --geo CC[,CC...]      country codes, e.g. DE,AT,NL [VAST_GEO, anywhere]
  --min-reliability R   [VAST_MIN_RELIABILITY, 0.98]
  --disk GB             [VAST_DISK, 40]
  --min-cuda V          [VAST_MIN_CUDA, 12.1]
  --max-dph USD         price cap per hour, dph_total [MAX_DPH, required]
  --bid USD             rent interruptible at this bid (the run resumes after a reclaim)
                        [VAST_BID, on-demand]
instance:
  --image IMAGE         [VAST_IMAGE, pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime]
  --run-id ID           [RUN_ID, tk-UTCTIME]
  --spec SPEC           what pip installs on the instance (PyPI spec or git+https URL)
                        [TRADEKIT_SPEC, tradekit]
  --config FILE         tradekit.toml to train with [TK_CONFIG_FILE]
  --secrets FILE        .env with secrets (KEY=VALUE) [TK_SECRETS_FILE]
  --deploy-key FILE     SSH key for `tradekit deploy` [TK_DEPLOY_KEY_FILE]
  --known-hosts FILE    pinned host key of the Pi [TK_KNOWN_HOSTS_FILE]
  --env KEY=VALUE       extra non-secret environment, repeatable (e.g. TK_SYMBOLS=BTC/USD,ETH/USD,
                        TK_MODEL=transformer, TK_TRAIN_ARGS=--epochs,20); no spaces or '='
limits:
  --max-runtime S       seconds from create to destroy [MAX_RUNTIME, 10800]
  --max-spend USD       [MAX_SPEND, default MAX_DPH x MAX_RUNTIME]
  --start-timeout S     seconds to reach "running" [VAST_START_TIMEOUT, 900]
  --poll S              seconds between polls [VAST_POLL_S, 15]
output:
  --result FILE         the run's result JSON [RESULT, ./vastai-RUNID.json]; also on stdout
  --dry-run             search and show the pick, rent nothing
EOF
}

die() { printf 'vastai-train: error: %s\n' "$1" >&2; exit "${2:-4}"; }
log() { printf 'vastai-train: %s\n' "$*" >&2; }

# The CLI: $VASTAI, else `vastai` on PATH, else the one `make vastai` put in .vastai-venv.
VASTAI=${VASTAI:-}
if [[ -z $VASTAI ]]; then
    VASTAI=vastai
    if ! command -v vastai >/dev/null && [[ -x $HERE/../.vastai-venv/bin/vastai ]]; then
        VASTAI=$(cd "$HERE/.." && pwd)/.vastai-venv/bin/vastai
    fi
fi
GPU=${VAST_GPU:-RTX_3090}
NUM_GPUS=${VAST_NUM_GPUS:-1}
GEO=${VAST_GEO:-}
MIN_RELIABILITY=${VAST_MIN_RELIABILITY:-0.98}
DISK=${VAST_DISK:-40}
MIN_CUDA=${VAST_MIN_CUDA:-12.1}
MAX_DPH=${MAX_DPH:-}
BID=${VAST_BID:-}
IMAGE=${VAST_IMAGE:-pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime}
RUN_ID=${RUN_ID:-tk-$(date -u +%Y%m%d-%H%M%S)}
SPEC=${TRADEKIT_SPEC:-tradekit}
CONFIG=${TK_CONFIG_FILE:-}
SECRETS=${TK_SECRETS_FILE:-}
DEPLOY_KEY=${TK_DEPLOY_KEY_FILE:-}
KNOWN_HOSTS=${TK_KNOWN_HOSTS_FILE:-}
MAX_RUNTIME=${MAX_RUNTIME:-10800}
MAX_SPEND=${MAX_SPEND:-}
START_TIMEOUT=${VAST_START_TIMEOUT:-900}
POLL=${VAST_POLL_S:-15}
RESULT=${RESULT:-}
DRY=0
EXTRA_ENV=()

while (($#)); do
    case $1 in
        --dry-run|-h|--help) ;;
        # An option named in the usage text takes a value: it must have one.
        --*) [[ " $(usage) " == *" $1 "* ]] && { (($# >= 2)) || die "$1 needs a value" 2; } ;;
    esac
    case $1 in
        --gpu) GPU=$2; shift 2 ;;
        --num-gpus) NUM_GPUS=$2; shift 2 ;;
        --geo) GEO=$2; shift 2 ;;
        --min-reliability) MIN_RELIABILITY=$2; shift 2 ;;
        --disk) DISK=$2; shift 2 ;;
        --min-cuda) MIN_CUDA=$2; shift 2 ;;
        --max-dph) MAX_DPH=$2; shift 2 ;;
        --bid) BID=$2; shift 2 ;;
        --image) IMAGE=$2; shift 2 ;;
        --run-id) RUN_ID=$2; shift 2 ;;
        --spec) SPEC=$2; shift 2 ;;
        --config) CONFIG=$2; shift 2 ;;
        --secrets) SECRETS=$2; shift 2 ;;
        --deploy-key) DEPLOY_KEY=$2; shift 2 ;;
        --known-hosts) KNOWN_HOSTS=$2; shift 2 ;;
        --env) EXTRA_ENV+=("$2"); shift 2 ;;
        --max-runtime) MAX_RUNTIME=$2; shift 2 ;;
        --max-spend) MAX_SPEND=$2; shift 2 ;;
        --start-timeout) START_TIMEOUT=$2; shift 2 ;;
        --poll) POLL=$2; shift 2 ;;
        --result) RESULT=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" 2 ;;
    esac
done

# -- validation (exit 2) ------------------------------------------------------------------
is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
# plain VALUE: nothing that vastai's --env parsing would split or cut (spaces, quotes, '=').
plain() { case $1 in *[[:space:]=\"\']*) return 1 ;; esac; }
[[ -n $MAX_DPH ]] || die "--max-dph (or MAX_DPH) is required: the most USD per hour to pay" 2
for pair in "MAX_DPH=$MAX_DPH" "MAX_RUNTIME=$MAX_RUNTIME" "START_TIMEOUT=$START_TIMEOUT" \
    "POLL=$POLL" "DISK=$DISK" "MIN_RELIABILITY=$MIN_RELIABILITY" "MIN_CUDA=$MIN_CUDA" \
    "NUM_GPUS=$NUM_GPUS" ${BID:+"BID=$BID"} ${MAX_SPEND:+"MAX_SPEND=$MAX_SPEND"}; do
    is_num "${pair#*=}" || die "${pair%%=*} must be a non-negative number, got '${pair#*=}'" 2
done
# Default spend cap: the price cap for the whole runtime.
MAX_SPEND=${MAX_SPEND:-$(awk -v d="$MAX_DPH" -v t="$MAX_RUNTIME" 'BEGIN { printf "%.6f", d * t / 3600 }')}
[[ $GPU =~ ^[A-Za-z0-9_]+$ ]] || die "--gpu: use the CLI's spelling with underscores, e.g. RTX_4090" 2
[[ -z $GEO || $GEO =~ ^[A-Z]{2}(,[A-Z]{2})*$ ]] || die "--geo: two-letter country codes, e.g. DE,AT" 2
[[ $RUN_ID =~ ^[A-Za-z0-9._-]+$ ]] || die "--run-id: letters, digits, . _ - only" 2
for f in "$CONFIG" "$SECRETS" "$DEPLOY_KEY" "$KNOWN_HOSTS"; do
    [[ -z $f || -r $f ]] || die "cannot read $f" 2
done
for kv in "${EXTRA_ENV[@]}"; do
    # vastai splits --env on spaces and cuts values at the first '=': refuse what would be mangled.
    [[ ${kv%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ && $kv == *=* ]] && plain "${kv#*=}" \
        || die "--env $kv: KEY=VALUE without spaces, quotes or a second '=' (put such values in --config)" 2
done
plain "$SPEC" || die "--spec: no spaces, quotes or '=' (e.g. tradekit~=0.1 is fine, == is not)" 2
command -v "$VASTAI" >/dev/null || die "$VASTAI not found: run \`make vastai\` (or set VASTAI)" 2
RESULT=${RESULT:-vastai-$RUN_ID.json}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vastai-train.XXXXXX")
chmod 700 "$WORK"

# -- helpers ----------------------------------------------------------------------------------
now() { printf '%s' "$EPOCHREALTIME"; }
# calc EXPR [VAR=VALUE...]: a float expression evaluated by awk.
calc() {
    local e=$1 a vars=()
    shift
    for a in "$@"; do vars+=(-v "$a"); done
    awk "${vars[@]}" "BEGIN { print ($e) }" </dev/null
}
# json FILE PYEXPR: evaluate PYEXPR over the JSON document `d` in FILE (prints '' for None).
json() {
    python3 - "$1" "$2" <<'PYEOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(1)
v = eval(sys.argv[2], {"d": d})
print("" if v is None else v)
PYEOF
}
# b64 FILE: base64url without padding (vastai cuts --env values at '=').
b64() { python3 -c 'import base64,sys; print(base64.urlsafe_b64encode(open(sys.argv[1],"rb").read()).decode().rstrip("="))' "$1"; }
# vast ARGS...: one CLI call, stdout kept in $WORK/out, stderr in $WORK/err.
vast() { "$VASTAI" "$@" >"$WORK/out" 2>"$WORK/err"; }
SLEEP_PID=""
nap() { sleep "$1" & SLEEP_PID=$!; wait "$SLEEP_PID" || true; SLEEP_PID=""; }  # signals interrupt it

# -- destroy on every exit path ----------------------------------------------------------------
ID=""
CREATE_SENT=0
DESTROYED=0
destroy_instance() {
    ((DESTROYED)) && return 0
    if [[ -z $ID && -s $WORK/create.json ]]; then
        ID=$(json "$WORK/create.json" 'd.get("new_contract")') || ID=""
    fi
    if [[ -z $ID ]] && ((CREATE_SENT)); then
        # Interrupted while `create` was in flight: it may have rented one; find it by label.
        if "$VASTAI" show instances --raw >"$WORK/instances.json" 2>/dev/null; then
            ID=$(json "$WORK/instances.json" \
                "' '.join(str(i['id']) for i in (d if isinstance(d, list) else d.get('instances', [])) if i.get('label') == 'tradekit-$RUN_ID')") || ID=""
        fi
    fi
    [[ -n $ID ]] || return 0
    DESTROYED=1
    local id attempt ids left=()
    read -r -a ids <<<"$ID"
    for id in "${ids[@]}"; do
        for attempt in 1 2 3; do
            # The CLI exits 0 on {"success": false}: read the answer too.
            if "$VASTAI" destroy instance "$id" -y --raw >"$WORK/destroy.json" 2>"$WORK/err" \
                && [[ $(json "$WORK/destroy.json" 'd.get("success") if isinstance(d, dict) else True' \
                    || echo True) != False ]]; then
                log "destroyed instance $id"
                continue 2
            fi
            log "destroy instance $id failed (attempt $attempt): $(tail -n 1 "$WORK/err" "$WORK/destroy.json" 2>/dev/null | tail -n 1)"
            ((attempt < 3)) && sleep "$(calc 'n * s' n="$attempt" s="${VAST_RETRY_S:-5}")"
        done
        left+=("$id")
    done
    if ((${#left[@]})); then
        log "INSTANCE ${left[*]} MAY STILL BE RUNNING AND BILLING: vastai destroy instance ${left[*]} -y"
        return 1
    fi
}
on_exit() {
    local rc=$?
    trap - EXIT
    trap '' INT TERM  # a second Ctrl-C must not skip the destroy
    [[ -n $SLEEP_PID ]] && kill "$SLEEP_PID" 2>/dev/null
    if ! destroy_instance && ((rc == 0 || rc == 1)); then
        rc=4
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap on_exit EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# -- 1. offers ---------------------------------------------------------------------------------
query="gpu_name=$GPU num_gpus=$NUM_GPUS verified=true rentable=true reliability>=$MIN_RELIABILITY"
query+=" disk_space>=$DISK cuda_vers>=$MIN_CUDA dph_total<=$MAX_DPH"
if [[ -n $GEO ]]; then
    if [[ $GEO == *,* ]]; then query+=" geolocation in [$GEO]"; else query+=" geolocation=$GEO"; fi
fi
search=(search offers "$query" -o dph_total --limit 5 --storage "$DISK" --raw)
[[ -n $BID ]] && search+=(--type bid)
log "search: $query"
vast "${search[@]}" || die "vastai search offers failed: $(tail -n 1 "$WORK/err")"
cp "$WORK/out" "$WORK/offers.json"
# The cheapest offer, whatever order the provider returned (tab-separated: names have spaces).
offer=$(python3 - "$WORK/offers.json" <<'PYEOF'
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError:
    sys.exit(1)
offers = d if isinstance(d, list) else d.get("offers", [])
if offers:
    b = min(offers, key=lambda o: float(o.get("dph_total", "inf")))
    print("\t".join(str(b.get(k, "?")) for k in ("id", "dph_total", "gpu_name", "geolocation")))
PYEOF
) || die "vastai search offers: not JSON: $(head -c 200 "$WORK/offers.json")"
[[ -n $offer ]] || die "no offer matches ($query)"
IFS=$'\t' read -r OFFER DPH OFFER_GPU OFFER_GEO <<<"$offer"
if (($(calc 'p > cap' p="$DPH" cap="$MAX_DPH"))); then
    die "refusing offer $OFFER: \$$DPH/h is above the cap \$$MAX_DPH/h"
fi
log "cheapest offer $OFFER: $OFFER_GPU in $OFFER_GEO at \$$DPH/h (cap \$$MAX_DPH/h)"

# -- 2. create ---------------------------------------------------------------------------------
cat >"$WORK/onstart.sh" <<'EOF'
#!/bin/bash
# tradekit (vastai-train.sh): unpack recipes/remote-train.sh from $TK_SCRIPT_B64 and run it.
cd "${TK_HOME:-/workspace}" 2>/dev/null || cd /root
printf %s "$TK_SCRIPT_B64" | python3 -c 'import base64,gzip,sys; s=sys.stdin.read(); sys.stdout.buffer.write(gzip.decompress(base64.urlsafe_b64decode(s+"="*(-len(s)%4))))' >tradekit-remote-train.sh
exec bash tradekit-remote-train.sh
EOF
gzip -9n <"$HERE/remote-train.sh" >"$WORK/remote-train.sh.gz"
env_args=(
    "RUN_ID=$RUN_ID" "DPH=$DPH" "TRADEKIT_SPEC=$SPEC" "TK_MARKERS=1" "TK_LOG_TO_PID1=1"
    "TK_WORKDIR=/workspace/tradekit-$RUN_ID" "TK_SCRIPT_B64=$(b64 "$WORK/remote-train.sh.gz")"
)
env_names=(RUN_ID DPH TRADEKIT_SPEC TK_MARKERS TK_LOG_TO_PID1 TK_WORKDIR TK_SCRIPT_B64)
add_blob() { [[ -n $2 ]] && env_args+=("$1=$(b64 "$2")") && env_names+=("$1"); return 0; }
add_blob TK_CONFIG_B64 "$CONFIG"
add_blob TK_SECRETS_B64 "$SECRETS"
add_blob TK_DEPLOY_KEY_B64 "$DEPLOY_KEY"
add_blob TK_KNOWN_HOSTS_B64 "$KNOWN_HOSTS"
for kv in "${EXTRA_ENV[@]}"; do env_args+=("$kv"); env_names+=("${kv%%=*}"); done
env_str=""
for kv in "${env_args[@]}"; do env_str+="${env_str:+ }-e $kv"; done

create=(create instance "$OFFER" --image "$IMAGE" --disk "$DISK" --label "tradekit-$RUN_ID"
    --onstart "$WORK/onstart.sh" --ssh --cancel-unavail --raw)
[[ -n $BID ]] && create+=(--bid_price "$BID")
# Never echo the env: it carries the secrets. Names only.
log "create: ${create[*]} --env <${env_names[*]}>"
if ((DRY)); then
    log "--dry-run: nothing rented"
    exit 0
fi
CREATE_SENT=1
T0=$(now)
if ! "$VASTAI" "${create[@]}" --env "$env_str" >"$WORK/create.json" 2>"$WORK/err"; then
    die "vastai create instance failed: $(tail -n 1 "$WORK/err")"
fi
ok=$(json "$WORK/create.json" 'd.get("success") and d.get("new_contract")') || ok=""
[[ -n $ok && $ok != False ]] || die "vastai create instance: $(head -c 300 "$WORK/create.json")"
ID=$ok
log "instance $ID created (label tradekit-$RUN_ID)"

# -- 3. wait, follow, enforce --------------------------------------------------------------------
: >"$WORK/seen.log"
fails=0
running=0
status_msg=""
remote_rc=""
while :; do
    elapsed=$(calc 'b - a' a="$T0" b="$(now)")
    if (($(calc 'e > m' e="$elapsed" m="$MAX_RUNTIME"))); then
        die "MAX_RUNTIME ${MAX_RUNTIME}s reached after ${elapsed%.*}s: stopping instance $ID"
    fi
    # `show instance --raw` gives the instance, {"instances": {...}} as the REST API does, or
    # {"instances": null} once it is gone.
    if vast show instance "$ID" --raw && cp "$WORK/out" "$WORK/instance.json" \
        && fields=$(json "$WORK/instance.json" '("gone" if "instances" in d and not d["instances"]
            else (lambda i: "\t".join(str(i.get(k) or "") for k in
            ("actual_status", "dph_total", "status_msg")))(d.get("instances") or d))'); then
        fails=0
        IFS=$'\t' read -r status dph status_msg <<<"$fields" || true
        is_num "${dph:-x}" && DPH=$dph
    else
        fails=$((fails + 1))
        ((fails < 5)) || die "vastai show instance $ID failed 5 times: $(tail -n 1 "$WORK/err" "$WORK/out" 2>/dev/null | tail -n 1)"
        status=""
    fi
    spend=$(calc 'd * e / 3600' d="$DPH" e="$elapsed")
    if (($(calc 's >= m' s="$spend" m="$MAX_SPEND"))); then
        die "MAX_SPEND \$$MAX_SPEND reached (\$$(calc 'sprintf("%.6f", s)' s="$spend") at \$$DPH/h): stopping instance $ID"
    fi

    case $status in
        running)
            ((running)) || log "instance $ID running after ${elapsed%.*}s"
            running=1 ;;
        exited|offline|gone) ;;  # finished, or died: the log below tells which
        *)
            if ((!running)) && (($(calc 'e > m' e="$elapsed" m="$START_TIMEOUT"))); then
                die "instance $ID not running after ${START_TIMEOUT}s (status ${status:-unknown})"
            fi ;;
    esac

    if ((running)) || [[ $status == exited || $status == offline ]] && vast logs "$ID" --tail 1000; then
        # (`logs` prints text whatever --raw says, after "waiting on logs ..." progress lines.)
        # New lines since the last poll (the tail window slides), then the result markers.
        python3 - "$WORK/seen.log" "$WORK/out" "$WORK/result.json" >"$WORK/markers" <<'PYEOF'
import json, sys

def text(path):
    raw = open(path, encoding="utf-8", errors="replace").read()
    try:
        v = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(v, dict):
        v = v.get("logs") or v.get("result") or ""
    return v if isinstance(v, str) else raw

seen_path, new_path, result_path = sys.argv[1:]
old = open(seen_path, encoding="utf-8").read().splitlines()
new = [
    line
    for line in text(new_path).splitlines()
    if not line.startswith(("waiting on logs for instance", "Timed out waiting for logs"))
]
k = min(len(old), len(new))
while k and old[-k:] != new[:k]:
    k -= 1
for line in new[k:]:
    print("  | " + line, file=sys.stderr)
open(seen_path, "w", encoding="utf-8").write("\n".join(new) + "\n")
for line in new:
    if line.startswith("TRADEKIT-RESULT "):
        with open(result_path, "w", encoding="utf-8") as f:
            f.write(line[len("TRADEKIT-RESULT "):].strip() + "\n")
    elif line.startswith("TRADEKIT-EXIT "):
        print(line.split()[1])
PYEOF
        remote_rc=$(tail -n 1 "$WORK/markers")
        [[ -n $remote_rc ]] && break
    fi
    if [[ $status == exited || $status == offline || $status == gone ]]; then
        die "instance $ID is $status and the run left no result${status_msg:+ ($status_msg)}"
    fi
    nap "$POLL"
done

# -- 4. result -------------------------------------------------------------------------------
elapsed=$(calc 'b - a' a="$T0" b="$(now)")
log "remote run finished with exit $remote_rc after ${elapsed%.*}s (about \$$(calc 'sprintf("%.4f", d * e / 3600)' d="$DPH" e="$elapsed"))"
if [[ -s $WORK/result.json ]]; then
    cp "$WORK/result.json" "$RESULT"
    cat "$RESULT"
    log "result: $RESULT"
else
    log "the run printed no result JSON"
fi
case $remote_rc in
    0) log "gate passed; deployed: $(json "$RESULT" 'd.get("deployed")' 2>/dev/null || echo '?')"; exit 0 ;;
    1) log "the model did not pass the gate: not deployed"; exit 1 ;;
    *) die "the remote pipeline failed (exit $remote_rc)" ;;
esac
