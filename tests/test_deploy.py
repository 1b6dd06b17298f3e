"""`tradekit deploy` against a real OpenSSH server on 127.0.0.1 (tests/servers/sshd.py) and
through the local transport: a release lands and `current` switches atomically, a connection
cut mid-upload leaves the old release current, a failing health check rolls back, unknown or
changed host keys are refused, rollback, pruning, dry runs, and bad model dirs.

Deploy enforces the gate: a model needs its own passing receipt (`gate REPORT --model DIR`,
the real gate), else exit 1; `--force REASON` overrides, is logged and reaches the phone (the
local Signal server).

In most tests the "service" on the host is a small script run as the restart command: it reads
the release `current` points at and writes its model version to `<path>/running.txt`; the
health command checks that the running version is the deployed one. The default health check
("loop") is tested against the real run loop (`tradekit run` on the local Kraken server)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli_env
from tests.servers.signal import SignalServer
from tests.servers.sshd import Sshd
from tests.test_models import features_frame, write_config, write_features

PASSING = {"sortino": 2.1, "max_drawdown": 0.12, "trades": 41}

RESTART = (
    "#!/bin/sh\n"
    "# a stand-in service: load the release behind current, report its model version\n"
    'sed -n \'s/.*"model_version": *"\\([^"]*\\)".*/\\1/p\' "$1/current/release.json" '
    '> "$1/running.txt"\n'
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small LightGBM model dirs (different models, different versions)."""
    from tradekit.cli.main import main

    d = tmp_path_factory.mktemp("models")
    write_features(d / "f.parquet", features_frame(rows=200))
    out: dict[str, Path] = {}
    for name, rounds in (("a", 8), ("b", 12)):
        cfg = write_config(
            d / f"{name}.toml", n_estimators=rounds, train_window=100, test_window=50, step=50
        )
        assert main(["-c", str(cfg), "train", str(d / "f.parquet"), "-o", str(d / name)]) == 0
        out[name] = d / name
        judge(out[name])
    return out


def judge(model_dir: Path, config: dict[str, Any] | None = None, **metrics: float) -> int:
    """The real gate on a backtest/1 report made from ``model_dir``'s out-of-sample
    predictions (run with ``config``, the report's settings block, when given): writes
    ``model_dir/verdict.json``; returns the gate's exit code."""
    from tradekit.cli.main import main

    oos = json.loads((model_dir / "manifest.json").read_text())["oos_predictions"]
    report = model_dir.parent / f"{model_dir.name}.report.json"
    doc = {
        "schema": "backtest/1",
        "metrics": {**PASSING, **metrics},
        "inputs": {"predictions": {"sha256": oos["sha256"]}},
        **({"config": config} if config is not None else {}),
    }
    report.write_text(json.dumps(doc))
    defaults = model_dir.parent / "gate.toml"  # the built-in thresholds, whatever the cwd
    defaults.write_text("")
    return main(["--config", str(defaults), "gate", str(report), "--model", str(model_dir)])


def version(model_dir: Path) -> str:
    from tradekit.models.manifest import files_version

    return files_version(json.loads((model_dir / "manifest.json").read_text())["files"])


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """The deploy directory on the "host" (the same machine: sshd logs in as us)."""
    return tmp_path / "srv" / "tradekit"


def host_env(app: Path, **over: str) -> dict[str, str]:
    script = app.parent / "restart.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(RESTART)
    env = {
        "TRADEKIT_DEPLOY__PATH": str(app),
        "TRADEKIT_DEPLOY__RESTART": f"sh {script} {{path}}",
        "TRADEKIT_DEPLOY__HEALTH": 'test "$(cat {path}/running.txt)" = {version}',
        "TRADEKIT_DEPLOY__HEALTH_TIMEOUT_S": "5",
    }
    env.update({f"TRADEKIT_DEPLOY__{k.upper()}": v for k, v in over.items()})
    return env


@pytest.fixture
def env(sshd: Sshd, app: Path) -> dict[str, str]:
    return {**sshd.env(), **host_env(app)}


def deploy_ok(run_cli: Any, env: dict[str, str], *args: str) -> dict[str, Any]:
    r = run_cli("deploy", *args, "--json", env=env)
    assert r.code == 0, r.err
    doc: dict[str, Any] = json.loads(r.out)
    assert doc["schema"] == "deploy/1" and doc["ok"] is True
    return doc


def current(app: Path) -> str:
    link = os.readlink(app / "current")
    assert link.startswith("releases/"), link  # relative: the tree stays relocatable
    return link.removeprefix("releases/")


def releases(app: Path) -> list[str]:
    return sorted(p.name for p in (app / "releases").iterdir() if not p.name.startswith("."))


def log_lines(app: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (app / "deploys.jsonl").read_text().splitlines()]


def running(app: Path) -> str:
    return (app / "running.txt").read_text().strip()


def last_error(err: str) -> str:
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("tradekit: error: "), err
    return line


# -- the release archive ---------------------------------------------------------------------


def test_archive_is_deterministic_and_complete(models, tmp_path):
    import tarfile
    from datetime import UTC, datetime

    from tradekit.deploy.release import build_release

    (tmp_path / "w1").mkdir()
    (tmp_path / "w2").mkdir()
    report = tmp_path / "report.json"
    report.write_text('{"schema": "backtest/1"}\n')
    r1 = build_release(
        models["a"], tmp_path / "w1", attach=[report], now=datetime(2026, 1, 1, tzinfo=UTC)
    )
    r2 = build_release(
        models["a"], tmp_path / "w2", attach=[report], now=datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert r1.sha256 == r2.sha256 and r1.size == r2.size
    assert (tmp_path / "w1/release.tar.gz").read_bytes() == (
        tmp_path / "w2/release.tar.gz"
    ).read_bytes()
    assert r1.id == "20260101T000000Z-" + r1.sha256.removeprefix("sha256:")[:8]
    assert r1.model_version == version(models["a"]) == r1.doc["model_version"]
    with tarfile.open(r1.archive) as tar:
        names = tar.getnames()
        assert names[:-1] == sorted(names[:-1]) and names[-1] == "SHA256SUMS"
        assert all(m.mtime == tar.getmembers()[0].mtime and m.uid == 0 for m in tar)
    # The model dir's gate receipt travels with it (the Pi's ask and summary read it).
    assert set(names) == {"manifest.json", "model.txt", "verdict.json", "report.json", "SHA256SUMS"}
    assert set(r1.files) == set(names)
    assert r1.doc["attached"] == ["report.json", "verdict.json"]


def test_templates_replace_only_their_names():
    from tradekit.deploy.ship import fill

    got = fill("x={version} ${HOME} {service} {path} {other}", service="s", version="v", path="/p")
    assert got == "x=v ${HOME} s /p {other}"


# -- over SSH --------------------------------------------------------------------------------


def test_deploy_lands_and_switches(run_cli, models, sshd, env, app):
    from tradekit.models.predict import load_model

    a = deploy_ok(run_cli, env, str(models["a"]))
    assert current(app) == a["release"] and a["previous"] is None
    assert a["model_version"] == version(models["a"]) == running(app)
    b = deploy_ok(run_cli, env, str(models["b"]))
    assert current(app) == b["release"] and b["previous"] == a["release"]
    assert running(app) == version(models["b"]) != version(models["a"])
    rel = app / "releases" / b["release"]
    for name in ("manifest.json", "model.txt"):
        assert (rel / name).read_bytes() == (models["b"] / name).read_bytes()
    # What [run] model = <path>/current loads is the new model, checked by its own reader.
    assert load_model(app / "current").version == b["model_version"]
    meta = json.loads((rel / "release.json").read_text())
    assert meta["schema"] == "release/1" and meta["files"] == b["files"]
    assert meta["archive_sha256"] == b["sha256"] and b["bytes"] > 0
    lines = log_lines(app)
    assert [(x["action"], x["release"], x["ok"]) for x in lines] == [
        ("deploy", a["release"], True),
        ("deploy", b["release"], True),
    ]
    assert lines[1]["previous"] == a["release"] and lines[1]["sha256"] == b["sha256"]
    assert not list((app / "releases").glob(".*")) and not (app / "current.tmp").exists()


def test_connection_cut_mid_upload_leaves_old_release(run_cli, models, sshd, env, app, tmp_path):
    old = deploy_ok(run_cli, env, str(models["a"]))["release"]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(32 << 20))  # incompressible: ~32 MB on the wire
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradekit", "deploy", str(models["b"]), "--attach", str(big)],
        env=cli_env(**env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((app / "releases").glob(".*.tar.gz.part")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "upload never started"
            time.sleep(0.002)
        sshd.cut()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 4, err
    assert "current unchanged" in last_error(err), err
    assert current(app) == old and releases(app) == [old]
    assert running(app) == version(models["a"])

    sshd.up()
    new = deploy_ok(run_cli, env, str(models["b"]))
    assert any(s.endswith(".tar.gz.part") for s in new["cleaned"])
    assert current(app) == new["release"] and new["previous"] == old
    assert not list((app / "releases").glob(".*"))


def test_failing_health_check_rolls_back(run_cli, models, sshd, app):
    env = {**sshd.env(), **host_env(app)}
    old = deploy_ok(run_cli, env, str(models["a"]))["release"]
    bad = {**env, **host_env(app, health="false", health_timeout_s="0.3")}
    r = run_cli("deploy", str(models["b"]), env=bad)
    assert r.code == 4, r.err
    line = last_error(r.err)
    assert "health check failed" in line and f"rolled back to {old}" in line
    assert current(app) == old and releases(app) == [old]
    assert running(app) == version(models["a"])  # restarted on the old release
    last = log_lines(app)[-1]
    assert last["ok"] is False and last["previous"] == old and "health" in last["message"]


def test_rollback_switches_to_the_release_before(run_cli, models, sshd, env, app):
    a = deploy_ok(run_cli, env, str(models["a"]))["release"]
    b = deploy_ok(run_cli, env, str(models["b"]))["release"]
    dry = deploy_ok(run_cli, env, "--rollback", "--dry-run")
    assert dry["dry_run"] and dry["release"] == a and current(app) == b
    r = deploy_ok(run_cli, env, "--rollback")
    assert r["action"] == "rollback" and r["release"] == a and r["previous"] == b
    assert current(app) == a and running(app) == version(models["a"])
    assert log_lines(app)[-1]["action"] == "rollback"
    assert releases(app) == sorted([a, b])  # nothing deleted: roll forward stays possible
    again = run_cli("deploy", "--rollback", env=env)
    # Nothing to roll back to is not a usage error (2): the host said no (1).
    assert again.code == 1 and "no release before" in last_error(again.err)
    assert current(app) == a


def test_keep_prunes_oldest_but_never_current_or_previous(
    run_cli, models, sshd, env, app, tmp_path
):
    ids = []
    for i in range(3):
        extra = tmp_path / "notes.json"
        extra.write_text(json.dumps({"n": i}))
        args = [str(models["a"]), "--attach", str(extra)]
        ids.append(deploy_ok(run_cli, env, *args, *(["--keep", "1"] if i == 2 else []))["release"])
    assert releases(app) == sorted(ids[1:])
    assert current(app) == ids[2]
    assert (app / "releases" / ids[2] / "notes.json").read_text() == extra.read_text()


def test_dry_run_changes_nothing(run_cli, models, sshd, env, app):
    a = deploy_ok(run_cli, env, str(models["a"]))["release"]

    def snapshot() -> list[tuple[str, int]]:
        return sorted((str(p), p.lstat().st_mtime_ns) for p in app.rglob("*"))

    before = snapshot()
    doc = deploy_ok(run_cli, env, str(models["b"]), "--dry-run")
    assert doc["dry_run"] is True and doc["previous"] == a and doc["plan"]
    assert any(doc["release"] in step for step in doc["plan"])
    assert snapshot() == before and current(app) == a


# -- refusals --------------------------------------------------------------------------------


def test_unknown_host_key_is_refused(run_cli, models, sshd, app, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    env = {**sshd.env(), **host_env(app), "TRADEKIT_DEPLOY__KNOWN_HOSTS": str(empty)}
    r = run_cli("deploy", str(models["a"]), env=env)
    assert r.code == 4, r.err
    line = last_error(r.err)
    assert "unknown host key" in line and f"ssh-keyscan -p {sshd.port} 127.0.0.1" in line
    assert not app.exists()


def test_changed_host_key_is_refused(run_cli, models, sshd, app, tmp_path):
    other = (sshd.root / "client_ed25519.pub").read_text().split()  # some other ed25519 key
    kh = tmp_path / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    env = {**sshd.env(), **host_env(app), "TRADEKIT_DEPLOY__KNOWN_HOSTS": str(kh)}
    r = run_cli("deploy", str(models["a"]), env=env)
    assert r.code == 4 and "does not match" in last_error(r.err)
    assert not app.exists()


def test_unreachable_host_exits_4(run_cli, models, app):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    env = {
        **host_env(app),
        "TRADEKIT_DEPLOY__HOST": "127.0.0.1",
        "TRADEKIT_DEPLOY__PORT": str(port),
    }
    r = run_cli("deploy", str(models["a"]), env=env)
    assert r.code == 4 and "cannot connect" in last_error(r.err)


def test_bad_model_dir_exits_3_before_connecting(run_cli, models, app, tmp_path):
    import shutil

    env = {**host_env(app), "TRADEKIT_DEPLOY__HOST": "127.0.0.1", "TRADEKIT_DEPLOY__PORT": "1"}
    r = run_cli("deploy", str(tmp_path / "nope"), env=env)
    assert r.code == 3 and "nope" in last_error(r.err)
    broken = tmp_path / "broken"
    shutil.copytree(models["a"], broken)
    with open(broken / "model.txt", "a") as fh:
        fh.write("tampered\n")
    r = run_cli("deploy", str(broken), env=env)
    assert r.code == 3 and "model.txt" in last_error(r.err) and "sha256" in r.err
    r = run_cli("deploy", str(models["a"]), "--attach", str(tmp_path / "gone.json"), env=env)
    assert r.code == 3 and "gone.json" in last_error(r.err)
    r = run_cli("deploy", str(models["a"]), "--rollback", env=env)
    assert r.code == 2
    assert not app.exists()


# -- local -----------------------------------------------------------------------------------


def test_host_local_runs_the_same_steps(run_cli, models, app):
    env = host_env(app)
    a = deploy_ok(run_cli, env, str(models["a"]), "--host", "local")
    assert a["host"] == "local" and current(app) == a["release"]
    assert (app / "current" / "model.txt").read_bytes() == (models["a"] / "model.txt").read_bytes()
    assert running(app) == version(models["a"])
    bad = host_env(app, health="false", health_timeout_s="0.2")
    r = run_cli("deploy", str(models["b"]), "--host", "local", env=bad)
    assert r.code == 4 and f"rolled back to {a['release']}" in last_error(r.err)
    assert current(app) == a["release"]
    assert [x["ok"] for x in log_lines(app)] == [True, False]


@pytest.mark.skipif(shutil.which("sudo") is None, reason="no sudo (apt-get install sudo)")
def test_restart_through_sudo_with_a_password_needs_no_terminal(run_cli, models, sshd, app):
    """With TRADEKIT_DEPLOY_SUDO_PASSWORD the restart goes through fabric's sudo with stdin
    not mirrored: under CI (stdin at EOF, no TTY) it must neither hang nor fail, and the
    password never shows. The test user is root, for whom sudo asks nothing: this checks the
    wiring (sudo -S, no terminal), not a password prompt."""
    marker = app.parent / "restarted-by"
    env = {
        **sshd.env(),
        **host_env(app, health="", restart=f"sudo -n sh -c 'id -un > {marker}'"),
        "TRADEKIT_DEPLOY_SUDO_PASSWORD": "pw-do-not-print",
    }
    r = run_cli("--log-level", "debug", "deploy", str(models["a"]), "--json", env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert marker.read_text().strip() == "root"
    assert current(app) == doc["release"]
    assert "pw-do-not-print" not in r.out + r.err


# -- the gate guards deploy ------------------------------------------------------------------


def variant(src: Path, dst: Path, verdict_of: Path | None = None) -> Path:
    """A copy of the model dir ``src``; its receipt removed, or replaced by ``verdict_of``'s."""
    shutil.copytree(src, dst)
    (dst / "verdict.json").unlink()
    if verdict_of is not None:
        shutil.copy(verdict_of / "verdict.json", dst / "verdict.json")
    return dst


def test_deploy_refuses_a_model_without_its_own_passing_verdict(run_cli, models, app, tmp_path):
    env = host_env(app)
    bare = variant(models["a"], tmp_path / "bare")
    r = run_cli("deploy", str(bare), "--host", "local", env=env)
    assert r.code == 1, r.err
    line = last_error(r.err)
    assert f"{bare}: no gate verdict (verdict.json): not deployed" in line
    assert f"tradekit gate REPORT --model {bare}" in line and "--force REASON" in line

    failed = variant(models["a"], tmp_path / "failed")
    assert judge(failed, sortino=0.4, trades=3) == 1
    r = run_cli("deploy", str(failed), "--host", "local", env=env)
    assert r.code == 1 and "failed the gate (min_sortino, min_trades)" in last_error(r.err)

    # A passing verdict of another model (copied beside b) is stale: refused.
    stale = variant(models["b"], tmp_path / "stale", verdict_of=models["a"])
    r = run_cli("deploy", str(stale), "--host", "local", "--dry-run", env=env)
    assert r.code == 1, r.err
    assert (
        f"judged another model (version {version(models['a'])}), not this one "
        f"(version {version(models['b'])})" in last_error(r.err)
    )
    assert not app.exists()  # nothing reached the host


def test_force_deploys_records_and_tells_the_phone(run_cli, models, app, tmp_path):
    phone = "+4366012345678"
    stale = variant(models["b"], tmp_path / "stale", verdict_of=models["a"])
    reason = "revert to yesterday's model after an exchange outage"
    with SignalServer(phone) as signal:
        env = {
            **host_env(app),
            "TRADEKIT_NOTIFY__URL": signal.url,
            "TRADEKIT_NOTIFY__SENDER": phone,
            "TRADEKIT_NOTIFY__RECIPIENTS": phone,
        }
        r = run_cli("deploy", str(stale), "--host", "local", "--force", reason, "--json", env=env)
        assert r.code == 0, r.err
        (message,) = signal.state.messages()
    doc = json.loads(r.out)
    assert doc["forced"] == reason and doc["gate"].startswith("verdict.json judged another")
    assert "deploying" in r.err and "without a passing gate verdict" in r.err
    assert "FORCED deploy of model " + version(models["b"]) in message
    assert reason in message and doc["release"] in message and doc["gate"] in message
    last = log_lines(app)[-1]
    assert (last["forced"], last["gate"], last["ok"]) == (reason, doc["gate"], True)
    # The stale receipt travels as it is: whoever looks at the Pi sees what was overridden.
    assert (app / "current" / "verdict.json").read_bytes() == (stale / "verdict.json").read_bytes()

    # Without [notify] the override still goes through, with one warning line.
    bare = variant(models["a"], tmp_path / "bare")
    quiet = {**host_env(app), "TRADEKIT_NOTIFY__SENDER": "", "TRADEKIT_NOTIFY__RECIPIENTS": ""}
    r = run_cli("deploy", str(bare), "--host", "local", "--force", "test rig", env=quiet)
    assert r.code == 0, r.err
    (warning,) = [ln for ln in r.err.splitlines() if "not announced" in ln]
    assert warning.startswith("tradekit: warning: [notify] is not configured")
    assert log_lines(app)[-1]["forced"] == "test rig"
    # A passing model deploys without --force, and says so in the log.
    deploy_ok(run_cli, host_env(app), str(models["a"]), "--host", "local")
    assert (log_lines(app)[-1]["gate"], log_lines(app)[-1]["forced"]) == ("passed", None)


def test_force_needs_a_reason(run_cli, models, app, tmp_path):
    bare = variant(models["a"], tmp_path / "bare")
    r = run_cli("deploy", str(bare), "--host", "local", "--force", " ", env=host_env(app))
    assert r.code == 2 and "--force needs a reason" in last_error(r.err)
    r = run_cli("deploy", "--rollback", "--force", "x", "--host", "local", env=host_env(app))
    assert r.code == 2
    assert not app.exists()


# -- the default health check asks the real loop ----------------------------------------------


@pytest.fixture(scope="module")
def loop_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny models the live loop can run (feature set "minimal" on the offline sample,
    so the loop builds their features itself), each with a passing receipt."""
    from tradekit.cli.main import main

    d = tmp_path_factory.mktemp("loop-models")
    o, f = d / "ohlcv.parquet", d / "features.parquet"
    wf = ["--train-window", "300", "--test-window", "100", "--step", "100", "--threads", "1"]
    out: dict[str, Path] = {}
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("TRADEKIT_")]:
            mp.delenv(var)
        fetch = ["fetch", "--exchange", "sample", "BTC/USD", "-t", "1h", "--since", "2019-01-01",
                 "--until", "2019-02-15", "-o", str(o)]  # fmt: skip
        assert main(fetch) == 0
        assert main(["featurize", str(o), "--feature-set", "minimal", "-o", str(f)]) == 0
        for name, trees in (("la", "20"), ("lb", "10")):
            mp.setenv("TRADEKIT_MODEL__N_ESTIMATORS", trees)
            assert main(["train", str(f), "-o", str(d / name), *wf]) == 0
            # la was judged with another entry threshold than the loop runs (the default).
            judged = {"policy": {"entry_threshold": 0.5}} if name == "la" else None
            assert judge(d / name, judged) == 0
            out[name] = d / name
    return out


def test_health_waits_for_the_loop_to_run_the_new_model(
    run_cli, models, loop_models, kraken, kraken_env, app, tmp_path
):
    """[deploy] health = "loop": deploy asks the loop (`tradekit status --json` on the host)
    which model it runs. A model the loop refuses to load (it keeps the old one) is rolled
    back, exit 4; so is any deploy while the loop is not running."""
    from tests.test_run import FIRST, HOUR, Loop, _env

    state = tmp_path / "state" / "ledger.db"
    env = {
        **_env(kraken_env, tmp_path),
        "TRADEKIT_RUN__MODEL": str(app / "current"),
        **host_env(app, restart="", health="loop", health_timeout_s="60"),
        # On the Pi: sudo -n -u tradekit .../tradekit-loop-status (pi-setup.sh); the same JSON.
        "TRADEKIT_DEPLOY__STATUS": f"env PYTHONPATH={ROOT} {sys.executable} -m tradekit status "
        f"--json --state {state}",
    }
    va, vb = version(loop_models["la"]), version(loop_models["lb"])

    # No loop yet (no ledger): the first deploy cannot be confirmed, so it is undone.
    bad = {**env, "TRADEKIT_DEPLOY__HEALTH_TIMEOUT_S": "3"}
    r = run_cli("deploy", str(loop_models["la"]), "--host", "local", env=bad)
    assert r.code == 4, r.err
    line = last_error(r.err)
    assert "health check failed for 3s" in line and "no ledger here" in line
    assert "no previous release: current removed" in line
    assert not (app / "current").exists()

    first = deploy_ok(run_cli, {**env, "TRADEKIT_DEPLOY__HEALTH": ""}, str(loop_models["la"]),
                      "--host", "local")["release"]  # fmt: skip
    kraken.state.now_ms = FIRST + 2 * HOUR - 100
    loop = Loop(tmp_path, env)
    try:
        loop.wait_for("the loop on model la", lambda: _loop_runs(run_cli, env) == va)
        # The gate judged la with another threshold: the loop runs, and says so.
        told = _events(state, "config")
        assert "[policy] entry_threshold = 0.002 (judged: 0.5)" in told, told
        # A model the loop can run: deploy returns once the loop reports it.
        b = deploy_ok(run_cli, env, str(loop_models["lb"]), "--host", "local")
        assert b["previous"] == first and _loop_runs(run_cli, env) == vb

        # A model the loop refuses (no feature spec it could build features from): the loop
        # keeps lb, the check sees lb, deploy rolls back to lb's release and exits 4. The check
        # waits long enough for a loaded machine's loop to have tried the model (it polls the
        # model dir every 0.1 s); it always waits all of it, the loop never runs this model.
        refused = {**env, "TRADEKIT_DEPLOY__HEALTH_TIMEOUT_S": "10"}
        r = run_cli("deploy", str(models["a"]), "--host", "local", env=refused)
        assert r.code == 4, r.err
        line = last_error(r.err)
        assert f"the loop runs model {vb}, not {version(models['a'])}" in line
        assert f"rolled back to {b['release']}" in line
        assert current(app) == b["release"] and log_lines(app)[-1]["ok"] is False
        assert loop.proc.poll() is None and _loop_runs(run_cli, env) == vb
        assert "failed to load, keeping " + vb in _events(state, "model")
        assert _events(state, "config").count("differs") == 1  # lb: judged as it runs
    finally:
        loop.proc.terminate()
        loop.proc.wait(timeout=30)
        loop.stop()

    # The loop is gone: nothing can confirm a switch, so none happens.
    r = run_cli("deploy", str(loop_models["la"]), "--host", "local", env=bad)
    assert r.code == 4 and "the loop is not running" in last_error(r.err)
    assert current(app) == b["release"]


def _events(state: Path, kind: str) -> str:
    """The messages of the loop's events of ``kind``, read by another process (as a user
    would, while the loop holds its ledger)."""
    return subprocess.run(
        [sys.executable, "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("
         "\"SELECT group_concat(message, '|') FROM events WHERE kind=?\", (sys.argv[2],))"
         ".fetchone()[0])", str(state), kind],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def _loop_runs(run_cli: Any, env: dict[str, str]) -> str | None:
    """The model the running loop reports, None when it is not running."""
    r = run_cli("status", "--json", env=env)
    if r.code != 0:
        return None
    doc = json.loads(r.out)
    return doc["model_version"] if doc["running"] else None
