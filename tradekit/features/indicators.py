"""Technical indicators on one symbol's contiguous float64 arrays; pure and causal.

Every function is causal: the value at row ``i`` uses rows ``<= i`` only. Recursive smoothings
(EMA, Wilder's) start at the first defined input with that input as the seed, so their early
values differ from TA-Lib's (which seeds with a simple average) until the seed has decayed; see
``tradekit.features.sets`` for the warm-up rule. Division by a zero spread (flat prices, no
volume) gives the neutral value rather than NaN, so a quiet market is not mistaken for warm-up.

The loops (smoothings, windows, guarded division) are numba kernels, ``cache=True`` so that a
fresh process loads machine code, ``nogil=True`` so that ``featurize`` computes two symbols at
once on two threads: the live loop computes a few thousand rows per symbol, where
the fixed cost of a pandas call (about 150 us) was most of the time. Each kernel performs the
same floating-point operations, in the same order, as the pandas or numpy code it replaced, so
results are bit-identical to it (pinned by ``tests/test_indicators.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from numba import njit

from tradekit.features import scalar

if TYPE_CHECKING:
    from collections.abc import Sequence

Array = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

_SUM, _MEAN, _STD = 0, 1, 2
_BLOCK = 512  # windows per block in _window_kernel: its buffers stay in L1


# The scalar steps are the live loop's own plain-Python functions, compiled here: one source.
_ewm_step = njit(cache=True, inline="always")(scalar.ewm_step)
_div1 = njit(cache=True, inline="always")(scalar.div1)
_max1 = njit(cache=True, inline="always")(scalar.max1)


@njit(cache=True, nogil=True)
def _div_kernel(num: Array, den: Array, neutral: float) -> Array:
    out = np.empty(len(num))
    for i in range(len(num)):
        out[i] = _div1(num[i], den[i], neutral)
    return out


@njit(cache=True, nogil=True)
def _ewm_kernel(x: Array, alpha: Array, keep: Array, half: Bools) -> Array:
    """One row per smoothing factor. The rows' recursions are independent, so running them in
    one loop overlaps their division latencies (the cost of a single recursion)."""
    k, n = len(alpha), len(x)
    out = np.empty((k, n))
    w = np.full(k, np.nan)
    old = np.ones(k)
    for i in range(n):
        cur = x[i]
        for r in range(k):
            w[r], old[r] = _ewm_step(w[r], old[r], cur, alpha[r], keep[r], half[r])
            out[r, i] = w[r]
    return out


@njit(cache=True, nogil=True)
def _rsi_kernel(close: Array, alpha: float, keep: float, half: bool) -> Array:
    """:func:`rsi` in one pass (its two smoothings interleaved), with the same operations as
    its numpy form: ``d = diff(close)``, ``gain = where(d > 0, d, 0) + d * 0``, and so on."""
    out = np.empty(len(close))
    g, og, lo, ol = np.nan, 1.0, np.nan, 1.0
    prev = np.nan
    for i in range(len(close)):
        d = close[i] - prev
        prev = close[i]
        g, og = _ewm_step(g, og, (d if d > 0 else 0.0) + d * 0.0, alpha, keep, half)
        lo, ol = _ewm_step(lo, ol, (-d if d < 0 else 0.0) + d * 0.0, alpha, keep, half)
        out[i] = 100.0 * _div1(g, g + lo, 0.5)
    return out


@njit(cache=True, nogil=True)
def _adx_kernel(
    high: Array, low: Array, close: Array, alpha: float, keep: float, half: bool
) -> Array:
    """:func:`adx` in one pass: rows ADX, +DI, -DI. The operations are those of its numpy
    form, element by element, so the results are identical."""
    n = len(close)
    out = np.empty((3, n))
    t, ot, pp, op, mm, om, a, oa = np.nan, 1.0, np.nan, 1.0, np.nan, 1.0, np.nan, 1.0
    ph, pl, pc = np.nan, np.nan, np.nan
    for i in range(n):
        h, lo, c = high[i], low[i], close[i]
        up = h - ph
        down = -(lo - pl)
        pdm = (up if up > down and up > 0 else 0.0) + up * 0.0
        mdm = (down if down > up and down > 0 else 0.0) + down * 0.0
        tr = _max1(h - lo, _max1(abs(h - pc), abs(lo - pc))) if i > 0 else np.nan
        ph, pl, pc = h, lo, c
        t, ot = _ewm_step(t, ot, tr, alpha, keep, half)
        pp, op = _ewm_step(pp, op, pdm, alpha, keep, half)
        mm, om = _ewm_step(mm, om, mdm, alpha, keep, half)
        pdi = 100.0 * _div1(pp, t, 0.0)
        mdi = 100.0 * _div1(mm, t, 0.0)
        dx = 100.0 * _div1(abs(pdi - mdi), pdi + mdi, 0.0)
        a, oa = _ewm_step(a, oa, dx, alpha, keep, half)
        out[0, i] = a
        out[1, i] = pdi
        out[2, i] = mdi
    return out


@njit(cache=True, nogil=True)
def _window_kernel(x: Array, p: int, stat: int) -> Array:
    """Sum or mean (row 0) and, for ``_STD``, population std (row 1) of each window of ``p``
    rows, each window summed left to right from its own values. Windows are done a block at a
    time, offset by offset, so the inner loop runs across windows (vectorized, and every window
    still adds in the same order)."""
    n = len(x)
    out = np.full((2 if stat == _STD else 1, n), np.nan)
    acc = np.empty(_BLOCK)
    for lo in range(p - 1, n, _BLOCK):
        m = min(_BLOCK, n - lo)
        s = lo - p + 1
        # Slices, not x[s + j + i]: with computed indices LLVM did not vectorize the loops
        # (measured 4x slower).
        a = acc[:m]
        a[:] = x[s : s + m]
        for j in range(1, p):
            xs = x[s + j : s + j + m]
            for i in range(m):
                a[i] += xs[i]
        if stat == _SUM:
            out[0, lo : lo + m] = a
            continue
        mu = out[0, lo : lo + m]
        for i in range(m):
            mu[i] = a[i] / p
        if stat == _MEAN:
            continue
        for j in range(p):
            xs = x[s + j : s + j + m]
            for i in range(m):
                d = xs[i] - mu[i]
                a[i] = d * d if j == 0 else a[i] + d * d
        sd = out[1, lo : lo + m]
        for i in range(m):
            sd[i] = np.sqrt(a[i] / p)
    return out


@njit(cache=True, nogil=True)
def _extreme_kernel(x: Array, p: int, high: bool) -> Array:
    """Rolling max (``high``) or min over ``p`` rows; NaN where the window is short or holds a
    NaN (pandas' ``min_periods=p``). Van Herk/Gil-Werman: per block of ``p`` rows, running
    extremes from the block's start (``g``) and to its end (``h``); a window spans at most two
    blocks, so its extreme is that of ``h`` at its first row and ``g`` at its last."""
    n = len(x)
    out = np.full(n, np.nan)
    g = np.empty(n)
    h = np.empty(n)
    sign = 1.0 if high else -1.0  # min(x) = -max(-x), exactly
    for b in range(0, n, p):
        e = min(b + p, n)
        g[b] = sign * x[b]
        for i in range(b + 1, e):
            v = sign * x[i]
            g[i] = v if v >= g[i - 1] else g[i - 1]
        h[e - 1] = sign * x[e - 1]
        for i in range(e - 2, b - 1, -1):
            v = sign * x[i]
            h[i] = v if v >= h[i + 1] else h[i + 1]
    last_nan = -p
    for i in range(n):
        if x[i] != x[i]:
            last_nan = i
        if i >= p - 1 and i - last_nan >= p:
            u, v = h[i - p + 1], g[i]
            out[i] = sign * (u if u >= v else v)
    return out


@njit(cache=True, nogil=True)
def _first_complete_kernel(rows: Array) -> int:
    """First row with no NaN column (``len(rows)`` if none). Each column is scanned only up
    to its first value: the warm-up is NaN at the top, so the answer is usually the latest
    of those, checked; a NaN further down sends it on, row by row."""
    n, m = int(rows.shape[0]), int(rows.shape[1])
    at = 0
    for c in range(m):
        i = at
        while i < n and rows[i, c] != rows[i, c]:
            i += 1
        at = i
    while at < n:
        ok = True
        for c in range(m):
            if rows[at, c] != rows[at, c]:
                ok = False
                break
        if ok:
            return at
        at += 1
    return n


def first_complete(rows: Array) -> int:
    """Index of the first row of ``rows`` (any layout) with every column defined."""
    return int(_first_complete_kernel(np.asarray(rows, dtype=np.float64)))


def _f64(x: npt.ArrayLike) -> Array:
    """``x`` as the one array type the kernels are compiled for (a read-only or strided array,
    or another dtype, would make numba compile another specialization at run time)."""
    a = np.asarray(x, dtype=np.float64)
    if not (a.flags.c_contiguous and a.flags.writeable):
        a = np.array(a, dtype=np.float64, order="C")
    return a


def _div(num: Array, den: Array, neutral: float = 0.0) -> Array:
    """``num / den``, with ``neutral`` where ``den`` is zero (NaN stays NaN)."""
    return _div_kernel(_f64(num), _f64(den), float(neutral))  # type: ignore[no-any-return]


def shift(x: Array, k: int) -> Array:
    """``x`` moved ``k`` rows later (NaN in the first ``k``)."""
    out = np.full(x.shape, np.nan)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


def diff(x: Array) -> Array:
    return x - shift(x, 1)


def _window_reduce(x: Array, p: int, stat: int) -> Array:
    """Exact per-window sum, mean or population std over the last ``p`` rows (NaN if short).

    Each window is summed from its own ``p`` values, left to right, instead of pandas' running
    sums: those carry rounding from the whole history (measured up to 6e-7 relative for the std
    of a 1M-candle price series), so a live tail would not reproduce the full-history value."""
    return _window_kernel(_f64(x), int(p), stat)  # type: ignore[no-any-return]


def sma(x: Array, p: int) -> Array:
    mean: Array = _window_reduce(x, p, _MEAN)[0]
    return mean


def rolling_std(x: Array, p: int) -> Array:
    """Population standard deviation (ddof=0, as TA-Lib's STDDEV and BBANDS)."""
    sd: Array = _window_reduce(x, p, _STD)[1]
    return sd


def mean_std(x: Array, p: int) -> tuple[Array, Array]:
    """``(sma(x, p), rolling_std(x, p))`` from one pass."""
    both = _window_reduce(x, p, _STD)
    return both[0], both[1]


def rolling_sum(x: Array, p: int) -> Array:
    total: Array = _window_reduce(x, p, _SUM)[0]
    return total


def rolling_max(x: Array, p: int) -> Array:
    return _extreme_kernel(_f64(x), int(p), True)  # type: ignore[no-any-return]


def rolling_min(x: Array, p: int) -> Array:
    return _extreme_kernel(_f64(x), int(p), False)  # type: ignore[no-any-return]


def _ewm_args(alphas: list[float]) -> tuple[Array, Array, Bools]:
    """The kernels' (alpha, 1 - alpha, alpha == 0.5) as pandas derives them: through the
    centre of mass, with its rounding."""
    com = [(1.0 - a) / a for a in alphas]
    a = [1.0 / (1.0 + c) for c in com]
    return np.array(a), np.array([1.0 - v for v in a]), np.array([c == 1.0 for c in com])


def ewm_many(x: Array, alphas: list[float]) -> list[Array]:
    """``[ewm(x, a) for a in alphas]``, computed together (faster)."""
    return list(_ewm_kernel(_f64(x), *_ewm_args(alphas)))


def ewm(x: Array, alpha: float) -> Array:
    """``y[i] = alpha * x[i] + (1 - alpha) * y[i-1]``, seeded with the first defined ``x``
    (pandas' ``ewm(alpha=alpha, adjust=False).mean()``, bit for bit)."""
    return ewm_many(x, [alpha])[0]


def ema(x: Array, p: int) -> Array:
    return ewm(x, 2.0 / (p + 1))


def ema_many(x: Array, periods: Sequence[int]) -> list[Array]:
    return ewm_many(x, [2.0 / (p + 1) for p in periods])


def wilder(x: Array, p: int) -> Array:
    """Wilder's smoothing (RMA): an EMA with ``alpha = 1/p``."""
    return ewm(x, 1.0 / p)


def wilder_many(x: Array, periods: Sequence[int]) -> list[Array]:
    return ewm_many(x, [1.0 / p for p in periods])


def returns(close: Array, k: int) -> Array:
    return close / shift(close, k) - 1.0


def log_returns(close: Array) -> Array:
    return np.log(close / shift(close, 1))


def _ewm_scalars(alpha: float) -> tuple[float, float, bool]:
    a, keep, half = _ewm_args([alpha])
    return float(a[0]), float(keep[0]), bool(half[0])


def rsi(close: Array, p: int) -> Array:
    """``100 * gain / (gain + loss)`` (50 when flat), where ``d = diff(close)``, ``gain =
    wilder(where(d > 0, d, 0) + d * 0, p)`` (``d * 0`` keeps the leading NaN), ``loss``
    likewise with ``-d``."""
    return _rsi_kernel(_f64(close), *_ewm_scalars(1.0 / p))  # type: ignore[no-any-return]


def macd(
    close: Array, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[Array, Array, Array]:
    ema_fast, ema_slow = ema_many(close, (fast, slow))
    line = ema_fast - ema_slow
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
    mid, sd = mean_std(close, p)
    dev = nbdev * sd
    return mid + dev, mid, mid - dev


def adx(high: Array, low: Array, close: Array, p: int) -> tuple[Array, Array, Array]:
    """(ADX, +DI, -DI), Wilder's definitions, 0..100. With ``up = diff(high)``, ``down =
    -diff(low)``, ``plus_dm = where((up > down) & (up > 0), up, 0) + up * 0`` (``minus_dm``
    likewise) and ``tr = wilder(true_range, p)``: ``pdi = 100 * plus_dm_smoothed / tr``, ``dx =
    100 * |pdi - mdi| / (pdi + mdi)`` and ADX ``= wilder(dx, p)`` (0 for a zero divisor)."""
    out = _adx_kernel(_f64(high), _f64(low), _f64(close), *_ewm_scalars(1.0 / p))
    return out[0], out[1], out[2]


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
    mean, sd = mean_std(x, p)
    return _div(x - mean, sd)


def realized_vol(close: Array, p: int) -> Array:
    return rolling_std(log_returns(close), p)


def time_of_day(ts_ms: npt.NDArray[np.int64]) -> tuple[Array, Array]:
    angle = 2 * np.pi * (ts_ms % 86_400_000) / 86_400_000
    return np.sin(angle), np.cos(angle)


def day_of_week(ts_ms: npt.NDArray[np.int64]) -> tuple[Array, Array]:
    day = (ts_ms // 86_400_000 + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    angle = 2 * np.pi * (day + (ts_ms % 86_400_000) / 86_400_000) / 7
    return np.sin(angle), np.cos(angle)
