"""Deploy benchmark: one LightGBM model dir shipped to a real OpenSSH server on 127.0.0.1.

``bench_deploy``: a 300-tree model (2 symbols x 3,000 candles x 30 features) is deployed 5 times
(each with a different small attached report, so every deploy is a new release) through
``deploy_model``: connect with a pinned host key, prepare, upload, verify and unpack, atomic
switch, restart + health command, log and prune. References measured in the same run:

1. a bare paramiko session doing the minimum of any verified copy: connect with the same key,
   SFTP-put the same archive, run ``sha256sum`` on it, close;
2. the same deploy through ``--host local`` (no SSH: the cost of the steps themselves).

Prints the archive size in bytes and the median wall times with their ratios.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.servers.sshd import Sshd

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

RUNS = 5


def _model_dir(work: Path) -> Path:
    import numpy as np
    import pandas as pd

    from tradekit.cli.main import main
    from tradekit.contracts import FEATURES, write_table

    rng = np.random.default_rng(5)
    rows, n_feat, parts = 3000, 30, []
    t0 = 1_700_000_000_000
    for sym in ("BTC/USD", "ETH/USD"):
        X = rng.standard_normal((rows, n_feat))
        ret = 0.01 * (X[:, 0] + 0.5 * X[:, 1]) + 0.005 * rng.standard_normal(rows)
        ret[-4:] = np.nan
        frame = pd.DataFrame(X, columns=[f"f{i:02d}" for i in range(n_feat)])
        frame.insert(0, "symbol", pd.Series([sym] * rows, dtype="str"))
        ts = pd.to_datetime(t0 + np.arange(rows, dtype=np.int64) * 3_600_000, unit="ms", utc=True)
        frame.insert(1, "timestamp", ts.as_unit("ms"))
        frame["label_return"] = ret
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True)
    meta = {
        "timeframe": "1h",
        "feature_set": "bench",
        "feature_set_hash": "sha256:bench",
        "features": [c for c in frame.columns if c.startswith("f")],
        "labels": ["label_return"],
        "label_horizon": 4,
        "exchange": "sample",
        "source": "sha256:bench",
        "symbols": ["BTC/USD", "ETH/USD"],
    }
    write_table(frame, work / "f.parquet", FEATURES, meta)
    (work / "m.toml").write_text(
        "[model]\nn_estimators = 300\ntrain_window = 2000\ntest_window = 500\nstep = 500\n"
        "threads = 1\n"
    )
    with contextlib.redirect_stderr(io.StringIO()):  # the training table is not the figure
        code = main(
            ["-c", str(work / "m.toml"), "train", str(work / "f.parquet"), "-o", str(work / "m")]
        )
    if code != 0:
        raise RuntimeError(f"train exited {code}")
    return work / "m"


def _paramiko_put(s: Sshd, archive: Path, remote: str) -> None:
    import paramiko

    client = paramiko.SSHClient()
    client.get_host_keys().load(str(s.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        s.host,
        port=s.port,
        username=s.user,
        key_filename=str(s.key),
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        sftp = client.open_sftp()
        sftp.put(str(archive), remote)
        _, out, _ = client.exec_command(f"sha256sum {remote}")
        digest = out.read().split()[0].decode()
        if digest != hashlib.sha256(archive.read_bytes()).hexdigest():
            raise RuntimeError("reference upload corrupt")
    finally:
        client.close()


def _pass_gate(model: Path) -> None:
    """The real gate on a passing report made from the model's OOS predictions."""
    from tradekit.config import GateConfig
    from tradekit.gate import gate_file, write_receipt

    oos = json.loads((model / "manifest.json").read_text())["oos_predictions"]
    report = model.parent / "gate-report.json"
    metrics = {"sortino": 2.0, "max_drawdown": 0.1, "trades": 50}
    doc = {"schema": "backtest/1", "metrics": metrics, "inputs": {"predictions": oos}}
    report.write_text(json.dumps(doc))
    write_receipt(gate_file(str(report), GateConfig(), model_dir=model), model)


def bench_deploy() -> None:
    from tests.servers.sshd import Sshd, available
    from tradekit.config import DeployConfig
    from tradekit.deploy.release import build_release
    from tradekit.deploy.ship import deploy_model

    if not available():
        print("bench_deploy: skipped (no /usr/sbin/sshd)")
        return
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        work = Path(tmp)
        model = _model_dir(work)
        _pass_gate(model)  # deploy ships only a model with its own passing verdict
        model_bytes = sum(
            f.stat().st_size for f in model.iterdir() if f.name != "oos_predictions.parquet"
        )
        (work / "pack").mkdir()
        rel = build_release(model, work / "pack")
        sshd = Sshd.start(work / "sshd")
        try:
            script = work / "restart.sh"
            script.write_text('#!/bin/sh\ncp "$1/current/release.json" "$1/running.json"\n')
            common: dict[str, Any] = {
                "restart": f"sh {script} {{path}}",
                "health": "grep -q {version} {path}/running.json",
                "health_timeout_s": 10.0,
                "keep": 3,
            }
            ssh_cfg = DeployConfig(
                host=sshd.host,
                port=sshd.port,
                user=sshd.user,
                key=str(sshd.key),
                known_hosts=str(sshd.known_hosts),
                path=str(work / "ssh-app"),
                **common,
            )
            local_cfg = DeployConfig(host="local", path=str(work / "local-app"), **common)

            def timed_deploys(cfg: DeployConfig) -> list[float]:
                times = []
                for i in range(RUNS):
                    report = work / "report.json"
                    report.write_text(
                        json.dumps({"schema": "backtest/1", "run": i, "cfg": cfg.host})
                    )
                    t = time.perf_counter()
                    deploy_model(model, cfg, attach=[report])
                    times.append(time.perf_counter() - t)
                return times

            ssh_t = timed_deploys(ssh_cfg)
            local_t = timed_deploys(local_cfg)
            ref_t = []
            for i in range(RUNS):
                t = time.perf_counter()
                _paramiko_put(sshd, rel.archive, str(work / f"ref-{i}.tar.gz"))
                ref_t.append(time.perf_counter() - t)
        finally:
            sshd.stop()
    ssh_m, local_m, ref_m = (statistics.median(x) for x in (ssh_t, local_t, ref_t))
    print(
        f"deploy: model dir {model_bytes:,} bytes -> archive {rel.size:,} bytes "
        f"({len(rel.files)} files incl. manifest and SHA256SUMS)"
    )
    print(f"  deploy over ssh (127.0.0.1)       median {ssh_m:.3f}s  min {min(ssh_t):.3f}s")
    print(f"  reference: paramiko put + sha256  median {ref_m:.3f}s  -> ratio {ssh_m / ref_m:.2f}x")
    print(
        f"  deploy --host local               median {local_m:.3f}s"
        f"  -> ssh/local {ssh_m / local_m:.2f}x"
    )


if __name__ == "__main__":
    bench_deploy()
