#!/usr/bin/env bash
# vastai-train.sh: train on the cheapest matching Vast.ai GPU. It:
#   1. builds the bundle: this checkout's wheel and its dependencies pinned by hash
#      (recipes/build-wheel.sh), plus the config, secrets, deploy key and known_hosts;
#   2. searches offers (GPU, region, reliability, disk, CUDA, price cap) and picks the cheapest,
#      refusing one above the cap;
#   3. creates an instance whose on-start script waits for the bundle, then runs
#      recipes/remote-train.sh (install -> fetch -> ... -> gate -> deploy, which ships only a
#      model with a passing receipt). Nothing secret is on any command line or in the
#      instance's environment: the bundle goes over SSH into a tmpfs directory once the
#      instance runs;
#   4. follows its log (each line once), enforcing MAX_RUNTIME (seconds) and MAX_SPEND (USD,
#      dph_total x time);
#   5. fetches the result JSON from the log, and
#   6. destroys the instance on EVERY exit path (success, failure, Ctrl-C/TERM, timeout, spend
#      cap), from the EXIT trap, and then checks with `show instance`, retrying with backoff,
#      that it is gone. If it is still listed, it says so loudly, tells the phone (tradekit
#      notify, with the instance id and its price per hour) and exits 4.
#
# Exit: 0 gate passed (deployed), 1 gate failed (nothing deployed), 2 usage,
#       4 provider failure (no offer under the cap, create failed, instance died, SSH failed,
#       timeout, spend cap, destroy not confirmed), 130/143 interrupted.
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
  --bid USD             rent interruptible at this bid [VAST_BID, on-demand]
instance:
  --image IMAGE         [VAST_IMAGE, pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime]
  --run-id ID           [RUN_ID, tk-UTCTIME]
  --bundle DIR          a prebuilt wheel + requirements.txt from recipes/build-wheel.sh
                        [TK_BUNDLE_DIR, default: build one from this checkout]
  --config FILE         tradekit.toml to train with [TK_CONFIG_FILE]
  --sweep SPACE.toml    run a sweep (tradekit sweep --features: every trial a retrain on the
                        GPU), then train, backtest and gate the best trial, deflated by the
                        trial count [TK_SWEEP_FILE]; --env TK_SWEEP_TRIALS=N sets the trials (50)
  --secrets FILE        .env with secrets (KEY=VALUE) the run needs; exchange keys are
                        refused: training needs none [TK_SECRETS_FILE]
  --deploy-key FILE     SSH key of the Pi's deploy user (pi-setup.sh's tradekit-deploy: it can
                        upload releases, not read the bot's secrets) [TK_DEPLOY_KEY_FILE]
  --known-hosts FILE    pinned host key of the Pi [TK_KNOWN_HOSTS_FILE]
  --ssh-key FILE        your key registered at Vast.ai, to send the bundle over SSH
                        [VAST_SSH_KEY, ~/.ssh/id_ed25519]
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
A failed destroy reaches the phone through `tradekit notify` ($TRADEKIT_BIN, else tradekit on
PATH, else this checkout's .venv), with your config's [notify].
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
BUNDLE_SRC=${TK_BUNDLE_DIR:-}
CONFIG=${TK_CONFIG_FILE:-}
SWEEP=${TK_SWEEP_FILE:-}
SECRETS=${TK_SECRETS_FILE:-}
DEPLOY_KEY=${TK_DEPLOY_KEY_FILE:-}
KNOWN_HOSTS=${TK_KNOWN_HOSTS_FILE:-}
SSH_KEY=${VAST_SSH_KEY:-$HOME/.ssh/id_ed25519}
SSH_USER=${VAST_SSH_USER:-root}
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
        --bundle) BUNDLE_SRC=$2; shift 2 ;;
        --config) CONFIG=$2; shift 2 ;;
        --sweep) SWEEP=$2; shift 2 ;;
        --secrets) SECRETS=$2; shift 2 ;;
        --deploy-key) DEPLOY_KEY=$2; shift 2 ;;
        --known-hosts) KNOWN_HOSTS=$2; shift 2 ;;
        --ssh-key) SSH_KEY=$2; shift 2 ;;
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
for f in "$CONFIG" "$SWEEP" "$SECRETS" "$DEPLOY_KEY" "$KNOWN_HOSTS"; do
    [[ -z $f || -r $f ]] || die "cannot read $f" 2
done
if [[ -n $SECRETS ]] && grep -Eq '^[[:space:]]*(export[[:space:]]+)?TRADEKIT_EXCHANGE_(API_KEY|SECRET|PASSWORD)=.' "$SECRETS"; then
    die "--secrets $SECRETS holds exchange credentials: a training box needs none, and its host can read what it gets; leave them out" 2
fi
SAMPLE=0
for kv in "${EXTRA_ENV[@]}"; do
    # vastai splits --env on spaces and cuts values at the first '=': refuse what would be mangled.
    [[ ${kv%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ && $kv == *=* ]] && plain "${kv#*=}" \
        || die "--env $kv: KEY=VALUE without spaces, quotes or a second '=' (put such values in --config)" 2
    [[ $kv == TK_EXCHANGE=sample ]] && SAMPLE=1
done
# Where the bundle lands on the instance: a tmpfs (RAM), gone when the instance is.
REMOTE_BUNDLE=${VAST_REMOTE_BUNDLE:-/dev/shm/tradekit-$RUN_ID}
[[ $REMOTE_BUNDLE =~ ^/[A-Za-z0-9/._-]+$ ]] || die "VAST_REMOTE_BUNDLE: an absolute path of plain characters" 2
[[ $SSH_USER =~ ^[a-z_][a-z0-9_-]*$ ]] || die "VAST_SSH_USER: not a user name: $SSH_USER" 2
command -v "$VASTAI" >/dev/null || die "$VASTAI not found: run \`make vastai\` (or set VASTAI)" 2
if ((!DRY)); then
    [[ -r $SSH_KEY ]] || die "--ssh-key $SSH_KEY: cannot read it (the key you registered at Vast.ai sends the bundle)" 2
    command -v ssh >/dev/null || die "ssh not found (the bundle goes over SSH)" 2
fi
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
last_line() { cat -- "$@" 2>/dev/null | grep -v '^[[:space:]]*$' | tail -n 1; }

# alert_phone MESSAGE: tell the phone through `tradekit notify` (the laptop's [notify]).
alert_phone() {
    local tk=${TRADEKIT_BIN:-}
    if [[ -z $tk ]]; then
        if command -v tradekit >/dev/null; then
            tk=tradekit
        elif [[ -x $HERE/../.venv/bin/tradekit ]]; then
            tk=$HERE/../.venv/bin/tradekit
        fi
    fi
    if [[ -z $tk ]]; then
        log "no tradekit to tell the phone with (set TRADEKIT_BIN)"
        return 1
    fi
    if printf '%s\n' "$1" | "$tk" notify - >/dev/null 2>"$WORK/notify.err"; then
        log "the phone was told"
    else
        log "could not tell the phone: $(last_line "$WORK/notify.err")"
        return 1
    fi
}

# -- destroy on every exit path, then make sure ----------------------------------------------
ID=""
CREATE_SENT=0
DESTROYED=0
# gone ID: `show instance` answers that the instance no longer exists. Anything else (listed,
# an error, no answer) is not proof, and the instance may be billing.
gone() {
    "$VASTAI" show instance "$1" --raw >"$WORK/gone.json" 2>"$WORK/gone.err" || return 1
    [[ $(json "$WORK/gone.json" '"yes" if isinstance(d, dict) and "instances" in d and not d["instances"] else "no"' 2>/dev/null) == yes ]]
}
# destroy_one ID: destroy, then poll `show instance` until it is gone; destroy again while it
# is listed, backing off, for at most VAST_DESTROY_WAIT_S seconds.
destroy_one() {
    local id=$1 attempt=0 poll rc start delay answer
    start=$(now)
    delay=${VAST_DESTROY_BACKOFF_S:-2}
    while :; do
        attempt=$((attempt + 1))
        rc=0
        "$VASTAI" destroy instance "$id" -y --raw >"$WORK/destroy.json" 2>"$WORK/destroy.err" || rc=$?
        # The CLI exits 0 on an HTTP error printed to stderr, or on {"success": false}: its
        # answer is only a hint; `show instance` decides.
        answer=$(json "$WORK/destroy.json" '"ok" if isinstance(d, dict) and d.get("success") else d' 2>/dev/null || true)
        if ((rc != 0)) || [[ $answer != ok ]] || [[ -s $WORK/destroy.err ]]; then
            log "destroy instance $id (attempt $attempt): exit $rc: $(last_line "$WORK/destroy.err" "$WORK/destroy.json" || true)"
        fi
        for poll in 1 2 3; do
            if gone "$id"; then
                log "destroyed instance $id (verified: \`vastai show instance $id\` no longer lists it)"
                return 0
            fi
            if (($(calc 'b - a >= w' a="$start" b="$(now)" w="${VAST_DESTROY_WAIT_S:-180}"))); then
                return 1
            fi
            nap "$delay"
            delay=$(calc 'd * 2 > 30 ? 30 : d * 2' d="$delay")
        done
        log "instance $id is still listed after destroy attempt $attempt: destroying again"
    done
}
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
    local id ids left=()
    read -r -a ids <<<"$ID"
    for id in "${ids[@]}"; do
        destroy_one "$id" || left+=("$id")
    done
    if ((${#left[@]})); then
        local price=${DPH:-?}
        printf '\n%s\n%s\n%s\n\n' \
            "vastai-train: !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" \
            "vastai-train: INSTANCE ${left[*]} WAS NOT CONFIRMED DESTROYED (still listed, or `show instance` fails): IT MAY BE BILLING \$$price/h. Run: vastai destroy instance ${left[*]} -y, and check https://cloud.vast.ai/instances/" \
            "vastai-train: !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
        alert_phone "tradekit: Vast.ai instance ${left[*]} (run $RUN_ID) is STILL RUNNING after a failed destroy, billing \$$price/h. Destroy it: vastai destroy instance ${left[*]} -y" || true
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

# -- 1. the bundle: exactly this code, and what the run needs -------------------------------
BUNDLE=$WORK/bundle
mkdir -m 700 "$BUNDLE"
if ((DRY)); then
    log "--dry-run: no bundle built"
else
    if [[ -n $BUNDLE_SRC ]]; then
        cp "$BUNDLE_SRC"/tradekit-*.whl "$BUNDLE_SRC/requirements.txt" "$BUNDLE/" 2>/dev/null \
            || die "--bundle $BUNDLE_SRC: needs tradekit-*.whl and requirements.txt (recipes/build-wheel.sh)" 2
    else
        build=(bash "$HERE/build-wheel.sh" "$BUNDLE")
        ((SAMPLE)) && build+=(--sample)
        log "building the bundle: ${build[*]}"
        "${build[@]}" >&2 || die "build-wheel.sh failed" 2
    fi
    shopt -s nullglob
    wheels=("$BUNDLE"/tradekit-*.whl)
    shopt -u nullglob
    ((${#wheels[@]} == 1)) || die "the bundle needs exactly one tradekit-*.whl" 2
    wheel_sha=$(sha256sum "${wheels[0]}" | cut -d' ' -f1)
    grep -qx "\./$(basename "${wheels[0]}") --hash=sha256:$wheel_sha" "$BUNDLE/requirements.txt" \
        || die "requirements.txt does not pin $(basename "${wheels[0]}") at sha256:$wheel_sha" 2
    log "bundle: $(basename "${wheels[0]}") sha256:$wheel_sha, $(grep -c -- '--hash=' "$BUNDLE/requirements.txt") hashed requirement(s)"
    [[ -n $CONFIG ]] && cp "$CONFIG" "$BUNDLE/tradekit.toml"
    [[ -n $SWEEP ]] && cp "$SWEEP" "$BUNDLE/sweep.toml"
    [[ -n $SECRETS ]] && cp "$SECRETS" "$BUNDLE/.env"
    [[ -n $DEPLOY_KEY ]] && cp "$DEPLOY_KEY" "$BUNDLE/deploy_key"
    [[ -n $KNOWN_HOSTS ]] && cp "$KNOWN_HOSTS" "$BUNDLE/known_hosts"
    chmod 600 "$BUNDLE"/* "$BUNDLE"/.[!.]* 2>/dev/null || true
fi

# -- 2. offers ---------------------------------------------------------------------------------
query="gpu_name=$GPU num_gpus=$NUM_GPUS verified=true rentable=true reliability>=$MIN_RELIABILITY"
query+=" disk_space>=$DISK cuda_vers>=$MIN_CUDA dph_total<=$MAX_DPH"
if [[ -n $GEO ]]; then
    if [[ $GEO == *,* ]]; then query+=" geolocation in [$GEO]"; else query+=" geolocation=$GEO"; fi
fi
search=(search offers "$query" -o dph_total --limit 5 --storage "$DISK" --raw)
[[ -n $BID ]] && search+=(--type bid)
log "search: $query"
vast "${search[@]}" || die "vastai search offers failed: $(last_line "$WORK/err")"
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

# -- 3. create ---------------------------------------------------------------------------------
# The on-start script waits for the bundle (sent over SSH below), then runs remote-train.sh.
cat >"$WORK/onstart.sh" <<'EOF'
#!/bin/bash
# tradekit (vastai-train.sh): unpack recipes/remote-train.sh from $TK_SCRIPT_B64, wait for the
# bundle that vastai-train.sh sends over SSH into $TK_BUNDLE (tmpfs), then run it.
cd "${TK_HOME:-/workspace}" 2>/dev/null || cd /root
printf %s "$TK_SCRIPT_B64" | python3 -c 'import base64,gzip,sys; s=sys.stdin.read(); sys.stdout.buffer.write(gzip.decompress(base64.urlsafe_b64decode(s+"="*(-len(s)%4))))' >tradekit-remote-train.sh
b=${TK_BUNDLE:?}
wait_s=${TK_BUNDLE_WAIT_S:-1800}
echo "tradekit: waiting up to ${wait_s}s for the bundle in $b"
for ((i = 0; i < wait_s; i += 2)); do [[ -e $b/.ready ]] && break; sleep 2; done
[[ -e $b/.ready ]] || { echo "tradekit: no bundle arrived in $b"; exit 4; }
exec bash tradekit-remote-train.sh --bundle "$b"
EOF
gzip -9n <"$HERE/remote-train.sh" >"$WORK/remote-train.sh.gz"
# Only what is not secret: the instance's environment is visible to its host.
env_args=(
    "RUN_ID=$RUN_ID" "DPH=$DPH" "TK_MARKERS=1" "TK_LOG_TO_PID1=1"
    "TK_WORKDIR=/workspace/tradekit-$RUN_ID" "TK_BUNDLE=$REMOTE_BUNDLE"
    "TK_SCRIPT_B64=$(b64 "$WORK/remote-train.sh.gz")"
)
for kv in "${EXTRA_ENV[@]}"; do env_args+=("$kv"); done
env_str=""
for kv in "${env_args[@]}"; do env_str+="${env_str:+ }-e $kv"; done

create=(create instance "$OFFER" --image "$IMAGE" --disk "$DISK" --label "tradekit-$RUN_ID"
    --onstart "$WORK/onstart.sh" --ssh --cancel-unavail --raw)
[[ -n $BID ]] && create+=(--bid_price "$BID")
log "create: ${create[*]} --env <${env_args[*]%%=*}>"
if ((DRY)); then
    log "--dry-run: nothing rented"
    exit 0
fi
CREATE_SENT=1
T0=$(now)
if ! "$VASTAI" "${create[@]}" --env "$env_str" >"$WORK/create.json" 2>"$WORK/err"; then
    die "vastai create instance failed: $(last_line "$WORK/err")"
fi
ok=$(json "$WORK/create.json" 'd.get("success") and d.get("new_contract")') || ok=""
[[ -n $ok && $ok != False ]] || die "vastai create instance: $(head -c 300 "$WORK/create.json")"
ID=$ok
log "instance $ID created (label tradekit-$RUN_ID)"

# send_bundle HOST PORT: the bundle over SSH into the instance's tmpfs, then .ready. The host
# key of a freshly rented machine cannot be known in advance: it is learnt at first contact
# (accept-new) into a known_hosts of this run only, then enforced for the rest of it.
send_bundle() {
    local host=$1 port=$2 try delay=${VAST_SSH_RETRY_S:-5} remote
    local ssh_opts=(-i "$SSH_KEY" -p "$port" -o BatchMode=yes -o IdentitiesOnly=yes
        -o StrictHostKeyChecking=accept-new -o "UserKnownHostsFile=$WORK/known_hosts"
        -o ConnectTimeout=15 -o ServerAliveInterval=15)
    remote="umask 077 && mkdir -p '$REMOTE_BUNDLE' && tar --no-same-owner -xf - -C '$REMOTE_BUNDLE'"
    remote+=" && touch '$REMOTE_BUNDLE/.ready'"
    for ((try = 1; try <= ${VAST_SSH_TRIES:-6}; try++)); do
        if tar -C "$BUNDLE" -cf - . | ssh "${ssh_opts[@]}" "$SSH_USER@$host" "$remote" \
            2>"$WORK/ssh.err"; then
            log "bundle sent over SSH to $SSH_USER@$host:$port into $REMOTE_BUNDLE"
            return 0
        fi
        log "sending the bundle to $host:$port failed (try $try): $(last_line "$WORK/ssh.err")"
        nap "$delay"
        delay=$(calc 'd * 2 > 60 ? 60 : d * 2' d="$delay")
    done
    return 1
}

# -- 4. wait, send, follow, enforce ----------------------------------------------------------------
: >"$WORK/seen.log"
fails=0
running=0
sent=0
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
            ("actual_status", "dph_total", "ssh_host", "ssh_port", "status_msg")))(d.get("instances") or d))'); then
        fails=0
        IFS=$'\t' read -r status dph ssh_host ssh_port status_msg <<<"$fields" || true
        is_num "${dph:-x}" && DPH=$dph
    else
        fails=$((fails + 1))
        ((fails < 5)) || die "vastai show instance $ID failed 5 times: $(last_line "$WORK/err" "$WORK/out")"
        status=""
    fi
    spend=$(calc 'd * e / 3600' d="$DPH" e="$elapsed")
    if (($(calc 's >= m' s="$spend" m="$MAX_SPEND"))); then
        die "MAX_SPEND \$$MAX_SPEND reached (\$$(calc 'sprintf("%.6f", s)' s="$spend") at \$$DPH/h): stopping instance $ID"
    fi

    case $status in
        running)
            ((running)) || log "instance $ID running after ${elapsed%.*}s"
            running=1
            if ((!sent)); then
                [[ -n ${ssh_host:-} && ${ssh_port:-} =~ ^[0-9]+$ ]] \
                    || die "instance $ID runs but shows no ssh_host/ssh_port (created with --ssh)"
                send_bundle "$ssh_host" "$ssh_port" || die "cannot send the bundle to instance $ID over SSH"
                sent=1
            fi ;;
        exited|offline|gone) ;;  # finished, or died: the log below tells which
        *)
            if ((!running)) && (($(calc 'e > m' e="$elapsed" m="$START_TIMEOUT"))); then
                die "instance $ID not running after ${START_TIMEOUT}s (status ${status:-unknown})"
            fi ;;
    esac

    if ((running)) || [[ $status == exited || $status == offline ]] && vast logs "$ID" --tail 1000; then
        # (`logs` prints text whatever --raw says, after "waiting on logs ..." progress lines and
        # before a trailing blank line.) Each line is printed once: the new window's lines after
        # its overlap with the previous window.
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

def window(lines):
    lines = [
        line.rstrip()
        for line in lines
        if not line.startswith(("waiting on logs for instance", "Timed out waiting for logs"))
    ]
    while lines and not lines[-1]:
        lines.pop()  # the CLI's trailing blank line(s) would break the overlap
    return lines

seen_path, new_path, result_path = sys.argv[1:]
old = window(open(seen_path, encoding="utf-8").read().splitlines())
new = window(text(new_path).splitlines())
k = min(len(old), len(new))
while k and old[-k:] != new[:k]:
    k -= 1
for line in new[k:]:
    print("  | " + line, file=sys.stderr)
if new:
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

# -- 5. result -------------------------------------------------------------------------------
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
