"""`run --live` against a Kraken-speaking exchange simulator on 127.0.0.1, through the real
ccxt client in a real `tradekit` process: faults on every order path, SIGKILL at random
points, stops that fill while the loop is down. After each scenario the ledger must match the
exchange exactly: one exchange order per ledger order, the same fills, cash and holdings."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cli_env
from tests.servers.kraken_sim import KrakenSim
from tradekit.contracts import PREDICTIONS, write_table
from tradekit.live.orders import userref_of

HOUR = 3_600_000
START = 1_654_041_600_000 + 60_000  # 2022-06-01 00:01 UTC, inside the recorded candles


@pytest.fixture
def sim(shared_data: Path) -> Iterator[KrakenSim]:
    with KrakenSim(shared_data, START) as s:
        yield s


def signals(path: Path, period: int = 6) -> None:
    """In for half of every `period` hours, out for the other half."""
    ts = pd.date_range("2022-05-01", "2022-07-01", freq="h", tz="UTC").as_unit("ms")
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


def test_live_killed_at_random_points_matches_exchange(tmp_path: Path, sim: KrakenSim) -> None:
    """SIGKILL somewhere in each cycle (start-up, fetch, between the ledger write and the
    exchange's answer, after it); the next start completes the cycle. Nothing is lost or
    sent twice."""
    args, env = setup(tmp_path, sim)
    rng = np.random.default_rng(5)
    kills = 0
    for i in range(9):
        if i % 2:
            sim.inject("AddOrder", "lost_slow")  # widen the window after an accepted order
        p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(float(rng.uniform(0.4, 1.6)))
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
            kills += 1
        p.wait()
        once(args, env)  # the restart: reconcile, finish the cycle
        sim.advance_to(sim.now_ms + HOUR)
    assert kills >= 3
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
