#!/usr/bin/env bash
# pi-setup.sh: install tradekit on a Raspberry Pi (64-bit Raspberry Pi OS / Debian 12) as
# system services. Idempotent: run it again after an upgrade; files that exist are kept
# (config, secrets) or replaced only when they differ (units, sudoers rule).
#
#   sudo recipes/pi-setup.sh [--data-dir DIR] [--from PATH] [--deploy-key KEY.pub] [--start]
#                            [--dry-run] [--only-accounts]
#   recipes/pi-setup.sh --render DIR [--data-dir DIR]   # only write the units, as installed
#
# Two users (systemd/README.md explains the layout and the boundary between them):
#   tradekit         runs the units; no login shell, no password, no SSH key. It alone reads
#                    the secrets (through systemd), the config and the ledger.
#   tradekit-deploy  logs in over SSH for `tradekit deploy`: it owns the releases under
#                    /opt/tradekit and may, through sudo, run exactly two commands: restart
#                    the loop, and ask the loop which model it runs (tradekit-loop-status).
#                    It cannot read the service's environment, /etc/tradekit or the ledger.
#   The phone's `promote NAME` (tradekit listen, the service user) reaches the deploy user the
#   one way its sandbox allows (NoNewPrivileges=yes: no sudo): a line on the socket
#   /run/tradekit-promote.sock (group tradekit), for which systemd starts tradekit-promote@
#   as tradekit-deploy; its helper (tradekit-promote) takes a candidate name and nothing else.
#
# What it does:
#   1. the two users (an older install's `tradekit` loses its login shell and hands its SSH
#      keys to tradekit-deploy);
#   2. /opt/tradekit/venv with tradekit WITHOUT torch (LightGBM only; torch is the `deep`
#      extra, which the Pi neither needs nor can use), from this checkout or a wheel file;
#   3. the data directory on the SSD (default /srv/tradekit): state/ and data/, service-only;
#   4. /etc/tradekit/tradekit.toml (from tradekit.toml.example if missing),
#      /etc/tradekit/env (the loop's secrets: exchange keys), /etc/tradekit/listen.env (the
#      phone courier's: LLM keys, webhook token), notify.env (the timers' notify: webhook
#      token) and serve.env (the dashboard's token); only env holds exchange keys; root 0600,
#      each only if missing;
#   5. the units from systemd/ into /etc/systemd/system (data dir substituted);
#   6. /usr/local/libexec/tradekit-loop-status and /etc/sudoers.d/tradekit: the deploy user's
#      two commands, nothing else (checked with visudo -c); /usr/local/libexec/tradekit-promote
#      (the phone's promote, run by tradekit-promote@.service as the deploy user);
#   7. daemon-reload; enable the loop, the courier and the timers (start them with --start;
#      without it the timers start now and the loop waits for its first deployed model).
# --only-accounts does 1, 3, the secrets file of 4, and 6 (no venv, units or systemctl).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(dirname "$HERE")   # the checkout holding recipes/ and systemd/

PREFIX=${TRADEKIT_PREFIX:-/opt/tradekit}
DATA_DIR=${TRADEKIT_DATA_DIR:-/srv/tradekit}
# Overridable for tests (tests/test_recipes.py builds a Pi in a temporary root).
ETC=${TRADEKIT_ETC:-/etc/tradekit}
UNIT_DIR=/etc/systemd/system
SUDOERS=${TRADEKIT_SUDOERS:-/etc/sudoers.d/tradekit}
LIBEXEC=${TRADEKIT_LIBEXEC:-/usr/local/libexec}
USER_NAME=${TRADEKIT_SERVICE_USER:-tradekit}
DEPLOY_USER=${TRADEKIT_DEPLOY_USER:-tradekit-deploy}
PYTHON=${PYTHON:-python3}
SPEC=${TRADEKIT_FROM:-}
VENV=${TRADEKIT_VENV:-}
DEPLOY_KEY=""
DRY=0
START=0
ONLY_ACCOUNTS=0
RENDER=""
# Long-running units and timers enabled at boot.
ENABLE=(tradekit-run.service tradekit-listen.service tradekit-promote.socket tradekit-summary.timer tradekit-fetch.timer
    tradekit-drift.timer tradekit-review.timer)

usage() {
    cat <<EOF
usage: sudo $0 [--data-dir DIR] [--from PATH] [--deploy-key KEY.pub] [--python PY] [--start]
              [--dry-run] [--only-accounts]

  --data-dir DIR    data directory on the SSD [\$TRADEKIT_DATA_DIR, default /srv/tradekit]
  --from PATH       what pip installs: a checkout or a wheel file (never a name: an index
                    could answer with someone else's package) [default: this checkout ($SRC)]
  --deploy-key PUB  public key(s) allowed to log in as $DEPLOY_USER (added with
                    'restrict': no forwarding, no terminal)
  --python PY       interpreter for the venv, Python >= 3.11 [\$PYTHON, default python3]
  --start           also start tradekit-run and tradekit-listen now (after a model is deployed)
  --dry-run         print what would be done, change nothing (no root needed)
  --only-accounts   only the users, directories, secrets file, status helper and sudoers rule
  --render DIR      only write the unit files as they would be installed into DIR (no root)
EOF
}

die() { printf 'pi-setup: error: %s\n' "$1" >&2; exit "${2:-1}"; }
say() { printf 'pi-setup: %s\n' "$*" >&2; }

while (($#)); do
    case $1 in --data-dir|--from|--python|--render|--deploy-key) (($# >= 2)) || die "$1 needs a value" 2 ;; esac
    case $1 in
        --data-dir) DATA_DIR=$2; shift 2 ;;
        --from) SPEC=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --deploy-key) DEPLOY_KEY=$2; shift 2 ;;
        --start) START=1; shift ;;
        --dry-run|-n) DRY=1; shift ;;
        --only-accounts) ONLY_ACCOUNTS=1; shift ;;
        --render) RENDER=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" 2 ;;
    esac
done
case $DATA_DIR in /*) ;; *) die "--data-dir must be an absolute path: $DATA_DIR" 2 ;; esac
DATA_DIR=${DATA_DIR%/}

# render_units DEST: the units with the data and install directories substituted.
render_units() {
    local u units
    shopt -s nullglob
    units=("$SRC"/systemd/tradekit-*.service "$SRC"/systemd/tradekit-*.timer
        "$SRC"/systemd/tradekit-*.socket)
    ((${#units[@]})) || die "no unit files in $SRC/systemd"
    for u in "${units[@]}"; do
        sed -e "s|/srv/tradekit|$DATA_DIR|g" -e "s|/opt/tradekit|$PREFIX|g" \
            -e "s|/usr/local/libexec|$LIBEXEC|g" \
            -e "s|^User=tradekit\$|User=$USER_NAME|" -e "s|^Group=tradekit\$|Group=$USER_NAME|" \
            -e "s|^SocketGroup=tradekit\$|SocketGroup=$USER_NAME|" \
            -e "s|^User=tradekit-deploy\$|User=$DEPLOY_USER|" \
            -e "s|^Group=tradekit-deploy\$|Group=$DEPLOY_USER|" \
            "$u" >"$1/$(basename "$u")"
    done
}
if [[ -n $RENDER ]]; then
    mkdir -p "$RENDER"
    render_units "$RENDER"
    exit 0
fi
if [[ -z $SPEC ]]; then
    [[ -f $SRC/pyproject.toml ]] || die "not in a checkout: give --from PATH (a checkout or a wheel)" 2
    SPEC=$SRC
fi
# Only a path: `tradekit` by name would come from whichever index answers (dependency confusion).
[[ -d $SPEC && -f $SPEC/pyproject.toml ]] || [[ -f $SPEC && $SPEC == *.whl ]] \
    || die "--from $SPEC: give a checkout or a .whl file, never a package name" 2
[[ -z $DEPLOY_KEY || -r $DEPLOY_KEY ]] || die "--deploy-key: cannot read $DEPLOY_KEY" 2
VENV=${VENV:-$PREFIX/venv}
LOOP_STATUS=$LIBEXEC/tradekit-loop-status
PROMOTE=$LIBEXEC/tradekit-promote
NOLOGIN=$(command -v nologin || echo /usr/sbin/nologin)

# run CMD...: execute, or print it in --dry-run.
run() {
    if ((DRY)); then
        printf '+'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

# put SRC_FILE DEST MODE OWNER:GROUP: install a file only when absent or different.
put() {
    local src=$1 dest=$2 mode=$3 owner=$4
    if [[ -f $dest ]] && cmp -s "$src" "$dest"; then
        say "unchanged: $dest"
        return 0
    fi
    if ((DRY)); then
        printf '+ install -m %s -o %s -g %s %q  # %s\n' "$mode" "${owner%%:*}" "${owner##*:}" \
            "$dest" "$([[ -e $dest ]] && echo replace || echo new)"
        return 0
    fi
    install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dest"
    say "wrote: $dest"
}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

if ((!DRY)) && ((EUID != 0)); then
    die "run as root (sudo $0), or try --dry-run" 2
fi
if ((!ONLY_ACCOUNTS)); then
    command -v systemctl >/dev/null || ((DRY)) || die "systemctl not found: this needs a systemd system"
    "$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "$PYTHON: Python >= 3.11 with the venv module needed (apt install python3-venv)"
fi

# 1. the users ------------------------------------------------------------------------------
# The service user runs the units and holds the secrets; nobody logs in as it.
if getent passwd "$USER_NAME" >/dev/null; then
    say "user $USER_NAME exists"
    if [[ $(getent passwd "$USER_NAME" | cut -d: -f7) != "$NOLOGIN" ]]; then
        # An older install logged in as the service user for deploys: no more.
        run usermod --shell "$NOLOGIN" "$USER_NAME"
    fi
else
    run useradd --system --user-group --no-create-home --home-dir /nonexistent \
        --shell "$NOLOGIN" --comment "tradekit service (no login)" "$USER_NAME"
fi
run usermod --lock "$USER_NAME"  # no password either
# Journal lines in the failure messages (tradekit-notify-failure@.service).
if getent group systemd-journal >/dev/null \
    && [[ " $(id -nG "$USER_NAME" 2>/dev/null || true) " != *" systemd-journal "* ]]; then
    run usermod -a -G systemd-journal "$USER_NAME"
fi
# The deploy user logs in with a key only. Its password is '*': no password matches it, yet
# the account is not locked ('!'), which sshd without PAM would refuse. It is not in the
# service's group.
DEPLOY_HOME=/home/$DEPLOY_USER
if getent passwd "$DEPLOY_USER" >/dev/null; then
    say "user $DEPLOY_USER exists"
    DEPLOY_HOME=$(getent passwd "$DEPLOY_USER" | cut -d: -f6)
else
    run useradd --system --user-group --create-home --home-dir "$DEPLOY_HOME" \
        --shell /bin/sh --comment "tradekit deploy (SSH)" "$DEPLOY_USER"
fi
run usermod --password '*' "$DEPLOY_USER"
if [[ " $(id -nG "$DEPLOY_USER" 2>/dev/null || true) " == *" $USER_NAME "* ]]; then
    run gpasswd --delete "$DEPLOY_USER" "$USER_NAME"
fi
keys=$DEPLOY_HOME/.ssh/authorized_keys
old_keys=/home/$USER_NAME/.ssh/authorized_keys
if [[ -z $DEPLOY_KEY && -f $old_keys && ! -s $keys ]]; then
    say "moving the deploy keys of $USER_NAME to $DEPLOY_USER ($keys)"
    DEPLOY_KEY=$old_keys
fi
if [[ -n $DEPLOY_KEY ]]; then
    # restrict: no port, agent or X11 forwarding, no terminal; commands and sftp still work.
    awk '/^[[:space:]]*(#|$)/ { next }
         /^(ssh-|ecdsa-|sk-)/ { print "restrict " $0; next }
         { print }' "$DEPLOY_KEY" >"$TMP/authorized_keys"
    [[ -s $TMP/authorized_keys ]] || die "--deploy-key $DEPLOY_KEY: no public key in it" 2
    run install -d -m 0700 -o "$DEPLOY_USER" -g "$DEPLOY_USER" "$DEPLOY_HOME/.ssh"
    put "$TMP/authorized_keys" "$keys" 0600 "$DEPLOY_USER:$DEPLOY_USER"
fi
if [[ -f $old_keys ]]; then
    run rm -f "$old_keys"
fi

# 2. code: /opt/tradekit/venv, root-owned; /opt/tradekit sticky and group-writable by the
#    deploy user's group only, so it can add releases/ and swap `current` but not touch the
#    venv (or anything else it does not own).
run install -d -m 1775 -o root -g "$DEPLOY_USER" "$PREFIX"
for f in "$PREFIX/releases" "$PREFIX/deploys.jsonl" "$PREFIX/current"; do
    # An older install's releases belong to the service user: hand them to the deploy user.
    if [[ -e $f || -L $f ]] && [[ $(stat -c %U "$f") != "$DEPLOY_USER" ]]; then
        run chown -R -h "$DEPLOY_USER:$DEPLOY_USER" "$f"
    fi
done
if ((!ONLY_ACCOUNTS)); then
    if [[ -x $VENV/bin/python ]]; then
        say "venv exists: $VENV"
    else
        run "$PYTHON" -m venv "$VENV"
    fi
    pip_args=(install --disable-pip-version-check --upgrade)
    if [[ -d $SPEC && -f $SPEC/constraints.txt ]]; then
        pip_args+=(-c "$SPEC/constraints.txt")  # the versions the tests ran with
    fi
    # No [deep] extra: no torch on the Pi.
    run "$VENV/bin/python" -m pip "${pip_args[@]}" "$SPEC"
fi

# 3. data on the SSD: the ledger and candles, the service's alone ---------------------------
for d in "$DATA_DIR" "$DATA_DIR/state" "$DATA_DIR/data"; do
    run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$d"
done

# 4. config and secrets ----------------------------------------------------------------------
run install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
if [[ -f $ETC/tradekit.toml ]]; then
    say "kept: $ETC/tradekit.toml"
elif ((!ONLY_ACCOUNTS)); then
    if [[ -f $SRC/tradekit.toml.example ]]; then
        run cp "$SRC/tradekit.toml.example" "$ETC/tradekit.toml"
    else
        run "$VENV/bin/tradekit" config init "$ETC/tradekit.toml"
    fi
    # The loop trades on what `tradekit deploy` switched `current` to.
    run "$VENV/bin/tradekit" --config "$ETC/tradekit.toml" config set run.model "$PREFIX/current"
    # After `config set`, which replaces the file: readable by the service, not world.
    run chown "root:$USER_NAME" "$ETC/tradekit.toml"
    run chmod 0640 "$ETC/tradekit.toml"
fi
# Four secrets files: each unit gets only what it needs. The loop reads env (the exchange
# keys); `listen` (the phone: courier and ask) reads listen.env; the summary and the failure
# notices read notify.env; `serve` reads serve.env (its token); fetch reads none.
if [[ -f $ETC/env ]]; then
    say "kept: $ETC/env"
    if grep -Eq '^[[:space:]]*(export[[:space:]]+)?(ANTHROPIC|OPENAI)_API_KEY=.' "$ETC/env" 2>/dev/null; then
        say "note: $ETC/env holds an LLM key: the phone's ask reads $ETC/listen.env now; move it there"
    fi
    if grep -Eq '^[[:space:]]*(export[[:space:]]+)?TRADEKIT_(SERVE|WEBHOOK)_TOKEN=.' "$ETC/env" 2>/dev/null; then
        say "note: $ETC/env holds a serve or webhook token: serve reads $ETC/serve.env and the timers' notify $ETC/notify.env now; move it there"
    fi
else
    cat >"$TMP/env" <<'EOF'
# tradekit-run's secrets: KEY=VALUE lines, read by systemd (EnvironmentFile=) as root. Only
# the loop reads this file: LLM keys go in listen.env, the serve token in serve.env.
# TRADEKIT_EXCHANGE_API_KEY=
# TRADEKIT_EXCHANGE_SECRET=
EOF
    put "$TMP/env" "$ETC/env" 0600 root:root
fi
if [[ -f $ETC/notify.env ]]; then
    say "kept: $ETC/notify.env"
else
    cat >"$TMP/notify.env" <<'EOF'
# The daily summary's and the failure notices' secrets (`tradekit notify`): KEY=VALUE lines,
# read by systemd (EnvironmentFile=) as root. Only a webhook token, if [notify] webhook is set.
# TRADEKIT_WEBHOOK_TOKEN=
EOF
    put "$TMP/notify.env" "$ETC/notify.env" 0600 root:root
fi
if [[ -f $ETC/serve.env ]]; then
    say "kept: $ETC/serve.env"
else
    cat >"$TMP/serve.env" <<'EOF'
# tradekit-serve's one secret: KEY=VALUE lines, read by systemd (EnvironmentFile=) as root.
# Without a token the dashboard is read-only; with one, pause/resume/kill need it.
# TRADEKIT_SERVE_TOKEN=
EOF
    put "$TMP/serve.env" "$ETC/serve.env" 0600 root:root
fi
if [[ -f $ETC/listen.env ]]; then
    say "kept: $ETC/listen.env"
else
    cat >"$TMP/listen.env" <<'EOF'
# tradekit-listen's secrets (the phone's courier and ask): KEY=VALUE lines, read by systemd
# (EnvironmentFile=) as root. Never the exchange keys here: listen does not trade.
# ANTHROPIC_API_KEY=
# OPENAI_API_KEY=
# TRADEKIT_WEBHOOK_TOKEN=
EOF
    put "$TMP/listen.env" "$ETC/listen.env" 0600 root:root
fi

# 5. units ----------------------------------------------------------------------------------
if ((!ONLY_ACCOUNTS)); then
    # Other data or install directories: the paths the units hard-code are rewritten.
    mkdir "$TMP/units"
    render_units "$TMP/units"
    for u in "$TMP"/units/*; do
        put "$u" "$UNIT_DIR/$(basename "$u")" 0644 root:root
    done
fi

# 6. what the deploy user may run as someone else: exactly two command lines ----------------
# tradekit-loop-status runs `tradekit status --json` as the service and keeps only the loop's
# state and model: deploy's health check needs no more (no positions, equity or ledger path).
q() { printf %q "$1"; }
cat >"$TMP/loop-status" <<EOF
#!/bin/sh
# tradekit-loop-status (pi-setup.sh): which model the trading loop runs, for tradekit deploy.
# $DEPLOY_USER runs it as $USER_NAME through sudo; it prints status/1 with these fields only.
set -eu
cd $(q "$DATA_DIR")  # the service's working directory: [run] state is relative to it
$(q "$VENV/bin/tradekit") --config $(q "$ETC/tradekit.toml") status --json \\
    | $(q "$VENV/bin/python") -c 'import json, sys
d = json.load(sys.stdin)
keep = ("schema", "running", "state", "model_version", "heartbeat_ms")
print(json.dumps({k: d.get(k) for k in keep}, sort_keys=True))'
EOF
run install -d -m 0755 -o root -g root "$LIBEXEC"
put "$TMP/loop-status" "$LOOP_STATUS" 0755 root:root
# tradekit-promote: the phone's `promote NAME`. tradekit-promote@.service runs it as the deploy
# user with the socket as stdin/stdout; it reads one candidate name, runs `tradekit promote
# NAME --host local` (deploy's switch, then the restart and the status check through the two
# sudo rules below) and answers with the result's last line. Any other input does nothing.
cat >"$TMP/promote" <<EOF
#!/bin/sh
# tradekit-promote (pi-setup.sh): one promote request from the phone (tradekit-promote.socket).
set -u
IFS= read -r name || name=""
case \$name in
    "" | [!A-Za-z0-9]* | *[!A-Za-z0-9_-]*) name="" ;;
esac
if [ -z "\$name" ] || [ \${#name} -gt 32 ]; then
    echo "tradekit: error: promote: not a candidate name"
    exit 2
fi
cd /  # no ./tradekit.toml here: the built-in defaults and the settings below
out=\$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent LANG=C.UTF-8 \\
    TRADEKIT_DEPLOY__HOST=local TRADEKIT_DEPLOY__PATH=$(q "$PREFIX") \\
    TRADEKIT_DEPLOY__STATUS=$(q "sudo -n -u $USER_NAME $LOOP_STATUS") \\
    $(q "$VENV/bin/tradekit") promote "\$name" --json 2>&1)
rc=\$?
printf '%s\n' "\$out" >&2  # the whole story to the journal
printf '%s\n' "\$out" | tail -n 1  # the result (deploy/1 JSON) or the error, to the phone
exit \$rc
EOF
put "$TMP/promote" "$PROMOTE" 0755 root:root
systemctl_bin=$(command -v systemctl || echo /usr/bin/systemctl)
cat >"$TMP/sudoers" <<EOF
# tradekit (pi-setup.sh): after switching releases, tradekit deploy restarts the loop and asks
# it which model it runs; nothing else. sudo matches the whole command line ("" = no arguments).
$DEPLOY_USER ALL=(root) NOPASSWD: $systemctl_bin restart tradekit-run, $systemctl_bin restart tradekit-run.service
$DEPLOY_USER ALL=($USER_NAME) NOPASSWD: $LOOP_STATUS ""
EOF
if command -v visudo >/dev/null; then
    visudo -c -q -f "$TMP/sudoers" >/dev/null || die "visudo rejected the sudoers rule"
else
    say "visudo not found: sudoers rule not validated"
fi
[[ -d $(dirname "$SUDOERS") ]] || run install -d -m 0755 "$(dirname "$SUDOERS")"
put "$TMP/sudoers" "$SUDOERS" 0440 root:root

if ((ONLY_ACCOUNTS)); then
    if ((DRY)); then say "dry run: nothing changed"; else say "accounts done"; fi
    exit 0
fi

# 7. systemd ----------------------------------------------------------------------------------
run systemctl daemon-reload
# The Pi has no RTC: make time-sync.target wait for NTP.
if systemctl cat systemd-time-wait-sync.service >/dev/null 2>&1; then
    run systemctl enable systemd-time-wait-sync.service
fi
run systemctl enable "${ENABLE[@]}"
run systemctl start tradekit-promote.socket
run systemctl start tradekit-summary.timer tradekit-fetch.timer tradekit-drift.timer \
    tradekit-review.timer
if ((START)); then
    run systemctl restart tradekit-run.service tradekit-listen.service
fi

if ((DRY)); then say "dry run: nothing changed"; else say "done"; fi
cat >&2 <<EOF

next steps:
  sudoedit $ETC/tradekit.toml   # exchange, symbols, [notify] Signal numbers
  sudoedit $ETC/env             # exchange keys (paper trading needs none)
  sudoedit $ETC/listen.env      # LLM key for the phone's ask (provider none needs none)
  sudoedit $ETC/serve.env       # TRADEKIT_SERVE_TOKEN, if the dashboard may pause/kill
  the deploy key: $0 --deploy-key KEY.pub; on the laptop, [deploy] user = "$DEPLOY_USER"
  deploy a model from the training box: tradekit deploy MODEL_DIR --host $(hostname 2>/dev/null || echo PI)
  sudo systemctl start tradekit-run tradekit-listen && journalctl -u 'tradekit-*' -f
EOF
