"""The candle store: appends in any order and any overlap give the same file as one write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradekit.contracts import read_ohlcv, write_ohlcv
from tradekit.data import candles
from tradekit.data.store import Store
from tradekit.errors import InputError

TF = 3_600_000


def series(n: int, symbol: str = "BTC/USD", start: int = 1_600_000_000_000) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    ts = start - start % TF + np.arange(n, dtype=np.int64) * TF
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return candles.normalize(
        pd.DataFrame(
            {
                "symbol": pd.Series([symbol] * n, dtype="str"),
                "timestamp": pd.to_datetime(ts, unit="ms", utc=True),
                "open": close,
                "high": close * 1.01,
                "low": close * 0.99,
                "close": close,
                "volume": rng.random(n),
            }
        )
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 80)), min_size=1, max_size=8))
def test_any_sequence_of_appends_equals_the_union(tmp_path: Path, cuts):
    full = series(200)
    store = Store(tmp_path / f"s{abs(hash(tuple(cuts)))}")
    covered: set[int] = set()
    for start, length in cuts:
        part = full.iloc[start : start + length]
        added = store.append("kraken", "1h", "BTC/USD", part)
        new = set(range(start, min(start + length, 200))) - covered
        assert added == len(new)  # only what is missing is added
        covered |= new
    got = store.read("kraken", "1h", "BTC/USD")
    assert got is not None
    want = full.iloc[sorted(covered)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)


def test_stored_candles_are_never_rewritten(tmp_path: Path):
    store = Store(tmp_path)
    full = series(50)
    store.append("kraken", "1h", "BTC/USD", full.iloc[:30])
    revised = full.iloc[20:40].copy()
    revised["close"] = revised["close"] * 2  # an exchange revising history
    assert store.append("kraken", "1h", "BTC/USD", revised) == 10
    got = store.read("kraken", "1h", "BTC/USD")
    assert got is not None
    pd.testing.assert_frame_equal(got.iloc[:30], full.iloc[:30])


def test_last_ms_comes_from_the_footer(tmp_path: Path):
    store = Store(tmp_path)
    assert store.last_ms("kraken", "1h", "BTC/USD") is None
    full = series(10)
    store.append("kraken", "1h", "BTC/USD", full)
    assert store.last_ms("kraken", "1h", "BTC/USD") == int(
        full["timestamp"].astype("int64").iloc[-1]
    )


def test_a_file_of_another_timeframe_is_refused(tmp_path: Path):
    store = Store(tmp_path)
    path = store.path("kraken", "1h", "BTC/USD")
    write_ohlcv(series(5), path, {"exchange": "kraken", "timeframe": "4h"})
    with pytest.raises(InputError, match="expected kraken/1h"):
        store.append("kraken", "1h", "BTC/USD", series(5, start=1_700_000_000_000))
    df, meta = read_ohlcv(path)
    assert meta["timeframe"] == "4h" and len(df) == 5


def test_fill_gaps_makes_a_regular_grid():
    full = series(24)
    holed = full.drop(index=[3, 4, 10]).reset_index(drop=True)
    filled, added = candles.fill_gaps(holed, TF)
    assert added == 3 and len(filled) == 24
    assert (np.diff(filled["timestamp"].astype("int64")) == TF).all()
    row = filled.iloc[3]
    assert row["volume"] == 0 and row["open"] == row["close"] == holed.iloc[2]["close"]
