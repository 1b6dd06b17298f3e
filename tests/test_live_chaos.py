"""Money paths under chaos: `run --live` in a real `tradekit` process against the Kraken
simulator through the real ccxt client, SIGKILLed at chosen points (the simulator kills it
right after a request reached it: inside recovery, inside a fresh ledger's first start, right
after an AddOrder or CancelOrder was processed), restarted several candles later, with about a
fifth of the private calls faulted. Afterwards the ledger must equal the exchange to the unit:
every exchange order and fill in the ledger once, no fill the exchange never made, cash and
holdings equal to the balances, each held position with its stop resting on the exchange.

Kill points are requests, not times: where a kill lands does not depend on the machine's
speed."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
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
SYMBOLS = ("BTC/USD", "ETH/USD")
ASSETS = {"BTC/USD": "XXBT", "ETH/USD": "XETH"}


@pytest.fixture
def sim(market: Market) -> Iterator[KrakenSim]:
    with KrakenSim(market, START, hang_s=0.8) as s:
        yield s


def predictions(path: Path, eth_out_ms: int | None = None) -> None:
    """BTC in for 3 of every 6 hours, ETH for 2 of every 5: entries and exits all the time.
    With ``eth_out_ms``: BTC always in, ETH in until that candle, out after it."""
    ts = pd.date_range(*SPAN, freq="h").as_unit("ms")
    k = np.arange(len(ts))
    ms = ts.asi8
    btc = np.where(k % 6 < 3, 1.0, -1.0) if eth_out_ms is None else np.ones(len(ts))
    eth = (
        np.where(k % 5 < 2, 1.0, -1.0)
        if eth_out_ms is None
        else np.where(ms < eth_out_ms, 1.0, -1.0)
    )
    frames = [
        pd.DataFrame({"symbol": s, "timestamp": ts, "prediction": p})
        for s, p in (("BTC/USD", btc), ("ETH/USD", eth))
    ]
    write_table(pd.concat(frames, ignore_index=True), path, PREDICTIONS, {})


def setup(
    tmp: Path, sim: KrakenSim, *, symbols: tuple[str, ...] = SYMBOLS, extra: str = ""
) -> tuple[list[str], dict[str, str]]:
    toml = tmp / "live.toml"
    toml.write_text(
        '[run]\nmode = "live"\norder_deadline_s = 2\npoll_s = 0.2\n'
        f"[exchange]\nsymbols = {json.dumps(list(symbols))}\nrate_limit = false\n"
        "retry_backoff_s = 0.01\nretries = 4\ntimeout_s = 0.5\n"
        "[policy]\nstoploss = 0.01\ntrailing_stop = 0.0\ntake_profit = 0.0\npartial_exits = []\n"
        "[risk]\nmax_position_frac = 0.25\nmax_open_positions = 2\n"
        "daily_loss_halt_frac = 0.0\nmax_drawdown_halt_frac = 0.0\n" + extra
    )
    predictions(tmp / "p.parquet")
    env = cli_env(
        TRADEKIT_EXCHANGE__API_URL=sim.url,
        TRADEKIT_EXCHANGE_API_KEY="testkey",
        TRADEKIT_EXCHANGE_SECRET="c2VjcmV0LWtleQ==",
        TRADEKIT_DATA__STORE=str(tmp / "store"),
        TRADEKIT_RUN__STATE=str(tmp / "live.db"),
    )
    args = [sys.executable, "-m", "tradekit", "--config", str(toml)]
    return args, env


def run_args(args: list[str], *extra: str) -> list[str]:
    return [*args, "run", "--live", *extra, "-p", str(Path(args[-1]).parent / "p.parquet")]


def once(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        run_args(args, "--once"), env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r


def rows(db: Path, sql: str) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return list(con.execute(sql))
    finally:
        con.close()


def engine_doc(db: Path) -> dict:
    return json.loads(rows(db, "SELECT doc FROM engine")[0]["doc"])


def assert_matches(db: Path, sim: KrakenSim, symbols: tuple[str, ...] = SYMBOLS) -> None:
    """The ledger is the exchange's exact, explained copy."""
    orders = {r["key"]: r for r in rows(db, "SELECT * FROM orders")}
    fills: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for f in rows(db, "SELECT * FROM fills"):
        acc = fills[f["order_key"]]
        acc[0] += f["qty"]
        acc[1] += f["value"]
        acc[2] += f["fee"]
    dupes = {r: n for r, n in Counter(o.userref for o in sim.orders).items() if n > 1}
    assert not dupes, f"one userref on several exchange orders: {dupes}"
    by_ref = {r["userref"]: r for r in orders.values()}
    for o in sim.orders:
        row = by_ref.get(o.userref)
        assert row is not None, f"exchange order {o.txid} ({o.side} {o.vol}) unknown to the ledger"
        key = row["key"]
        assert row["status"] != "submitting", key
        assert row["filled"] == pytest.approx(o.vol_exec, abs=1e-12), key
        assert row["booked_qty"] == pytest.approx(o.vol_exec, abs=1e-12), key
        if o.status in ("closed", "canceled"):
            assert row["status"] == o.status, (key, row["status"], o.status)
        qty, value, fee = fills.get(key, [0.0, 0.0, 0.0])
        assert qty == pytest.approx(o.vol_exec, abs=1e-12), f"fills of {key}"
        assert value == pytest.approx(o.cost, abs=1e-8), f"fill value of {key}"
        assert fee == pytest.approx(o.fee, abs=1e-8), f"fees of {key}"
    sim_refs = {o.userref for o in sim.orders}
    for key, row in orders.items():
        assert row["userref"] == userref_of(key)
        if row["userref"] not in sim_refs:  # shown never placed: no fill the exchange never made
            assert row["status"] in ("canceled", "rejected"), (key, row["status"])
            assert row["filled"] == 0 and key not in fills, key
    doc = engine_doc(db)
    assert doc["wallet"]["cash"] == pytest.approx(sim.balances.get("ZUSD", 0.0), abs=1e-6)
    for i, sym in enumerate(symbols):
        held = doc["accounts"][i]["qty"]
        assert held == pytest.approx(sim.balances.get(ASSETS[sym], 0.0), abs=1e-12), sym
        stops = [
            o
            for o in sim.orders
            if o.status == "open"
            and o.ordertype == "stop-loss"
            and o.pair.endswith(ASSETS[sym][1:] + "ZUSD")
        ]
        if held > 0:
            assert len(stops) == 1 and stops[0].vol == pytest.approx(held), (sym, stops)
        else:
            assert stops == [], sym
    assert doc["reconcile_halt"] is None


KILL_POINTS = [
    ("AddOrder", 1),
    ("AddOrder", 2),
    ("CancelOrder", 1),
    ("QueryOrders", 1),
    ("QueryOrders", 3),
    ("OpenOrders", 1),
    ("ClosedOrders", 1),
    ("BalanceEx", 1),
    ("BalanceEx", 2),
    ("Time", 2),
    ("OHLC", 2),
    (None, 0),
]


def test_killed_anywhere_restarted_late_with_faults_the_ledger_equals_the_exchange(
    tmp_path: Path, sim: KrakenSim
) -> None:
    args, env = setup(tmp_path, sim)
    rng = np.random.default_rng(13)
    sim.rng.seed(13)
    db = tmp_path / "live.db"
    # A fresh ledger killed in its first start, before and after its first state is written.
    plan = [("BalanceEx", 1), ("BalanceEx", 2)]
    plan += [KILL_POINTS[int(i)] for i in rng.integers(0, len(KILL_POINTS), 22)]
    kills = 0
    for i, (where, nth) in enumerate(plan):
        sim.fault_rate = 0.2
        p = subprocess.Popen(
            run_args(args, "--once"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        if where is not None:
            sim.kill_after(where, nth, p.pid)
        _, err = p.communicate(timeout=180)
        sim.kill_at = None
        if p.returncode == -signal.SIGKILL:
            kills += 1
        else:
            # Done, or the exchange failed after its retries (exit 4): both end cleanly.
            assert p.returncode in (0, 4), err
            assert "Traceback" not in err and "internal error" not in err, err
        if i == 1 and db.exists():
            # The second kill came after the first state was written: cash, not zero.
            assert engine_doc(db)["wallet"]["cash"] == pytest.approx(10_000.0)
        # Restarted two to four candles later (once in a while at the next one).
        sim.advance_to(sim.now_ms + int(rng.choice([1, 2, 2, 3, 4])) * HOUR)
    assert kills >= 10, f"only {kills} kills landed"
    sim.fault_rate = 0.0
    once(args, env)  # the last restart: everything settles
    assert_matches(db, sim)
    assert sim.count("CancelAllOrdersAfter") == 0  # nothing account-wide, ever
    traded = rows(db, "SELECT count(*) AS n FROM trades")[0]["n"]
    assert traded >= 5, "the run must have traded"
    r = subprocess.run([*args, "reconcile"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "the ledger equals the exchange" in r.stderr


def test_another_symbols_stop_survives_a_crash_mid_order(tmp_path: Path, sim: KrakenSim) -> None:
    args, env = setup(tmp_path, sim)
    # BTC stays in; ETH goes out two hours in: its exit is the order in flight at the crash.
    predictions(tmp_path / "p.parquet", eth_out_ms=START - START % HOUR + HOUR)
    db = tmp_path / "live.db"
    for _ in range(2):  # signals, then entries with their stops
        once(args, env)
        sim.advance_to(sim.now_ms + HOUR)
    resting = [o for o in sim.orders if o.status == "open" and o.ordertype == "stop-loss"]
    assert len(resting) == 2, sim.orders
    btc_stop = next(o for o in resting if o.pair == "XXBTZUSD")
    # ETH's exit reaches the exchange (its stop canceled first, then the market sell); the
    # bot dies before it hears the answer, and stays down for hours.
    p = subprocess.Popen(run_args(args, "--once"), env=env, stderr=subprocess.DEVNULL)
    sim.kill_after("AddOrder", 1, p.pid)
    p.wait(timeout=120)
    assert p.returncode == -signal.SIGKILL
    assert [o.side for o in sim.orders if o.pair == "XETHZUSD"][-1] == "sell"
    sim.advance_to(sim.now_ms + 3 * HOUR)
    assert btc_stop.status == "open" or btc_stop.vol_exec > 0, "BTC's stop was removed"
    assert sim.count("CancelAllOrdersAfter") == 0
    once(args, env)
    assert_matches(db, sim)


def test_a_trade_by_hand_halts_entries_until_adopted(tmp_path: Path, sim: KrakenSim) -> None:
    args, env = setup(tmp_path, sim, symbols=("BTC/USD",))
    db = tmp_path / "live.db"
    once(args, env)
    sim.advance_to(sim.now_ms + HOUR)
    once(args, env)  # in BTC with its stop
    assert engine_doc(db)["accounts"][0]["qty"] > 0
    # The owner buys 0.01 BTC by hand on the same account.
    sim.balances["XXBT"] = round(sim.balances["XXBT"] + 0.01, 10)
    sim.balances["ZUSD"] = round(sim.balances["ZUSD"] - 0.01 * sim.price("XXBTZUSD"), 10)
    sim.advance_to(sim.now_ms + 3 * HOUR)
    r = once(args, env)
    assert "differ" in r.stderr
    doc = engine_doc(db)
    assert doc["reconcile_halt"] is not None
    events = rows(db, "SELECT level, message FROM events WHERE kind = 'reconcile'")
    assert any(e["level"] == "critical" and "XXBT" not in e["message"] for e in events)
    status = subprocess.run([*args, "status", "--json"], env=env, capture_output=True, text=True)
    snap = json.loads(status.stdout)
    assert "reconcile" in snap["state"] and snap["halts"][0]["kind"] == "reconcile"
    check = subprocess.run([*args, "reconcile"], env=env, capture_output=True, text=True)
    assert check.returncode == 1 and "BTC" in check.stderr and "--adopt" in check.stderr
    # While halted, new entries are skipped with the reason, exits go on.
    for _ in range(6):
        sim.advance_to(sim.now_ms + HOUR)
        once(args, env)
    skipped = rows(db, "SELECT reason FROM decisions WHERE action = 'skip'")
    assert "reconcile_difference" in {s["reason"] for s in skipped}
    adopt = subprocess.run([*args, "reconcile", "--adopt"], env=env, capture_output=True, text=True)
    assert adopt.returncode == 0, adopt.stderr
    once(args, env)  # the next run applies it first thing
    adjustments = rows(db, "SELECT asset, reason FROM adjustments")
    assert {a["reason"] for a in adjustments} == {"adopt"}
    assert engine_doc(db)["reconcile_halt"] is None
    assert subprocess.run([*args, "reconcile"], env=env, capture_output=True).returncode == 0
    assert_matches(db, sim, symbols=("BTC/USD",))


def _handles_sigterm(pid: int) -> bool:
    """The process has installed its own SIGTERM handler (Linux: /proc/PID/status SigCgt)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_sigterm_anywhere_in_start_up_is_a_clean_stop(tmp_path: Path, sim: KrakenSim) -> None:
    args, env = setup(tmp_path, sim)
    rng = np.random.default_rng(7)
    for delay in [0.0, *rng.uniform(0.0, 2.5, 11)]:
        p = subprocess.Popen(
            run_args(args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        end = time.monotonic() + 60
        while not _handles_sigterm(p.pid) and p.poll() is None and time.monotonic() < end:
            time.sleep(0.005)
        time.sleep(float(delay))  # anywhere: in imports, opening the ledger, recovery, the loop
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 130, err
        assert "Traceback" not in err and "internal error" not in err, err
        assert "interrupted by SIGTERM" in err
