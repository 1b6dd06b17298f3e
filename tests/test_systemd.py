"""The Pi's systemd units (systemd/) and the shell recipes (recipes/), checked offline:
``systemd-analyze verify`` in a fake root (PID 1 need not be systemd; interfaces.md §3.5),
``systemd-analyze calendar`` on every schedule, the directives the design depends on, and
``bash -n`` on every recipe."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

UNITS = ROOT / "systemd"
RECIPES = ROOT / "recipes"
UNIT_FILES = sorted(p for p in UNITS.iterdir() if p.suffix in (".service", ".timer", ".socket"))
SERVICES = [p for p in UNIT_FILES if p.suffix == ".service"]
# Run as the deploy user, for the phone's promote: sudo inside, so a sandbox of its own
# (test_the_promote_socket_and_its_service).
DEPLOY_SIDE = {"tradekit-promote@.service"}
TIMERS = [p for p in UNIT_FILES if p.suffix == ".timer"]
# The sandbox every tradekit service shares (systemd/README.md).
HARDENING = {
    "User": "tradekit",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "RestrictNamespaces": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "UMask": "0027",
    "ReadWritePaths": "/srv/tradekit",
    "WorkingDirectory": "/srv/tradekit",
    "Environment": "TRADEKIT_CONFIG=/etc/tradekit/tradekit.toml",
}


def systemd_analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        if os.environ.get("TRADEKIT_REQUIRE_SHARED"):
            pytest.fail("systemd-analyze missing but TRADEKIT_REQUIRE_SHARED is set")
        pytest.skip("no systemd-analyze (apt-get install systemd) to check the units")
    return exe


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> every value, in order (keys such as Environment= repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out.setdefault(section, {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def seconds(span: str) -> float:
    m = re.fullmatch(r"(\d+)(s|min)?", span)
    assert m, span
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """ROOT/etc/systemd/system with our units, executable stubs at every ExecStart path,
    and a copy (a symlink floods stderr with loops) of the host's /usr/lib/systemd/system."""
    root = tmp_path_factory.mktemp("root")
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for u in UNIT_FILES:
        shutil.copy(u, etc / u.name)
    host_units = Path("/usr/lib/systemd/system")
    if host_units.is_dir():
        shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    for u in SERVICES:
        for cmd in parse(u)["Service"].get("ExecStart", []):
            exe = root / cmd.lstrip("-@+!:").split()[0].lstrip("/")
            exe.parent.mkdir(parents=True, exist_ok=True)
            exe.write_text("#!/bin/sh\n")
            exe.chmod(0o755)
    yield root


def verify(root: Path, units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", f"--root={root}", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_unit_verifies_without_a_warning(fake_root: Path) -> None:
    installed = [fake_root / "etc/systemd/system" / u.name for u in UNIT_FILES]
    r = verify(fake_root, installed)
    # Unknown keys and bad values are warnings with exit 0: stderr must be empty too.
    assert (r.returncode, r.stderr, r.stdout) == (0, "", "")


def test_verify_catches_a_typo(fake_root: Path, tmp_path: Path) -> None:
    """The check above can fail: a misspelt key is reported."""
    bad = fake_root / "etc/systemd/system/tradekit-typo.timer"
    bad.write_text(
        (UNITS / "tradekit-summary.timer").read_text().replace("Persistent=", "Persistant=")
    )
    try:
        r = verify(fake_root, [bad])
    finally:
        bad.unlink()
    assert "Unknown key 'Persistant'" in r.stderr


def test_units_rendered_for_another_data_dir_verify(fake_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    r = subprocess.run(
        ["bash", str(RECIPES / "pi-setup.sh"), "--render", str(out), "--data-dir", "/mnt/ssd/tk"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [u.name for u in UNIT_FILES]
    run = parse(out / "tradekit-run.service")["Service"]
    assert run["ReadWritePaths"] == ["/mnt/ssd/tk"] and run["WorkingDirectory"] == ["/mnt/ssd/tk"]
    assert not any("/srv/tradekit" in p.read_text() for p in out.iterdir())
    etc = fake_root / "etc/systemd/system"
    saved = {p.name: p.read_bytes() for p in etc.iterdir()}
    try:
        for p in out.iterdir():
            shutil.copy(p, etc / p.name)
        r2 = verify(fake_root, [etc / p.name for p in out.iterdir()])
    finally:
        for name, data in saved.items():
            (etc / name).write_bytes(data)
    assert (r2.returncode, r2.stderr) == (0, "")


def test_schedules_parse_and_avoid_the_dst_hole() -> None:
    exe = systemd_analyze()
    specs = [(t, s) for t in TIMERS for s in parse(t)["Timer"].get("OnCalendar", [])]
    assert {t.name for t, _ in specs} == {t.name for t in TIMERS}, "a timer without OnCalendar"
    for timer, spec in specs:
        r = subprocess.run(
            [exe, "calendar", "--iterations=2", spec],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert r.returncode == 0, (timer.name, spec, r.stderr)
        assert "Next elapse" in r.stdout
        # Vienna's spring-forward Sunday skips 02:00-03:00: a timer there would not fire.
        hhmm = re.search(r"\b(\d\d):\d\d(:\d\d)?\b", spec)
        assert hhmm and hhmm.group(1) != "02", spec
        assert spec.endswith("Europe/Vienna"), spec


def test_the_run_service_is_a_watched_notify_service() -> None:
    unit = parse(UNITS / "tradekit-run.service")
    svc = unit["Service"]
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert seconds(one(unit, "Service", "WatchdogSec")) >= 30
    assert one(unit, "Service", "Restart") == "on-failure"
    assert "3" in one(unit, "Service", "RestartPreventExitStatus").split()
    assert one(unit, "Service", "ExecStart") == "/opt/tradekit/venv/bin/tradekit run"
    assert svc["EnvironmentFile"] == ["/etc/tradekit/env"]
    assert "MemoryDenyWriteExecute" not in svc  # numba's JIT needs W+X memory
    assert one(unit, "Unit", "OnFailure") == "tradekit-notify-failure@%n.service"
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 1
    assert seconds(one(unit, "Unit", "StartLimitIntervalSec")) > 0
    for key in ("After", "Wants"):
        assert {"network-online.target", "time-sync.target"} <= set(one(unit, "Unit", key).split())
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_the_other_units() -> None:
    listen = parse(UNITS / "tradekit-listen.service")
    assert one(listen, "Service", "ExecStart").endswith("tradekit listen")
    assert one(listen, "Service", "Restart") == "always"
    assert one(listen, "Unit", "OnFailure") == "tradekit-notify-failure@%n.service"

    timer = parse(UNITS / "tradekit-summary.timer")
    assert one(timer, "Timer", "OnCalendar") == "*-*-* 20:00:00 Europe/Vienna"
    assert one(timer, "Timer", "Persistent") == "true"
    assert one(timer, "Timer", "AccuracySec") == "1s"
    summary = parse(UNITS / "tradekit-summary.service")
    assert one(summary, "Service", "Type") == "oneshot"
    cmd = one(summary, "Service", "ExecStart")
    assert "tradekit summary" in cmd and "tradekit notify -" in cmd and "pipefail" in cmd

    failure = parse(UNITS / "tradekit-notify-failure@.service")
    assert one(failure, "Service", "Type") == "oneshot"
    assert "OnFailure" not in failure["Unit"], "a failing notifier would trigger itself"
    cmd = one(failure, "Service", "ExecStart")
    assert "%i" in cmd and "systemctl status" in cmd and "tradekit notify -" in cmd

    for t in TIMERS:  # each timer starts its own service
        assert (UNITS / t.name.replace(".timer", ".service")).exists(), t.name
        assert one(parse(t), "Install", "WantedBy") == "timers.target"


def test_the_drift_and_review_units() -> None:
    drift = parse(UNITS / "tradekit-drift.service")
    cmd = one(drift, "Service", "ExecStart")
    # Yesterday's alert removed first, sent only when drift wrote one, exit 1 (an alert) is
    # not a failure; and the timer runs after the store's top-up (05:10).
    assert cmd.index("rm -f state/drift-alert.txt") < cmd.index("tradekit drift --alert-file")
    assert "test -s state/drift-alert.txt" in cmd and "tradekit notify" in cmd
    assert "test $$rc -le 1" in cmd
    assert one(parse(UNITS / "tradekit-drift.timer"), "Timer", "OnCalendar").startswith(
        "*-*-* 06:15"
    )
    review = parse(UNITS / "tradekit-review.service")
    cmd = one(review, "Service", "ExecStart")
    assert "pipefail" in cmd and "tradekit review --period day &&" in cmd
    assert "tradekit ask" in cmd and cmd.endswith("| /opt/tradekit/venv/bin/tradekit notify -'")
    when = one(parse(UNITS / "tradekit-review.timer"), "Timer", "OnCalendar")
    assert when > one(parse(UNITS / "tradekit-drift.timer"), "Timer", "OnCalendar")


@pytest.mark.parametrize(
    "unit", [u for u in SERVICES if u.name not in DEPLOY_SIDE], ids=lambda p: p.name
)
def test_every_service_is_sandboxed_alike(unit: Path) -> None:
    svc = parse(unit)["Service"]
    for key, want in HARDENING.items():
        assert want in svc.get(key, []), f"{unit.name}: {key}={want} missing"
    # Each unit reads only the secrets it needs (test_each_unit_reads_only_its_secrets).
    assert svc.get("EnvironmentFile", []) == SECRETS[unit.name], unit.name


# Which secrets file each service reads ("-": optional). Only the loop reads the exchange keys.
SECRETS = {
    "tradekit-run.service": ["/etc/tradekit/env"],
    "tradekit-listen.service": ["/etc/tradekit/listen.env"],
    "tradekit-serve.service": ["-/etc/tradekit/serve.env"],
    "tradekit-summary.service": ["-/etc/tradekit/notify.env"],
    "tradekit-notify-failure@.service": ["-/etc/tradekit/notify.env"],
    "tradekit-fetch.service": [],
    "tradekit-promote@.service": [],
    "tradekit-drift.service": ["-/etc/tradekit/notify.env"],
    "tradekit-review.service": ["-/etc/tradekit/listen.env"],  # ask's LLM keys
}
# What each file's template in pi-setup.sh may name: nothing beyond its unit's needs.
TEMPLATES = {
    "env": {"TRADEKIT_EXCHANGE_API_KEY", "TRADEKIT_EXCHANGE_SECRET"},
    "listen.env": {"ANTHROPIC_API_KEY", "OPENAI_API_KEY", "TRADEKIT_WEBHOOK_TOKEN"},
    "notify.env": {"TRADEKIT_WEBHOOK_TOKEN"},
    "serve.env": {"TRADEKIT_SERVE_TOKEN"},
}


def test_each_unit_reads_only_its_secrets(tmp_path: Path) -> None:
    """serve needs its token, the summary and failure notices a webhook token at most, fetch
    nothing: none of them gets /etc/tradekit/env, where the exchange keys are."""
    assert sorted(SECRETS) == sorted(p.name for p in SERVICES)
    script = (RECIPES / "pi-setup.sh").read_text()
    for name, allowed in TEMPLATES.items():
        start = script.index(f"cat >\"$TMP/{name}\" <<'EOF'")
        body = script[start : script.index("\nEOF\n", start)]
        named = set(re.findall(r"^# ([A-Z][A-Z0-9_]+)=$", body, re.M))
        assert named == allowed, name
    dry = subprocess.run(
        ["bash", str(RECIPES / "pi-setup.sh"), "--dry-run", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    for name in TEMPLATES:
        assert f"install -m 0600 -o root -g root /etc/tradekit/{name} " in dry.stdout + " ", name


# Settings that make systemd set no_new_privs for a service that does not run as root: any
# of them would stop sudo in the promote helper (systemd.exec(5), NoNewPrivileges=).
IMPLY_NNP = (
    "NoNewPrivileges", "SystemCallFilter", "SystemCallArchitectures", "RestrictAddressFamilies",
    "RestrictNamespaces", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
    "ProtectKernelLogs", "ProtectClock", "MemoryDenyWriteExecute", "RestrictRealtime",
    "RestrictSUIDSGID", "LockPersonality", "DynamicUser", "CapabilityBoundingSet",
)  # fmt: skip


def test_the_promote_socket_and_its_service() -> None:
    """The phone's listener (the service user, no sudo in its sandbox) reaches the deploy
    user's promote helper only through this socket: its group alone may connect, and each
    connection starts the helper as the deploy user with the connection as stdin/stdout."""
    from tradekit.config import NotifyConfig

    sock = parse(UNITS / "tradekit-promote.socket")
    assert one(sock, "Socket", "ListenStream") == NotifyConfig().promote_socket
    assert (one(sock, "Socket", "SocketGroup"), one(sock, "Socket", "SocketMode")) == (
        "tradekit", "0660",
    )  # fmt: skip
    assert one(sock, "Socket", "Accept") == "yes" and one(sock, "Socket", "MaxConnections") == "1"
    assert one(sock, "Install", "WantedBy") == "sockets.target"
    svc = parse(UNITS / "tradekit-promote@.service")["Service"]
    assert svc["User"] == ["tradekit-deploy"] and svc["Group"] == ["tradekit-deploy"]
    assert svc["ExecStart"] == ["/usr/local/libexec/tradekit-promote"]
    assert svc["StandardInput"] == ["socket"] and svc["StandardOutput"] == ["socket"]
    assert svc["ProtectSystem"] == ["strict"] and "/opt/tradekit" in svc["ReadWritePaths"][0]
    assert not set(IMPLY_NNP) & set(svc), "sudo needs no_new_privs off"
    assert "EnvironmentFile" not in svc  # no secret of the service's
    # The listener can use a unix socket; its sandbox forbids sudo (hence the socket).
    listen = parse(UNITS / "tradekit-listen.service")["Service"]
    assert "AF_UNIX" in one({"S": listen}, "S", "RestrictAddressFamilies").split()
    assert listen["NoNewPrivileges"] == ["yes"]
    assert "tradekit-promote.socket" in (RECIPES / "pi-setup.sh").read_text()


def test_doctor_finds_the_units_it_expects() -> None:
    from tradekit.doctor import UNITS as EXPECTED

    for name in EXPECTED:
        assert (UNITS / name).exists(), name


def test_run_service_security_score(fake_root: Path) -> None:
    r = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", f"--root={fake_root}",
         str(fake_root / "etc/systemd/system/tradekit-run.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    if "--offline" in r.stderr and "unrecognized" in r.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    m = re.search(r"Overall exposure level for tradekit-run\.service: ([\d.]+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert r.returncode == 0
    assert float(m.group(1)) <= 3.0  # measured 1.7 "OK" with systemd 252 (0 = safest, 10 = none)


@pytest.mark.parametrize("script", sorted(RECIPES.glob("*.sh")), ids=lambda p: p.name)
def test_recipe_parses_and_is_executable(script: Path) -> None:
    r = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert (r.returncode, r.stderr) == (0, "")
    assert os.access(script, os.X_OK), f"chmod +x {script}"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    if shutil.which("shellcheck"):
        sc = subprocess.run(
            ["shellcheck", "-x", str(script)], capture_output=True, text=True, check=False
        )
        assert sc.returncode == 0, sc.stdout


def test_pi_setup_dry_run_changes_nothing_and_installs_no_torch(tmp_path: Path) -> None:
    r = subprocess.run(
        ["bash", str(RECIPES / "pi-setup.sh"), "--dry-run", "--data-dir", str(tmp_path / "ssd")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "ssd").exists()
    planned = r.stdout
    pip = next(line for line in planned.splitlines() if " -m pip install " in line)
    assert pip.endswith(str(ROOT)) and "deep" not in pip and "torch" not in pip
    for unit in UNIT_FILES:
        assert f"/etc/systemd/system/{unit.name}" in planned
    assert "systemctl enable tradekit-run.service tradekit-listen.service" in planned
    assert "/etc/sudoers.d/tradekit" in planned
    assert "dry run: nothing changed" in r.stderr
