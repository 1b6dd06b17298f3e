"""Technical indicators on one symbol's contiguous float64 arrays; pure and vectorized.

Every function is causal: the value at row ``i`` uses rows ``<= i`` only. Recursive smoothings
(EMA, Wilder's) start at the first defined input with that input as the seed, so their early
values differ from TA-Lib's (which seeds with a simple average) until the seed has decayed; see
``tradekit.features.sets`` for the warm-up rule. Division by a zero spread (flat prices, no
volume) gives the neutral value rather than NaN, so a quiet market is not mistaken for warm-up.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

Array = npt.NDArray[np.float64]


def _series(x: Array) -> pd.Series:
    return pd.Series(x, copy=False)


def _np(s: pd.Series) -> Array:
    return np.asarray(s.to_numpy(), dtype=np.float64)


def _div(num: Array, den: Array, neutral: float = 0.0) -> Array:
    """``num / den``, with ``neutral`` where ``den`` is zero (NaN stays NaN)."""
    out = np.full(num.shape, neutral)
    np.divide(num, den, out=out, where=den != 0)
    out[np.isnan(num) | np.isnan(den)] = np.nan
    return out


def shift(x: Array, k: int) -> Array:
    """``x`` moved ``k`` rows later (NaN in the first ``k``)."""
    out = np.full(x.shape, np.nan)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def diff(x: Array) -> Array:
    return x - shift(x, 1)


def _window_reduce(x: Array, p: int, stat: str) -> Array:
    """Exact per-window sum, mean or population std over the last ``p`` rows (NaN if short).

    Each window is summed from its own ``p`` values, in the same order for every window (a loop
    over the ``p`` offsets, each a vectorized pass over all rows), instead of pandas' running
    sums: those carry rounding from the whole history (measured up to 6e-7 relative for the std
    of a 1M-candle price series), so a live tail would not reproduce the full-history value."""
    n = len(x)
    out = np.full(n, np.nan)
    if n < p:
        return out
    m = n - p + 1
    total = x[0:m].copy()
    for j in range(1, p):
        total += x[j : j + m]
    if stat == "sum":
        out[p - 1 :] = total
        return out
    mean = total / p
    if stat == "mean":
        out[p - 1 :] = mean
        return out
    sq = np.zeros(m)
    for j in range(p):
        d = x[j : j + m] - mean
        sq += d * d
    out[p - 1 :] = np.sqrt(sq / p)
    return out


def sma(x: Array, p: int) -> Array:
    return _window_reduce(x, p, "mean")


def rolling_std(x: Array, p: int) -> Array:
    """Population standard deviation (ddof=0, as TA-Lib's STDDEV and BBANDS)."""
    return _window_reduce(x, p, "std")


def rolling_sum(x: Array, p: int) -> Array:
    return _window_reduce(x, p, "sum")


def rolling_max(x: Array, p: int) -> Array:
    return _np(_series(x).rolling(p, min_periods=p).max())


def rolling_min(x: Array, p: int) -> Array:
    return _np(_series(x).rolling(p, min_periods=p).min())


def ewm(x: Array, alpha: float) -> Array:
    """``y[i] = alpha * x[i] + (1 - alpha) * y[i-1]``, seeded with the first defined ``x``."""
    return _np(_series(x).ewm(alpha=alpha, adjust=False).mean())


def ema(x: Array, p: int) -> Array:
    return ewm(x, 2.0 / (p + 1))


def wilder(x: Array, p: int) -> Array:
    """Wilder's smoothing (RMA): an EMA with ``alpha = 1/p``."""
    return ewm(x, 1.0 / p)


def returns(close: Array, k: int) -> Array:
    return close / shift(close, k) - 1.0


def log_returns(close: Array) -> Array:
    return np.log(close / shift(close, 1))


def rsi(close: Array, p: int) -> Array:
    d = diff(close)
    gain = wilder(np.where(d > 0, d, 0.0) + d * 0, p)  # d * 0 keeps the leading NaN
    loss = wilder(np.where(d < 0, -d, 0.0) + d * 0, p)
    return 100.0 * _div(gain, gain + loss, neutral=0.5)


def macd(
    close: Array, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[Array, Array, Array]:
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def true_range(high: Array, low: Array, close: Array) -> Array:
    prev = shift(close, 1)
    tr = np.maximum(high - low, np.maximum(np.abs(high - prev), np.abs(low - prev)))
    tr[:1] = np.nan  # like TA-Lib: the first candle has no previous close
    return tr


def atr(high: Array, low: Array, close: Array, p: int) -> Array:
    return wilder(true_range(high, low, close), p)


def bbands(close: Array, p: int, nbdev: float = 2.0) -> tuple[Array, Array, Array]:
    """(upper, middle, lower) with the population standard deviation, as TA-Lib."""
    mid = sma(close, p)
    dev = nbdev * rolling_std(close, p)
    return mid + dev, mid, mid - dev


def adx(high: Array, low: Array, close: Array, p: int) -> tuple[Array, Array, Array]:
    """(ADX, +DI, -DI), Wilder's definitions, 0..100."""
    up = diff(high)
    down = -diff(low)
    plus_dm = np.where((up > down) & (up > 0), up, 0.0) + up * 0
    minus_dm = np.where((down > up) & (down > 0), down, 0.0) + down * 0
    tr = wilder(true_range(high, low, close), p)
    pdi = 100.0 * _div(wilder(plus_dm, p), tr)
    mdi = 100.0 * _div(wilder(minus_dm, p), tr)
    dx = 100.0 * _div(np.abs(pdi - mdi), pdi + mdi)
    return wilder(dx, p), pdi, mdi


def obv(close: Array, volume: Array) -> Array:
    """On-balance volume, starting at the first candle's volume (as TA-Lib)."""
    return np.cumsum(signed_volume(close, volume))


def signed_volume(close: Array, volume: Array) -> Array:
    d = diff(close)
    sv = np.where(d > 0, volume, np.where(d < 0, -volume, 0.0))
    sv[:1] = volume[:1]
    return sv


def obv_change(close: Array, volume: Array, p: int) -> Array:
    """(OBV[i] - OBV[i-p]) / volume traded in candles i-p+1..i: -1..1, scale-free, and free of
    OBV's arbitrary starting point."""
    sv = signed_volume(close, volume)
    sv[:1] = np.nan  # its sign is unknown without a previous close
    return _div(rolling_sum(sv, p), rolling_sum(volume + sv * 0, p))


def zscore(x: Array, p: int) -> Array:
    mean = sma(x, p)
    return _div(x - mean, rolling_std(x, p))


def realized_vol(close: Array, p: int) -> Array:
    return rolling_std(log_returns(close), p)


def time_of_day(ts_ms: npt.NDArray[np.int64]) -> tuple[Array, Array]:
    angle = 2 * np.pi * (ts_ms % 86_400_000) / 86_400_000
    return np.sin(angle), np.cos(angle)


def day_of_week(ts_ms: npt.NDArray[np.int64]) -> tuple[Array, Array]:
    day = (ts_ms // 86_400_000 + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    angle = 2 * np.pi * (day + (ts_ms % 86_400_000) / 86_400_000) / 7
    return np.sin(angle), np.cos(angle)
