"""The candle store: one ohlcv/1 Parquet per exchange/timeframe/symbol.

Layout: ``<root>/<exchange>/<timeframe>/<BASE>_<QUOTE>.parquet``. Appends merge new closed
candles into the file under an exclusive lock (two cron jobs cannot lose each other's rows)
and replace it atomically (a killed fetch leaves the previous complete file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.contracts import OHLCV, read_table, write_table
from tradekit.data import candles
from tradekit.errors import InputError

if TYPE_CHECKING:
    import pandas as pd


def symbol_file(symbol: str) -> str:
    return symbol.replace("/", "_").replace(":", "-") + ".parquet"


def file_symbol(name: str) -> str:
    stem = name.removesuffix(".parquet")
    base, _, rest = stem.partition("_")
    quote, _, settle = rest.partition("-")
    return f"{base}/{quote}" + (f":{settle}" if settle else "")


@dataclass(frozen=True)
class Entry:
    exchange: str
    timeframe: str
    symbol: str
    path: Path
    rows: int
    first_ms: int | None
    last_ms: int | None
    bytes: int


class Store:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, exchange: str, timeframe: str, symbol: str) -> Path:
        return self.root / exchange / timeframe / symbol_file(symbol)

    @contextlib.contextmanager
    def lock(self, exchange: str, timeframe: str, symbol: str) -> Iterator[None]:
        p = self.path(exchange, timeframe, symbol)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fh = open(p.with_name("." + p.name + ".lock"), "a")  # noqa: SIM115 - held below
        except OSError as e:
            raise InputError(f"{p.parent}: cannot write the store: {e.strerror}") from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def read(self, exchange: str, timeframe: str, symbol: str) -> pd.DataFrame | None:
        p = self.path(exchange, timeframe, symbol)
        if not p.exists():
            return None
        df, meta = read_table(p, OHLCV)
        self._check_meta(p, meta, exchange, timeframe)
        return df

    @staticmethod
    def _check_meta(p: Path, meta: dict[str, Any], exchange: str, timeframe: str) -> None:
        if meta.get("exchange") != exchange or meta.get("timeframe") != timeframe:
            raise InputError(
                f"{p}: holds {meta.get('exchange')}/{meta.get('timeframe')} candles, "
                f"expected {exchange}/{timeframe}"
            )

    def last_ms(self, exchange: str, timeframe: str, symbol: str) -> int | None:
        """Open time of the newest stored candle, read from the Parquet footer statistics."""
        e = self.entry(self.path(exchange, timeframe, symbol))
        return e.last_ms if e else None

    def append(self, exchange: str, timeframe: str, symbol: str, new: pd.DataFrame) -> int:
        """Merge ``new`` candles into the symbol's file; returns how many rows were added."""
        if new.empty:
            return 0
        new = candles.combine([new])
        p = self.path(exchange, timeframe, symbol)
        meta = {"exchange": exchange, "timeframe": timeframe, "symbol": symbol}
        with self.lock(exchange, timeframe, symbol):
            last = self.last_ms(exchange, timeframe, symbol)
            if last is not None and int(new["timestamp"].astype("int64").iloc[0]) > last:
                # The cron case: everything is newer. Concatenate Arrow tables; no pandas
                # round trip of the stored rows, no re-sort.
                self._append_after(p, new, meta, exchange, timeframe)
                return len(new)
            old = self.read(exchange, timeframe, symbol)
            merged = candles.combine([old, new])
            added = len(merged) - (0 if old is None else len(old))
            if added:
                write_table(merged, p, OHLCV, meta)
            return added

    def _append_after(
        self, p: Path, new: pd.DataFrame, meta: dict[str, Any], exchange: str, timeframe: str
    ) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from tradekit.contracts import check_arrow_schema, to_table
        from tradekit.fsutil import atomic_path

        try:
            old = pq.read_table(p)
        except (pa.ArrowException, OSError) as e:
            raise InputError(f"{p}: not a readable Parquet file ({e})") from None
        check_arrow_schema(old.schema, OHLCV, str(p))
        stored = json.loads((old.schema.metadata or {}).get(b"tradekit.meta", b"{}"))
        self._check_meta(p, stored, exchange, timeframe)
        add = to_table(new, OHLCV, meta)
        table = pa.concat_tables([old.cast(add.schema), add])
        with atomic_path(p) as tmp:
            pq.write_table(table, tmp, compression="zstd")

    def entry(self, p: Path) -> Entry | None:
        """What one store file holds, from its footer only (no row data is read)."""
        import pyarrow.parquet as pq

        if not p.exists():
            return None
        try:
            pf = pq.ParquetFile(p)
        except Exception as e:
            raise InputError(f"{p}: not a readable Parquet file ({e})") from None
        md = pf.metadata
        meta = json.loads((pf.schema_arrow.metadata or {}).get(b"tradekit.meta", b"{}"))
        idx = pf.schema_arrow.get_field_index("timestamp")
        first = last = None
        for rg in range(md.num_row_groups):
            st = md.row_group(rg).column(idx).statistics
            if st is None or not st.has_min_max:
                continue
            lo, hi = _as_ms(st.min), _as_ms(st.max)
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
        return Entry(
            exchange=str(meta.get("exchange", p.parent.parent.name)),
            timeframe=str(meta.get("timeframe", p.parent.name)),
            symbol=str(meta.get("symbol", file_symbol(p.name))),
            path=p,
            rows=md.num_rows,
            first_ms=first,
            last_ms=last,
            bytes=p.stat().st_size,
        )

    def entries(self) -> list[Entry]:
        if not self.root.is_dir():
            raise InputError(f"{self.root}: no such store directory")
        found = []
        for p in sorted(self.root.glob("*/*/*.parquet")):
            e = self.entry(p)
            if e is not None:
                found.append(e)
        return found


def _as_ms(v: Any) -> int:
    """Parquet statistics give datetimes (or raw ints) for timestamp columns."""
    if isinstance(v, int):
        return v
    return int(v.timestamp() * 1000)
