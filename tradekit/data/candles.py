"""OHLCV frames in the ohlcv/1 long format: build, merge, fill gaps, resample."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tradekit.contracts import OHLCV_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

PRICE_COLUMNS = ["open", "high", "low", "close"]


def empty() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "symbol": pd.Series([], dtype="str"),
            "timestamp": pd.Series([], dtype="datetime64[ms, UTC]"),
            **{c: pd.Series([], dtype="float64") for c in [*PRICE_COLUMNS, "volume"]},
        }
    )


def from_rows(symbol: str, rows: Sequence[Sequence[float | int | None]]) -> pd.DataFrame:
    """ccxt rows ``[ms, open, high, low, close, volume]`` as an ohlcv/1 frame."""
    import numpy as np
    import pandas as pd

    if not rows:
        return empty()
    arr = np.asarray([r[:6] for r in rows], dtype="float64")
    return pd.DataFrame(
        {
            "symbol": pd.Series([symbol] * len(arr), dtype="str"),
            "timestamp": pd.to_datetime(arr[:, 0].astype("int64"), unit="ms", utc=True).as_unit(
                "ms"
            ),
            "open": arr[:, 1],
            "high": arr[:, 2],
            "low": arr[:, 3],
            "close": arr[:, 4],
            "volume": np.nan_to_num(arr[:, 5], nan=0.0),
        }
    )


def normalize(df: pd.DataFrame) -> pd.DataFrame:
    """Contract order: columns as ohlcv/1, sorted by (symbol, timestamp), fresh index."""
    df = df[OHLCV_COLUMNS]
    df = df.astype({"symbol": "str", **{c: "float64" for c in [*PRICE_COLUMNS, "volume"]}})
    df["timestamp"] = df["timestamp"].dt.tz_convert("UTC").dt.as_unit("ms")
    return df.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)


def combine(frames: Iterable[pd.DataFrame | None]) -> pd.DataFrame:
    """Union of candle frames in contract order; where several hold a candle, the first wins.

    A stored closed candle is final: pass the stored frame first and appending never rewrites
    history.
    """
    import pandas as pd

    parts = [f for f in frames if f is not None and len(f)]
    if not parts:
        return empty()
    both = pd.concat(parts, ignore_index=True)
    both = both.drop_duplicates(["symbol", "timestamp"], keep="first")
    return normalize(both)


def fill_gaps(df: pd.DataFrame, tf_ms: int) -> tuple[pd.DataFrame, int]:
    """Insert flat zero-volume candles where a symbol has none (no trades in that interval).

    Kraken's archive and trade-built candles omit intervals without trades; models and the
    backtest want a regular grid. Returns the frame and the number of candles added.
    """
    import pandas as pd

    if df.empty:
        return df, 0
    parts = []
    added = 0
    step = pd.Timedelta(milliseconds=tf_ms)
    for symbol, g in df.groupby("symbol", sort=True):
        g = g.set_index("timestamp")
        grid = pd.date_range(g.index[0], g.index[-1], freq=step).as_unit("ms")
        if len(grid) == len(g):
            parts.append(g.reset_index())
            continue
        g = g.reindex(grid)
        missing = g["close"].isna()
        added += int(missing.sum())
        close = g["close"].ffill()
        for c in PRICE_COLUMNS:
            g[c] = g[c].fillna(close)
        g["volume"] = g["volume"].fillna(0.0)
        g["symbol"] = symbol
        parts.append(g.rename_axis("timestamp").reset_index())
    return normalize(pd.concat(parts, ignore_index=True)), added


def resample(df: pd.DataFrame, tf_ms: int) -> pd.DataFrame:
    """Aggregate candles into a coarser timeframe aligned to the epoch (UTC)."""
    import pandas as pd

    if df.empty:
        return df
    ts = df["timestamp"].astype("int64")  # ms since the epoch (the column is ms resolution)
    bucket = ts - ts % tf_ms
    g = df.assign(_b=bucket).groupby(["symbol", "_b"], sort=True)
    out = g.agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    ).reset_index()
    out["timestamp"] = pd.to_datetime(out["_b"], unit="ms", utc=True).dt.as_unit("ms")
    return normalize(out.drop(columns="_b"))


def between(df: pd.DataFrame, since_ms: int | None, until_ms: int | None) -> pd.DataFrame:
    """Rows whose open time is in [since, until)."""
    if df.empty:
        return df
    ts = df["timestamp"].astype("int64")
    mask = ts >= (since_ms if since_ms is not None else ts.min())
    if until_ms is not None:
        mask &= ts < until_ms
    return df[mask].reset_index(drop=True)
