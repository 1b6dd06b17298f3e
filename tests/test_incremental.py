"""Incremental features: warm + one candle at a time equals ``build_features`` bit for bit.

The property test draws feature sets (families, periods, higher timeframes, a reference
pair), several symbols of random length with gaps, flat stretches (zero spreads: the neutral
values), zero volumes and, sometimes, timestamps off the timeframe's grid (so a bucket can
hold more candles than its ratio and is never complete). Each symbol is warmed from a random
prefix of its candles; the rest arrive interleaved in time order. At random points, and at the
end, the matrix must equal the last row per symbol of ``build_features`` over every candle seen
so far: exact equality (NaN where it is NaN), not a tolerance.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradekit.config import FeaturesConfig
from tradekit.errors import InputError
from tradekit.features import FeatureSpec, build_features, feature_columns, load_spec
from tradekit.features.incremental import IncrementalFeatures
from tradekit.features.sets import FAMILIES

HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC (a Monday)
HTF = tuple(f for f in FAMILIES if f != "time")


def candles(rng: np.random.Generator, n: int, step: int, start: int, jitter: bool) -> np.ndarray:
    """(ms, open, high, low, close, volume) rows of a random walk with flat stretches."""
    if not n:
        return np.empty((0, 6))
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.003, n)))
    volume = rng.lognormal(2, 1, n) * (rng.random(n) > 0.1)  # some candles trade nothing
    if n > 10:  # a flat stretch: no move, no spread
        a = int(rng.integers(0, n - 5))
        b = min(n, a + int(rng.integers(2, 40)))
        close[a:b] = open_[a:b] = high[a:b] = low[a:b] = close[a]
        volume[a:b] = 0.0
    ts = start + np.arange(n, dtype=np.int64) * step
    if jitter:  # off the grid, still rising
        ts = ts + rng.integers(0, step // 2, n)
    return np.column_stack([ts.astype(np.float64), open_, high, low, close, volume])


def as_frame(parts: dict[str, np.ndarray]) -> pd.DataFrame:
    frames = [
        pd.DataFrame(
            {
                "symbol": s,
                "timestamp": pd.to_datetime(r[:, 0].astype(np.int64), unit="ms", utc=True),
                "open": r[:, 1],
                "high": r[:, 2],
                "low": r[:, 3],
                "close": r[:, 4],
                "volume": r[:, 5],
            }
        )
        for s, r in sorted(parts.items())
        if len(r)
    ]
    df = pd.concat(frames, ignore_index=True).astype({"symbol": "str"})
    df["timestamp"] = df["timestamp"].dt.as_unit("ms")
    return df


def assert_matches_batch(inc: IncrementalFeatures, seen: dict[str, np.ndarray], tf: str) -> None:
    spec = inc.spec
    df = as_frame(seen)
    batch, _ = build_features(df, spec, tf, cost=0.002, labels=False, drop_warmup=False, last=1)
    cols = feature_columns(spec)
    got = inc.matrix(cols)
    for i, s in enumerate(inc.symbols):
        if not len(seen[s]):
            assert np.isnan(got[i]).all()
            continue
        want = batch.loc[batch["symbol"] == s, cols].to_numpy(dtype=np.float64)[0]
        np.testing.assert_array_equal(got[i], want, err_msg=f"{s} at {int(seen[s][-1, 0])}")


@st.composite
def specs(draw: st.DrawFn) -> tuple[FeatureSpec, str]:
    tf = draw(st.sampled_from(["1h", "1h", "1h", "1d"]))
    htf = draw(st.sampled_from([(), ("2h",), ("4h",), ("4h", "1d")] if tf == "1h" else [("1w",)]))
    families = st.lists(st.sampled_from(FAMILIES), min_size=1, unique=True)
    spec = FeatureSpec(
        name="prop",
        periods=tuple(sorted(draw(st.sets(st.integers(2, 8), min_size=1, max_size=3)))),
        include_timeframes=htf,
        corr_symbols=draw(st.sampled_from([(), ("BTC/USD",)])),
        returns=tuple(sorted(draw(st.sets(st.integers(1, 4), min_size=1, max_size=2)))),
        macd=draw(st.sampled_from([(2, 4, 2), (3, 6, 3), (3, 7, 2)])),
        indicators=tuple(f for f in FAMILIES if f in draw(families)),
        htf_indicators=tuple(
            f for f in HTF if f in draw(st.lists(st.sampled_from(HTF), min_size=1))
        ),
        corr_indicators=tuple(f for f in FAMILIES if f in draw(families)),
    )
    return spec, tf


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), which=specs())
def test_incremental_equals_batch_bit_for_bit(data: st.DataObject, which: tuple[FeatureSpec, str]):
    spec, tf = which
    step = HOUR if tf == "1h" else DAY
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    jitter = data.draw(st.booleans(), label="off-grid") and tf == "1h"
    names = ["BTC/USD", *data.draw(st.sampled_from([[], ["ETH/USD"], ["ETH/USD", "XRP/USD"]]))]
    rows: dict[str, np.ndarray] = {}
    for s in names:
        n = data.draw(st.integers(1 if s == "BTC/USD" else 0, 260), label=f"{s} candles")
        start = T0 + data.draw(st.integers(0, 30), label=f"{s} start") * step
        r = candles(rng, n, step, start, jitter)
        gaps = data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=6), label="gaps")
        rows[s] = np.delete(r, sorted(set(gaps)), axis=0) if n else r
    if not len(rows["BTC/USD"]):
        rows["BTC/USD"] = candles(rng, 1, step, T0, jitter)
    inc = IncrementalFeatures(spec, tf, names)
    seen: dict[str, np.ndarray] = {}
    for s in names:
        k = data.draw(st.integers(1 if s == "BTC/USD" else 0, len(rows[s])), label=f"{s} warm")
        inc.warm(s, rows[s][:k])
        seen[s] = rows[s][:k]
    events = sorted((r[0], s, i) for s in names for i, r in enumerate(rows[s]) if i >= len(seen[s]))
    checks = set(data.draw(st.lists(st.integers(0, len(events)), max_size=4), label="checks"))
    if 0 in checks or not events:
        assert_matches_batch(inc, seen, tf)
    for j, (_, s, i) in enumerate(events, start=1):
        inc.update(s, rows[s][i])
        seen[s] = rows[s][: i + 1]
        if j in checks or j == len(events):
            assert_matches_batch(inc, seen, tf)


def test_default_set_over_a_long_stream():
    """The default set (every family, 4h context, BTC/USD) over 6,000 hourly candles of two
    symbols, 5,000 of them one at a time: still bit-identical (no drift)."""
    spec = load_spec(FeaturesConfig())
    rng = np.random.default_rng(7)
    rows = {
        "BTC/USD": candles(rng, 6000, HOUR, T0, False),
        "ETH/USD": np.delete(candles(rng, 6000, HOUR, T0 + 5 * HOUR, False), [100, 4000], 0),
    }
    inc = IncrementalFeatures(spec, "1h", list(rows))
    for s, r in rows.items():
        inc.warm(s, r[:1000])
    seen = {s: r[:1000] for s, r in rows.items()}
    for i in range(1000, 6000):
        for s, r in rows.items():
            if i < len(r):
                inc.update(s, r[i])
                seen[s] = r[: i + 1]
        if i in (2500, 5999):
            assert_matches_batch(inc, seen, "1h")
    assert not np.isnan(inc.matrix()).any()  # past every warm-up: real values compared


def test_matrix_takes_the_model_column_order():
    spec = load_spec(FeaturesConfig(), "minimal")
    rng = np.random.default_rng(1)
    inc = IncrementalFeatures(spec, "1h", ["ETH/USD", "BTC/USD"])
    for s in ("ETH/USD", "BTC/USD"):
        inc.warm(s, candles(rng, 300, HOUR, T0, False))
    cols = feature_columns(spec)
    picked = [cols[5], cols[0], cols[-1]]
    np.testing.assert_array_equal(inc.matrix(picked), inc.matrix()[:, [5, 0, len(cols) - 1]])
    assert inc.matrix(picked).shape == (2, 3)
    assert inc.last_ms("BTC/USD") == T0 + 299 * HOUR


@pytest.mark.parametrize(
    ("candle", "message"),
    [
        ([T0 + 10 * HOUR, 1, 1, 1, 1, 1], "times must rise"),
        ([T0 + 20 * HOUR, 1, 1, float("nan"), 1, 1], "empty or non-positive"),
        ([T0 + 20 * HOUR, 1, 1, 0.0, 1, 1], "empty or non-positive"),
        ([T0 + 20 * HOUR, 1, 1, 1, 1], "6 values"),
    ],
)
def test_bad_candles_are_refused(candle: list[float], message: str):
    spec = load_spec(FeaturesConfig(), "minimal")
    inc = IncrementalFeatures(spec, "1h", ["BTC/USD"])
    inc.warm("BTC/USD", candles(np.random.default_rng(2), 11, HOUR, T0, False))
    before = inc.matrix()
    with pytest.raises(InputError, match=message):
        inc.update("BTC/USD", candle)
    np.testing.assert_array_equal(inc.matrix(), before)  # nothing half-applied


def test_unknown_symbol_and_column_are_refused():
    inc = IncrementalFeatures(load_spec(FeaturesConfig(), "minimal"), "1h", ["BTC/USD"])
    with pytest.raises(InputError, match="DOGE/USD"):
        inc.update("DOGE/USD", [T0, 1, 1, 1, 1, 1])
    with pytest.raises(InputError, match="not_a_column"):
        inc.matrix(["not_a_column"])
    bad = dataclasses.replace(load_spec(FeaturesConfig()), include_timeframes=("90m",))
    with pytest.raises(Exception, match="90m"):
        IncrementalFeatures(bad, "1h", ["BTC/USD"])


def test_the_incremental_path_does_not_import_pandas():
    code = (
        "import sys, numpy as np\n"
        "from tradekit.config import FeaturesConfig\n"
        "from tradekit.features import load_spec\n"
        "from tradekit.features.incremental import IncrementalFeatures\n"
        "inc = IncrementalFeatures(load_spec(FeaturesConfig()), '1h', ['BTC/USD'])\n"
        "t = np.arange(3000) * 3600000.0 + 1.7e12\n"
        "c = 100 + np.sin(np.arange(3000))\n"
        "inc.warm('BTC/USD', np.column_stack([t, c, c + 1, c - 1, c, c]))\n"
        "inc.update('BTC/USD', [t[-1] + 3600000, 100, 101, 99, 100, 5])\n"
        "assert not np.isnan(inc.matrix()).all()\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
