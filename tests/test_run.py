"""``tradekit run`` / ``status`` / ``pause`` / ``resume`` / ``kill`` against the Kraken-speaking
local server (real ccxt client, real candles, a settable exchange clock).

Real processes (``python -m tradekit``) where the behaviour needs one: a loop running in the
background while another shell sends controls, signals, sd_notify datagrams. The in-process
``run_cli`` elsewhere (``--once`` cycles, refused inputs)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import OHLC_NOW_MS, Result, cli_env
from tests.servers.kraken import KrakenServer
from tradekit.contracts import PREDICTIONS, write_table

HOUR = 3_600_000
SYMBOLS = ("BTC/USD", "BTC/USDT")
# OHLC_NOW_MS is 2022-06-01 00:30: the newest closed candle opened 2022-05-31 23:00.
FIRST = OHLC_NOW_MS - OHLC_NOW_MS % HOUR - HOUR
# Per candle (open time): +1 = enter at the next open, -1 = exit at the next open.
SIGNALS = {0: 1.0, 1: 1.0, 2: -1.0, 3: 1.0, 4: 1.0}
START_CASH = 10_000.0
# How long a child process gets to reach a state or to end: generous, for a loaded machine (a
# deadline that only a broken loop misses, never a measure of speed).
WAIT_S = 90.0

RunCli = Callable[..., Result]


def _predictions(path: Path, signals: dict[int, float] | None = None) -> Path:
    """predictions/1 for both symbols over the test's candles (hours FIRST + k; -1 where
    ``signals`` says nothing)."""
    sig = SIGNALS if signals is None else signals
    rows = []
    for s in SYMBOLS:
        for k in range(-2, 12):
            rows.append((s, FIRST + k * HOUR, sig.get(k, -1.0)))
    df = pd.DataFrame(rows, columns=["symbol", "ts", "prediction"])
    df["timestamp"] = pd.to_datetime(df.pop("ts"), unit="ms", utc=True).dt.as_unit("ms")
    write_table(df[["symbol", "timestamp", "prediction"]], path, PREDICTIONS, {})
    return path


def _env(kraken_env: dict[str, str], tmp: Path, **extra: str) -> dict[str, str]:
    return {
        **kraken_env,
        "TRADEKIT_EXCHANGE__SYMBOLS": ",".join(SYMBOLS),
        "TRADEKIT_DATA__STORE": str(tmp / "store"),
        "TRADEKIT_RUN__STATE": str(tmp / "state" / "ledger.db"),
        "TRADEKIT_RUN__MODEL": str(tmp / "models" / "current"),
        "TRADEKIT_RUN__POLL_S": "0.1",
        **extra,
    }


def _db(tmp: Path) -> sqlite3.Connection:
    db = sqlite3.connect(tmp / "state" / "ledger.db")
    db.row_factory = sqlite3.Row
    return db


def _q(tmp: Path, sql: str, *args: Any) -> list[sqlite3.Row]:
    db = _db(tmp)
    try:
        return list(db.execute(sql, args))
    finally:
        db.close()


def _status(run_cli: RunCli, env: dict[str, str]) -> dict[str, Any]:
    r = run_cli("status", "--json", env=env)
    assert r.code == 0, r.err
    doc: dict[str, Any] = json.loads(r.out)
    return doc


def _one_line_error(r: Result | subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    rc = r.code if isinstance(r, Result) else r.returncode
    err = r.err if isinstance(r, Result) else r.stderr
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == code, err
    assert "Traceback" not in err
    msg = lines[-1]
    assert msg.startswith("tradekit: error:"), err
    for w in words:
        assert w in msg, msg
    return msg


# -- 1. paper trading in real time, one candle per --once ------------------------------------
def test_paper_once_cycles_record_every_candle(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    env = _env(kraken_env, tmp_path)
    for _ in range(5):
        r = run_cli("run", "--once", "-p", str(preds), "--json", env=env)
        assert r.code == 0, r.err
        summary = json.loads(r.out)
        assert summary["mode"] == "paper" and summary["cycles"] == 1
        assert summary["exit"] == "stopped"
        kraken.state.now_ms += HOUR
    candles = [FIRST + k * HOUR for k in range(5)]

    # Idempotent: the same clock again closes no new candle and records nothing.
    kraken.state.now_ms -= HOUR
    before = _q(tmp_path, "SELECT count(*) FROM decisions")[0][0]
    r = run_cli("run", "--once", "-p", str(preds), "--json", env=env)
    assert r.code == 0, r.err
    assert json.loads(r.out)["cycles"] == 0
    assert _q(tmp_path, "SELECT count(*) FROM decisions")[0][0] == before

    closes = _q(
        tmp_path,
        "SELECT candle_ms, symbol, action, reason, prediction, model_version FROM decisions "
        "WHERE phase = 'close' ORDER BY candle_ms, symbol",
    )
    assert [(c["candle_ms"], c["symbol"]) for c in closes] == [
        (t, s) for t in candles for s in sorted(SYMBOLS)
    ]
    for c in closes:
        k = (c["candle_ms"] - FIRST) // HOUR
        assert c["prediction"] == SIGNALS[k]
        assert c["model_version"] == "file:preds.parquet"
    # Entries at the opens after candles 0 and 3, one exit at the open after candle 2.
    enters = _q(tmp_path, "SELECT candle_ms, symbol FROM decisions WHERE action = 'enter'")
    assert sorted((r["candle_ms"], r["symbol"]) for r in enters) == [
        (FIRST + k * HOUR, s) for k in (1, 4) for s in sorted(SYMBOLS)
    ]

    trades = _q(tmp_path, "SELECT * FROM trades ORDER BY symbol")
    assert [t["symbol"] for t in trades] == sorted(SYMBOLS)
    for t in trades:
        assert (t["entry_ms"], t["exit_ms"]) == (FIRST + HOUR, FIRST + 3 * HOUR)
        assert t["exit_reason"] == "exit_signal"
    fills = _q(tmp_path, "SELECT * FROM fills")
    assert len(fills) == 3 * len(SYMBOLS)  # buy, sell, buy per symbol
    positions = _q(tmp_path, "SELECT * FROM positions ORDER BY symbol")
    assert [p["symbol"] for p in positions] == sorted(SYMBOLS)
    assert all(p["entry_ms"] == FIRST + 4 * HOUR for p in positions)

    # Cash: start - fees + realized P&L - cost of what is held (cost includes its entry fee).
    pnl = sum(t["pnl"] for t in trades)
    held_cost = sum(p["cost"] for p in positions)
    fees = sum(f["fee"] for f in fills)
    flows = sum((-1 if f["side"] == "buy" else 1) * f["qty"] * f["price"] for f in fills)
    snap = _status(run_cli, env)
    assert snap["cash"] == pytest.approx(START_CASH + pnl - held_cost, rel=1e-9)
    assert snap["cash"] == pytest.approx(START_CASH + flows - fees, rel=1e-9)
    assert snap["fees_paid"] == pytest.approx(fees, rel=1e-9)
    assert fees > 0

    assert snap["mode"] == "paper" and snap["running"] is False and snap["paused"] is False
    assert snap["model_version"] == "file:preds.parquet"
    assert snap["last_candle_ms"] == candles[-1]
    assert snap["realized_pnl_total"] == pytest.approx(pnl)
    assert snap["trades_total"] == 2
    value = 0.0
    for p, row in zip(snap["positions"], positions, strict=True):
        assert p["symbol"] == row["symbol"]
        assert p["unrealized_pnl"] == pytest.approx(row["qty"] * row["last_price"] - row["cost"])
        value += row["qty"] * row["last_price"]
    assert snap["equity"] == pytest.approx(snap["cash"] + value, rel=1e-9)
    eq = _q(tmp_path, "SELECT equity, peak FROM equity ORDER BY candle_ms")
    assert len(eq) == 5
    peak = max(e["equity"] for e in eq)
    assert snap["drawdown"] == pytest.approx(1 - eq[-1]["equity"] / peak, abs=1e-12)
    assert snap["drawdown"] >= 0
    assert set(snap["last_decisions"]) == set(SYMBOLS)

    text = run_cli("status", env=env)
    assert text.code == 0, text.err
    assert "mode       paper (stopped)" in text.out
    assert "model      file:preds.parquet" in text.out
    assert "positions  2" in text.out
    for s in SYMBOLS:
        assert f"  {s}" in text.out
    assert f"total {snap['realized_pnl_total']:,.2f} (2 trades)" in text.out
    # No private endpoint in paper mode.
    assert not [p for p, _ in kraken.state.requests if p.startswith("/0/private/")]


# -- a loop in the background ---------------------------------------------------------------
class Loop:
    """``tradekit run`` as a child process, its output in files (no pipe to fill up)."""

    def __init__(self, tmp: Path, env: dict[str, str], *args: str) -> None:
        self.log = tmp / "loop.log"
        with self.log.open("w") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tradekit", "run", *args],
                env=cli_env(**env),
                stdout=fh,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def output(self) -> str:
        return self.log.read_text()

    def wait_for(self, what: str, ok: Callable[[], bool], timeout: float = WAIT_S) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if ok():
                    return
            except sqlite3.OperationalError:
                pass  # the ledger is not created yet
            if self.proc.poll() is not None:
                pytest.fail(
                    f"loop exited {self.proc.returncode} waiting for {what}:\n{self.output()}"
                )
            time.sleep(0.05)
        pytest.fail(f"timed out waiting for {what}:\n{self.output()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _count(tmp: Path, sql: str, *args: Any) -> int:
    return int(_q(tmp, sql, *args)[0][0])


def test_pause_resume_kill_while_running(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    # Candle 0 says wait; 1 and 2 say enter. The server clock sits just before each close,
    # so the loop checks the exchange every poll and a clock step closes exactly one candle.
    preds = _predictions(tmp_path / "preds.parquet", {0: -1.0, 1: 1.0, 2: 1.0, 3: 1.0})
    kraken.state.now_ms = FIRST + 2 * HOUR - 100
    env = _env(kraken_env, tmp_path)
    loop = Loop(tmp_path, env, "-p", str(preds))
    try:
        loop.wait_for(
            "the first candle", lambda: _count(tmp_path, "SELECT count(*) FROM equity") == 1
        )
        snap = _status(run_cli, env)
        assert snap["running"] is True and snap["state"] == "running"
        assert snap["pid"] == loop.proc.pid

        r = run_cli("pause", env=env)
        assert r.code == 0, r.err
        assert "the running loop applies it within one poll" in r.err + r.out
        loop.wait_for(
            "pause applied",
            lambda: _count(tmp_path, "SELECT count(*) FROM controls WHERE done_ms IS NULL") == 0,
        )
        (ctl,) = _q(tmp_path, "SELECT * FROM controls")
        assert ctl["command"] == "pause" and ctl["result"].startswith("paused")
        assert _status(run_cli, env)["paused"] is True

        kraken.state.now_ms += HOUR  # candle 1 closes: signal to enter at the open of 2
        loop.wait_for(
            "paused entries",
            lambda: (
                _count(tmp_path, "SELECT count(*) FROM decisions WHERE reason = 'paused'")
                == len(SYMBOLS)
            ),
        )
        skipped = _q(tmp_path, "SELECT * FROM decisions WHERE reason = 'paused'")
        assert {(d["candle_ms"], d["action"]) for d in skipped} == {(FIRST + 2 * HOUR, "skip")}
        assert _count(tmp_path, "SELECT count(*) FROM positions") == 0

        assert run_cli("resume", env=env).code == 0
        loop.wait_for(
            "resume applied",
            lambda: _count(tmp_path, "SELECT count(*) FROM controls WHERE done_ms IS NULL") == 0,
        )
        assert _status(run_cli, env)["paused"] is False
        kraken.state.now_ms += HOUR  # candle 2 closes: enter at the open of 3
        loop.wait_for(
            "entries", lambda: _count(tmp_path, "SELECT count(*) FROM positions") == len(SYMBOLS)
        )

        assert run_cli("kill", env=env).code == 0
        # The loop ends by itself once it applies the kill (no signal, no clock step).
        rc = loop.proc.wait(timeout=WAIT_S)
        assert rc == 0, loop.output()
    finally:
        loop.stop()
    assert _count(tmp_path, "SELECT count(*) FROM positions") == 0
    trades = _q(tmp_path, "SELECT * FROM trades ORDER BY symbol")
    assert [(t["symbol"], t["exit_reason"]) for t in trades] == [
        (s, "kill") for s in sorted(SYMBOLS)
    ]
    sells = _q(tmp_path, "SELECT * FROM fills WHERE side = 'sell'")
    assert len(sells) == len(SYMBOLS)
    (run,) = _q(tmp_path, "SELECT * FROM runs")
    assert run["exit"] == "killed" and run["stopped_ms"] is not None
    snap = _status(run_cli, env)
    assert snap["paused"] is True and snap["running"] is False
    assert snap["positions"] == [] and snap["trades_total"] == len(SYMBOLS)
    assert "paused" in snap["state"]
    # The cash adds up after the kill: everything sold, nothing held.
    fills = _q(tmp_path, "SELECT * FROM fills")
    flows = sum((-1 if f["side"] == "buy" else 1) * f["qty"] * f["price"] - f["fee"] for f in fills)
    assert snap["cash"] == pytest.approx(START_CASH + flows, rel=1e-9)


# -- 3. SIGTERM, 4. sd_notify ----------------------------------------------------------------
def _notify_socket(path_or_name: str | Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = str(path_or_name)
    s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
    s.settimeout(0.05)
    return s


def _datagrams(s: socket.socket) -> list[str]:
    got = []
    while True:
        try:
            got.append(s.recv(4096).decode())
        except (TimeoutError, BlockingIOError):
            return got


def test_sigterm_stops_after_the_cycle_and_keeps_positions(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    sock = _notify_socket(tmp_path / "notify.sock")
    env = _env(kraken_env, tmp_path, NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    loop = Loop(tmp_path, env, "-p", str(preds))
    got: list[str] = []

    def ready() -> bool:
        got.extend(_datagrams(sock))
        return "READY=1" in "".join(got)

    try:
        loop.wait_for("READY=1", ready)
        assert _count(tmp_path, "SELECT count(*) FROM positions") == len(SYMBOLS)
        loop.proc.send_signal(signal.SIGTERM)
        assert loop.proc.wait(timeout=WAIT_S) == 130, loop.output()  # a clean stop by signal
    finally:
        loop.stop()
        got.extend(_datagrams(sock))
        sock.close()
    assert got[0].startswith("READY=1\nSTATUS=paper loop up")
    assert got[-1] == "STOPPING=1"
    (run,) = _q(tmp_path, "SELECT * FROM runs")
    assert run["exit"] == "signal SIGTERM" and run["stopped_ms"] is not None
    assert _count(tmp_path, "SELECT count(*) FROM positions") == len(SYMBOLS)
    assert _count(tmp_path, "SELECT count(*) FROM trades") == 0
    assert "signal SIGTERM" in loop.output()
    assert "Traceback" not in loop.output()


@pytest.mark.parametrize("where", ["path", "abstract"])
def test_sd_notify_ready_watchdog_stopping(
    run_cli: RunCli,
    kraken: KrakenServer,
    kraken_env: dict[str, str],
    tmp_path: Path,
    where: str,
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    addr = str(tmp_path / "n.sock") if where == "path" else f"@tradekit-test-{os.getpid()}"
    sock = _notify_socket(addr)
    try:
        env = _env(kraken_env, tmp_path, NOTIFY_SOCKET=addr, WATCHDOG_USEC="2000000")
        r = run_cli("run", "--once", "-p", str(preds), env=env)
        assert r.code == 0, r.err
        got = _datagrams(sock)
    finally:
        sock.close()
    assert got == ["READY=1\nSTATUS=paper loop up", "WATCHDOG=1", "STOPPING=1"]


def test_sd_notify_watchdog_only_for_its_pid(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    """WATCHDOG_PID names another process (a wrapper's): no watchdog pings from this one."""
    preds = _predictions(tmp_path / "preds.parquet")
    sock = _notify_socket(tmp_path / "n.sock")
    try:
        env = _env(
            kraken_env,
            tmp_path,
            NOTIFY_SOCKET=str(tmp_path / "n.sock"),
            WATCHDOG_USEC="2000000",
            WATCHDOG_PID="1",
        )
        assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
        got = _datagrams(sock)
    finally:
        sock.close()
    assert got == ["READY=1\nSTATUS=paper loop up", "STOPPING=1"]


# -- 5. refused inputs: one line, the documented exit code, nothing sent ----------------------
def _no_orders(kraken: KrakenServer) -> None:
    assert kraken.state.count("/0/private/AddOrder") == 0
    assert not [p for p, _ in kraken.state.requests if p.startswith("/0/private/")]


def test_missing_model_dir(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    r = run_cli("run", "--once", env=_env(kraken_env, tmp_path))
    _one_line_error(r, 3, str(tmp_path / "models" / "current"), "manifest.json missing")
    assert kraken.state.requests == []
    assert not (tmp_path / "state" / "ledger.db").exists()


def test_corrupt_state_db_is_refused_and_left_alone(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    db = tmp_path / "state" / "ledger.db"
    db.parent.mkdir()
    junk = np.random.default_rng(7).bytes(8192)
    db.write_bytes(junk)
    env = _env(kraken_env, tmp_path)
    r = run_cli("run", "--once", "-p", str(preds), env=env)
    _one_line_error(r, 3, str(db), "not a readable tradekit ledger")
    assert db.read_bytes() == junk
    assert kraken.state.requests == []
    for cmd in (("status",), ("pause",)):
        _one_line_error(run_cli(*cmd, env=env), 3, str(db))
    assert db.read_bytes() == junk


def test_foreign_sqlite_file_is_refused(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    db = tmp_path / "state" / "ledger.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        con.execute("INSERT INTO notes (text) VALUES ('mine')")
    con.close()
    r = run_cli("run", "--once", "-p", str(preds), env=_env(kraken_env, tmp_path))
    _one_line_error(r, 3, str(db), "not a tradekit ledger")
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master")]
    con.close()
    assert tables == ["notes"]
    assert kraken.state.requests == []


@pytest.mark.parametrize(
    ("args", "extra", "code", "words"),
    [
        ((), {"TRADEKIT_EXCHANGE__SYMBOLS": ""}, 3, ("symbols is empty",)),
        (("--live",), {}, 2, ("--live needs [run] mode",)),
        ((), {"TRADEKIT_RUN__MODE": "live"}, 2, ("--live was not given",)),
        (
            ("--live",),
            {"TRADEKIT_RUN__MODE": "live", "TRADEKIT_EXCHANGE_SECRET": "c2VjcmV0"},
            3,
            ("TRADEKIT_EXCHANGE_API_KEY", "never give it Withdraw"),
        ),
        (
            ("--live",),
            {"TRADEKIT_RUN__MODE": "live"},
            3,
            ("TRADEKIT_EXCHANGE_API_KEY and TRADEKIT_EXCHANGE_SECRET", "Withdraw"),
        ),
    ],
    ids=["no-symbols", "live-flag-paper-config", "live-config-no-flag", "no-key", "no-secrets"],
)
def test_refused_configurations(
    run_cli: RunCli,
    kraken: KrakenServer,
    kraken_env: dict[str, str],
    tmp_path: Path,
    args: tuple[str, ...],
    extra: dict[str, str],
    code: int,
    words: tuple[str, ...],
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    env = _env(kraken_env, tmp_path, **extra)
    r = run_cli("run", "--once", *args, "-p", str(preds), env=env)
    _one_line_error(r, code, *words)
    assert kraken.state.requests == []
    assert not (tmp_path / "state" / "ledger.db").exists()


def test_paper_ledger_is_not_reused_for_live(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    env = _env(kraken_env, tmp_path)
    assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
    n = len(kraken.state.requests)
    decisions = _count(tmp_path, "SELECT count(*) FROM decisions")
    live = {
        **env,
        "TRADEKIT_EXCHANGE__SYMBOLS": "BTC/USD",  # live keeps one quote currency
        "TRADEKIT_RUN__MODE": "live",
        "TRADEKIT_EXCHANGE_API_KEY": "key",
        "TRADEKIT_EXCHANGE_SECRET": "c2VjcmV0",
    }
    r = run_cli("run", "--once", "--live", "-p", str(preds), env=live)
    _one_line_error(r, 3, str(tmp_path / "state" / "ledger.db"), "ledger of a paper run")
    assert len(kraken.state.requests) == n  # refused before the exchange was asked anything
    _no_orders(kraken)
    assert _count(tmp_path, "SELECT count(*) FROM decisions") == decisions
    assert _count(tmp_path, "SELECT count(*) FROM runs") == 1


# -- 6. the ledger itself ---------------------------------------------------------------------
_HISTORY_ROWS = {
    "decisions": "INSERT INTO decisions (candle_ms, symbol, phase, action, reason, created_ms) "
    "VALUES (1, 'BTC/USD', 'close', 'wait', 'none', 1)",
    "fills": "INSERT INTO fills (order_key, seq, symbol, side, qty, price, value, fee, reason, "
    "candle_ms, created_ms) VALUES ('k', 1, 'BTC/USD', 'buy', 1, 1, 1, 0, 'x', 1, 1)",
    "trades": "INSERT INTO trades (symbol, entry_ms, exit_ms, entry_price, exit_price, qty, fees, "
    "pnl, pnl_pct, exit_reason, entry_reason, mae, partial_exits, created_ms) "
    "VALUES ('BTC/USD', 1, 2, 1, 1, 1, 0, 0, 0, 'x', 'y', 0, 0, 1)",
    "equity": "INSERT INTO equity (candle_ms, equity, cash, exposure, peak, created_ms) "
    "VALUES (1, 1, 1, 0, 1, 1)",
    "events": "INSERT INTO events (ts_ms, level, kind, message) VALUES (1, 'info', 'x', 'y')",
}


def test_history_tables_are_append_only(tmp_path: Path) -> None:
    from tradekit.ledger import Ledger

    path = tmp_path / "l.db"
    Ledger(path).close()
    con = sqlite3.connect(path, isolation_level=None)
    try:
        for table, insert in _HISTORY_ROWS.items():
            con.execute(insert)
            with pytest.raises(sqlite3.IntegrityError, match=f"{table} is append-only"):
                con.execute(
                    f"UPDATE {table} SET created_ms = 5"
                    if table != "events"
                    else "UPDATE events SET ts_ms = 5"
                )
            with pytest.raises(sqlite3.IntegrityError, match=f"{table} is append-only"):
                con.execute(f"DELETE FROM {table}")
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 1
        # State tables stay writable: orders change status, positions are rewritten.
        con.execute("INSERT INTO controls (command, requested_ms) VALUES ('pause', 1)")
        con.execute("UPDATE controls SET done_ms = 2")
    finally:
        con.close()


def test_newer_ledger_schema_is_refused(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    from tradekit.ledger import VERSION, Ledger

    preds = _predictions(tmp_path / "preds.parquet")
    db = tmp_path / "state" / "ledger.db"
    Ledger(db).close()
    con = sqlite3.connect(db)
    con.execute(f"PRAGMA user_version = {VERSION + 1}")
    con.close()
    env = _env(kraken_env, tmp_path)
    r = run_cli("run", "--once", "-p", str(preds), env=env)
    _one_line_error(r, 3, str(db), f"schema version {VERSION + 1} is newer", "upgrade tradekit")
    assert kraken.state.requests == []
    _one_line_error(run_cli("status", env=env), 3, str(db), f"schema version {VERSION + 1}")
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == VERSION + 1
    con.close()


def test_status_and_controls_without_a_ledger(run_cli: RunCli, tmp_path: Path) -> None:
    env = {"TRADEKIT_RUN__STATE": str(tmp_path / "nowhere" / "l.db")}
    for cmd in (("status",), ("status", "--json"), ("pause",), ("kill",)):
        r = run_cli(*cmd, env=env)
        _one_line_error(r, 3, str(tmp_path / "nowhere" / "l.db"), "no ledger here")
        assert r.out == ""
    assert not (tmp_path / "nowhere").exists()


def _kill_between_runs(run_cli: RunCli, env: dict[str, str], preds: Path) -> dict[str, Any]:
    """Enter both symbols, request a kill with no loop running, apply it with the next run."""
    assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
    r = run_cli("kill", env=env)
    assert r.code == 0, r.err
    assert "no loop is running" in r.err + r.out
    r = run_cli("run", "--once", "-p", str(preds), "--json", env=env)
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["exit"] == "killed" and summary["cycles"] == 0
    return _status(run_cli, env)


def test_kill_applied_by_the_next_run(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    env = _env(kraken_env, tmp_path)
    snap = _kill_between_runs(run_cli, env, _predictions(tmp_path / "preds.parquet"))
    assert snap["positions"] == [] and snap["paused"] is True
    trades = _q(tmp_path, "SELECT * FROM trades")
    assert sorted(t["symbol"] for t in trades) == sorted(SYMBOLS)
    assert {t["exit_reason"] for t in trades} == {"kill"}
    fills = _q(tmp_path, "SELECT * FROM fills")
    flows = sum((-1 if f["side"] == "buy" else 1) * f["qty"] * f["price"] - f["fee"] for f in fills)
    assert snap["cash"] == pytest.approx(START_CASH + flows, rel=1e-9)
    assert snap["realized_pnl_total"] == pytest.approx(flows, rel=1e-9)
    # A killed bot stays out: the next candle's entry signal is skipped until `resume`.
    kraken.state.now_ms += HOUR
    assert (
        run_cli(
            "run", "--once", "-p", str(_predictions(tmp_path / "p2.parquet", {1: 1.0})), env=env
        ).code
        == 0
    )
    assert _count(tmp_path, "SELECT count(*) FROM positions") == 0
    assert _count(tmp_path, "SELECT count(*) FROM decisions WHERE reason = 'paused'") == len(
        SYMBOLS
    )


def test_status_equity_after_kill_is_the_cash(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    env = _env(kraken_env, tmp_path)
    snap = _kill_between_runs(run_cli, env, _predictions(tmp_path / "preds.parquet"))
    assert snap["positions"] == []
    assert snap["equity"] == pytest.approx(snap["cash"], rel=1e-9)


def test_kill_trade_exits_after_it_entered(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    env = _env(kraken_env, tmp_path)
    _kill_between_runs(run_cli, env, _predictions(tmp_path / "preds.parquet"))
    trades = _q(tmp_path, "SELECT * FROM trades")
    assert trades
    for t in trades:
        assert t["exit_ms"] >= t["entry_ms"], dict(t)
    sells = _q(tmp_path, "SELECT candle_ms FROM fills WHERE side = 'sell'")
    buys = _q(tmp_path, "SELECT candle_ms FROM fills WHERE side = 'buy'")
    assert min(s[0] for s in sells) >= max(b[0] for b in buys)


# -- 7. the deployed model: refused when it does not fit, reloaded when it changes ------------
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny LightGBM models on the offline sample (feature set "minimal": no context symbols,
    so the loop needs only its own): two at 1h (different trees, so different versions) and
    one at 4h."""
    from tradekit.cli.main import main

    d = tmp_path_factory.mktemp("models")
    out: dict[str, Path] = {}
    wf = ["--train-window", "300", "--test-window", "100", "--step", "100", "--threads", "1"]
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("TRADEKIT_")]:
            mp.delenv(var)
        for name, tf, since, until, trees in (
            ("a", "1h", "2019-01-01", "2019-02-15", "20"),
            ("b", "1h", "2019-01-01", "2019-02-15", "10"),
            ("h4", "4h", "2018-05-01", "2019-01-01", "10"),
        ):
            mp.setenv("TRADEKIT_MODEL__N_ESTIMATORS", trees)
            o, f = d / f"{name}.ohlcv.parquet", d / f"{name}.features.parquet"
            steps = [
                ["fetch", "--exchange", "sample", "BTC/USD", "-t", tf, "--since", since,
                 "--until", until, "-o", str(o)],
                ["featurize", str(o), "--feature-set", "minimal", "-o", str(f)],
                ["train", str(f), "-o", str(d / name), *wf],
            ]  # fmt: skip
            for argv in steps:
                assert main(argv) == 0, argv
            out[name] = d / name
    return out


def _deploy(src: Path, dst: Path) -> None:
    """Model files first, the manifest last and atomically (what `deploy` does on the Pi)."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name != "manifest.json":
            shutil.copy2(f, dst / f.name)
    tmp = dst / ".manifest.json.tmp"
    shutil.copy2(src / "manifest.json", tmp)
    os.replace(tmp, dst / "manifest.json")


def _version(model_dir: Path) -> str:
    from tradekit.models.predict import load_model

    return load_model(model_dir).version


def test_model_of_another_timeframe_is_refused(
    run_cli: RunCli,
    kraken: KrakenServer,
    kraken_env: dict[str, str],
    tmp_path: Path,
    models: dict[str, Path],
) -> None:
    env = _env(kraken_env, tmp_path, TRADEKIT_EXCHANGE__SYMBOLS="BTC/USD")
    r = run_cli("run", "--once", "--model", str(models["h4"]), env=env)
    _one_line_error(r, 3, str(models["h4"]), "trained on 4h candles", "timeframe is 1h")
    assert kraken.state.requests == []
    assert not (tmp_path / "state" / "ledger.db").exists()


def test_model_driven_once(
    run_cli: RunCli,
    kraken: KrakenServer,
    kraken_env: dict[str, str],
    tmp_path: Path,
    models: dict[str, Path],
) -> None:
    _deploy(models["a"], tmp_path / "models" / "current")
    env = _env(kraken_env, tmp_path)
    r = run_cli("run", "--once", env=env)
    assert r.code == 0, r.err
    version = _version(models["a"])
    closes = _q(tmp_path, "SELECT * FROM decisions WHERE phase = 'close' ORDER BY symbol")
    assert [d["symbol"] for d in closes] == sorted(SYMBOLS)
    for d in closes:
        assert d["candle_ms"] == FIRST and d["model_version"] == version
        assert d["prediction"] is not None and np.isfinite(d["prediction"])
        assert len(d["input_hash"]) == 16
    assert _status(run_cli, env)["model_version"] == version


def test_the_loop_is_lean_and_predicts_as_the_model_does(
    kraken: KrakenServer,
    kraken_env: dict[str, str],
    tmp_path: Path,
    models: dict[str, Path],
) -> None:
    """A real `run` process with a LightGBM model loads none of numba, pandas, pyarrow,
    lightgbm or all of ccxt (the rules run interpreted, the model through treelite, the
    features a candle at a time, the store through a child process), and its predictions are
    the model's own: `predict` on features from `featurize` of the same candles."""
    from tradekit.cli.main import main
    from tradekit.contracts import read_table, write_ohlcv

    current = tmp_path / "models" / "current"
    _deploy(models["a"], current)
    env = _env(kraken_env, tmp_path)
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tradekit", "run", "--once"],
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = {ln.rsplit("|", 1)[1].strip() for ln in r.stderr.splitlines() if "import time:" in ln}
    heavy = {"numba", "pandas", "pyarrow", "lightgbm", "ccxt.binance", "llvmlite"} & loaded
    assert not heavy, heavy
    assert {"treelite.gtil", "ccxt.abstract.kraken"} <= loaded
    # The same candles through the batch path and LightGBM itself.
    from tradekit.live.history import History

    hist = History(list(SYMBOLS), HOUR, 100_000)
    hist.load(tmp_path / "state" / "ledger.candles.npz", "kraken/1h")
    rows = []
    for sym in SYMBOLS:
        for c in hist.rows[sym]:
            rows.append((sym, int(c[0]), *c[1:6]))
    frame = pd.DataFrame(rows, columns=["symbol", "ts", "open", "high", "low", "close", "volume"])
    frame["timestamp"] = pd.to_datetime(frame.pop("ts"), unit="ms", utc=True).dt.as_unit("ms")
    cols = ["symbol", "timestamp", "open", "high", "low", "close", "volume"]
    write_ohlcv(frame[cols], tmp_path / "o.parquet", {"exchange": "kraken", "timeframe": "1h"})
    feats, preds = tmp_path / "f.parquet", tmp_path / "p.parquet"
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("TRADEKIT_")]:
            mp.delenv(var)
        argv = ["featurize", str(tmp_path / "o.parquet"), "--feature-set", "minimal"]
        assert main([*argv, "-o", str(feats)]) == 0
        assert main(["predict", str(models["a"]), str(feats), "-o", str(preds)]) == 0
    want, _ = read_table(preds, PREDICTIONS)
    want = want[want["timestamp"] == pd.Timestamp(FIRST, unit="ms", tz="UTC")]
    got = _q(tmp_path, "SELECT symbol, prediction FROM decisions WHERE phase = 'close'")
    assert {g["symbol"]: g["prediction"] for g in got} == dict(
        zip(want["symbol"], want["prediction"], strict=True)
    )


def test_a_restart_asks_the_exchange_no_markets(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    env = _env(kraken_env, tmp_path)
    assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
    n = kraken.state.count("/0/public/AssetPairs")
    assert n == 1
    kraken.state.now_ms += HOUR
    assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
    assert kraken.state.count("/0/public/AssetPairs") == n  # markets from the cache


def test_model_reload_while_running(
    run_cli: RunCli,
    kraken: KrakenServer,
    kraken_env: dict[str, str],
    tmp_path: Path,
    models: dict[str, Path],
) -> None:
    current = tmp_path / "models" / "current"
    _deploy(models["a"], current)
    va, vb = _version(models["a"]), _version(models["b"])
    assert va != vb
    kraken.state.now_ms = FIRST + 2 * HOUR - 100
    env = _env(kraken_env, tmp_path)
    loop = Loop(tmp_path, env)

    def closes() -> int:
        return _count(
            tmp_path, "SELECT count(DISTINCT candle_ms) FROM decisions WHERE phase = 'close'"
        )

    def model_events() -> list[str]:
        return [
            e[0]
            for e in _q(tmp_path, "SELECT message FROM events WHERE kind = 'model' ORDER BY id")
        ]

    try:
        loop.wait_for("the first candle", lambda: closes() == 1)
        garbage = current / ".garbage.tmp"
        garbage.write_text("{ this is not a manifest")
        os.replace(garbage, current / "manifest.json")
        loop.wait_for("the failed reload", lambda: len(model_events()) == 1)
        (msg,) = model_events()
        assert "failed to load, keeping " + va in msg
        assert str(current) in msg
        (lvl,) = _q(tmp_path, "SELECT level FROM events WHERE kind = 'model'")
        assert lvl[0] == "error"

        kraken.state.now_ms += HOUR  # it keeps trading on the old model
        loop.wait_for("the second candle", lambda: closes() == 2)
        assert loop.proc.poll() is None

        _deploy(models["b"], current)
        loop.wait_for("the reload", lambda: len(model_events()) == 2)
        assert model_events()[1].startswith(f"model reloaded: {va} -> {vb}")
        kraken.state.now_ms += HOUR
        loop.wait_for("the third candle", lambda: closes() == 3)
        assert _status(run_cli, env)["model_version"] == vb
        loop.proc.send_signal(signal.SIGTERM)
        assert loop.proc.wait(timeout=WAIT_S) == 130, loop.output()  # a clean stop by signal
    finally:
        loop.stop()
    by_candle = _q(
        tmp_path,
        "SELECT candle_ms, model_version FROM decisions WHERE phase = 'close' ORDER BY candle_ms",
    )
    want = {FIRST: va, FIRST + HOUR: va, FIRST + 2 * HOUR: vb}
    for d in by_candle:
        assert d["model_version"] == want[d["candle_ms"]], dict(d)
    assert "Traceback" not in loop.output()


# -- downtime and outages ------------------------------------------------------------------------
def test_candles_missed_while_down_are_reported_not_replayed(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    env = _env(kraken_env, tmp_path)
    assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
    kraken.state.now_ms += 3 * HOUR
    assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
    (gap,) = _q(tmp_path, "SELECT * FROM events WHERE kind = 'gap'")
    assert gap["level"] == "warning" and gap["message"].startswith("2 candle(s) passed")
    assert json.loads(gap["data"]) == {"since_ms": FIRST, "until_ms": FIRST + 3 * HOUR}
    closes = _q(tmp_path, "SELECT DISTINCT candle_ms FROM decisions WHERE phase = 'close'")
    assert sorted(c[0] for c in closes) == [FIRST, FIRST + 3 * HOUR]
    # The candles were kept in the loop's candle cache, so features and a restart have them.
    from tradekit.live.history import History

    hist = History(["BTC/USD"], HOUR, 1000)
    hist.load(tmp_path / "state" / "ledger.candles.npz", "kraken/1h")
    # (a predictions-file run keeps the 3 newest candles)
    assert {FIRST + k * HOUR for k in range(1, 4)} <= set(hist.rows["BTC/USD"][:, 0].astype(int))


def test_exchange_outage_does_not_end_the_loop(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    kraken.state.now_ms = FIRST + 2 * HOUR - 100
    env = _env(kraken_env, tmp_path, TRADEKIT_EXCHANGE__RETRIES="1")
    loop = Loop(tmp_path, env, "-p", str(preds))
    try:
        loop.wait_for(
            "the first candle", lambda: _count(tmp_path, "SELECT count(*) FROM equity") == 1
        )
        n = kraken.state.count("/0/public/OHLC")
        kraken.state.faults["/0/public/OHLC"] = ["500"] * 6
        loop.wait_for("the outage", lambda: kraken.state.count("/0/public/OHLC") >= n + 6)
        kraken.state.now_ms += HOUR
        loop.wait_for(
            "the next candle", lambda: _count(tmp_path, "SELECT count(*) FROM equity") == 2
        )
        loop.proc.send_signal(signal.SIGTERM)
        assert loop.proc.wait(timeout=WAIT_S) == 130
    finally:
        loop.stop()


# -- events the phone hears of: a halt that starts mid-run, a restart after a crash ------------
def test_halt_mid_run_and_crash_restart_are_events(
    run_cli: RunCli, kraken: KrakenServer, kraken_env: dict[str, str], tmp_path: Path
) -> None:
    preds = _predictions(tmp_path / "preds.parquet")
    # Any loss (the entry fees are one) breaches a 0.01 % drawdown halt.
    env = _env(kraken_env, tmp_path, TRADEKIT_RISK__MAX_DRAWDOWN_HALT_FRAC="0.0001")
    halts: list[sqlite3.Row] = []
    runs = 0
    while not halts and runs < 5:  # the candle it begins at depends on the prices
        assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
        runs += 1
        halts = _q(tmp_path, "SELECT level, message, data FROM events WHERE kind = 'halt'")
        kraken.state.now_ms += HOUR
    # Announced once, in the cycle where it began, mid-run (before this, only a start
    # announced it).
    assert [tuple(h)[:2] for h in halts] == [
        ("warning", "halted: drawdown (no new entries; exits go on)")
    ]
    began = json.loads(halts[0]["data"])
    assert began["change"] == "start" and began["halt"] == "drawdown"
    assert began["candle_ms"] == FIRST + (runs - 1) * HOUR
    starts = _q(tmp_path, "SELECT kind FROM events WHERE kind IN ('start', 'restart')")
    assert [s[0] for s in starts] == ["start"] * runs

    # A run that died without a clean stop (its runs row never got stopped_ms): the next start
    # says so.
    db = _db(tmp_path)
    db.execute("UPDATE runs SET stopped_ms = NULL WHERE id = (SELECT max(id) FROM runs)")
    db.commit()
    db.close()
    assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
    last = _q(tmp_path, "SELECT level, kind, message FROM events ORDER BY id DESC LIMIT 3")
    kinds = [r["kind"] for r in last]
    assert "restart" in kinds
    row = next(r for r in last if r["kind"] == "restart")
    assert row["level"] == "warning" and "without a clean stop" in row["message"]
