"""Build features/2 from ohlcv/1: indicators per symbol, higher-timeframe and reference-pair
context merged without leakage, labels, warm-up dropped.

No look-ahead, by construction:
- indicators are causal (rolling windows, recursive smoothings, backward differences);
- a higher-timeframe candle is formed only from a complete bucket (all its base candles present)
  and is visible on a base row only when that row closes at or after the bucket closes: the 1h
  row opening at 03:00 (closing 04:00) is the first to see the 4h candle of 00:00-04:00;
- a reference pair's features at row ``t`` are its own at the latest timestamp ``<= t``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from tradekit.contracts import OHLCV, validate_frame
from tradekit.errors import InputError
from tradekit.features.block import (
    Candles,
    first_complete_row,
    labels_into,
    reference,
    symbol_features,
)
from tradekit.features.featurize import (
    PRICE_COLUMNS,
    check_prices,
    features_meta,
    missing_references,
    no_rows_left,
)
from tradekit.features.sets import (
    FeatureSpec,
    feature_columns,
    higher_timeframes,
    label_columns,
)
from tradekit.timeutil import timeframe_ms

Array = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def _check(df: pd.DataFrame, label: str) -> dict[str, slice]:
    """InputError unless ``df`` is valid ohlcv/1 input; each symbol's rows."""
    missing = [c for c in ("symbol", "timestamp", *PRICE_COLUMNS) if c not in df.columns]
    if missing:
        raise InputError(f"{label}: missing column(s) {', '.join(missing)}")
    if df.empty:
        raise InputError(f"{label}: no candles (empty input)")
    slices = _sorted_slices(df)
    if slices is None:  # not plainly valid: let the contract say what is wrong
        validate_frame(df, OHLCV, label)
        slices = _slices(df)
    prices = {c: df[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in PRICE_COLUMNS}
    sym, when = df["symbol"], df["timestamp"]
    check_prices(prices, lambda i: sym.iloc[i], lambda i: when.iloc[i], label)
    return slices


def _sorted_slices(df: pd.DataFrame) -> dict[str, slice] | None:
    """Each symbol's rows when the keys are plainly valid (no empty key, symbols in sorted
    runs, timestamps strictly increasing within each), else None. The same verdict as
    ``validate_frame`` in a fraction of its time (it sorts and hashes every key), which
    matters to the live loop's per-candle call."""
    ts_col = df["timestamp"]
    if not isinstance(ts_col.dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType):
        return None
    codes, uniques = pd.factorize(df["symbol"])
    names = list(uniques)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    if codes[0] < 0 or len(starts) != len(names) or not all(isinstance(s, str) for s in names):
        return None  # an empty symbol, or a symbol in more than one run
    if any(a >= b for a, b in itertools.pairwise(names)):
        return None
    ts = pd.DatetimeIndex(ts_col).asi8  # the column's own unit: no rounding
    rising = np.diff(ts) > 0
    rising[starts[1:] - 1] = True  # a new symbol may start at any time
    if not rising.all() or (ts[starts] == np.iinfo(np.int64).min).any():  # NaT is the least
        return None
    ends = np.r_[starts[1:], len(ts)]
    return {str(n): slice(int(s), int(e)) for n, s, e in zip(names, starts, ends, strict=True)}


def _slices(df: pd.DataFrame) -> dict[str, slice]:
    sym = df["symbol"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, sym[1:] != sym[:-1]])
    ends = np.r_[starts[1:], len(sym)]
    return {str(sym[s]): slice(int(s), int(e)) for s, e in zip(starts, ends, strict=True)}


def build_features(
    ohlcv: pd.DataFrame,
    spec: FeatureSpec,
    timeframe: str,
    *,
    cost: float,
    labels: bool = True,
    drop_warmup: bool = True,
    source_label: str = "input",
    last: int | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """features/2 frame (symbol, timestamp, features..., labels...; all float64 here, which
    ``featurize`` rounds to float32 for the file) and its metadata.

    ``cost`` is the round-trip cost threshold of ``label_class``; ``source_label`` names the
    input in error messages. Rows whose labels are unknown (the last ``label_horizon``) are
    kept. With ``drop_warmup`` each symbol's leading rows with any NaN feature are dropped; a
    symbol left with no row is dropped whole (listed in ``dropped_symbols``).

    With ``last`` (the live loop, which reads only the newest rows) the frame holds only each
    symbol's last ``last`` rows (all of a shorter symbol's), bit-identical to those rows of the
    full frame: features are still computed over all the input, but only those rows are
    written. It needs ``labels`` and ``drop_warmup`` off.
    """
    if last is not None:
        if labels or drop_warmup:
            raise ValueError("build_features: last needs labels=False and drop_warmup=False")
        if last < 1:
            raise ValueError(f"build_features: last must be at least 1, got {last}")
    slices = _check(ohlcv, source_label)
    base_ms = timeframe_ms(timeframe)
    htfs = higher_timeframes(spec, timeframe)
    missing_references(spec, slices, source_label)
    ts_all = np.asarray(pd.DatetimeIndex(ohlcv["timestamp"]).as_unit("ms").asi8, dtype=np.int64)
    arrays = {c: ohlcv[c].to_numpy(dtype=np.float64) for c in PRICE_COLUMNS}

    def candles(sl: slice) -> Candles:
        return Candles(
            ts_all[sl],
            *(np.ascontiguousarray(arrays[c][sl]) for c in PRICE_COLUMNS),
        )

    refs = {sym: reference(candles(slices[sym]), spec) for sym in spec.corr_symbols}
    names = feature_columns(spec)
    lnames = label_columns() if labels else []
    n = len(ohlcv)
    # Each symbol's output rows: all of them, or (with ``last``) its last ``last``.
    out_sl = slices
    if last is not None:
        out_sl, at = {}, 0
        for sym, sl in slices.items():
            m = min(last, sl.stop - sl.start)
            out_sl[sym] = slice(at, at + m)
            at += m
    n_out = n if last is None else sum(sl.stop - sl.start for sl in out_sl.values())
    # One column-major matrix: a column is a contiguous view, and the frame is one block.
    mat = np.empty((n_out, len(names) + len(lnames)), order="F")
    keep = np.ones(n, dtype=bool)
    warmup: dict[str, int] = {}
    htf_ms = [(timeframe_ms(tf), ratio) for tf, ratio in htfs]
    for sym, sl in slices.items():
        k = candles(sl)
        rows = mat[out_sl[sym], : len(names)]
        symbol_features(k, spec, base_ms, htf_ms, refs, rows)
        if drop_warmup:  # else every row is kept and the warm-up is reported as 0
            warmup[sym] = first_complete_row(rows)
            keep[sl.start : sl.start + warmup[sym]] = False
        if labels:
            labels_into(k, spec, base_ms, cost, mat[sl, len(names) :])
    if not drop_warmup:
        warmup = dict.fromkeys(slices, 0)
    dropped = [s for s, sl in slices.items() if warmup[s] >= sl.stop - sl.start]
    if drop_warmup and not keep.any():
        longest = max(sl.stop - sl.start for sl in slices.values())
        raise no_rows_left(spec, timeframe, longest, source_label)
    if last is None:
        frame = _frame(ohlcv, mat, [*names, *lnames], keep if drop_warmup else None)
    else:
        pos = np.concatenate(
            [
                np.arange(sl.stop - (o.stop - o.start), sl.stop)
                for sl, o in zip(slices.values(), out_sl.values(), strict=True)
            ]
        )
        frame = _frame(ohlcv, mat, [*names, *lnames], None, pos)
    meta = features_meta(
        spec, timeframe, cost, labels, list(slices), warmup, dropped, n, len(frame)
    )
    return frame, meta


def _frame(
    ohlcv: pd.DataFrame,
    mat: npt.NDArray[np.float64],
    names: list[str],
    keep: npt.NDArray[np.bool_] | None,
    at: npt.NDArray[np.intp] | None = None,
) -> pd.DataFrame:
    """The output frame over ``mat`` (column-major, no copy); ``keep`` selects rows in place,
    a column at a time, so memory never holds a second matrix. ``at`` gives the input
    positions of ``mat``'s rows when it holds only some (already selected) rows."""
    if at is not None:
        head = ohlcv[["symbol", "timestamp"]].take(at).reset_index(drop=True)
    elif keep is not None:
        rows = int(keep.sum())
        for j in range(mat.shape[1]):
            col = mat[:, j]
            col[:rows] = col[keep]
        mat = mat[:rows]
        head = ohlcv.loc[keep, ["symbol", "timestamp"]].reset_index(drop=True)
    else:
        head = ohlcv[["symbol", "timestamp"]].reset_index(drop=True)
    body = pd.DataFrame(mat, columns=names, copy=False)
    return pd.concat([head, body], axis=1)
