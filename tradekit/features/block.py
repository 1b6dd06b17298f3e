"""The batch core of the feature stage, without pandas: one series' indicator families into
columns (:func:`compute_block`) and complete higher-timeframe candles (:func:`resample`).

``build_features`` (the ``featurize`` path) and the live loop's incremental features both stand
on it; the incremental ones warm their state from these columns.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tradekit.features import indicators as ind
from tradekit.features.sets import (
    WARMUP_TOL,
    FeatureSpec,
    bucket_offset,
    family_columns,
    family_need,
)

Array = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
# Families whose value at a row depends on that row alone (not on earlier candles).
_ROWWISE_FAMILIES = frozenset({"time"})
_CANDLE_FIELDS = ("ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Candles:
    """One symbol's candles as contiguous arrays (timestamps are open times in ms)."""

    ts: Ints
    open: Array
    high: Array
    low: Array
    close: Array
    volume: Array

    def __len__(self) -> int:
        return len(self.ts)


def _family(name: str, k: Candles, spec: FeatureSpec) -> list[Array]:
    c, ps = k.close, spec.periods
    if name == "returns":
        return [ind.returns(c, h) for h in spec.return_horizons]
    if name == "ma":
        emas = ind.ema_many(c, ps)
        return [
            a for p, e in zip(ps, emas, strict=True) for a in (c / ind.sma(c, p) - 1.0, c / e - 1.0)
        ]
    if name == "rsi":
        return [ind.rsi(c, p) for p in ps]
    if name == "macd":
        return [a / c for a in ind.macd(c, *spec.macd)]
    if name == "atr":
        tr = ind.true_range(k.high, k.low, c)
        return [a / c for a in ind.wilder_many(tr, ps)]
    if name == "bbands":
        out = []
        for p in ps:
            mid, sd = ind.mean_std(c, p)
            dev = spec.bb_std * sd
            out += [ind._div(c - mid, dev), 2.0 * dev / mid]
        return out
    if name == "adx":
        out = []
        for p in ps:
            a, pdi, mdi = ind.adx(k.high, k.low, c, p)
            out += [a, pdi - mdi]
        return out
    if name == "obv":
        return [ind.obv_change(c, k.volume, p) for p in ps]
    if name == "volatility":
        lr = ind.log_returns(c)
        return [ind.rolling_std(lr, p) for p in ps]
    if name == "range":
        return [k.high / k.low - 1.0] + [
            ind.rolling_max(k.high, p) / ind.rolling_min(k.low, p) - 1.0 for p in ps
        ]
    if name == "volume":
        lv = np.log1p(k.volume)
        return [ind.zscore(lv, p) for p in ps]
    if name == "time":
        return [*ind.time_of_day(k.ts), *ind.day_of_week(k.ts)]
    raise ValueError(f"unknown feature family {name!r}")


@functools.lru_cache(maxsize=64)
def _layout(families: tuple[str, ...], spec: FeatureSpec) -> tuple[tuple[str, int, int], ...]:
    """(family, column count, warm-up rows) of each family: asked once per spec, not per
    series (the live loop's per-candle call would spend milliseconds re-deriving them)."""
    return tuple(
        (f, len(family_columns(f, spec)), family_need(f, spec, WARMUP_TOL)) for f in families
    )


def compute_block(
    k: Candles, families: tuple[str, ...], spec: FeatureSpec, out: Array | None = None
) -> list[Array]:
    """The families' columns for one series, NaN in each family's warm-up rows; with ``out``
    (rows x columns) they are written there, each as soon as it is made (still in cache). An
    ``out`` of fewer rows than ``k`` receives the last rows of each column (computed over all
    of ``k``), and the returned columns are its columns."""
    cols: list[Array] = []
    skip = 0 if out is None else len(k) - len(out)  # leading rows not written to ``out``
    if skip < 0:
        raise AssertionError(f"{len(k)} rows of candles for {len(k) - skip} output rows")
    tail = k if skip == 0 else Candles(*(getattr(k, c)[skip:] for c in _CANDLE_FIELDS))
    for f, expected, need in _layout(families, spec):
        # A family of row-wise values is computed on the written rows alone.
        rowwise = f in _ROWWISE_FAMILIES
        arrays = _family(f, tail if rowwise else k, spec)
        if len(arrays) != expected:  # names and values must stay in step
            raise AssertionError(f"family {f}: {len(arrays)} arrays for {expected} columns")
        for i, a in enumerate(arrays):
            if out is not None:
                j = len(cols) + i
                out[:, j] = a if rowwise else a[skip:]
                a = arrays[i] = out[:, j]
                a[: max(need - skip, 0)] = np.nan
                continue
            if not a.flags.writeable:  # a view of a read-only result
                arrays[i] = a = a.copy()
            a[:need] = np.nan
        cols += arrays
    return cols


def resample(k: Candles, tf_ms: int, ratio: int) -> tuple[Candles, Ints]:
    """Complete higher-timeframe candles and their close times. A bucket missing any base candle
    (the forming one at the end, a partial one at the start, or one with a gap) is left out."""
    offset = bucket_offset(tf_ms)
    bucket = (k.ts - offset) // tf_ms * tf_ms + offset
    n = len(k)
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]]) if n else np.zeros(0, int)
    ends = np.r_[starts[1:], n]
    full = (ends - starts) == ratio
    s, e = starts[full], ends[full]
    if len(s):
        high = np.maximum.reduceat(k.high, starts)[full]
        low = np.minimum.reduceat(k.low, starts)[full]
        vol = np.add.reduceat(k.volume, starts)[full]
    else:
        high = low = vol = np.zeros(0)
    ts = bucket[s]
    out = Candles(ts, k.open[s], high, low, k.close[e - 1], vol)
    return out, ts + tf_ms


# -- one symbol's rows: its own families, its higher timeframes, its reference pairs ---------


def padded(columns: list[Array]) -> Array:
    """The columns as the rows of a matrix with a trailing NaN column, for :func:`take_into`."""
    mat = np.empty((len(columns), (len(columns[0]) if columns else 0) + 1))
    if columns:
        mat[:, :-1] = columns
    mat[:, -1] = np.nan
    return mat


def take_into(padded_cols: Array, idx: npt.NDArray[np.intp], out: Array) -> None:
    """``out[:, j] = columns[j][idx]``, NaN where ``idx`` is -1 (nothing visible yet; it wraps
    to the NaN column), gathered straight into each output column."""
    for j in range(len(padded_cols)):
        np.take(padded_cols[j], idx, out=out[:, j], mode="wrap")


def reference(k: Candles, spec: FeatureSpec) -> tuple[Ints, Array]:
    """A reference pair's timestamps and its ``corr_indicators`` columns, padded."""
    return k.ts, padded(compute_block(k, spec.corr_indicators, spec))


def symbol_features(
    k: Candles,
    spec: FeatureSpec,
    base_ms: int,
    htfs: list[tuple[int, int]],
    refs: dict[str, tuple[Ints, Array]],
    rows: Array,
) -> None:
    """Every feature column of one symbol into ``rows`` (its last ``len(rows)`` candles,
    computed over all of ``k``): its families, then each higher timeframe ``(ms, ratio)``
    seen without look-ahead, then each reference pair of ``refs`` at its latest candle."""
    j = len(compute_block(k, spec.indicators, spec, out=rows))
    ts_out = k.ts[len(k) - len(rows) :]  # the timestamps of the rows written
    close_ms = ts_out + base_ms
    for tf_ms, ratio in htfs:
        hk, h_close = resample(k, tf_ms, ratio)
        idx = np.searchsorted(h_close, close_ms, side="right") - 1
        cols = padded(compute_block(hk, spec.htf_indicators, spec))
        take_into(cols, idx, rows[:, j : j + len(cols)])
        j += len(cols)
    for ref in spec.corr_symbols:
        r_ts, cols = refs[ref]
        idx = np.searchsorted(r_ts, ts_out, side="right") - 1
        take_into(cols, idx, rows[:, j : j + len(cols)])
        j += len(cols)
    if j != rows.shape[1]:  # names and values must stay in step
        raise AssertionError(f"{j} feature columns for {rows.shape[1]} names")


def first_complete_row(rows: Array) -> int:
    """Index of the first row with every column defined (``len(rows)`` if none): the rows
    before it are the warm-up."""
    return ind.first_complete(rows)


def labels_into(k: Candles, spec: FeatureSpec, base_ms: int, cost: float, out: Array) -> None:
    """label_return, label_class, label_barrier of every candle into ``out``'s columns."""
    from tradekit.features import labels as lab

    h = spec.label_horizon
    ok = lab.known_future(k.ts, h, base_ms)
    ret = lab.forward_return(k.close, h, ok)
    out[:, 0] = ret
    out[:, 1] = lab.cost_class(ret, cost)
    out[:, 2] = lab.triple_barrier(
        k.high, k.low, k.close, h, spec.barrier_width, spec.barrier_vol_window, ok
    )
