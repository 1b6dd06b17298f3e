"""``tradekit data check``: data-quality report of an OHLCV file (``datacheck/1``).

Problems (exit 1): gaps, duplicate or unsorted timestamps, timestamps off the timeframe grid,
NaN or infinite values, non-positive prices, negative volume, high < low, open/close outside
[low, high]. Zero-volume candles are counted but are not a problem (filled gaps have them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError, UsageError
from tradekit.timeutil import fmt_ms, timeframe_ms

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROBLEM_CHECKS = (
    "gaps",
    "duplicates",
    "unsorted",
    "misaligned",
    "nan",
    "non_positive",
    "negative_volume",
    "high_below_low",
    "outside_range",
)


def _first(mask: np.ndarray, ts: np.ndarray) -> str | None:
    import numpy as np

    idx = np.flatnonzero(mask)
    return fmt_ms(int(ts[idx[0]])) if len(idx) else None


def infer_timeframe_ms(df: pd.DataFrame) -> int | None:
    """The most common spacing of consecutive candles, when the file does not say."""
    import numpy as np

    diffs = []
    for _, g in df.groupby("symbol", sort=False):
        d = np.diff(np.sort(g["timestamp"].astype("int64").to_numpy()))
        diffs.append(d[d > 0])
    if not diffs:
        return None
    d = np.concatenate(diffs)
    if not len(d):
        return None
    values, counts = np.unique(d, return_counts=True)
    return int(values[counts.argmax()])


def check_symbol(
    g: pd.DataFrame, tf_ms: int, out_of_order: np.ndarray | None = None
) -> dict[str, Any]:
    """One symbol's rows, in file order. ``out_of_order`` marks rows that break the file's
    symbol order (found by :func:`check_frame`); they count as unsorted."""
    import numpy as np

    ts = g["timestamp"].astype("int64").to_numpy()
    o, h, lo, c, v = (
        g[k].to_numpy(dtype="float64") for k in ("open", "high", "low", "close", "volume")
    )
    prices = np.vstack([o, h, lo, c])
    finite = np.isfinite(prices).all(axis=0) & np.isfinite(v)
    out: dict[str, Any] = {
        "rows": len(g),
        "first": fmt_ms(int(ts.min())) if len(ts) else None,
        "last": fmt_ms(int(ts.max())) if len(ts) else None,
    }
    found: dict[str, dict[str, Any]] = {}

    def add(name: str, mask: np.ndarray) -> None:
        n = int(mask.sum())
        if n:
            found[name] = {"count": n, "first": _first(mask, ts)}

    d = np.diff(ts)
    unsorted = np.concatenate([[False], d < 0])
    if out_of_order is not None:
        unsorted |= out_of_order
    add("unsorted", unsorted)
    uniq = np.unique(ts)
    ts_sorted = np.sort(ts)
    dup_sorted = np.concatenate([[False], np.diff(ts_sorted) == 0])
    if dup_sorted.any():  # the mask is in sorted order: take "first" from the sorted times
        found["duplicates"] = {
            "count": int(dup_sorted.sum()),
            "first": _first(dup_sorted, ts_sorted),
        }
    add("misaligned", ts % tf_ms != 0)
    add("nan", ~finite)
    add("non_positive", finite & (prices <= 0).any(axis=0))
    add("negative_volume", np.isfinite(v) & (v < 0))
    add("high_below_low", finite & (h < lo))
    outside = finite & (h >= lo) & ((o > h) | (o < lo) | (c > h) | (c < lo))
    add("outside_range", outside)
    aligned = uniq[uniq % tf_ms == 0]
    if len(aligned) > 1:
        steps = np.diff(aligned) // tf_ms
        holes = steps > 1
        if holes.any():
            missing = int((steps[holes] - 1).sum())
            k = int(np.argmax(steps))
            found["gaps"] = {
                "count": int(holes.sum()),
                "missing_candles": missing,
                "first": fmt_ms(int(aligned[:-1][holes][0]) + tf_ms),
                "largest": {
                    "from": fmt_ms(int(aligned[k]) + tf_ms),
                    "missing_candles": int(steps[k] - 1),
                },
            }
    out["zero_volume"] = int((np.isfinite(v) & (v == 0)).sum())
    out["problems"] = found
    return out


def check_frame(
    df: pd.DataFrame, timeframe: str | None, label: str, meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    meta = meta or {}
    for c in ("symbol", "timestamp"):
        n_null = int(df[c].isna().sum())
        if n_null:
            raise InputError(f"{label}: {n_null} row(s) with an empty {c}")
    tf_name = timeframe or meta.get("timeframe")
    try:
        tf_ms = timeframe_ms(str(tf_name)) if tf_name else infer_timeframe_ms(df)
    except UsageError as e:
        if timeframe:
            raise  # the user's --timeframe: a usage error
        raise InputError(f"{label}: metadata timeframe: {e}") from None
    import numpy as np

    df = df.reset_index(drop=True)
    # A row whose symbol sorts before the previous row's breaks the (symbol, timestamp) order
    # of the file even when each symbol's own times are in order; readers refuse such a file.
    sym = df["symbol"].astype(str).to_numpy()
    back = np.concatenate([[False], sym[1:] < sym[:-1]]) if len(sym) else np.zeros(0, bool)
    symbols = {}
    for symbol, g in df.groupby("symbol", sort=True):
        rows = g.index.to_numpy()
        symbols[str(symbol)] = check_symbol(g.reset_index(drop=True), tf_ms or 1, back[rows])
    problems = [
        {"symbol": s, "check": name, **detail}
        for s, r in symbols.items()
        for name, detail in r["problems"].items()
    ]
    return {
        "schema": "datacheck/1",
        "file": label,
        "exchange": meta.get("exchange"),
        "timeframe": tf_name or (_tf_label(tf_ms) if tf_ms else None),
        "rows": len(df),
        "ok": not problems,
        "symbols": symbols,
        "problems": problems,
    }


def _tf_label(tf_ms: int) -> str:
    """1h rather than 60m; seconds where the spacing is below a minute."""
    from tradekit.data.importer import minutes_to_timeframe

    if tf_ms % 60_000:
        return f"{tf_ms / 1000:g}s"
    return minutes_to_timeframe(tf_ms // 60_000)
