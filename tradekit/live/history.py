"""The loop's candle history: the newest candles of every symbol the features need."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray


class History:
    """The newest candles of every symbol the features need, kept in memory as one float64
    array per symbol (ms, open, high, low, close, volume) and appended to the candle store
    (so a restart does not refetch what it had)."""

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

    def last_ms(self, symbol: str) -> int | None:
        have = self.rows[symbol]
        return int(have[-1, 0]) if len(have) else None

    def last_row(self, symbol: str) -> list[float] | None:
        have = self.rows[symbol]
        return have[-1].tolist() if len(have) else None

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
