"""Candles and predictions of a backtest or replay as numpy arrays on one candle grid, read with
pyarrow (no pandas).

The contract checks are those of ``tradekit.contracts.read_table`` (schema name, columns and
types, key sorted and unique); they are redone here on Arrow/numpy arrays because building a
pandas frame of a million candles costs more than the whole simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tradekit.contracts import OHLCV, PREDICTIONS, Schema, open_parquet
from tradekit.errors import InputError
from tradekit.timeutil import fmt_ms

if TYPE_CHECKING:
    import pyarrow as pa
    from numpy.typing import NDArray


@dataclass(frozen=True)
class Columns:
    """A long-format table as arrays: rows grouped by symbol, ``starts[i]:starts[i+1]``."""

    symbols: list[str]
    starts: NDArray[np.int64]
    ts: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]]
    meta: dict[str, Any]
    rows: int


def read_columns(path: str | Path, schema: Schema, columns: list[str]) -> Columns:
    """Read ``columns`` (float) of a tradekit Parquet file, checked against ``schema``."""
    import pyarrow as pa

    label = str(path)
    # ParquetFile, not read_table: the latter loads pyarrow.dataset, which imports pandas.
    pf, meta = open_parquet(path, schema, read_dictionary=["symbol"])
    missing = [c for c in columns if c not in pf.schema_arrow.names]
    if missing:
        raise InputError(f"{label}: missing column(s) {', '.join(missing)}")
    try:
        table = pf.read(columns=["symbol", "timestamp", *columns])
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{label}: not a readable Parquet file ({reason})") from None
    symbols, starts, ts = _keys(table, label)
    values = {}
    for c in columns:
        col = table.column(c).combine_chunks()
        values[c] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    return Columns(symbols, starts, ts, values, meta, table.num_rows)


def _keys(table: pa.Table, label: str) -> tuple[list[str], NDArray[np.int64], NDArray[np.int64]]:
    """Symbols in file order, their row starts, and timestamps in ms; checks the key."""
    import pyarrow as pa
    import pyarrow.compute as pc

    sym = table.column("symbol").combine_chunks()
    tcol = table.column("timestamp").combine_chunks()
    if sym.null_count or tcol.null_count:
        bad = "symbol" if sym.null_count else "timestamp"
        raise InputError(f"{label}: empty values in key column(s) {bad}")
    if pa.types.is_dictionary(sym.type):
        sym = sym.cast(pa.string())
    enc: Any = pc.dictionary_encode(sym)
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    names = [str(s) for s in enc.dictionary.to_pylist()]
    ts = np.asarray(tcol.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64()).to_numpy())
    n = len(codes)
    if n == 0:
        return [], np.zeros(1, dtype=np.int64), ts
    # Sorted by (symbol, timestamp): codes (first-appearance order) never decrease, the
    # names come in sorted order, and timestamps rise strictly inside each symbol.
    dc = np.diff(codes)
    same = dc == 0
    dt = np.diff(ts)
    if (dc < 0).any() or names != sorted(names) or (same & (dt < 0)).any():
        raise InputError(f"{label}: rows are not sorted by symbol, timestamp")
    dup = same & (dt == 0)
    if dup.any():
        i = int(dup.argmax())
        raise InputError(f"{label}: duplicate rows for ('{names[codes[i]]}', '{fmt_ms(ts[i])}')")
    starts = np.concatenate(([0], np.flatnonzero(dc) + 1, [n])).astype(np.int64)
    return names, starts, ts


@dataclass(frozen=True)
class Market:
    """Candles and predictions on one grid: arrays of shape (candles, symbols), C order."""

    symbols: list[str]
    ts: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    valid: NDArray[np.uint8]
    pred: NDArray[np.float64]
    timeframe: str
    ohlcv_rows: int
    prediction_rows: int


def load_market(ohlcv_path: str | Path, predictions_path: str | Path) -> Market:
    """The OHLCV's union of timestamps is the time axis; predictions are placed on it. Only
    symbols that have predictions are traded; the grid runs from the first non-NaN prediction
    to the candle after the last one (where its order fills)."""
    ohlcv = read_columns(ohlcv_path, OHLCV, ["open", "high", "low", "close"])
    preds = read_columns(predictions_path, PREDICTIONS, ["prediction"])
    plabel = str(predictions_path)
    if preds.rows == 0:
        raise InputError(f"{plabel}: no prediction rows")
    index = {s: i for i, s in enumerate(ohlcv.symbols)}
    for s in preds.symbols:
        if s not in index:
            raise InputError(f"{plabel}: symbol {s} is not in {ohlcv_path}")
    symbols = preds.symbols  # sorted, as the file is
    rows = [(ohlcv.starts[index[s]], ohlcv.starts[index[s] + 1]) for s in symbols]
    if len(symbols) == 1:
        a, b = rows[0]
        grid = ohlcv.ts[a:b]
    else:
        grid = np.unique(np.concatenate([ohlcv.ts[a:b] for a, b in rows]))
    n, m = len(grid), len(symbols)
    shape = (n, m)
    arrays = {c: np.full(shape, np.nan) for c in ("open", "high", "low", "close")}
    valid = np.zeros(shape, dtype=np.uint8)
    pred = np.full(shape, np.nan)
    for j, (s, (a, b)) in enumerate(zip(symbols, rows, strict=True)):
        at = np.arange(b - a) if len(symbols) == 1 else np.searchsorted(grid, ohlcv.ts[a:b])
        for c, arr in arrays.items():
            arr[at, j] = ohlcv.values[c][a:b]
        valid[at, j] = 1
        pa_, pb = preds.starts[j], preds.starts[j + 1]
        pts = preds.ts[pa_:pb]
        sym_ts = ohlcv.ts[a:b]
        pos = np.searchsorted(sym_ts, pts)
        ok = pos < len(sym_ts)
        ok[ok] = sym_ts[pos[ok]] == pts[ok]
        if not ok.all():
            bad = int(pts[int(np.argmin(ok))])
            raise InputError(
                f"{plabel}: {s} has a prediction at {fmt_ms(bad)} with no candle in {ohlcv_path}"
            )
        pred[at[pos], j] = preds.values["prediction"][pa_:pb]
    have = ~np.isnan(pred).all(axis=1)
    if not have.any():
        raise InputError(f"{plabel}: every prediction is NaN")
    first = int(have.argmax())
    last = min(n - 1, int(n - 1 - have[::-1].argmax()) + 1)
    sl = slice(first, last + 1)
    _check_candles(ohlcv_path, symbols, grid[sl], valid[sl], {c: a[sl] for c, a in arrays.items()})
    tf = ohlcv.meta.get("timeframe") or _infer_tf(grid)
    return Market(
        symbols=symbols,
        ts=np.ascontiguousarray(grid[sl]),
        open=np.ascontiguousarray(arrays["open"][sl]),
        high=np.ascontiguousarray(arrays["high"][sl]),
        low=np.ascontiguousarray(arrays["low"][sl]),
        close=np.ascontiguousarray(arrays["close"][sl]),
        valid=np.ascontiguousarray(valid[sl]),
        pred=np.ascontiguousarray(pred[sl]),
        timeframe=str(tf),
        ohlcv_rows=ohlcv.rows,
        prediction_rows=preds.rows,
    )


def _check_candles(
    path: str | Path,
    symbols: list[str],
    ts: NDArray[np.int64],
    valid: NDArray[np.uint8],
    prices: dict[str, NDArray[np.float64]],
) -> None:
    """Refuse a traded candle that no exchange could print (what ``tradekit data check``
    calls nan, non_positive and high_below_low): the simulator would fill orders at it."""
    traded = valid == 1
    for c in ("open", "high", "low", "close"):
        x = prices[c]
        bad = traded & ~(np.isfinite(x) & (x > 0))
        if bad.any():
            t, j = np.argwhere(bad)[0]
            what = "NaN" if np.isnan(x[t, j]) else f"{x[t, j]:g}"
            raise InputError(
                f"{path}: {symbols[j]} at {fmt_ms(int(ts[t]))}: {c} is {what}, not a positive "
                "price (run 'tradekit data check')"
            )
    hi, lo = prices["high"], prices["low"]
    bad = traded & (hi < lo)
    if bad.any():
        t, j = np.argwhere(bad)[0]
        raise InputError(
            f"{path}: {symbols[j]} at {fmt_ms(int(ts[t]))}: high {hi[t, j]:g} is below low "
            f"{lo[t, j]:g} (high_below_low; run 'tradekit data check')"
        )


def _infer_tf(grid: NDArray[np.int64]) -> str:
    if len(grid) < 2:
        return "1h"
    step = int(np.median(np.diff(grid)))
    for unit, ms in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if step % ms == 0:
            return f"{step // ms}{unit}"
    return f"{max(1, step // 60_000)}m"
