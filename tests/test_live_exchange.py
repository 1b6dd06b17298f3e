"""`run --live` against a Kraken-speaking exchange simulator on 127.0.0.1, through the real
ccxt client in a real `tradekit` process: faults on every order path, SIGKILL at random
points, stops that fill while the loop is down. After each scenario the ledger must match the
exchange exactly: one exchange order per ledger order, the same fills, cash and holdings."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import OHLC_NOW_MS, cli_env
from tests.servers.kraken_sim import KrakenSim
from tests.servers.market import Market
from tradekit.contracts import PREDICTIONS, write_table
from tradekit.live.orders import userref_of

HOUR = 3_600_000
# A minute into the server's hour (Kraken's candles: 2022-06-01 00:01 UTC; the sample's:
# 2019-05-23 00:01), with weeks of candles on both sides.
START = OHLC_NOW_MS - OHLC_NOW_MS % HOUR + 60_000
# The predictions span a month before and after it.
SPAN = (
    pd.Timestamp(START - START % (24 * HOUR), unit="ms", tz="UTC") - pd.Timedelta(days=31),
    pd.Timestamp(START - START % (24 * HOUR), unit="ms", tz="UTC") + pd.Timedelta(days=30),
)


@pytest.fixture
def sim(market: Market) -> Iterator[KrakenSim]:
    with KrakenSim(market, START) as s:
        yield s


def signals(path: Path, period: int = 6) -> None:
    """In for half of every `period` hours, out for the other half."""
    ts = pd.date_range(*SPAN, freq="h").as_unit("ms")
    up = (np.arange(len(ts)) % period) < period // 2
    df = pd.DataFrame({"symbol": "BTC/USD", "timestamp": ts, "prediction": np.where(up, 1.0, -1.0)})
    write_table(df, path, PREDICTIONS, {})


def setup(tmp: Path, sim: KrakenSim, stoploss: float = 0.01) -> tuple[list[str], dict[str, str]]:
    toml = tmp / "live.toml"
    toml.write_text(
        '[run]\nmode = "live"\norder_deadline_s = 2\n'
        '[exchange]\nsymbols = ["BTC/USD"]\nrate_limit = false\nretry_backoff_s = 0.01\n'
        "retries = 4\ntimeout_s = 0.6\n"
        f"[policy]\nstoploss = {stoploss}\ntrailing_stop = 0.0\ntake_profit = 0.0\n"
        "partial_exits = []\n"
        "[risk]\nmax_position_frac = 0.25\n"
    )
    signals(tmp / "p.parquet")
    env = cli_env(
        TRADEKIT_EXCHANGE__API_URL=sim.url,
        TRADEKIT_EXCHANGE_API_KEY="testkey",
        TRADEKIT_EXCHANGE_SECRET="c2VjcmV0LWtleQ==",
        TRADEKIT_DATA__STORE=str(tmp / "store"),
    )
    args = [sys.executable, "-m", "tradekit", "--config", str(toml), "run", "--live", "--once"]
    args += ["--state", str(tmp / "live.db"), "-p", str(tmp / "p.parquet")]
    return args, env


def once(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r


def assert_matches(db: Path, sim: KrakenSim) -> None:
    """The ledger and the exchange agree on every order, fill, the cash and the holdings."""
    with sqlite3.connect(db) as con:
        orders = con.execute("SELECT key, userref, status, filled FROM orders").fetchall()
        doc = con.execute("SELECT doc FROM engine").fetchone()[0]
        fills = con.execute("SELECT order_key, qty FROM fills").fetchall()
    import json

    state = json.loads(doc)
    per_ref = Counter(o.userref for o in sim.orders)
    dupes = {r: n for r, n in per_ref.items() if n > 1}
    assert not dupes, f"orders sent twice: {dupes}"
    ledger_refs = {ref for _, ref, _, _ in orders}
    for o in sim.orders:
        assert o.userref in ledger_refs, f"exchange order {o.txid} unknown to the ledger"
    by_ref = {o.userref: o for o in sim.orders}
    for key, ref, status, filled in orders:
        assert ref == userref_of(key)
        o = by_ref.get(ref)
        if o is None:
            assert filled == 0 and status in ("canceled", "rejected"), (key, status)
            continue
        assert filled == pytest.approx(o.vol_exec, abs=1e-12), key
        if o.status in ("closed", "canceled"):
            assert status == o.status, (key, status, o.status)
    filled_keys = {k for k, _, _, f in orders if f > 0}
    assert {k for k, _ in fills} == filled_keys
    assert state["wallet"]["cash"] == pytest.approx(sim.balances.get("ZUSD", 0.0), abs=1e-6)
    held = state["accounts"][0]["qty"]
    assert held == pytest.approx(sim.balances.get("XXBT", 0.0), abs=1e-12)


def test_live_cycles_survive_faults_without_duplicates(tmp_path: Path, sim: KrakenSim) -> None:
    args, env = setup(tmp_path, sim)
    faults = ["lost", "timeout", "500", "ratelimit", "lost_slow", "lost", "busy"]
    for i in range(12):
        if i >= 1 and faults:
            sim.inject("AddOrder", faults.pop(0))
        if i == 6:
            sim.inject("QueryOrders", "500", "timeout")
        once(args, env)
        sim.advance_to(sim.now_ms + HOUR)
    assert not faults, "every fault was consumed by an order"
    assert len(sim.orders) >= 6
    assert_matches(tmp_path / "live.db", sim)


def test_live_killed_mid_cycle_and_restarted_at_once_matches_exchange(
    tmp_path: Path, sim: KrakenSim
) -> None:
    """SIGKILL right after a request reached the exchange (an order, a cancel, a look-up, the
    balance), restart at once, within the same candle: the restart finishes the cycle.
    Nothing is lost or sent twice. (Late restarts: tests/test_live_chaos.py.)"""
    args, env = setup(tmp_path, sim)
    points = [("AddOrder", 1), ("BalanceEx", 1), ("Time", 2), ("OHLC", 1)]
    kills = 0
    for i in range(8):
        where, nth = points[i % len(points)]
        p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sim.kill_after(where, nth, p.pid)
        p.wait(timeout=120)
        sim.kill_at = None
        kills += p.returncode == -signal.SIGKILL
        once(args, env)  # the restart: recover, finish the cycle
        sim.advance_to(sim.now_ms + HOUR)
    assert kills >= 4
    assert_matches(tmp_path / "live.db", sim)


def test_exchange_stop_fills_while_down_and_is_reconciled(tmp_path: Path, sim: KrakenSim) -> None:
    args, env = setup(tmp_path, sim, stoploss=0.002)
    once(args, env)  # signal at the close
    sim.advance_to(sim.now_ms + HOUR)
    once(args, env)  # entry at the open, stop placed on the exchange
    stops = [o for o in sim.orders if o.status == "open"]
    assert len(stops) == 1
    sim.advance_to(sim.now_ms + 12 * HOUR)  # the loop is down; the market trades through
    assert stops[0].status == "closed", "the stop held on the exchange while the loop was down"
    r = once(args, env)
    assert "state recovered" in r.stderr
    with sqlite3.connect(tmp_path / "live.db") as con:
        trades = con.execute("SELECT exit_reason, exit_price FROM trades").fetchall()
        gaps = con.execute("SELECT count(*) FROM events WHERE kind = 'gap'").fetchone()[0]
    assert trades and trades[0][0] == "stoploss"
    assert trades[0][1] == pytest.approx(stops[0].price)
    assert gaps == 1
    assert_matches(tmp_path / "live.db", sim)


def test_take_profit_and_partial_exits_fill_as_in_backtest_and_replay(
    tmp_path: Path, sim: KrakenSim
) -> None:
    """Targets sell at the next open in all three: live against the simulator (a market order
    once the candle closed), the backtest and a replay of the same candles and predictions.
    Same trades, same fills to the exchange's rounding."""
    from dataclasses import replace

    from tradekit.backtest.report import run_backtest
    from tradekit.config import load_config
    from tradekit.live.replay import replay

    toml = tmp_path / "live.toml"
    policy = (
        "[policy]\nentry_threshold = 0.5\nexit_threshold = -0.5\nstoploss = 0.0\n"
        "take_profit = 0.005\npartial_exits = [0.0015, 0.003]\npartial_exit_frac = 0.5\n"
        "[risk]\nmax_position_frac = 0.5\nmax_trade_frac = 0.5\nqty_step = 0.00000001\n"
        "min_order_value = 1.0\ndaily_loss_halt_frac = 0.0\nmax_drawdown_halt_frac = 0.0\n"
        f"[backtest]\nfee = {sim.fee}\nslippage = 0.0\nstarting_balance = 10000.0\n"
    )
    toml.write_text(
        '[run]\nmode = "live"\norder_deadline_s = 2\n'
        '[exchange]\nsymbols = ["BTC/USD"]\nrate_limit = false\nretry_backoff_s = 0.01\n'
        "retries = 4\ntimeout_s = 0.6\n" + policy
    )
    first = START - START % HOUR - HOUR  # the newest closed candle at the first cycle
    ts = pd.date_range(pd.Timestamp(first, unit="ms", tz="UTC"), periods=60, freq="h")
    k = np.arange(len(ts))
    pred = np.where(k % 12 < 9, 1.0, -1.0)  # long most of the time: targets do the exits
    preds = tmp_path / "p.parquet"
    frame = pd.DataFrame({"symbol": "BTC/USD", "timestamp": ts.as_unit("ms"), "prediction": pred})
    write_table(frame, preds, PREDICTIONS, {})
    env = cli_env(
        TRADEKIT_EXCHANGE__API_URL=sim.url,
        TRADEKIT_EXCHANGE_API_KEY="testkey",
        TRADEKIT_EXCHANGE_SECRET="c2VjcmV0LWtleQ==",
        TRADEKIT_DATA__STORE=str(tmp_path / "store"),
    )
    args = [sys.executable, "-m", "tradekit", "--config", str(toml), "run", "--live", "--once"]
    args += ["--state", str(tmp_path / "live.db"), "-p", str(preds)]
    cycles = 24
    for _ in range(cycles):
        once(args, env)
        sim.advance_to(sim.now_ms + HOUR)
    last = first + (cycles - 1) * HOUR  # the last closed candle the loop decided on

    # The backtest and a replay of the candles the exchange served the loop (the 720 before
    # its first cycle and those since), through `last + 1` (where the last decisions filled).
    from tradekit.contracts import write_ohlcv

    rows = sim.candles("XXBTZUSD")
    t = rows[:, 0].astype(np.int64) * 1000
    keep = (t >= first - 720 * HOUR) & (t <= last + HOUR)
    span = pd.DataFrame(
        {"symbol": "BTC/USD", "timestamp": pd.to_datetime(t[keep], unit="ms", utc=True)}
        | {c: rows[keep, i] for i, c in enumerate(("open", "high", "low", "close", "volume"), 1)}
    )
    span["timestamp"] = span["timestamp"].dt.as_unit("ms")
    ohlcv = tmp_path / "o.parquet"
    write_ohlcv(span, ohlcv, {"exchange": "kraken", "timeframe": "1h"})
    base = load_config(None)
    import tomllib

    doc = tomllib.loads(policy)
    cfg = replace(
        base,
        policy=replace(base.policy, **doc["policy"]),
        risk=replace(base.risk, **doc["risk"]),
        backtest=replace(base.backtest, **doc["backtest"]),
    )
    decided = tmp_path / "decided.parquet"  # the predictions the loop decided on
    write_table(frame[frame["timestamp"] <= span["timestamp"].iloc[-2]], decided, PREDICTIONS, {})
    bt = run_backtest(ohlcv, decided, cfg.policy, cfg.risk, cfg.backtest)
    replay(cfg, ohlcv, decided, tmp_path / "replay.db")

    cols = (
        "symbol, entry_ms, exit_ms, entry_price, exit_price, qty, pnl, exit_reason, partial_exits"
    )

    def trades(db: Path) -> list[tuple]:
        with sqlite3.connect(db) as con:
            return con.execute(
                f"SELECT {cols} FROM trades WHERE exit_ms <= ? ORDER BY exit_ms", (last,)
            ).fetchall()

    from tradekit import policy as pol
    from tradekit.backtest import kernel as kn

    tr = bt.sim.trades
    ts_bt = bt.market.ts
    want = [
        ("BTC/USD", int(ts_bt[int(r[kn.T_ENTRY_IDX])]), int(ts_bt[int(r[kn.T_EXIT_IDX])]),
         r[kn.T_ENTRY_PRICE], r[kn.T_EXIT_PRICE], r[kn.T_QTY], r[kn.T_PNL],
         pol.REASON_NAMES[int(r[kn.T_EXIT_REASON])], int(r[kn.T_NPART]))
        for r in tr
        if int(r[kn.T_EXIT_REASON]) != pol.END and ts_bt[int(r[kn.T_EXIT_IDX])] <= last
    ]  # fmt: skip
    live, rep = trades(tmp_path / "live.db"), trades(tmp_path / "replay.db")
    reasons = Counter(t[7] for t in want)
    assert reasons["take_profit"] >= 1 and sum(t[8] for t in want) >= 2, reasons
    for got in (live, rep):
        assert [t[:3] + t[7:] for t in got] == [t[:3] + t[7:] for t in want]
        for g, w in zip(got, want, strict=True):
            assert g[3:5] == pytest.approx(w[3:5], rel=1e-12)  # candle opens, both sides
            assert g[5] == pytest.approx(w[5], rel=1e-6)  # the exchange rounds cash to 1e-8
            assert g[6] == pytest.approx(w[6], rel=1e-5, abs=1e-6)
