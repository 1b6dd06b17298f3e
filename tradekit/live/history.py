"""The loop's candle history: the newest candles of every symbol the features need.

Kept in memory as one float64 array per symbol (ms, open, high, low, close, volume) and, after
each cycle, in a cache file beside the ledger (``.npz``), so a restart starts from it and asks
the exchange only for what is newer. The candle store (``[data] store``, filled by ``fetch``)
is read once, for what the cache lacks, by a child process: the loop itself never loads
pyarrow or pandas.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

log = logging.getLogger(__name__)


class History:
    """The newest ``keep`` candles of each of ``symbols``."""

    def __init__(self, symbols: list[str], tf_ms: int, keep: int) -> None:
        import numpy as np

        self.symbols = symbols
        self.tf_ms = tf_ms
        self.keep = keep
        self.rows: dict[str, NDArray[np.float64]] = {s: np.empty((0, 6)) for s in symbols}

    def add(self, symbol: str, rows: Any) -> int:
        """Append candles (ccxt rows or an array) newer than the newest kept one."""
        import numpy as np

        if not len(rows):
            return 0
        have = self.rows[symbol]
        last = have[-1, 0] if len(have) else -1.0
        a = np.asarray(rows, dtype=np.float64)[:, :6]
        a = a[a[:, 0] > last]
        if len(a):
            self.rows[symbol] = np.concatenate([have, a])[-self.keep :]
        return len(a)

    def widen(self, symbols: set[str] | list[str], keep: int) -> bool:
        """Also keep ``symbols`` and at least ``keep`` candles (a candidate model that needs
        more than the live one); True when anything changed (the store can fill it in)."""
        import numpy as np

        new = sorted(set(symbols) - set(self.symbols))
        for s in new:
            self.symbols.append(s)
            self.rows[s] = np.empty((0, 6))
        grew = keep > self.keep
        self.keep = max(self.keep, keep)
        return bool(new) or grew

    def last_ms(self, symbol: str) -> int | None:
        have = self.rows[symbol]
        return int(have[-1, 0]) if len(have) else None

    def frame(self) -> pd.DataFrame:
        """ohlcv/1 frame of every symbol's kept candles (built from the arrays, no row loop)."""
        import numpy as np
        import pandas as pd

        syms = [s for s in sorted(self.symbols) if len(self.rows[s])]
        arr = np.concatenate([self.rows[s] for s in syms])
        counts = [len(self.rows[s]) for s in syms]
        return pd.DataFrame(
            {
                "symbol": pd.Series(np.repeat(np.asarray(syms, dtype=object), counts), dtype="str"),
                "timestamp": pd.to_datetime(
                    arr[:, 0].astype(np.int64), unit="ms", utc=True
                ).as_unit("ms"),
                "open": arr[:, 1],
                "high": arr[:, 2],
                "low": arr[:, 3],
                "close": arr[:, 4],
                "volume": np.nan_to_num(arr[:, 5]),
            }
        )

    def at(self, symbol: str, t_ms: int) -> list[float] | None:
        """The candle of ``symbol`` that opened at ``t_ms``, if kept."""
        import numpy as np

        have = self.rows[symbol]
        i = int(np.searchsorted(have[:, 0], t_ms)) if len(have) else 0
        return have[i].tolist() if i < len(have) and have[i, 0] == t_ms else None

    def save(self, path: Path, source: str) -> None:
        """The history as a cache file (atomic); ``source`` names the exchange/timeframe."""
        import numpy as np

        from tradekit.fsutil import atomic_path

        arrays: dict[str, Any] = {f"s{i}": self.rows[s] for i, s in enumerate(self.symbols)}
        arrays["names"] = np.array([source, *self.symbols])
        try:
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        except (OSError, InputError) as e:
            log.warning("candle cache %s not written: %s", path, e)

    def load(self, path: Path, source: str) -> None:
        """Candles from a cache file of the same source; a missing or foreign file is
        ignored (the store and the exchange fill in)."""
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as npz:
                names = [str(x) for x in npz["names"]]
                if not names or names[0] != source:
                    return
                for i, s in enumerate(names[1:]):
                    if s in self.rows:
                        self.add(s, npz[f"s{i}"])
        except (OSError, ValueError, KeyError) as e:
            if not isinstance(e, FileNotFoundError):
                log.warning("candle cache %s unreadable (%s); reading the store", path, e)

    def fill_from_store(self, store: Path, exchange: str, timeframe: str) -> None:
        """Symbols with fewer than ``keep`` candles get the store's newest in front of those
        held (one child process reads every file)."""
        import numpy as np

        from tradekit.data.store import Store
        from tradekit.data.tail import read_in_child

        short = [s for s in self.symbols if len(self.rows[s]) < self.keep]
        files = {s: Store(store).path(exchange, timeframe, s) for s in short}
        files = {s: p for s, p in files.items() if p.exists()}
        try:
            arrays = read_in_child(list(files.values()), exchange, timeframe, self.keep)
        except InputError as e:
            log.warning("%s; starting from the exchange's candles", e)
            return
        for s, rows in zip(files, arrays, strict=True):
            have = self.rows[s]
            if len(have):
                rows = rows[rows[:, 0] < have[0, 0]]
            self.rows[s] = np.concatenate([rows, have])[-self.keep :]
