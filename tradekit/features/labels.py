"""Forward-looking labels for one symbol's contiguous arrays. Labels are never features.

- ``label_return``: ``close[i+h] / close[i] - 1``.
- ``label_class``: 1 above the round-trip cost, -1 below minus the cost, 0 between.
- ``label_barrier``: the triple-barrier label. Barriers at ``close[i] * (1 +- w)`` with
  ``w = width * sigma[i] * sqrt(h)``, ``sigma`` the standard deviation of one-candle log returns
  over the last ``vol_window`` candles (known at ``i``); 1 if a later high reaches the upper one
  first, -1 if a later low reaches the lower one first, 0 if neither within ``h`` candles.
  When one candle touches both, the order inside it is unknown and the label is -1 (the
  pessimistic reading, as a backtest would fill a stop first).

All are NaN where the future is unknown: fewer than ``h`` later candles, or a gap in the
timestamps between ``i`` and ``i+h`` (so ``h`` rows are always ``h`` candles of time).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from tradekit.features import indicators as ind

Array = npt.NDArray[np.float64]


def known_future(ts_ms: npt.NDArray[np.int64], h: int, tf_ms: int) -> npt.NDArray[np.bool_]:
    """Rows whose next ``h`` candles are all present."""
    ok = np.zeros(len(ts_ms), dtype=bool)
    if len(ts_ms) > h:
        ok[:-h] = ts_ms[h:] - ts_ms[:-h] == h * tf_ms
    return ok


def forward_return(close: Array, h: int, ok: npt.NDArray[np.bool_]) -> Array:
    out = np.full(len(close), np.nan)
    if len(close) > h:
        out[:-h] = close[h:] / close[:-h] - 1.0
    out[~ok] = np.nan
    return out


def cost_class(ret: Array, cost: float) -> Array:
    out = np.where(ret > cost, 1.0, np.where(ret < -cost, -1.0, 0.0))
    out[np.isnan(ret)] = np.nan
    return out


@njit(cache=True, nogil=True)
def _barrier_kernel(
    high: Array, low: Array, upper: Array, lower: Array, h: int, out: Array
) -> None:
    """For each row with ``h`` later candles: -1 if a later low reaches ``lower`` no later than
    a later high reaches ``upper``, 1 if the high comes first, 0 if neither within ``h``.
    A NaN barrier is never reached (its comparisons are false)."""
    for i in range(len(out)):
        lab = 0.0
        for j in range(i + 1, i + 1 + h):
            if low[j] <= lower[i]:  # checked first: a candle touching both counts as -1
                lab = -1.0
                break
            if high[j] >= upper[i]:
                lab = 1.0
                break
        out[i] = lab


def triple_barrier(
    high: Array,
    low: Array,
    close: Array,
    h: int,
    width: float,
    vol_window: int,
    ok: npt.NDArray[np.bool_],
) -> Array:
    n = len(close)
    out = np.full(n, np.nan)
    if n <= h:
        return out
    w = width * ind.realized_vol(close, vol_window) * np.sqrt(h)
    upper = close * (1.0 + w)
    lower = close * (1.0 - w)
    _barrier_kernel(
        np.ascontiguousarray(high, dtype=np.float64),
        np.ascontiguousarray(low, dtype=np.float64),
        upper,
        lower,
        int(h),
        out[: n - h],  # row i looks at candles i+1..i+h
    )
    out[~ok | np.isnan(w)] = np.nan
    return out
