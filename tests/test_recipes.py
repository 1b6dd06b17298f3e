"""recipes/vastai-train.sh against a fake ``vastai`` CLI (tests/fakes/vastai: the real one
needs a paid account and the network; the fake answers like ``vastai ... --raw`` and logs
every call), and recipes/remote-train.sh end to end on the offline sample with the real
``tradekit``: a failing gate deploys nothing, a passing one deploys to a real sshd."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli_env
from tests.servers.sshd import Sshd

RECIPES = ROOT / "recipes"
FAKES = ROOT / "tests" / "fakes"
SECRET = "s3cr3t-exchange-key-9f8e7d"
INSTANCE = "4242"


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


# Commands the recipe runs by name: each goes through a shim that records its argv, so a test
# can check that nothing secret ever reached a command line (what `ps` shows).
SHIMMED = ("ssh", "tar", "python3", "awk", "cp", "chmod", "gzip", "sha256sum", "grep", "tail",
           "head", "cut", "sleep", "mktemp", "rm", "date", "mkdir")  # fmt: skip


@dataclass
class Vast:
    """The fake CLI's state directory and a runner for vastai-train.sh. The "instance" has a
    real sshd (the test's), so the bundle really goes over SSH, into ``box``."""

    dir: Path
    cwd: Path
    sshd: Sshd
    bundle: Path  # a prebuilt bundle (wheel + hashed requirements)
    box: Path  # where the bundle lands on the instance (tmpfs there)
    shims: Path

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(RECIPES / "vastai-train.sh"), *args],
            env=self.env(env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        # Shims, then the fake, first on PATH; python3 = this interpreter (the recipe parses
        # JSON with it).
        path = os.pathsep.join(
            [str(self.shims), str(FAKES), str(Path(sys.executable).parent), os.environ["PATH"]]
        )
        return {
            **os.environ,
            "PATH": path,
            "FAKE_VAST_DIR": str(self.dir),
            "FAKE_VAST_SSH_HOST": self.sshd.host,
            "FAKE_VAST_SSH_PORT": str(self.sshd.port),
            "VAST_SSH_KEY": str(self.sshd.key),
            "VAST_SSH_USER": self.sshd.user,
            "VAST_SSH_RETRY_S": "0.05",
            "VAST_REMOTE_BUNDLE": str(self.box),
            "VAST_DESTROY_WAIT_S": "3",
            "VAST_DESTROY_BACKOFF_S": "0.05",
            "TK_BUNDLE_DIR": str(self.bundle),
            "VAST_POLL_S": "0.05",
            "RUN_ID": "t1",
            **(extra or {}),
        }

    def calls(self) -> list[list[str]]:
        p = self.dir / "calls.jsonl"
        if not p.exists():
            return []
        return [json.loads(line)["argv"] for line in p.read_text().splitlines()]

    def argv_seen(self) -> str:
        """Every command line the recipe ran: the shims' log and the fake CLI's."""
        log = self.shims / "argv.log"
        return (log.read_text() if log.exists() else "") + json.dumps(self.calls())

    def verbs(self) -> list[str]:
        return [" ".join(a for a in c[:2] if not a.isdigit()) for c in self.calls()]

    def destroys(self) -> list[list[str]]:
        return [c for c in self.calls() if c[0] == "destroy"]

    def created(self) -> dict[str, Any]:
        return json.loads((self.dir / "create.json").read_text())  # type: ignore[no-any-return]


def _shims(d: Path) -> Path:
    import shutil

    d.mkdir()
    for name in SHIMMED:
        real = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}"
                            f"{os.environ['PATH']}")  # fmt: skip
        assert real, name
        (d / name).write_text(
            f'#!/bin/sh\nprintf \'%s\\n\' "{name} $*" >>{d}/argv.log\nexec {real} "$@"\n'
        )
        (d / name).chmod(0o755)
    return d


@pytest.fixture
def vast(tmp_path: Path, sshd: Sshd) -> Vast:
    import hashlib

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    wheel = bundle / "tradekit-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + bytes(18))  # the remote run is simulated by the fake
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (bundle / "requirements.txt").write_text(
        f"numpy==2.4.6 --hash=sha256:{'0' * 64}\n./{wheel.name} --hash=sha256:{digest}\n"
    )
    return Vast(tmp_path / "fake-vast", tmp_path, sshd, bundle, tmp_path / "box" / "shm-t1",
                _shims(tmp_path / "shims"))  # fmt: skip


def _assert_destroyed_and_verified(vast: Vast) -> None:
    """One destroy; after it only `show instance` calls, the last of which said "gone"."""
    calls = vast.calls()
    assert vast.destroys() == [["destroy", "instance", INSTANCE, "-y", "--raw"]]
    after = calls[calls.index(vast.destroys()[0]) + 1 :]
    assert after and all(c[:3] == ["show", "instance", INSTANCE] for c in after), after


def test_success_follows_the_recipe_and_destroys_once(vast: Vast, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"TRADEKIT_WEBHOOK_TOKEN={SECRET}\nANTHROPIC_API_KEY=sk-ant-{SECRET}\n")
    config = tmp_path / "train.toml"
    config.write_text('[model]\nkind = "transformer"\nseed = 7\n')
    key = tmp_path / "deploy_key"
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}-key\n")
    space = tmp_path / "space.toml"
    space.write_text('[params]\n"model.d_model" = { choices = [32, 64] }\n')
    r = vast.run(
        "--max-dph", "0.3", "--secrets", str(secrets), "--config", str(config),
        "--sweep", str(space),
        "--deploy-key", str(key), "--env", "TK_SYMBOLS=BTC/USD,ETH/USD", "--result", "out.json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    verbs = vast.verbs()
    assert verbs[:2] == ["search offers", "create instance"]
    assert set(verbs[2:]) == {"show instance", "logs", "destroy instance"}
    _assert_destroyed_and_verified(vast)

    search, create = vast.calls()[:2]
    query = search[2]
    for term in ("gpu_name=RTX_3090", "num_gpus=1", "reliability>=0.98", "disk_space>=40",
                 "cuda_vers>=12.1", "dph_total<=0.3", "verified=true"):  # fmt: skip
        assert term in query.split(), term
    assert search[3:5] == ["-o", "dph_total"] and "--raw" in search
    # The cheapest of the three offers, created as documented.
    assert create[2] == "1002"
    assert {"--ssh", "--cancel-unavail", "--raw"} <= set(create)
    assert create[create.index("--label") + 1] == "tradekit-t1"

    # The result came from the log: on stdout and in --result.
    result = json.loads(r.stdout)
    assert result["verdict"] == "pass" and result["run_id"] == "t1"
    assert json.loads((tmp_path / "out.json").read_text()) == result
    assert "deployed: 20270101T000000Z-abc" in r.stderr

    # Nothing secret in the instance's environment: the bundle came over SSH instead, whole.
    env = vast.created()["env"]
    assert set(env) == {"RUN_ID", "DPH", "TK_MARKERS", "TK_LOG_TO_PID1", "TK_WORKDIR",
                        "TK_BUNDLE", "TK_SCRIPT_B64", "TK_SYMBOLS"}  # fmt: skip
    assert env["TK_BUNDLE"] == str(vast.box) and env["DPH"] == "0.22"
    assert env["RUN_ID"] == "t1" and env["TK_SYMBOLS"] == "BTC/USD,ETH/USD"
    assert (vast.box / ".env").read_bytes() == secrets.read_bytes()
    assert (vast.box / "deploy_key").read_bytes() == key.read_bytes()
    assert (vast.box / "tradekit.toml").read_bytes() == config.read_bytes()
    assert (vast.box / "sweep.toml").read_bytes() == space.read_bytes()  # remote-train's --sweep
    for name in ("requirements.txt", "tradekit-0.1.0-py3-none-any.whl"):
        assert (vast.box / name).read_bytes() == (vast.bundle / name).read_bytes()
    assert (vast.box / ".ready").exists()
    assert (vast.box / ".env").stat().st_mode & 0o077 == 0
    assert (vast.box / "deploy_key").stat().st_mode & 0o077 == 0
    # ... and never on a command line on this machine, nor in the output.
    seen = vast.argv_seen()
    assert "ssh " in seen and "tar " in seen  # the shims did record the commands
    assert SECRET not in seen and SECRET not in r.stdout + r.stderr
    # The on-start script carries remote-train.sh byte for byte, under Vast's 4048-char limit.
    assert (
        gzip.decompress(_unb64(env["TK_SCRIPT_B64"])) == (RECIPES / "remote-train.sh").read_bytes()
    )
    assert len(vast.created()["onstart"]) < 4048
    # Each remote log line once, though every poll fetches the whole window (and the CLI ends
    # it with a blank line).
    shown = [ln for ln in r.stderr.splitlines() if ln.startswith("  | ")]
    assert len(shown) == len(set(shown)) and "  | remote-train: step 0" in shown


def test_onstart_waits_for_the_bundle_then_runs_the_script(vast: Vast, tmp_path: Path) -> None:
    assert vast.run("--max-dph", "0.3").returncode == 0
    onstart = tmp_path / "onstart.sh"
    onstart.write_text(vast.created()["onstart"])
    script = b'echo "unpacked $RUN_ID in $PWD with $*"\n'
    packed = base64.urlsafe_b64encode(gzip.compress(script)).decode().rstrip("=")
    home = tmp_path / "workspace"
    home.mkdir()
    shm = tmp_path / "shm"
    env = {**vast.env(), "TK_SCRIPT_B64": packed, "TK_HOME": str(home), "RUN_ID": "r9",
           "TK_BUNDLE": str(shm), "TK_BUNDLE_WAIT_S": "60"}  # fmt: skip
    p = subprocess.Popen(["bash", str(onstart)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert p.stdout is not None
        assert p.stdout.readline().startswith("tradekit: waiting up to 60s for the bundle")
        assert p.poll() is None  # nothing runs before the bundle is there
        shm.mkdir()
        (shm / ".ready").touch()
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert out.strip() == f"unpacked r9 in {home} with --bundle {shm}"
    assert (home / "tradekit-remote-train.sh").read_bytes() == script


def test_flags_and_env_shape_the_search(vast: Vast) -> None:
    r = vast.run(
        "--max-dph", "0.4", "--geo", "DE", "--min-reliability", "0.99", "--disk", "60",
        env={"VAST_GPU": "RTX_3090", "VAST_IMAGE": "me/train:1", "MAX_RUNTIME": "600"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    search, create = vast.calls()[:2]
    assert "geolocation=DE" in search[2] and "disk_space>=60" in search[2]
    assert search[search.index("--storage") + 1] == "60"
    # Only the German offer (0.35 $/h) matches, though a cheaper one exists elsewhere.
    assert create[2] == "1001"
    assert create[create.index("--image") + 1] == "me/train:1"
    assert vast.created()["env"]["DPH"] == "0.35"
    _assert_destroyed_and_verified(vast)


def test_price_cap_refuses_an_offer_above_it(vast: Vast) -> None:
    # A provider that ignores the query's dph_total filter: the recipe checks the price itself.
    r = vast.run("--max-dph", "0.2", env={"FAKE_VAST_IGNORE_FILTERS": "1"})
    assert r.returncode == 4
    assert "refusing offer 1002: $0.22/h is above the cap $0.2/h" in r.stderr
    assert vast.verbs() == ["search offers"]  # nothing created, nothing to destroy


def test_no_offer_under_the_cap_creates_nothing(vast: Vast) -> None:
    r = vast.run("--max-dph", "0.1")
    assert r.returncode == 4 and "no offer matches" in r.stderr
    assert vast.verbs() == ["search offers"]


@pytest.mark.parametrize(
    ("case", "args", "env", "rc", "message"),
    [
        ("gate failed", [], {"FAKE_VAST_REMOTE_RC": "1"}, 1, "did not pass the gate"),
        ("pipeline error", [], {"FAKE_VAST_REMOTE_RC": "3"}, 4, "remote pipeline failed"),
        (
            "instance exits",
            [],
            {"FAKE_VAST_STATUS": "loading,running,exited", "FAKE_VAST_REMOTE_RC": "none"},
            4,
            "is exited and the run left no result",
        ),
        (
            "exits before running",
            [],
            {"FAKE_VAST_STATUS": "loading,offline", "FAKE_VAST_REMOTE_RC": "none"},
            4,
            "is offline",
        ),
        (
            "instance vanishes",
            [],
            {"FAKE_VAST_STATUS": "loading,running,gone", "FAKE_VAST_REMOTE_RC": "none"},
            4,
            "is gone",
        ),
        ("timeout", ["--max-runtime", "0.6"], {"FAKE_VAST_REMOTE_RC": "none"}, 4, "MAX_RUNTIME"),
        (
            "never starts",
            ["--start-timeout", "0.4"],
            {"FAKE_VAST_STATUS": "loading"},
            4,
            "not running after 0.4s",
        ),
        ("spend cap", ["--max-spend", "0.00001"], {"FAKE_VAST_REMOTE_RC": "none"}, 4, "MAX_SPEND"),
        (
            "no ssh",
            [],
            {"FAKE_VAST_SSH_PORT": "1", "VAST_SSH_TRIES": "2"},
            4,
            "cannot send the bundle to instance 4242 over SSH",
        ),
    ],
)
def test_every_failure_destroys_exactly_once(
    vast: Vast, case: str, args: list[str], env: dict[str, str], rc: int, message: str
) -> None:
    r = vast.run("--max-dph", "0.3", *args, env=env)
    assert r.returncode == rc, (case, r.stderr)
    assert message in r.stderr, r.stderr
    _assert_destroyed_and_verified(vast)


def test_status_unreadable_destroys_but_cannot_confirm(vast: Vast) -> None:
    """`show instance` keeps failing: the destroy is sent, but nothing proves it worked."""
    r = vast.run("--max-dph", "0.3", env={"FAKE_VAST_FAIL": "show", "VAST_DESTROY_WAIT_S": "0.3"})
    assert r.returncode == 4 and "failed 5 times" in r.stderr
    assert vast.destroys() and "INSTANCE 4242 WAS NOT CONFIRMED DESTROYED" in r.stderr


@pytest.mark.parametrize(("sig", "rc"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_destroys_exactly_once(vast: Vast, sig: signal.Signals, rc: int) -> None:
    p = subprocess.Popen(
        ["bash", str(RECIPES / "vastai-train.sh"), "--max-dph", "0.3"],
        env=vast.env({"FAKE_VAST_REMOTE_RC": "none", "VAST_POLL_S": "0.2"}),
        cwd=vast.cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while "logs" not in vast.verbs():  # the instance runs and its log is followed
            assert p.poll() is None and time.monotonic() < deadline, p.stderr
            time.sleep(0.05)
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == rc, err
    _assert_destroyed_and_verified(vast)


def _tradekit_bin(d: Path) -> Path:
    tk = d / "tradekit-bin"
    tk.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tradekit "$@"\n')
    tk.chmod(0o755)
    return tk


@pytest.mark.parametrize("mode", ["http500", "exit1", "ignored"])
def test_a_destroy_that_did_not_destroy_is_loud_and_reaches_the_phone(
    vast: Vast, tmp_path: Path, mode: str
) -> None:
    """However the destroy fails (an HTTP 500 on stderr with exit 0 and nothing on stdout; a
    non-zero exit; a "success" after which the instance is still listed), `show instance`
    still lists it: exit 4, a loud message and a phone message with the id and the price."""
    from tests.servers.signal import SignalServer

    phone = "+4366012345678"
    with SignalServer(phone) as signal_server:
        env = {
            "FAKE_VAST_DESTROY": mode,
            "TRADEKIT_BIN": str(_tradekit_bin(tmp_path)),
            "PYTHONPATH": str(ROOT),
            "TRADEKIT_NOTIFY__URL": signal_server.url,
            "TRADEKIT_NOTIFY__SENDER": phone,
            "TRADEKIT_NOTIFY__RECIPIENTS": phone,
        }
        r = vast.run("--max-dph", "0.3", env=env)
        messages = signal_server.state.messages()
    assert r.returncode == 4, r.stderr  # the run passed, but an instance may be billing
    assert "INSTANCE 4242 WAS NOT CONFIRMED DESTROYED" in r.stderr and "$0.22/h" in r.stderr
    assert "destroyed instance" not in r.stderr
    assert len(vast.destroys()) >= 2  # destroyed again while it was still listed
    assert vast.calls()[-1][:3] == ["show", "instance", INSTANCE]
    (message,) = messages
    assert "4242" in message and "$0.22/h" in message and "STILL RUNNING" in message


def test_a_destroy_that_fails_once_is_retried_until_verified(vast: Vast) -> None:
    r = vast.run(
        "--max-dph", "0.3", env={"FAKE_VAST_DESTROY": "http500", "FAKE_VAST_DESTROY_FAILS": "1"}
    )
    assert r.returncode == 0, r.stderr
    assert "failed with error 500" in r.stderr  # the first answer, shown
    assert "destroyed instance 4242 (verified" in r.stderr
    assert len(vast.destroys()) == 2


def test_a_failed_create_looks_the_instance_up_by_label(vast: Vast) -> None:
    r = vast.run("--max-dph", "0.3", env={"FAKE_VAST_FAIL": "create"})
    assert r.returncode == 4 and "create instance failed" in r.stderr
    assert vast.verbs() == ["search offers", "create instance", "show instances"]


@pytest.mark.parametrize(
    "args",
    [
        [],  # no price cap
        ["--max-dph", "cheap"],
        ["--max-dph", "0.3", "--env", "TK_TRAIN_ARGS=--epochs 3"],  # vastai splits on spaces
        ["--max-dph", "0.3", "--env", "A=b=c"],  # vastai cuts at the second '='
        ["--max-dph", "0.3", "--gpu", "RTX 4090"],
        ["--max-dph", "0.3", "--bogus"],
        ["--max-dph", "0.3", "--spec", "tradekit"],  # gone: never by name
    ],
)
def test_usage_errors_call_nothing(vast: Vast, args: list[str]) -> None:
    r = vast.run(*args)
    assert r.returncode == 2, r.stderr
    assert vast.calls() == []


def test_exchange_keys_never_go_to_a_training_box(vast: Vast, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"ANTHROPIC_API_KEY=x\nexport TRADEKIT_EXCHANGE_SECRET={SECRET}\n")
    r = vast.run("--max-dph", "0.3", "--secrets", str(secrets))
    assert r.returncode == 2 and "holds exchange credentials" in r.stderr
    assert SECRET not in r.stderr and vast.calls() == []


def test_dry_run_only_searches(vast: Vast) -> None:
    r = vast.run("--max-dph", "0.3", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert vast.verbs() == ["search offers"]
    assert "cheapest offer 1002" in r.stderr


# -- remote-train.sh on the offline sample ------------------------------------------------

# Small and quick: one symbol, seven months, a few short folds, 20 trees.
SAMPLE_ARGS = [
    "--exchange", "sample", "--symbols", "BTC/USD", "-t", "1h",
    "--since", "2019-03-01", "--until", "2019-10-01",
    "--", "--train-window", "1500", "--test-window", "500", "--step", "500",
]  # fmt: skip
LAX_GATE = {
    "TRADEKIT_GATE__MIN_SORTINO": "-100",
    "TRADEKIT_GATE__MAX_DRAWDOWN": "1",
    "TRADEKIT_GATE__MIN_TRADES": "0",
}


def _remote(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    tk = workdir.parent / "tradekit-bin"
    if not tk.exists():
        # This checkout's tradekit under this interpreter (what TRADEKIT_BIN is for).
        tk.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tradekit "$@"\n')
        tk.chmod(0o755)
    e = cli_env(
        TRADEKIT_BIN=str(tk),
        TRADEKIT_MODEL__N_ESTIMATORS="20",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        DPH="0.5",
        TK_MARKERS="1",
        **(env or {}),
    )
    return subprocess.run(
        ["bash", str(RECIPES / "remote-train.sh"), "--run-id", "r1", "--workdir", str(workdir),
         *args],
        env=e,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def _markers(out: str) -> tuple[dict[str, Any], int]:
    lines = out.splitlines()
    assert lines[-1].startswith("TRADEKIT-EXIT "), out
    assert lines[-2].startswith("TRADEKIT-RESULT "), out
    return json.loads(lines[-2].removeprefix("TRADEKIT-RESULT ")), int(lines[-1].split()[1])


@dataclass
class Pipeline:
    workdir: Path
    result: subprocess.CompletedProcess[str]
    pi: Path  # where a `local` deploy would have put releases


@pytest.fixture(scope="module")
def gate_failed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """One full run with the default gate, which the sample's model fails, and a deploy target
    on this machine that must stay empty."""
    root = tmp_path_factory.mktemp("remote-train")
    pi = root / "pi"
    saved = {k: v for k, v in os.environ.items() if k.startswith("TRADEKIT_")}
    for k in saved:  # the module fixture runs outside the per-test isolation
        del os.environ[k]
    try:
        r = _remote(
            root / "work",
            *SAMPLE_ARGS,
            env={"TRADEKIT_DEPLOY__HOST": "local", "TRADEKIT_DEPLOY__PATH": str(pi)},
        )
    finally:
        os.environ.update(saved)
    yield Pipeline(root / "work", r, pi)


def test_remote_train_gate_fails_and_deploys_nothing(gate_failed: Pipeline) -> None:
    r = gate_failed.result
    assert r.returncode == 1, r.stderr
    result, rc = _markers(r.stdout)
    assert rc == 1
    assert json.loads((gate_failed.workdir / "result.json").read_text()) == result
    assert result["schema"] == "remote-train/1" and result["run_id"] == "r1"
    assert result["verdict"] == "fail" and result["failed_stage"] == "gate"
    assert "min_sortino" in result["gate_failed"]
    assert result["deployed"] is None
    assert result["metrics"]["trades"] > 0 and "sortino" in result["metrics"]
    assert result["model"]["kind"] == "lightgbm" and result["model"]["version"]
    assert set(result["timings_s"]) == {
        "fetch", "data check", "featurize", "train", "backtest", "gate"
    }  # fmt: skip
    assert all(t > 0 for t in result["timings_s"].values())
    assert result["cost"]["usd"] == pytest.approx(0.5 * result["wall_s"] / 3600, abs=1e-4)
    # The pipeline has no gate check of its own: deploy was asked and refused the model by its
    # receipt (model/verdict.json, a failed verdict naming this very model).
    assert "failed the gate (min_sortino" in r.stderr and "not deployed" in r.stderr
    receipt = json.loads((gate_failed.workdir / "model" / "verdict.json").read_text())
    assert receipt["passed"] is False and receipt["model"]["version"] == result["model"]["version"]
    assert not gate_failed.pi.exists(), "deploy reached the host"


def test_remote_train_passes_the_gate_and_deploys(
    gate_failed: Pipeline, sshd: Sshd, tmp_path: Path
) -> None:
    """The same run again with a lax gate: finished stages are skipped, the gate passes and the
    model lands on the host as a release."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(gate_failed.workdir, work, symlinks=True)
    pi = tmp_path / "pi"
    env = {
        **sshd.env(),
        **LAX_GATE,
        "TRADEKIT_DEPLOY__PATH": str(pi),
        "TRADEKIT_DEPLOY__RESTART": "",
        "TRADEKIT_DEPLOY__HEALTH": "",
    }
    r = _remote(work, *SAMPLE_ARGS, env=env)
    assert r.returncode == 0, r.stderr
    result, rc = _markers(r.stdout)
    assert rc == 0
    assert result["verdict"] == "pass" and result["failed_stage"] is None
    # Resumed: nothing before the gate ran again.
    for stage in ("fetch", "data check", "featurize", "train", "backtest"):
        assert result["timings_s"][stage] is None, stage
    assert result["timings_s"]["gate"] > 0 and result["timings_s"]["deploy"] > 0
    release = result["deployed"]
    assert release and release != "unknown"
    assert (pi / "current").resolve() == (pi / "releases" / release).resolve()
    landed = pi / "releases" / release
    manifest = json.loads((work / "model" / "manifest.json").read_text())
    assert json.loads(next(landed.rglob("manifest.json")).read_text()) == manifest
    receipt = json.loads((landed / "verdict.json").read_text())
    assert receipt["passed"] is True and receipt["model"]["version"] == manifest["version"]


def test_remote_train_resumes_training_from_a_partial_checkpoint(
    gate_failed: Pipeline, tmp_path: Path
) -> None:
    """An interrupted attempt left model.partial/: the rerun passes --resume to train (here
    with checkpoints of other inputs, which train refuses: exit 3, nothing deployed)."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(gate_failed.workdir, work, symlinks=True)
    (work / ".done-train").unlink()
    (work / "model.partial").mkdir()
    (work / "model.partial" / "run.json").write_text("{}\n")
    r = _remote(work, *SAMPLE_ARGS, env=LAX_GATE)
    assert r.returncode == 3, r.stderr
    assert "--resume" in r.stderr and "checkpoints come from other inputs" in r.stderr
    result, rc = _markers(r.stdout)
    assert rc == 3
    assert result["verdict"] == "error" and result["failed_stage"] == "train"
    assert result["deployed"] is None


def test_remote_train_sweep_trains_gates_and_attaches_the_best_trial(
    gate_failed: Pipeline, tmp_path: Path
) -> None:
    """--sweep: the trials retrain walk-forward, the best trial's config trains and backtests
    the model, and the gate deflates by the trials run; a rerun resumes without new trials."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(gate_failed.workdir, work, symlinks=True)
    for stage in ("train", "backtest"):
        (work / f".done-{stage}").unlink()
    shutil.rmtree(work / "model")
    space = tmp_path / "space.toml"
    space.write_text('[params]\n"model.num_leaves" = { choices = [4, 16] }\n')
    windows = {  # SAMPLE_ARGS' train flags, as config: a sweep takes none
        "TRADEKIT_MODEL__TRAIN_WINDOW": "1500",
        "TRADEKIT_MODEL__TEST_WINDOW": "500",
        "TRADEKIT_MODEL__STEP": "500",
    }
    pi = tmp_path / "pi"
    env = {
        **LAX_GATE,
        **windows,
        "TRADEKIT_DEPLOY__HOST": "local",
        "TRADEKIT_DEPLOY__PATH": str(pi),
        "TRADEKIT_GATE__MIN_DSR": "0.999999",  # the deflated rule must decide: it fails
    }
    args = [*SAMPLE_ARGS[: SAMPLE_ARGS.index("--")], "--sweep", str(space), "--trials", "3"]
    r = _remote(work, *args, env=env)
    assert r.returncode == 1, r.stderr
    result, rc = _markers(r.stdout)
    assert rc == 1 and result["verdict"] == "fail" and result["failed_stage"] == "gate"
    assert "min_dsr" in result["gate_failed"]
    sweep = json.loads((work / "sweep" / "sweep.json").read_text())
    assert result["sweep"]["trials"] == sweep["n_trials"] == 3
    assert result["sweep"]["best_trial"] == sweep["best"]["trial"]
    assert result["sweep"]["params"]["model.num_leaves"] in (4, 16)
    assert result["sweep"]["dsr"] == sweep["selection"]["dsr"]
    assert result["timings_s"]["sweep"] > 0 and result["timings_s"]["train"] > 0
    # The model is the best trial's: trained with best.toml's [model].
    manifest = json.loads((work / "model" / "manifest.json").read_text())
    assert manifest["params"]["num_leaves"] == result["sweep"]["params"]["model.num_leaves"]
    receipt = json.loads((work / "model" / "verdict.json").read_text())
    assert receipt["sweep"]["trials"] == 3 and receipt["passed"] is False
    assert not pi.exists(), "deploy reached the host"
    # Thresholds the chosen trial meets: the rerun trains nothing, passes and ships the model
    # with best.toml (the [policy]/[risk] the gate judged) beside it.
    lax = {**env, "TRADEKIT_GATE__MIN_DSR": "0", "TRADEKIT_GATE__MAX_PBO": "1"}
    lax |= {"TRADEKIT_DEPLOY__RESTART": "", "TRADEKIT_DEPLOY__HEALTH": ""}
    r = _remote(work, *args, env=lax)
    assert r.returncode == 0, r.stderr
    result, _ = _markers(r.stdout)
    assert result["timings_s"]["sweep"] is None and result["timings_s"]["train"] is None
    landed = pi / "releases" / result["deployed"]
    assert (landed / "best.toml").read_bytes() == (work / "sweep" / "best.toml").read_bytes()
    assert json.loads((landed / "verdict.json").read_text())["sweep"]["trials"] == 3
    # Extra train flags would train another model than the chosen one.
    bad = _remote(work, *args, "--", "--step", "100", env=env)
    assert bad.returncode == 2 and "--sweep takes no extra train flags" in bad.stderr


def test_remote_train_usage_error() -> None:
    r = subprocess.run(
        ["bash", str(RECIPES / "remote-train.sh"), "--bogus"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 2 and "unknown argument: --bogus" in r.stderr


# -- pi-setup.sh: two users on the Pi ----------------------------------------------------------
# The real script creates two real local users (random names), a real sudoers rule in
# /etc/sudoers.d and the Pi's directories under a temporary root; the deploy user logs in to
# the real sshd with its own key. Everything is removed afterwards. Needs root (CI is root).

PLANTED = "kraken-secret-planted-7c1e"


@dataclass
class Pi:
    root: Path
    prefix: Path
    data: Path
    etc: Path
    loop_status: Path
    service: str
    deploy: str
    sudoers: Path
    sshd: Sshd

    def ssh(self, user: str, cmd: str) -> subprocess.CompletedProcess[str]:
        """``cmd`` in a real SSH session as ``user`` (the OpenSSH client, key only)."""
        s = self.sshd
        return subprocess.run(
            ["ssh", "-i", str(s.key), "-p", str(s.port), "-o", "BatchMode=yes",
             "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={s.known_hosts}",
             "-o", "StrictHostKeyChecking=yes", f"{user}@{s.host}", cmd],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def env(self) -> dict[str, str]:
        return {
            "TRADEKIT_PREFIX": str(self.prefix),
            "TRADEKIT_DATA_DIR": str(self.data),
            "TRADEKIT_ETC": str(self.etc),
            "TRADEKIT_LIBEXEC": str(self.loop_status.parent),
            "TRADEKIT_SUDOERS": str(self.sudoers),
            "TRADEKIT_SERVICE_USER": self.service,
            "TRADEKIT_DEPLOY_USER": self.deploy,
            "TRADEKIT_VENV": str(self.root / "venv"),
        }


@pytest.fixture
def pi(sshd: Sshd) -> Iterator[Pi]:
    import secrets
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("pi-setup.sh creates local users and a sudoers rule: run as root (CI does)")
    for tool in ("useradd", "userdel", "sudo", "visudo", "su", "ssh"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found (apt-get install sudo openssh-client passwd)")
    if not Path("/usr/bin/python3").is_file():
        pytest.skip("no /usr/bin/python3 for the status helper")
    tag = secrets.token_hex(3)
    root = Path(tempfile.mkdtemp(prefix="tradekit-pi-"))
    root.chmod(0o755)  # the users must reach their directories
    _stand_in_venv(root / "venv", root / "opt")
    pi = Pi(
        root=root,
        prefix=root / "opt",
        data=root / "srv",
        etc=root / "etc",
        loop_status=root / "libexec" / "tradekit-loop-status",
        service=f"tks{tag}",
        deploy=f"tkd{tag}",
        sudoers=Path(f"/etc/sudoers.d/tradekit-test-{tag}"),  # no dot: sudo skips such names
        sshd=sshd,
    )
    try:
        r = subprocess.run(
            ["bash", str(RECIPES / "pi-setup.sh"), "--only-accounts",
             "--deploy-key", f"{sshd.key}.pub"],
            env={**os.environ, **pi.env()}, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        yield pi
    finally:
        pi.sudoers.unlink(missing_ok=True)
        for user in (pi.deploy, pi.service):
            subprocess.run(["userdel", "--remove", user], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _stand_in_venv(venv: Path, prefix: Path) -> None:
    """The Pi's venv as the status helper uses it. This checkout's interpreter lives under
    root's home, which the Pi's users cannot enter, so ``bin/tradekit`` stands in for
    ``tradekit status --json`` of a loop that runs the release ``current`` points at (the real
    loop and status are tested in test_deploy.py); it says more than deploy may learn, and
    records who ran it, where."""
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    tk = venv / "bin" / "tradekit"
    tk.write_text(
        "#!/bin/sh\n"
        # `promote NAME --json` from the promote helper: who, where, what, with which settings.
        'if [ "$1" = promote ]; then\n'
        '  printf "%s|%s|%s|%s|%s|%s\\n" "$(id -un)" "$PWD" "$*" "$TRADEKIT_DEPLOY__HOST" '
        '"$TRADEKIT_DEPLOY__PATH" "$TRADEKIT_DEPLOY__STATUS" '
        '>> "$TRADEKIT_DEPLOY__PATH/.promoted"\n'
        '  echo "tradekit: info: current -> releases/x" >&2\n'
        '  printf \'{"schema":"deploy/1","ok":true,"message":"promoted candidate %s"}\\n\' "$2"\n'
        "  exit 0\n"
        "fi\n"
        f'v=$(sed -n \'s/.*"model_version": *"\\([^"]*\\)".*/\\1/p\' '
        f"{prefix}/current/release.json 2>/dev/null)\n"
        'printf "%s %s %s\\n" "$(id -un)" "$PWD" "$*" > .status-ran\n'
        'printf \'{"schema":"status/1","running":true,"state":"running",'
        '"model_version":"%s","equity":1234.5,"positions":[{"symbol":"BTC/USD"}],'
        '"ledger":"%s/state/tradekit.db","heartbeat_ms":1}\\n\' "$v" "$PWD"\n'
    )
    tk.chmod(0o755)
    venv.chmod(0o755)


def _denied(r: subprocess.CompletedProcess[str]) -> bool:
    return r.returncode != 0 and "Permission denied" in r.stderr


def _sudo_refused(r: subprocess.CompletedProcess[str]) -> bool:
    return r.returncode != 0 and "a password is required" in r.stderr


def test_pi_setup_two_users_and_the_boundary_between_them(pi: Pi, tmp_path: Path) -> None:
    import pwd

    svc, dep = pwd.getpwnam(pi.service), pwd.getpwnam(pi.deploy)
    assert svc.pw_shell.endswith("nologin") and dep.pw_shell == "/bin/sh"
    groups = {u: subprocess.run(["id", "-nG", u], capture_output=True, text=True, check=True)
              .stdout.split() for u in (pi.service, pi.deploy)}  # fmt: skip
    assert pi.deploy not in groups[pi.service] and pi.service not in groups[pi.deploy]
    # The service user has no shell to log in to, and no key works for it.
    r = subprocess.run(["su", "-", pi.service, "-c", "true"], capture_output=True, text=True,
                       check=False)  # fmt: skip
    assert r.returncode != 0 and "not available" in r.stdout + r.stderr
    assert pi.ssh(pi.service, "true").returncode == 255
    assert pi.ssh(pi.deploy, "id -un").stdout.strip() == pi.deploy

    # The service, as systemd starts it: the service user, secrets in its environment (and in
    # the root-only env file), a ledger in its data directory.
    (pi.etc / "env").write_text(f"TRADEKIT_EXCHANGE_SECRET={PLANTED}\n")
    ledger = pi.data / "state" / "tradekit.db"
    ledger.write_text("ledger")
    os.chown(ledger, svc.pw_uid, svc.pw_gid)
    ledger.chmod(0o640)
    service = subprocess.Popen(
        ["sleep", "300"], user=pi.service, group=pi.service, extra_groups=[], cwd=pi.data,
        env={"PATH": "/usr/bin:/bin", "TRADEKIT_EXCHANGE_SECRET": PLANTED},
    )  # fmt: skip
    try:
        pid = service.pid
        assert PLANTED.encode() in Path(f"/proc/{pid}/environ").read_bytes()  # root can
        probes = {
            "environ": f"cat /proc/{pid}/environ",
            "env file": f"cat {pi.etc}/env",
            "etc": f"ls {pi.etc}",
            "ledger": f"cat {ledger}",
            "data dir": f"ls {pi.data}",
            "write data": f"touch {pi.data}/x",
        }
        for what, cmd in probes.items():
            r = pi.ssh(pi.deploy, cmd)
            assert _denied(r), (what, r.returncode, r.stdout, r.stderr)
            assert PLANTED not in r.stdout + r.stderr, what
        # The command line is public, and holds nothing secret.
        r = pi.ssh(pi.deploy, f"tr '\\0' ' ' < /proc/{pid}/cmdline")
        assert r.returncode == 0 and "sleep 300" in r.stdout and PLANTED not in r.stdout
    finally:
        service.kill()
        service.wait()

    # sudo: exactly the two command lines, nothing else, no other arguments.
    refused = [
        f"sudo -n -u {pi.service} cat {pi.etc}/env",
        f"sudo -n -u {pi.service} {pi.loop_status} --anything",
        f"sudo -n -u {pi.service} /bin/sh -c id",
        "sudo -n systemctl stop tradekit-run",
        "sudo -n systemctl restart tradekit-run --now",
        f"sudo -n cat {pi.etc}/env",
    ]
    for cmd in refused:
        r = pi.ssh(pi.deploy, cmd)
        assert _sudo_refused(r), (cmd, r.returncode, r.stderr)
    r = pi.ssh(pi.deploy, "sudo -n systemctl restart tradekit-run")
    assert "password is required" not in r.stderr, r  # allowed (no systemd here to obey it)
    assert oct(pi.loop_status.stat().st_mode & 0o7777) == "0o755"
    assert pi.loop_status.stat().st_uid == 0 and pi.loop_status.parent.stat().st_uid == 0

    # Its own job it can do: a real deploy over SSH as the deploy user into the releases.
    model = _judged_model(tmp_path)
    env = {
        **cli_env(),
        "TRADEKIT_DEPLOY__HOST": pi.sshd.host,
        "TRADEKIT_DEPLOY__PORT": str(pi.sshd.port),
        "TRADEKIT_DEPLOY__USER": pi.deploy,
        "TRADEKIT_DEPLOY__KEY": str(pi.sshd.key),
        "TRADEKIT_DEPLOY__KNOWN_HOSTS": str(pi.sshd.known_hosts),
        "TRADEKIT_DEPLOY__PATH": str(pi.prefix),
        "TRADEKIT_DEPLOY__RESTART": "",  # no systemd here; the rule is checked above
        "TRADEKIT_DEPLOY__HEALTH": "loop",
        "TRADEKIT_DEPLOY__HEALTH_TIMEOUT_S": "30",
        # The default command, with this Pi's user and path.
        "TRADEKIT_DEPLOY__STATUS": f"sudo -n -u {pi.service} {pi.loop_status}",
    }
    argv = [sys.executable, "-m", "tradekit", "deploy", str(model), "--json"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    release = pi.prefix / "releases" / doc["release"]
    assert release.stat().st_uid == dep.pw_uid
    assert (pi.prefix / "current").resolve() == release.resolve()
    # The health check went through the helper: run as the service, in its directory, with
    # its config; and the deploy user learns the loop's state and model, nothing more.
    ran_by, cwd, args = (pi.data / ".status-ran").read_text().split(" ", 2)
    assert (ran_by, cwd) == (pi.service, str(pi.data))
    assert args.split() == ["--config", str(pi.etc / "tradekit.toml"), "status", "--json"]
    r = pi.ssh(pi.deploy, f"sudo -n -u {pi.service} {pi.loop_status}")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "schema": "status/1", "running": True, "state": "running",
        "model_version": doc["model_version"], "heartbeat_ms": 1,
    }  # fmt: skip


CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(f"refused: {e.strerror}")
    sys.exit(3)
s.sendall(sys.argv[2].encode() + b"\\n")
s.shutdown(socket.SHUT_WR)
data = b""
while chunk := s.recv(4096):
    data += chunk
print(data.decode(), end="")
"""


def test_the_phone_promotes_only_through_the_socket_as_the_deploy_user(
    pi: Pi, tmp_path: Path
) -> None:
    """The phone's listener runs as the service user in a sandbox without sudo: it cannot
    switch releases, nor run anything as the deploy user. Its one way is a line on the promote
    socket (group: the service user's): for each connection systemd starts pi-setup's helper
    as the deploy user with the connection as stdin/stdout (here systemd-socket-activate, the
    same Accept=yes protocol, and setpriv as User=). The helper hands a candidate name, and
    nothing else, to `tradekit promote NAME --json` on this host's releases."""
    import pwd
    import shutil

    if shutil.which("systemd-socket-activate") is None or shutil.which("setpriv") is None:
        pytest.skip("systemd-socket-activate and setpriv (apt-get install systemd util-linux)")
    helper = pi.loop_status.parent / "tradekit-promote"
    assert helper.stat().st_uid == 0 and oct(helper.stat().st_mode & 0o7777) == "0o755"
    svc, dep = pwd.getpwnam(pi.service), pwd.getpwnam(pi.deploy)

    def as_service(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), user=pi.service, group=pi.service, extra_groups=[], cwd="/",
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip

    # The service user can neither switch current nor become the deploy user.
    assert _denied(as_service("ln", "-s", "releases/x", str(pi.prefix / "current.tmp")))
    assert _sudo_refused(as_service("sudo", "-n", "-u", pi.deploy, str(helper)))
    assert _sudo_refused(as_service("sudo", "-n", "-u", pi.deploy, "true"))

    sock = pi.root / "promote.sock"
    log = (tmp_path / "activate.log").open("w")
    server = subprocess.Popen(
        ["systemd-socket-activate", "--listen", str(sock), "--accept", "--inetd", "--",
         "setpriv", f"--reuid={dep.pw_uid}", f"--regid={dep.pw_gid}", "--clear-groups",
         "--reset-env", str(helper)],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        end = time.monotonic() + 30
        while not sock.exists() and time.monotonic() < end and server.poll() is None:
            time.sleep(0.02)
        assert sock.exists(), (tmp_path / "activate.log").read_text()
        os.chown(sock, 0, svc.pw_gid)  # SocketUser=root, SocketGroup=<service>, SocketMode=0660
        sock.chmod(0o660)
        ran = pi.prefix / ".promoted"

        def ask(line: str, user: str = pi.service) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["/usr/bin/python3", "-c", CONNECT, str(sock), line], user=user, group=user,
                extra_groups=[], capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip

        r = ask("nb")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"schema": "deploy/1", "ok": True,
                                        "message": "promoted candidate nb"}  # fmt: skip
        who, cwd, args, host, path, status = ran.read_text().strip().split("|")
        assert (who, cwd, args, host, path) == (pi.deploy, "/", "promote nb --json", "local",
                                                str(pi.prefix))  # fmt: skip
        assert status == f"sudo -n -u {pi.service} {pi.loop_status}"
        for bad in ("../../etc", "nb; id", "$(id)", "-h", "x" * 33, "", "nb --host evil"):
            r = ask(bad)
            assert r.stdout.strip() == "tradekit: error: promote: not a candidate name", bad
        assert len(ran.read_text().splitlines()) == 1  # nothing else reached tradekit
        # Only the service's group may connect (the deploy user itself is not in it).
        r = ask("nb", user=pi.deploy)
        assert r.returncode == 3 and "refused: Permission denied" in r.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _judged_model(tmp_path: Path) -> Path:
    """A small model dir with its passing gate receipt (the real gate)."""
    from tests.test_deploy import judge
    from tests.test_models import features_frame, write_config, write_features
    from tradekit.cli.main import main

    write_features(tmp_path / "f.parquet", features_frame(rows=200))
    cfg = write_config(tmp_path / "m.toml", n_estimators=5, train_window=100, test_window=50,
                       step=50)  # fmt: skip
    assert main(["-c", str(cfg), "train", str(tmp_path / "f.parquet"), "-o",
                 str(tmp_path / "model")]) == 0  # fmt: skip
    assert judge(tmp_path / "model") == 0
    return tmp_path / "model"


# -- the bundle: exactly this code, dependencies pinned by hash --------------------------------
# A small stand-in project (named tradekit, with one dependency served from a local wheel
# directory: no index) goes through the real build-wheel.sh and remote-train.sh --install-only,
# with the real pip: the full tradekit closure (70-odd wheels) would take minutes to install.


def _project(d: Path, name: str, version: str, deps: list[str], script: str = "") -> Path:
    d.mkdir(parents=True)
    scripts = f'[project.scripts]\ntradekit = "{name}_cli:main"\n' if script else ""
    (d / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = {json.dumps(deps)}\n'
        f"{scripts}[tool.setuptools]\npy-modules = [{json.dumps(name + '_cli')}]\n"
    )
    (d / f"{name}_cli.py").write_text(
        f"def main():\n    print({script!r})\n" if script else "VALUE = 1\n"
    )
    return d


@dataclass
class Bundle:
    dir: Path
    wheel: Path
    wheelhouse: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    root = tmp_path_factory.mktemp("bundle")
    house = root / "wheelhouse"
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # Only the local wheel directory: nothing can come from an index.
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(house),
        "PIP_NO_BUILD_ISOLATION": "0",  # pip's spelling of --no-build-isolation
        "PIP_CONSTRAINT": "",
    }
    dep = _project(root / "tkdep", "tkdep", "1.0", [])
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(house),
                    str(dep)], env=env, check=True, capture_output=True)  # fmt: skip
    src = _project(root / "src", "tradekit", "0.0.1", ["tkdep>=1"], script="tradekit 0.0.1 (fake)")
    (src / "constraints.txt").write_text("tkdep==1.0\n")
    out = root / "out"
    argv = ["bash", str(RECIPES / "build-wheel.sh"), str(out), "--src", str(src)]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    (wheel,) = out.glob("tradekit-*.whl")
    return Bundle(out, wheel, house, env)


def test_build_wheel_pins_the_wheel_and_every_dependency_by_hash(bundle: Bundle) -> None:
    import hashlib

    lines = [ln for ln in (bundle.dir / "requirements.txt").read_text().splitlines()
             if ln and not ln.startswith("#")]  # fmt: skip
    (dep_wheel,) = bundle.wheelhouse.glob("tkdep-*.whl")

    def sha(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert lines == [
        f"tkdep==1.0 --hash=sha256:{sha(dep_wheel)}",
        f"./{bundle.wheel.name} --hash=sha256:{sha(bundle.wheel)}",
    ]
    assert not any(ln.lower().startswith("tradekit") for ln in lines)  # never by name


def _install(bundle_dir: Path, work: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(RECIPES / "remote-train.sh"), "--install-only", "--bundle", str(bundle_dir),
         "--workdir", str(work), "--run-id", "b1"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_remote_train_installs_exactly_the_bundle(bundle: Bundle, tmp_path: Path) -> None:
    import shutil

    box = Path(shutil.copytree(bundle.dir, tmp_path / "shm"))
    (box / ".env").write_text(f"TRADEKIT_NOTIFY__SENDER=+43\nSOME_TOKEN='{SECRET}'\n")
    (box / "deploy_key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    r = _install(box, tmp_path / "work", bundle.env)
    assert r.returncode == 0, r.stderr
    venv = tmp_path / "work" / "venv"
    out = subprocess.run([str(venv / "bin" / "tradekit")], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.strip() == "tradekit 0.0.1 (fake)"
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "tkdep==1.0" in freeze and "tradekit @ file://" in freeze
    # The secrets were read and are gone from the (tmpfs) bundle; none was printed.
    assert "read 2 secret(s) from the bundle's .env, and deleted it" in r.stderr
    assert not (box / ".env").exists() and not (box / "deploy_key").exists()
    assert SECRET not in r.stdout + r.stderr


def test_remote_train_refuses_a_wheel_that_is_not_the_hashed_one(
    bundle: Bundle, tmp_path: Path
) -> None:
    import shutil
    import zipfile

    box = Path(shutil.copytree(bundle.dir, tmp_path / "shm"))
    wheel = box / bundle.wheel.name
    with zipfile.ZipFile(wheel, "a") as z:  # a valid wheel with one more file: other bytes
        z.writestr("tradekit_cli_extra.py", "EVIL = True\n")
    r = _install(box, tmp_path / "work", bundle.env)
    assert r.returncode == 3, r.stderr
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in r.stderr
    assert not (tmp_path / "work" / "venv" / "bin" / "tradekit").exists()
    result = json.loads((tmp_path / "work" / "result.json").read_text())
    assert (result["failed_stage"], result["verdict"]) == ("install", "error")


def test_remote_train_never_installs_by_name(tmp_path: Path) -> None:
    """No bundle and no TRADEKIT_BIN: a usage error, not `pip install tradekit`."""
    env = {k: v for k, v in os.environ.items() if k != "TRADEKIT_BIN"}
    argv = ["bash", str(RECIPES / "remote-train.sh"), "--workdir", str(tmp_path / "w")]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "never installed by name" in r.stderr
    assert not (tmp_path / "w").exists()
    for recipe in ("remote-train.sh", "vastai-train.sh", "pi-setup.sh"):
        assert "TRADEKIT_SPEC" not in (RECIPES / recipe).read_text(), recipe
