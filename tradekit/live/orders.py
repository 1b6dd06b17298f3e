"""Order types shared by the engine, the ledger and the brokers (stdlib only).

Every order carries an idempotency key derived from the decision that made it
(``symbol|candle|action``), and a 31-bit ``userref`` derived from the key: Kraken's AddOrder
takes it, and a restart that finds the key in the ledger looks the order up by it before it
ever sends it again.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal, Protocol

Side = Literal["buy", "sell"]
Kind = Literal["market", "stop"]
# open: resting on the book (stops); closed: done (filled, maybe partly, then closed);
# canceled / rejected: never (fully) filled; missing: the exchange does not know the key.
Status = Literal["open", "closed", "canceled", "rejected", "missing"]


def userref_of(key: str) -> int:
    """A stable positive int32 for an idempotency key (Kraken's ``userref`` is an int32)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") & 0x7FFFFFFF or 1


@dataclass(frozen=True)
class OrderRequest:
    key: str  # idempotency key, unique per decision
    symbol: str  # ccxt unified, e.g. BTC/USD
    side: Side
    qty: float  # base currency
    kind: Kind = "market"
    stop_price: float = 0.0  # kind == "stop": sell when the price trades at or below it

    @property
    def userref(self) -> int:
        return userref_of(self.key)


@dataclass
class OrderStatus:
    key: str
    exchange_id: str = ""  # txid; "" while unknown
    status: Status = "missing"
    filled: float = 0.0  # base quantity filled so far
    avg_price: float = math.nan  # average fill price; NaN when nothing filled
    fee: float = 0.0  # quote currency
    message: str = ""  # why it was rejected / canceled, for the ledger
    extra: dict[str, str] = field(default_factory=dict)
    cost: float = math.nan  # quote value filled before the fee; NaN: filled * avg_price
    time_ms: int | None = None  # when it last filled, by the exchange's clock

    def __post_init__(self) -> None:
        if math.isnan(self.cost):
            self.cost = self.filled * self.avg_price if self.filled > 0 else 0.0

    @property
    def done(self) -> bool:
        return self.status in ("closed", "canceled", "rejected")


@dataclass(frozen=True)
class MarketRules:
    """What the exchange accepts for a symbol (Kraken AssetPairs: ordermin, costmin,
    lot_decimals, pair_decimals); 0 means no rule."""

    min_qty: float = 0.0
    qty_step: float = 0.0
    min_cost: float = 0.0
    price_step: float = 0.0


class Broker(Protocol):
    """Where the engine's orders go. ``execute`` sends ``req`` and returns its status once it
    is done or resting; ``ref_price`` is the price the decision saw (the paper broker fills at
    it, with slippage; an exchange fills where the market is)."""

    live: bool

    def execute(self, req: OrderRequest, ref_price: float) -> OrderStatus: ...

    def deadline_ms(self) -> int | None: ...
