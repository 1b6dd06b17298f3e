"""Replay vs backtest: the live engine driven from files gives the backtest's trades and final
equity (one decision path); a replay killed with SIGKILL and resumed gives the same ledger as
one that ran through; the daily-loss halt stops entries and survives a restart."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cli_env
from tradekit.backtest.report import run_backtest
from tradekit.config import load_config
from tradekit.contracts import PREDICTIONS, read_table, write_ohlcv, write_table
from tradekit.live.replay import replay

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC

POLICIES: dict[str, dict[str, Any]] = {
    "signals": {"stoploss": 0.0, "take_profit": 0.0, "trailing_stop": 0.0, "partial_exits": []},
    "stops": {
        "stoploss": 0.02,
        "take_profit": 0.03,
        "trailing_stop": 0.015,
        "partial_exits": [0.01, 0.02],
        "partial_exit_frac": 0.5,
        "persistence": 2,
    },
    "dip": {"dip_entry": True, "dip_frac": 0.01, "dip_lookback": 12, "stoploss": 0.03},
}


def market(path: Path, n: int = 1500, symbols: int = 3, seed: int = 7) -> None:
    """Random-walk candles with gaps: a symbol sometimes has no candle (the backtest's
    'valid' rule), so pending orders wait."""
    rng = np.random.default_rng(seed)
    frames = []
    for j in range(symbols):
        ret = rng.normal(0, 0.01, n)
        close = 100.0 * (j + 1) * np.exp(np.cumsum(ret))
        open_ = close * np.exp(rng.normal(0, 0.002, n))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, n)))
        keep = rng.random(n) > 0.03
        ts = pd.to_datetime(T0 + np.arange(n) * HOUR, unit="ms", utc=True).as_unit("ms")
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"S{j}/USD",
                    "timestamp": ts,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": 1.0,
                }
            )[keep]
        )
    write_ohlcv(pd.concat(frames, ignore_index=True), path, {"exchange": "test", "timeframe": "1h"})


def predictions(ohlcv: Path, path: Path, seed: int = 3) -> None:
    df, _ = read_table(ohlcv, None)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1.0, len(df))
    pred = np.empty(len(df))
    x = 0.0
    for i, e in enumerate(noise):  # AR(1): signals persist a few candles, then turn
        x = 0.85 * x + e
        pred[i] = x
    pred = np.tanh(pred / 3) * 0.02
    pred[rng.random(len(df)) < 0.02] = np.nan
    out = df[["symbol", "timestamp"]].assign(prediction=pred)
    write_table(out, path, PREDICTIONS, {"model_version": "test"})


def config(policy: dict[str, Any], risk: dict[str, Any] | None = None) -> Any:
    cfg = load_config(None)
    pol = replace(cfg.policy, entry_threshold=0.005, exit_threshold=-0.002, **policy)
    base = {
        "max_open_positions": 2,
        "max_position_frac": 0.45,
        "daily_loss_halt_frac": 0.0,
        "max_drawdown_halt_frac": 0.0,
    }
    rsk = replace(cfg.risk, **{**base, **(risk or {})})
    return replace(cfg, policy=pol, risk=rsk)


def ledger_trades(db: Path) -> pd.DataFrame:
    with sqlite3.connect(db) as con:
        return pd.read_sql("SELECT * FROM trades ORDER BY exit_ms, symbol, entry_ms", con)


def compare(cfg: Any, ohlcv: Path, preds: Path, db: Path) -> Any:
    """Replay into ``db`` and backtest the same inputs: the same trades; returns the backtest."""
    res = replay(cfg, ohlcv, preds, db)
    bt = run_backtest(ohlcv, preds, cfg.policy, cfg.risk, cfg.backtest)
    from tradekit import policy as pol
    from tradekit.backtest import kernel as kn

    tr = bt.sim.trades
    ts = bt.market.ts
    want = pd.DataFrame(
        {
            "symbol": [bt.market.symbols[int(i)] for i in tr[:, kn.T_SYM]],
            "entry_ms": ts[tr[:, kn.T_ENTRY_IDX].astype(int)],
            "exit_ms": ts[tr[:, kn.T_EXIT_IDX].astype(int)],
            "entry_price": tr[:, kn.T_ENTRY_PRICE],
            "exit_price": tr[:, kn.T_EXIT_PRICE],
            "qty": tr[:, kn.T_QTY],
            "fees": tr[:, kn.T_FEES],
            "pnl": tr[:, kn.T_PNL],
            "exit_reason": [pol.REASON_NAMES[int(r)] for r in tr[:, kn.T_EXIT_REASON]],
            "partial_exits": tr[:, kn.T_NPART].astype(int),
        }
    )
    want = want[want.exit_reason != "end"]  # still open: the replay leaves them open
    want = want.sort_values(["exit_ms", "symbol", "entry_ms"]).reset_index(drop=True)
    got = ledger_trades(db)
    assert len(want) > 20, "the fixture must trade"
    assert len(got) == len(want)
    for col in ("symbol", "entry_ms", "exit_ms", "exit_reason", "partial_exits"):
        assert got[col].tolist() == want[col].tolist(), col
    for col in ("entry_price", "exit_price", "qty", "fees", "pnl"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-9, err_msg=col)
    assert res.final_equity == pytest.approx(bt.sim.final_equity, rel=1e-9)
    open_bt = int((bt.sim.trades[:, kn.T_EXIT_REASON] == pol.END).sum())
    assert res.open_positions == open_bt
    return bt


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_replay_equals_backtest(tmp_path: Path, name: str) -> None:
    ohlcv, preds = tmp_path / "o.parquet", tmp_path / "p.parquet"
    market(ohlcv)
    predictions(ohlcv, preds)
    compare(config(POLICIES[name]), ohlcv, preds, tmp_path / "l.db")


def test_replay_equals_backtest_with_risk_caps(tmp_path: Path) -> None:
    ohlcv, preds = tmp_path / "o.parquet", tmp_path / "p.parquet"
    market(ohlcv, symbols=4)
    predictions(ohlcv, preds)
    risk = {
        "max_open_positions": 3,
        "max_position_frac": 0.5,
        "max_exposure_frac": 0.8,
        "clusters": {"a": ["S0/USD", "S1/USD"]},
        "cluster_max_frac": 0.5,
        "min_order_value": 50.0,
        "qty_step": 0.001,
    }
    compare(config(POLICIES["stops"], risk), ohlcv, preds, tmp_path / "l.db")


def _halt_periods(db: Path) -> list[tuple[str, int, int | None, str | None]]:
    """The replay's halts from its ledger events, as the backtest report lists them."""
    import json

    with sqlite3.connect(db) as con:
        rows = [json.loads(r[0]) for r in con.execute(
            "SELECT data FROM events WHERE kind = 'halt' ORDER BY id"
        )]  # fmt: skip
    out: list[tuple[str, int, int | None, str | None]] = []
    open_: dict[str, int] = {}
    for d in rows:
        if d["change"] == "start":
            open_[d["halt"]] = len(out)
            out.append((d["halt"], d["candle_ms"], None, None))
        else:
            i = open_.pop(d["halt"])
            out[i] = (out[i][0], out[i][1], d["candle_ms"], d["change"])
    return out


def test_halts_start_and_lift_identically_in_backtest_and_replay(tmp_path: Path) -> None:
    """A tight drawdown halt that lifts after 12 candles and a daily-loss halt that lifts at
    the next UTC day: the same halts, at the same candles, lifted the same way, and the same
    trades."""
    from datetime import datetime

    ohlcv, preds = tmp_path / "o.parquet", tmp_path / "p.parquet"
    market(ohlcv, n=2000)
    predictions(ohlcv, preds)
    risk = {
        "max_drawdown_halt_frac": 0.03,
        "drawdown_halt_candles": 12,
        "daily_loss_halt_frac": 0.015,
    }
    cfg = config(POLICIES["stops"], risk)
    db = tmp_path / "l.db"
    bt = compare(cfg, ohlcv, preds, db)

    def ms(iso: str | None) -> int | None:
        return None if iso is None else int(datetime.fromisoformat(iso).timestamp() * 1000)

    want = [
        (h["kind"], ms(h["started"]), ms(h["lifted"]), h["lifted_by"]) for h in bt.report["halts"]
    ]
    assert _halt_periods(db) == want
    how = {(k, by) for k, _, _, by in want}
    # The fixture exercises every lift rule, not just one.
    assert {("drawdown", "after_candles"), ("daily_loss", "new_day")} <= how, how
    lifted = [(a, b) for k, a, b, by in want if by == "after_candles"]
    assert all(b - a == 12 * HOUR for a, b in lifted)


def test_interpreted_rules_equal_compiled_rules(tmp_path: Path) -> None:
    """`run` executes policy, risk and accounting as plain Python (tradekit.jit): a replay
    process so made equals, row for row, the replay made here with the rules compiled."""
    ohlcv, preds = tmp_path / "o.parquet", tmp_path / "p.parquet"
    market(ohlcv, n=800)
    predictions(ohlcv, preds)
    toml = tmp_path / "t.toml"
    toml.write_text(
        "[policy]\nentry_threshold = 0.005\nexit_threshold = -0.002\nstoploss = 0.02\n"
        "take_profit = 0.03\ntrailing_stop = 0.015\npartial_exits = [0.01, 0.02]\n"
        "[risk]\nmax_open_positions = 2\nmax_position_frac = 0.45\nqty_step = 0.001\n"
        "daily_loss_halt_frac = 0.02\nmax_drawdown_halt_frac = 0.05\ndrawdown_halt_candles = 24\n"
    )
    from tradekit import jit

    assert jit.ENABLED  # this process compiles them
    replay(load_config(str(toml)), ohlcv, preds, tmp_path / "compiled.db")
    args = [sys.executable, "-X", "importtime", "-m", "tradekit", "--config", str(toml), "run"]
    args += ["--replay"]
    args += [str(ohlcv), "-p", str(preds), "--state", str(tmp_path / "interpreted.db")]
    env = {k: v for k, v in cli_env().items() if k != "TRADEKIT_JIT"}
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    loaded = {ln.rsplit("|", 1)[1].strip() for ln in r.stderr.splitlines() if "import time:" in ln}
    assert "tradekit.policy" in loaded and "numba" not in loaded  # the rules ran interpreted
    a, b = _snapshot(tmp_path / "compiled.db"), _snapshot(tmp_path / "interpreted.db")
    assert len(a["trades"]) > 20
    for table in a:
        assert a[table] == b[table], table


def test_replay_resumes_and_is_idempotent(tmp_path: Path) -> None:
    ohlcv, preds = tmp_path / "o.parquet", tmp_path / "p.parquet"
    market(ohlcv, n=600)
    predictions(ohlcv, preds)
    cfg = config(POLICIES["stops"])
    first = replay(cfg, ohlcv, preds, tmp_path / "a.db")
    again = replay(cfg, ohlcv, preds, tmp_path / "a.db")
    assert again.skipped == again.candles  # nothing done twice
    assert again.final_equity == first.final_equity
    assert len(ledger_trades(tmp_path / "a.db")) == first.trades


def _snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as con:
        return {
            "trades": con.execute(
                "SELECT symbol, entry_ms, exit_ms, entry_price, exit_price, qty, fees, pnl, "
                "exit_reason FROM trades ORDER BY exit_ms, symbol, entry_ms"
            ).fetchall(),
            "fills": con.execute(
                "SELECT order_key, qty, price, fee FROM fills ORDER BY order_key"
            ).fetchall(),
            "orders": con.execute(
                "SELECT key, qty, status, filled FROM orders ORDER BY key"
            ).fetchall(),
            "decisions": con.execute(
                "SELECT candle_ms, symbol, phase, action, reason, qty FROM decisions "
                "ORDER BY candle_ms, symbol, phase"
            ).fetchall(),
            "equity": con.execute("SELECT candle_ms, equity FROM equity ORDER BY 1").fetchall(),
        }


def _candles_done(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            return int(con.execute("SELECT count(*) FROM equity").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # not created yet, or busy


def test_replay_killed_at_random_points_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """SIGKILL mid-replay, again and again; the resumed ledger equals an uninterrupted one.
    Each kill lands once the ledger has grown past a random number of candles (watched in
    the ledger itself, so where it lands does not depend on the machine's speed)."""
    ohlcv, preds = tmp_path / "o.parquet", tmp_path / "p.parquet"
    market(ohlcv, n=3000)
    predictions(ohlcv, preds)
    toml = tmp_path / "t.toml"
    toml.write_text(
        "[policy]\nentry_threshold = 0.005\nexit_threshold = -0.002\nstoploss = 0.02\n"
        "take_profit = 0.03\ntrailing_stop = 0.015\npartial_exits = [0.01]\n"
        "[risk]\nmax_open_positions = 2\nmax_position_frac = 0.45\n"
        "daily_loss_halt_frac = 0.0\nmax_drawdown_halt_frac = 0.0\n"
    )
    args = [sys.executable, "-m", "tradekit", "--config", str(toml), "run", "--replay"]
    args += [str(ohlcv), "-p", str(preds)]
    env = cli_env()
    whole = tmp_path / "whole.db"
    subprocess.run([*args, "--state", str(whole)], env=env, check=True, capture_output=True)
    killed = tmp_path / "killed.db"
    rng = np.random.default_rng(11)
    kills = 0
    targets = sorted(int(x) for x in rng.integers(50, 2900, 8))
    for target in targets:
        p = subprocess.Popen([*args, "--state", str(killed)], env=env, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 120
        while _candles_done(killed) < target and p.poll() is None and time.monotonic() < end:
            time.sleep(0.002)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        p.wait()
    done = subprocess.run([*args, "--state", str(killed)], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert kills >= 4, "the kills must land mid-replay"
    a, b = _snapshot(whole), _snapshot(killed)
    for table in a:
        assert a[table] == b[table], table


def test_daily_loss_halt_blocks_entries_and_survives_restart(tmp_path: Path) -> None:
    """Day 1: a position loses 10% -> the 5% daily-loss halt latches; later entry signals
    that day are rejected with the halt's reason, also after a restart mid-day; the next UTC
    day trades again."""
    n = 60
    ts = T0 + np.arange(n) * HOUR
    close = np.full(n, 100.0)
    close[3:10] = 88.0  # the crash, on day 1 (hours 3..9)
    close[10:] = 90.0
    df = pd.DataFrame(
        {
            "symbol": "S0/USD",
            "timestamp": pd.to_datetime(ts, unit="ms", utc=True).as_unit("ms"),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": 1.0,
        }
    )
    pred = np.where(np.arange(n) % 6 == 0, 0.01, -0.01)  # an entry signal every 6 hours
    pred[0] = 0.01
    pred[1:3] = 0.01  # hold through the crash
    full = tmp_path / "o.parquet"
    write_ohlcv(df, full, {"exchange": "test", "timeframe": "1h"})
    half = tmp_path / "half.parquet"
    write_ohlcv(df.iloc[:15], half, {"exchange": "test", "timeframe": "1h"})
    p = tmp_path / "p.parquet"
    write_table(
        df[["symbol", "timestamp"]].assign(prediction=pred), p, PREDICTIONS, {"model_version": "t"}
    )
    ph = tmp_path / "ph.parquet"
    write_table(df[["symbol", "timestamp"]].assign(prediction=pred).iloc[:15], ph, PREDICTIONS, {})
    cfg = config(
        {"stoploss": 0.0, "persistence": 1},
        {
            "daily_loss_halt_frac": 0.05,
            "max_position_frac": 1.0,
            "max_trade_frac": 1.0,
            "max_open_positions": 1,
        },
    )
    db = tmp_path / "l.db"
    replay(cfg, half, ph, db)  # stops at hour 14, mid-day, halted
    replay(cfg, full, p, db)  # the restart carries on from hour 15
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT candle_ms, action, reason FROM decisions WHERE phase = 'open' ORDER BY 1"
        ).fetchall()
    day2 = T0 + 24 * HOUR
    first = [r for r in rows if r[0] < day2]
    second = [r for r in rows if r[0] >= day2]
    assert first[0][1] == "enter"
    halted = [r for r in first[1:] if r[1] == "skip"]
    assert halted and all(r[2] == "reject_daily_loss_halt" for r in halted)
    assert any(r[0] > T0 + 15 * HOUR for r in halted), "the halt held after the restart"
    assert second and second[0][1] == "enter"
