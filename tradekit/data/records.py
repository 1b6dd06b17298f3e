"""What ``fetch`` is asked (:class:`FetchRequest`) and what it did (``fetch/1``): records the
exchange fetcher and the offline sample share without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradekit.data.exchange import RetryPolicy
from tradekit.timeutil import fmt_ms

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class FetchRequest:
    exchange: str
    symbols: list[str]
    timeframe: str
    since_ms: int | None = None
    until_ms: int | None = None
    store: str | None = None
    from_trades: bool = False
    api_url: str = ""
    timeout_s: float = 30.0
    rate_limit: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    flush_s: float = 5.0


@dataclass
class SymbolResult:
    symbol: str
    fetched: int = 0  # closed candles received in the asked span
    added: int = 0  # rows new to the store (equal to fetched without a store)
    first_ms: int | None = None
    last_ms: int | None = None
    requests: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class FetchResult:
    exchange: str
    timeframe: str
    symbols: list[SymbolResult]
    frame: pd.DataFrame | None  # the candles asked for (all symbols), when kept
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": "fetch/1",
            "exchange": self.exchange,
            "timeframe": self.timeframe,
            "symbols": [
                {
                    "symbol": s.symbol,
                    "fetched": s.fetched,
                    "added": s.added,
                    "first": fmt_ms(s.first_ms) if s.first_ms is not None else None,
                    "last": fmt_ms(s.last_ms) if s.last_ms is not None else None,
                    "requests": s.requests,
                    "warnings": s.warnings,
                }
                for s in self.symbols
            ],
        }
