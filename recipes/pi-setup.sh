#!/usr/bin/env bash
# pi-setup.sh: install tradekit on a Raspberry Pi (64-bit Raspberry Pi OS / Debian 12) as
# system services. Idempotent: run it again after an upgrade; files that exist are kept
# (config, secrets) or replaced only when they differ (units, sudoers rule).
#
#   sudo recipes/pi-setup.sh [--data-dir DIR] [--from SPEC] [--start] [--dry-run]
#   recipes/pi-setup.sh --render DIR [--data-dir DIR]   # only write the units, as installed
#
# What it does (systemd/README.md explains the layout):
#   1. the system user `tradekit` (home /home/tradekit for the deploy SSH key);
#   2. /opt/tradekit/venv with tradekit WITHOUT torch (LightGBM only; torch is the `deep`
#      extra, which the Pi neither needs nor can use);
#   3. the data directory on the SSD (default /srv/tradekit): state/ and data/;
#   4. /etc/tradekit/tradekit.toml (from tradekit.toml.example if missing) and
#      /etc/tradekit/env (secrets, root 0600, if missing);
#   5. the units from systemd/ into /etc/systemd/system (data dir substituted);
#   6. /etc/sudoers.d/tradekit: NOPASSWD for `systemctl restart tradekit-run` only
#      (checked with visudo -c);
#   7. daemon-reload; enable the loop, the courier and the timers (start them with --start;
#      without it the timers start now and the loop waits for its first deployed model).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(dirname "$HERE")   # the checkout holding recipes/ and systemd/

PREFIX=${TRADEKIT_PREFIX:-/opt/tradekit}
DATA_DIR=${TRADEKIT_DATA_DIR:-/srv/tradekit}
ETC=/etc/tradekit
UNIT_DIR=/etc/systemd/system
SUDOERS=/etc/sudoers.d/tradekit
USER_NAME=tradekit
PYTHON=${PYTHON:-python3}
SPEC=${TRADEKIT_SPEC:-}
DRY=0
START=0
RENDER=""
# Long-running units and timers enabled at boot.
ENABLE=(tradekit-run.service tradekit-listen.service tradekit-summary.timer tradekit-fetch.timer)

usage() {
    cat <<EOF
usage: sudo $0 [--data-dir DIR] [--from SPEC] [--python PY] [--start] [--dry-run]

  --data-dir DIR  data directory on the SSD [\$TRADEKIT_DATA_DIR, default /srv/tradekit]
  --from SPEC     what pip installs: a checkout, a wheel, or a PyPI spec
                  [\$TRADEKIT_SPEC, default: this checkout ($SRC)]
  --python PY     interpreter for the venv, Python >= 3.11 [\$PYTHON, default python3]
  --start         also start tradekit-run and tradekit-listen now (after a model is deployed)
  --dry-run       print what would be done, change nothing (no root needed)
  --render DIR    only write the unit files as they would be installed into DIR (no root)
EOF
}

die() { printf 'pi-setup: error: %s\n' "$1" >&2; exit "${2:-1}"; }
say() { printf 'pi-setup: %s\n' "$*" >&2; }

while (($#)); do
    case $1 in --data-dir|--from|--python|--render) (($# >= 2)) || die "$1 needs a value" 2 ;; esac
    case $1 in
        --data-dir) DATA_DIR=$2; shift 2 ;;
        --from) SPEC=$2; shift 2 ;;
        --python) PYTHON=$2; shift 2 ;;
        --start) START=1; shift ;;
        --dry-run|-n) DRY=1; shift ;;
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
    units=("$SRC"/systemd/tradekit-*.service "$SRC"/systemd/tradekit-*.timer)
    ((${#units[@]})) || die "no unit files in $SRC/systemd"
    for u in "${units[@]}"; do
        sed -e "s|/srv/tradekit|$DATA_DIR|g" -e "s|/opt/tradekit|$PREFIX|g" "$u" >"$1/$(basename "$u")"
    done
}
if [[ -n $RENDER ]]; then
    mkdir -p "$RENDER"
    render_units "$RENDER"
    exit 0
fi
if [[ -z $SPEC ]]; then
    [[ -f $SRC/pyproject.toml ]] || die "not in a checkout: give --from SPEC (a wheel or tradekit==X)" 2
    SPEC=$SRC
fi
VENV=$PREFIX/venv

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
command -v systemctl >/dev/null || ((DRY)) || die "systemctl not found: this needs a systemd system"
"$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON: Python >= 3.11 with the venv module needed (apt install python3-venv)"

# 1. the user ------------------------------------------------------------------------------
if getent passwd "$USER_NAME" >/dev/null; then
    say "user $USER_NAME exists"
else
    # A login shell: `tradekit deploy` logs in over SSH as this user.
    run useradd --system --user-group --create-home --home-dir "/home/$USER_NAME" \
        --shell /bin/bash --comment "tradekit trading bot" "$USER_NAME"
fi
# Journal lines in the failure messages (tradekit-notify-failure@.service).
if getent group systemd-journal >/dev/null \
    && [[ " $(id -nG "$USER_NAME" 2>/dev/null || true) " != *" systemd-journal "* ]]; then
    run usermod -a -G systemd-journal "$USER_NAME"
fi

# 2. code: /opt/tradekit/venv, root-owned; /opt/tradekit sticky so the deploy user can add
#    releases/ and swap `current` but cannot touch the venv.
run install -d -m 1775 -o root -g "$USER_NAME" "$PREFIX"
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

# 3. data on the SSD ------------------------------------------------------------------------
for d in "$DATA_DIR" "$DATA_DIR/state" "$DATA_DIR/data"; do
    run install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$d"
done

# 4. config and secrets ----------------------------------------------------------------------
run install -d -m 0750 -o root -g "$USER_NAME" "$ETC"
if [[ -f $ETC/tradekit.toml ]]; then
    say "kept: $ETC/tradekit.toml"
else
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
if [[ -f $ETC/env ]]; then
    say "kept: $ETC/env"
else
    cat >"$TMP/env" <<'EOF'
# tradekit secrets: KEY=VALUE lines, read by systemd (EnvironmentFile=) as root.
# TRADEKIT_EXCHANGE_API_KEY=
# TRADEKIT_EXCHANGE_SECRET=
# ANTHROPIC_API_KEY=
# TRADEKIT_WEBHOOK_TOKEN=
EOF
    put "$TMP/env" "$ETC/env" 0600 root:root
fi

# 5. units ----------------------------------------------------------------------------------
# Other data or install directories: the paths the units hard-code are rewritten.
mkdir "$TMP/units"
render_units "$TMP/units"
for u in "$TMP"/units/*; do
    put "$u" "$UNIT_DIR/$(basename "$u")" 0644 root:root
done

# 6. sudoers: exactly the restart command line `tradekit deploy` sends ---------------------
systemctl_bin=$(command -v systemctl || echo /usr/bin/systemctl)
cat >"$TMP/sudoers" <<EOF
# tradekit deploy restarts the loop after switching releases; nothing else.
$USER_NAME ALL=(root) NOPASSWD: $systemctl_bin restart tradekit-run, $systemctl_bin restart tradekit-run.service
EOF
if command -v visudo >/dev/null; then
    visudo -c -q -f "$TMP/sudoers" >/dev/null || die "visudo rejected the sudoers rule"
else
    say "visudo not found: sudoers rule not validated"
fi
[[ -d /etc/sudoers.d ]] || run install -d -m 0755 /etc/sudoers.d
put "$TMP/sudoers" "$SUDOERS" 0440 root:root

# 7. systemd ----------------------------------------------------------------------------------
run systemctl daemon-reload
# The Pi has no RTC: make time-sync.target wait for NTP.
if systemctl cat systemd-time-wait-sync.service >/dev/null 2>&1; then
    run systemctl enable systemd-time-wait-sync.service
fi
run systemctl enable "${ENABLE[@]}"
run systemctl start tradekit-summary.timer tradekit-fetch.timer
if ((START)); then
    run systemctl restart tradekit-run.service tradekit-listen.service
fi

if ((DRY)); then say "dry run: nothing changed"; else say "done"; fi
cat >&2 <<EOF

next steps:
  sudoedit $ETC/tradekit.toml   # exchange, symbols, [notify] Signal numbers
  sudoedit $ETC/env             # API keys (paper trading needs none)
  add the deploy key: /home/$USER_NAME/.ssh/authorized_keys
  deploy a model from the training box: tradekit deploy MODEL_DIR --host $(hostname 2>/dev/null || echo PI)
  sudo systemctl start tradekit-run tradekit-listen && journalctl -u 'tradekit-*' -f
EOF
