"""`tradekit sweep`: the best trial reproduces through `backtest`; a SIGKILL and a resume give
the trials of an uninterrupted run; so does a journal cut at any point; Ray gives the same
trials as the local pool; bad spaces fail with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.conftest import cli_env
from tradekit.contracts import PREDICTIONS, TRIALS, open_parquet, write_ohlcv, write_table

SPACE = """
objective = "sortino"
[constraints]
min_trades = 5
max_drawdown = 0.5
[params]
"policy.entry_threshold" = { low = 0.0, high = 0.004 }
"policy.stoploss" = { choices = [0.0, 0.02, 0.05] }
"policy.persistence" = { low = 1, high = 4, step = 1 }
"risk.max_open_positions" = { low = 1, high = 3, step = 1 }
"""


def make_inputs(directory: Path, n: int = 1500, m: int = 3, seed: int = 5) -> tuple[str, str]:
    """A random walk per symbol (hourly) and AR(1) predictions: no edge, many trades."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 4e-3, (n, m)), axis=0))
    op = np.vstack([close[:1], close[:-1]])
    hi = np.maximum(op, close) * (1 + np.abs(rng.normal(0, 1e-3, (n, m))))
    lo = np.minimum(op, close) * (1 - np.abs(rng.normal(0, 1e-3, (n, m))))
    noise = rng.normal(0, 1, (n, m))
    pred = np.empty((n, m))
    pred[0] = noise[0]
    for t in range(1, n):
        pred[t] = 0.8 * pred[t - 1] + 0.6 * noise[t]
    pred *= 0.002
    ts = pd.to_datetime(1_704_067_200_000 + np.arange(n) * 3_600_000, unit="ms", utc=True)
    ts = ts.as_unit("ms")
    frames, preds = [], []
    for j in range(m):
        s = f"S{j}/USD"
        frames.append(
            pd.DataFrame(
                {
                    "symbol": s,
                    "timestamp": ts,
                    "open": op[:, j],
                    "high": hi[:, j],
                    "low": lo[:, j],
                    "close": close[:, j],
                    "volume": 1.0,
                }
            )
        )
        preds.append(pd.DataFrame({"symbol": s, "timestamp": ts, "prediction": pred[:, j]}))
    o, p = directory / "ohlcv.parquet", directory / "preds.parquet"
    write_ohlcv(pd.concat(frames, ignore_index=True), o, {"exchange": "sample", "timeframe": "1h"})
    write_table(pd.concat(preds, ignore_index=True), p, PREDICTIONS, {})
    return str(o), str(p)


def trial_rows(sweep_dir: Path) -> list[dict]:
    """The trials of a sweep, less what depends on the run (durations)."""
    open_parquet(sweep_dir / "trials.parquet", TRIALS)  # a valid trials/1 file
    return pq.read_table(sweep_dir / "trials.parquet").drop(["duration_s"]).to_pylist()


def sweep_args(o: str, p: str, out: str, *extra: str) -> list[str]:
    return ["sweep", "space.toml", "--ohlcv", o, "-p", p, "-o", out, *extra]


def test_best_trial_reproduces_through_backtest(run_cli, tmp_path):
    o, p = make_inputs(tmp_path)
    Path("space.toml").write_text(SPACE, encoding="utf-8")
    r = run_cli(*sweep_args(o, p, "sw", "--trials", "24", "--seed", "3"), "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "sweep/1" and doc["n_trials"] == 24
    best = doc["best"]
    rows = trial_rows(Path("sw"))
    assert [row["trial"] for row in rows] == list(range(24))
    feasible = [row for row in rows if row["feasible"]]
    assert best["value"] == max(row["value"] for row in feasible)
    sel = doc["selection"]
    assert sel["trials"] == 24 and 0.0 <= sel["dsr"] <= sel["psr"] <= 1.0
    # The config in best.toml through plain `backtest` gives the trial's metrics, bit for bit.
    r = run_cli("--config", "sw/best.toml", "backtest", o, "-p", p, "-o", "report.json")
    assert r.code == 0, r.err
    metrics = json.loads(Path("report.json").read_text())["metrics"]
    assert {k: metrics[k] for k in best["metrics"]} == best["metrics"]
    for name, value in best["params"].items():
        section, key = name.split(".")
        assert json.loads(Path("report.json").read_text())["config"][section][key] == value


def test_a_journal_cut_anywhere_resumes_to_the_same_trials(run_cli, tmp_path):
    """Whatever a kill leaves (a torn line, a trial half drawn, trials asked and not told),
    --resume ends with the trials of the run that was never interrupted."""
    o, p = make_inputs(tmp_path, n=600)
    Path("space.toml").write_text(SPACE, encoding="utf-8")
    args = ("--trials", "16", "--jobs", "3", "--seed", "9")
    assert run_cli(*sweep_args(o, p, "ref", *args)).code == 0
    want = trial_rows(Path("ref"))
    log = Path("ref/journal.log").read_bytes()
    lines = log.splitlines(keepends=True)
    cuts = {len(b"".join(lines[:k])) for k in (3, len(lines) // 3, len(lines) // 2)}
    cuts |= {len(b"".join(lines[: len(lines) // 2])) + 17}  # inside a line
    first_param = next(i for i, ln in enumerate(lines) if b'"op_code":5' in ln)
    cuts.add(len(b"".join(lines[: first_param + 2])))  # a trial with half its parameters
    for i, cut in enumerate(sorted(cuts)):
        d = Path(f"cut{i}")
        d.mkdir()
        (d / "run.json").write_bytes(Path("ref/run.json").read_bytes())
        (d / "journal.log").write_bytes(log[:cut])
        r = run_cli(*sweep_args(o, p, str(d), *args, "--resume"))
        assert r.code == 0, r.err
        assert trial_rows(d) == want, f"cut at byte {cut}"
    # Killed before the journal's first line: only run.json is there, and --resume starts over.
    d = Path("cut-early")
    d.mkdir()
    (d / "run.json").write_bytes(Path("ref/run.json").read_bytes())
    r = run_cli(*sweep_args(o, p, str(d), *args, "--resume"))
    assert r.code == 0, r.err
    assert trial_rows(d) == want


def test_sigkill_and_resume_give_the_same_trial_set(tmp_path):
    o, p = make_inputs(tmp_path, n=3000)
    Path("space.toml").write_text(SPACE, encoding="utf-8")
    args = ["--trials", "60", "--jobs", "2", "--seed", "1", "--sampler", "random"]
    env = cli_env()
    cmd = [sys.executable, "-m", "tradekit"]
    subprocess.run(
        [*cmd, *sweep_args(o, p, "ref", *args)], env=env, check=True, capture_output=True
    )
    proc = subprocess.Popen(
        [*cmd, *sweep_args(o, p, "killed", *args)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    journal = Path("killed/journal.log")
    deadline = time.monotonic() + 240
    # Kill once a few trials are told (state-setting lines), while others are in flight.
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b'"op_code":6') >= 6:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool workers
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    assert not Path("killed/trials.parquet").exists()
    r = subprocess.run(
        [*cmd, *sweep_args(o, p, "killed", *args, "--resume")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert trial_rows(Path("killed")) == trial_rows(Path("ref"))
    # Without --resume the directory is refused rather than overwritten.
    r = subprocess.run(
        [*cmd, *sweep_args(o, p, "killed", *args)], env=env, capture_output=True, text=True
    )
    assert r.returncode == 3 and "--resume" in r.stderr


@pytest.fixture
def ray_cluster(tmp_path):
    """A real Ray cluster on 127.0.0.1 with 2 CPUs (`ray start --block`), stopped after."""
    pytest.importorskip("ray")
    import socket
    import tempfile

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="tkray", dir="/tmp")  # Ray's socket paths must stay short
    env = {**cli_env(), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    ray = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [
            str(ray),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--block",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if "Ray runtime started" in line or time.monotonic() > deadline:
            break
    assert any("Ray runtime started" in ln for ln in seen), "".join(seen)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        import shutil

        shutil.rmtree(temp, ignore_errors=True)


def test_ray_and_local_give_identical_trials(tmp_path, ray_cluster):
    o, p = make_inputs(tmp_path, n=800)
    Path("space.toml").write_text(SPACE, encoding="utf-8")
    args = ["--trials", "12", "--jobs", "2", "--seed", "4"]
    cmd = [sys.executable, "-m", "tradekit"]
    env = cli_env()
    local = subprocess.run(
        [*cmd, *sweep_args(o, p, "local", *args)], env=env, capture_output=True, text=True
    )
    assert local.returncode == 0, local.stderr
    remote = subprocess.run(
        [*cmd, *sweep_args(o, p, "ray", *args, "--executor", "ray", "--ray-address", ray_cluster)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert remote.returncode == 0, remote.stderr
    assert trial_rows(Path("ray")) == trial_rows(Path("local"))
    doc = json.loads(Path("ray/sweep.json").read_text())
    assert doc["executor"] == "ray" and doc["n_trials"] == 12


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        (
            'objective = "alpha"\n[params]\n"policy.stoploss" = { low = 0.0, high = 0.1 }',
            "objective 'alpha'",
        ),
        ('[params]\n"policy.nope" = { low = 0.0, high = 0.1 }', "has no key 'nope'"),
        ('[params]\n"policy.stoploss" = { low = 0.0, high = 1.5 }', "fraction"),
        ('[params]\n"model.num_leaves" = { low = 4, high = 64 }', "need --features"),
        (
            '[constraints]\nmin_alpha = 1\n[params]\n"policy.stoploss" = { choices = [0.0] }',
            "min_alpha",
        ),
        ('[params]\n"risk.clusters" = { choices = [1] }', "not searchable"),
    ],
)
def test_bad_spaces_fail_with_one_line(run_cli, tmp_path, space, fragment):
    o, p = make_inputs(tmp_path, n=200, m=1)
    Path("space.toml").write_text(space, encoding="utf-8")
    r = run_cli(*sweep_args(o, p, "sw"))
    assert r.code == 3, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "space.toml" in lines[0], r.err
    assert not Path("sw").exists()


def test_model_keys_retrain_per_trial_and_reproduce(run_cli, tmp_path):
    """With --features, [model] keys are searched: each trial retrains walk-forward; best.toml
    retrains the chosen model exactly and backtests to the trial's metrics."""
    from tests.test_models import features_frame, write_features
    from tradekit.contracts import read_table

    frame = features_frame(rows=400)
    write_features("f.parquet", frame)
    rng = np.random.default_rng(1)
    rows = []
    for s, g in frame.groupby("symbol"):
        c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(g))))
        o = np.concatenate([[c[0]], c[:-1]])
        rows.append(
            pd.DataFrame(
                {
                    "symbol": s,
                    "timestamp": g["timestamp"].to_numpy(),
                    "open": o,
                    "high": np.maximum(o, c) * 1.002,
                    "low": np.minimum(o, c) * 0.998,
                    "close": c,
                    "volume": 1.0,
                }
            )
        )
    write_ohlcv(
        pd.concat(rows, ignore_index=True), "o.parquet", {"exchange": "x", "timeframe": "1h"}
    )
    Path("space.toml").write_text(
        'objective = "sharpe"\n[params]\n"model.num_leaves" = { low = 4, high = 16, step = 4 }\n'
        '"policy.entry_threshold" = { low = 0.0, high = 0.01 }\n'
    )
    Path("tradekit.toml").write_text(
        "[model]\nn_estimators = 20\ntrain_window = 100\ntest_window = 50\nstep = 50\n"
    )
    r = run_cli(
        "sweep",
        "space.toml",
        "--ohlcv",
        "o.parquet",
        "--features",
        "f.parquet",
        "-o",
        "sw",
        "--trials",
        "3",
        "--json",
    )
    assert r.code == 0, r.err
    best = json.loads(r.out)["best"]
    assert Path(best["predictions"]).name == f"trial-{best['trial']:05d}.parquet"
    assert not Path("sw/models").exists()  # only the predictions are kept
    assert run_cli("--config", "sw/best.toml", "train", "f.parquet", "-o", "m").code == 0
    mine = read_table("m/oos_predictions.parquet", PREDICTIONS)[0]["prediction"].to_numpy()
    theirs = read_table(best["predictions"], PREDICTIONS)[0]["prediction"].to_numpy()
    assert np.array_equal(mine, theirs)
    r = run_cli(
        "--config",
        "sw/best.toml",
        "backtest",
        "o.parquet",
        "-p",
        "m/oos_predictions.parquet",
        "-o",
        "r.json",
    )
    assert r.code == 0, r.err
    metrics = json.loads(Path("r.json").read_text())["metrics"]
    assert {k: metrics[k] for k in best["metrics"]} == best["metrics"]
