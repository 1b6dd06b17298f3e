"""Indicators against TA-Lib on real Binance BTC/USDT hourly candles.

Windowed indicators (SMA, Bollinger, OBV) have no seed and must agree to rounding (1e-10
relative). Recursive ones (EMA, Wilder RSI/ATR/ADX, MACD) start differently: TA-Lib seeds with
the average of the first window, tradekit with the first value. The seed's weight decays
geometrically, so (a) from tradekit's warm-up row on (seed weight below 1e-3) they agree within
1e-3 relative, and (b) after 30 periods (seed weight about e^-30) within 1e-9: the same
recursion, not merely a similar one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradekit.features import indicators as ind
from tradekit.features.sets import converge_rows, converge_rows2

talib = pytest.importorskip("talib")

P = 14
WILDER = 1 + converge_rows(1 / P, 1e-3)  # tradekit's warm-up for Wilder's smoothing


@pytest.fixture(scope="module")
def btc(shared_data: Path) -> dict[str, np.ndarray]:
    path = shared_data / "binance-1h-2024-2026" / "Binance_BTCUSDT_1h.csv"
    # The last two hours were still forming when downloaded (the data README).
    df = pd.read_csv(path).iloc[:-2]
    return {c: df[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close", "volume")}


def max_rel(ours: np.ndarray, ref: np.ndarray, start: int) -> float:
    a, b = ours[start:], ref[start:]
    assert not np.isnan(a).any() and not np.isnan(b).any()
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_sma_bollinger_obv_match_talib_exactly(btc):
    c, v = btc["close"], btc["volume"]
    assert max_rel(ind.sma(c, 20), talib.SMA(c, 20), 19) < 1e-10
    for ours, ref in zip(ind.bbands(c, 20, 2.0), talib.BBANDS(c, 20, 2, 2), strict=True):
        assert max_rel(ours, ref, 19) < 1e-10
    np.testing.assert_allclose(ind.obv(c, v), talib.OBV(c, v), rtol=1e-12)
    # Leading rows without a full window are NaN, like TA-Lib's.
    assert np.isnan(ind.sma(c, 20)[:19]).all() and not np.isnan(ind.sma(c, 20)[19])


@pytest.mark.parametrize(
    ("name", "need"),
    [
        ("rsi", WILDER),
        ("ema", converge_rows(2 / 21, 1e-3)),
        ("atr", WILDER),
        ("plus_di", WILDER),
        ("minus_di", WILDER),
        ("adx", 1 + converge_rows2(1 / P, 1e-3)),
    ],
)
def test_recursive_indicators_converge_to_talib(btc, name, need):
    h, lo, c = btc["high"], btc["low"], btc["close"]
    ours, ref = {
        "rsi": (ind.rsi(c, P), talib.RSI(c, P)),
        "ema": (ind.ema(c, 20), talib.EMA(c, 20)),
        "atr": (ind.atr(h, lo, c, P), talib.ATR(h, lo, c, P)),
        "plus_di": (ind.adx(h, lo, c, P)[1], talib.PLUS_DI(h, lo, c, P)),
        "minus_di": (ind.adx(h, lo, c, P)[2], talib.MINUS_DI(h, lo, c, P)),
        "adx": (ind.adx(h, lo, c, P)[0], talib.ADX(h, lo, c, P)),
    }[name]
    assert max_rel(ours, ref, need) < 1e-3
    assert max_rel(ours, ref, 30 * P) < 1e-9
    # Before convergence they do differ: the seeds really are different.
    assert max_rel(ours, ref, 2 * P) > 1e-6


def test_macd_converges_to_talib(btc):
    c = btc["close"]
    need = converge_rows(2 / 27, 1e-3) + converge_rows(2 / 10, 1e-3)
    for ours, ref in zip(ind.macd(c, 12, 26, 9), talib.MACD(c, 12, 26, 9), strict=True):
        # The MACD line crosses zero, so compare as a fraction of price (as the feature is).
        assert np.max(np.abs(ours - ref)[need:] / c[need:]) < 1e-4
        assert np.max(np.abs(ours - ref)[30 * 26 :] / c[30 * 26 :]) < 1e-12


def test_flat_market_gives_neutral_values_not_nan():
    n = 60
    c = np.full(n, 100.0)
    v = np.zeros(n)
    assert np.allclose(ind.rsi(c, 14)[1:], 50.0)
    adx, pdi, mdi = ind.adx(c, c, c, 14)
    assert np.allclose(mdi[1:], 0.0)
    assert np.allclose(adx[1:], 0.0) and np.allclose(pdi[1:], 0.0)
    assert np.allclose(ind.obv_change(c, v, 10)[10:], 0.0)
    assert np.allclose(ind.zscore(np.log1p(v), 10)[9:], 0.0)


def test_obv_change_is_bounded_and_matches_obv_difference(btc):
    c, v = btc["close"][:2000], btc["volume"][:2000]
    chg = ind.obv_change(c, v, 20)
    o = ind.obv(c, v)
    want = (o[20:] - o[:-20]) / np.convolve(v, np.ones(20), "valid")[1:]
    np.testing.assert_allclose(chg[20:], want, rtol=1e-9)
    assert np.nanmax(np.abs(chg)) <= 1.0
    assert np.isnan(chg[:20]).all()


def test_time_features_on_the_unit_circle():
    monday_noon = 1_704_110_400_000  # 2024-01-01 12:00 UTC, a Monday
    s, c = ind.time_of_day(np.array([monday_noon], dtype=np.int64))
    assert s[0] == pytest.approx(0.0, abs=1e-12) and c[0] == pytest.approx(-1.0)
    ds, dc = ind.day_of_week(np.array([monday_noon - 12 * 3_600_000], dtype=np.int64))
    assert ds[0] == pytest.approx(0.0, abs=1e-12) and dc[0] == pytest.approx(1.0)
