"""What booking, state persistence and the brokers touch of an engine: a small interface, so
they depend on it and not on :class:`tradekit.live.engine.Engine`, which depends on them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import sqlite3

    import numpy as np
    from numpy.typing import NDArray

    from tradekit.ledger import Ledger
    from tradekit.live.orders import OrderStatus


class EngineParts(Protocol):
    symbols: list[str]
    ledger: Ledger
    tf_ms: int
    pp: NDArray[np.void]  # policy parameters (one record)
    ps: NDArray[np.void]  # policy state per symbol
    ring: NDArray[np.float64]  # dip rings
    rs: NDArray[np.void]  # risk state (one record)
    acct: NDArray[np.void]  # accounting.ACCT per symbol
    wallet: NDArray[np.void]  # accounting.WALLET (one record)
    risk_counts: NDArray[np.int64]
    last_candle_ms: int | None
    open_ms: int | None
    open_done: bool
    paused: bool
    reconcile_halt: dict[str, Any] | None

    @property
    def cash(self) -> float: ...

    def commit(self) -> None: ...

    def stop_price(self, s: int) -> float | None: ...

    def book(self, row: sqlite3.Row, st: OrderStatus) -> OrderStatus: ...
