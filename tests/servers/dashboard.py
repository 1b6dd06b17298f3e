"""A bot to look at, and ``tradekit serve`` over it on 127.0.0.1.

:func:`make_bot` builds what a Pi holds, from real parts: a ledger written by ``tradekit run
--replay`` on generated candles (``tests.test_live_parity.market``), the same candles in the
candle store, a small real LightGBM model dir with the gate's receipt, and a deploy log in
``deploy``'s format. :class:`Dashboard` runs the real ``tradekit serve`` in a child process on
a free port and stops it with SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import cli_env

SYMBOLS = ("S0/USD", "S1/USD", "S2/USD")
PASSING = {"sortino": 2.1, "max_drawdown": 0.12, "trades": 41}
CONFIG = """\
[exchange]
id = "test"
timeframe = "1h"
symbols = ["S0/USD", "S1/USD", "S2/USD"]

[data]
store = "{d}/store"

[policy]
entry_threshold = 0.005
exit_threshold = -0.002
stoploss = 0.02
take_profit = 0.03
trailing_stop = 0.015
partial_exits = [0.01, 0.02]
partial_exit_frac = 0.5
persistence = 2

[risk]
max_open_positions = 2
max_position_frac = 0.45
daily_loss_halt_frac = 0.0
max_drawdown_halt_frac = 0.0

[run]
state = "{d}/ledger.db"
model = "{d}/model"

[deploy]
path = "{d}/deploy"

[serve]
refresh_s = 1.0
"""
DEPLOYS = [
    {"action": "deploy", "ok": True, "release": "20240120T080000Z-aaaaaaaa", "previous": None,
     "model_version": "0123456789ab", "gate": "passed", "forced": None, "user": "me@laptop",
     "message": "deployed and healthy", "ts": "2024-01-20T08:00:00.000Z", "seconds": 12.5},
    {"action": "deploy", "ok": False, "release": "20240121T080000Z-bbbbbbbb",
     "previous": "20240120T080000Z-aaaaaaaa", "model_version": "ba9876543210", "gate": "passed",
     "forced": None, "user": "me@laptop", "message": "health check failed: rolled back",
     "ts": "2024-01-21T08:00:00.000Z", "seconds": 40.0},
]  # fmt: skip


def make_bot(d: Path, *, candles: int = 300) -> Path:
    """Build the bot's files in ``d``; returns the config file."""
    from tests.test_live_parity import market, predictions
    from tests.test_models import features_frame, write_config, write_features
    from tradekit.cli.main import main
    from tradekit.contracts import read_table
    from tradekit.data.store import Store

    cfg = d / "tradekit.toml"
    cfg.write_text(CONFIG.format(d=d))
    market(d / "ohlcv.parquet", n=candles, symbols=len(SYMBOLS), seed=7)
    predictions(d / "ohlcv.parquet", d / "pred.parquet")
    rc = main(["-c", str(cfg), "run", "--replay", str(d / "ohlcv.parquet"),
               "-p", str(d / "pred.parquet"), "--state", str(d / "ledger.db")])  # fmt: skip
    assert rc == 0
    df, _ = read_table(d / "ohlcv.parquet", None)
    store = Store(d / "store")
    for s in SYMBOLS:
        store.append("test", "1h", s, df[df["symbol"] == s])
    # A small real model with a passing receipt from the real gate.
    write_features(d / "f.parquet", features_frame(symbols=SYMBOLS[:2], rows=200))
    mcfg = write_config(d / "m.toml", n_estimators=5, train_window=100, test_window=50, step=50)
    assert main(["-c", str(mcfg), "train", str(d / "f.parquet"), "-o", str(d / "model")]) == 0
    oos = json.loads((d / "model" / "manifest.json").read_text())["oos_predictions"]
    report = d / "report.json"
    inputs = {"predictions": {"sha256": oos["sha256"]}}
    report.write_text(json.dumps({"schema": "backtest/1", "metrics": PASSING, "inputs": inputs}))
    (d / "gate.toml").write_text("")  # the built-in thresholds
    assert main(["-c", str(d / "gate.toml"), "gate", str(report), "--model", str(d / "model")]) == 0
    (d / "deploy").mkdir()
    lines = [json.dumps(e, sort_keys=True, separators=(",", ":")) for e in DEPLOYS]
    (d / "deploy" / "deploys.jsonl").write_text("\n".join(lines) + "\n")
    return cfg


@dataclass
class Dashboard:
    """``tradekit serve`` in a child process; ``url`` is its base URL."""

    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)  # its stderr
    reader: threading.Thread | None = None
    config: Path | None = None

    @classmethod
    def start(cls, config: Path, *args: str, token: str | None = None) -> Dashboard:
        env = cli_env(TRADEKIT_CONFIG=str(config))
        env.pop("TRADEKIT_SERVE_TOKEN", None)
        if token is not None:
            env["TRADEKIT_SERVE_TOKEN"] = token
        proc = subprocess.Popen(
            [sys.executable, "-m", "tradekit", "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        found = threading.Event()
        box: dict[str, str] = {}

        def pump() -> None:  # keeps reading, so the child never blocks on a full pipe
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append(line)
                m = re.search(r"serve: (http://\S+/) ", line)
                if m and not found.is_set():
                    box["url"] = m.group(1)
                    found.set()
            found.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        if not found.wait(60) or "url" not in box:
            proc.kill()
            proc.wait(30)
            reader.join(30)
            proc.stderr.close()
            raise AssertionError(f"serve did not start: {''.join(lines)}")
        dash = cls(proc, box["url"], lines, reader, config)
        try:
            dash.wait_ready()
        except AssertionError:
            dash.stop()
            raise
        return dash

    def wait_ready(self, deadline_s: float = 60.0) -> None:
        end = time.monotonic() + deadline_s
        while True:
            try:
                if httpx.get(self.url + "api/v1/ping", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > end or self.proc.poll() is not None:
                raise AssertionError(f"serve not ready: {''.join(self.lines)}")
            time.sleep(0.05)

    def get(self, path: str, **kw: object) -> httpx.Response:
        return httpx.get(self.url + path.lstrip("/"), timeout=30, **kw)  # type: ignore[arg-type]

    def post(self, path: str, **kw: object) -> httpx.Response:
        return httpx.post(self.url + path.lstrip("/"), timeout=30, **kw)  # type: ignore[arg-type]

    def stop(self) -> int:
        """SIGTERM, then its exit code (its stderr read to the end and closed)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait(30)
        if self.reader is not None:
            self.reader.join(30)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code
