"""``tradekit data import``: Kraken's downloadable OHLCVT CSV files into ohlcv/1.

Kraken's archive holds one ``<ALTNAME>_<minutes>.csv`` per pair and interval, rows
``time_s,open,high,low,close,volume,trades`` with no header (some copies carry one), and no
row for an interval without trades. Symbol and timeframe are read from the file name unless
given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tradekit.data import candles
from tradekit.errors import InputError, UsageError

if TYPE_CHECKING:
    import pandas as pd

# Kraken's legacy asset codes; the rest are the plain ticker.
_ASSET = {
    "XBT": "BTC",
    "XXBT": "BTC",
    "XDG": "DOGE",
    "XXDG": "DOGE",
    "XETH": "ETH",
    "XLTC": "LTC",
    "XXRP": "XRP",
    "XXLM": "XLM",
    "XETC": "ETC",
    "XXMR": "XMR",
    "XZEC": "ZEC",
    "XREP": "REP",
    "ZUSD": "USD",
    "ZEUR": "EUR",
    "ZGBP": "GBP",
    "ZCAD": "CAD",
    "ZJPY": "JPY",
    "ZAUD": "AUD",
    "ZCHF": "CHF",
}
_QUOTES = (
    "USDT",
    "USDC",
    "PYUSD",
    "ZUSD",
    "ZEUR",
    "ZGBP",
    "ZCAD",
    "ZJPY",
    "USD",
    "EUR",
    "GBP",
    "CAD",
    "JPY",
    "CHF",
    "AUD",
    "DAI",
    "XBT",
    "ETH",
    "DOT",
)
_NAME_RE = re.compile(r"^([A-Z0-9]+)_(\d+)$")
COLUMNS = ["time", "open", "high", "low", "close", "volume", "trades"]


@dataclass(frozen=True)
class Imported:
    frame: pd.DataFrame
    symbol: str
    timeframe: str
    rows: int
    dropped_duplicates: int


def minutes_to_timeframe(minutes: int) -> str:
    if minutes % 10080 == 0:
        return f"{minutes // 10080}w"
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def altname_to_symbol(alt: str) -> str | None:
    for q in _QUOTES:
        if alt.endswith(q) and len(alt) > len(q):
            base = alt[: -len(q)]
            return f"{_ASSET.get(base, base)}/{_ASSET.get(q, q)}"
    return None


def infer(path: Path) -> tuple[str | None, str | None]:
    """(symbol, timeframe) from a Kraken archive file name such as XBTUSD_60.csv."""
    m = _NAME_RE.match(path.name.split(".")[0].upper())
    if not m:
        return None, None
    return altname_to_symbol(m.group(1)), minutes_to_timeframe(int(m.group(2)))


def read_kraken_csv(
    path: str | Path, symbol: str | None = None, timeframe: str | None = None
) -> Imported:
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    guess_sym, guess_tf = infer(p)
    symbol = symbol or guess_sym
    timeframe = timeframe or guess_tf
    if not symbol:
        raise UsageError(
            f"{p}: cannot tell the symbol from the file name; pass --symbol BASE/QUOTE"
        )
    if not timeframe:
        raise UsageError(f"{p}: cannot tell the timeframe from the file name; pass --timeframe")
    try:
        raw = pd.read_csv(
            p,
            header=None,
            dtype=str,
            skip_blank_lines=True,
            compression="infer",
            keep_default_na=False,
        )
    except pd.errors.EmptyDataError:
        raise InputError(f"{p}: empty file, no candles") from None
    except pd.errors.ParserError as e:
        detail = str(e).strip().splitlines()[-1]
        ragged = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", detail)
        if ragged:
            want, line, saw = ragged.groups()
            raise InputError(
                f"{p}:{line}: expected {want} columns like the first row, got {saw}"
            ) from None
        raise InputError(f"{p}: not a Kraken OHLCVT CSV ({detail})") from None
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a text CSV file") from None
    except (OSError, EOFError) as e:
        raise InputError(f"{p}: cannot read: {e}") from None
    if raw.shape[1] not in (6, 7):
        raise InputError(
            f"{p}: expected 6 or 7 columns (time,open,high,low,close,volume[,trades]), "
            f"got {raw.shape[1]}"
        )
    raw.columns = COLUMNS[: raw.shape[1]]
    first_line = 1
    if len(raw) and not any(_is_number(v) for v in raw.iloc[0]):
        # A header row (some copies add one). A row with a number in it is data, and a bad
        # value in it is reported below rather than dropped as if it were a header.
        raw = raw.iloc[1:]
        first_line = 2
    if raw.empty:
        raise InputError(f"{p}: no candle rows")
    nums = {}
    for c in COLUMNS[:6]:
        col = pd.to_numeric(raw[c].str.strip(), errors="coerce")
        bad = col.isna() | col.isin([float("inf"), float("-inf")])  # 'inf' parses too
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise InputError(
                f"{p}:{first_line + i}: column {c}: {raw[c].iloc[i]!r} is not a number"
            )
        nums[c] = col.to_numpy(dtype="float64")
    secs = nums["time"]
    if (secs % 1 != 0).any() or (secs < 0).any():
        i = int(((secs % 1 != 0) | (secs < 0)).argmax())
        raise InputError(
            f"{p}:{first_line + i}: time {raw['time'].iloc[i]!r} is not whole epoch seconds"
        )
    df = pd.DataFrame(
        {
            "symbol": pd.Series([symbol] * len(secs), dtype="str"),
            "timestamp": pd.to_datetime(secs.astype("int64") * 1000, unit="ms", utc=True).as_unit(
                "ms"
            ),
            **{c: nums[c] for c in ("open", "high", "low", "close", "volume")},
        }
    )
    dup = df.duplicated(["timestamp"], keep="first")
    if dup.any():
        # Same time twice with different values cannot be resolved silently.
        full_dup = df.duplicated(keep="first")
        conflict = dup & ~full_dup
        if conflict.any():
            i = int(conflict.to_numpy().argmax())
            raise InputError(
                f"{p}:{first_line + i}: a second, different row for time {raw['time'].iloc[i]}"
            )
    dropped = int(dup.sum())
    df = candles.combine([df[~dup]])
    return Imported(df, symbol, timeframe, len(df), dropped)


def _is_number(text: str) -> bool:
    try:
        float(str(text).strip())
    except ValueError:
        return False
    return True
