"""Brokers: where the engine's orders go. The paper broker (fills like the backtest; a replay
uses it bare), and the loop's brokers: paper, and live (orders on the exchange through
``ExchangeBroker``, each position's stop-loss resting on the exchange).

Besides the engine's ``execute``, a loop broker answers ``starting_cash``, ``settle`` (what the
exchange did with an order the ledger left unsettled: recovery books it), ``balances`` (live),
``place_stops`` (after each cycle and on start) and ``before_send`` hooks. It sees the loop only
through :class:`BrokerContext`, never the runner.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradekit import risk as rk
from tradekit.live.orders import MarketRules, OrderRequest, OrderStatus

if TYPE_CHECKING:
    import sqlite3

    from tradekit.ledger import Ledger
    from tradekit.live.exchange_broker import ExchangeBroker
    from tradekit.live.parts import EngineParts

log = logging.getLogger(__name__)


class PaperBroker:
    """Fills like the backtest: at the reference price with ``slippage`` against the trader and
    ``fee`` per fill, wholly and at once (the reference price is the next open for signals and
    targets, the stop level for stops, as in ``backtest.kernel``)."""

    live = False

    def __init__(self, fee: float, slippage: float) -> None:
        self.fee = fee
        self.slippage = slippage

    def execute(self, req: OrderRequest, ref_price: float) -> OrderStatus:
        sign = 1.0 if req.side == "buy" else -1.0
        price = ref_price * (1.0 + sign * self.slippage)
        fee = req.qty * price * self.fee
        return OrderStatus(req.key, f"paper-{req.userref}", "closed", req.qty, price, fee)

    def deadline_ms(self) -> int | None:
        return None

    def settle(self, row: sqlite3.Row) -> OrderStatus:
        """A paper order whose answer a crash lost: the paper exchange fills it as it would
        have (at its reference price), so a resumed replay equals an uninterrupted one."""
        req = OrderRequest(row["key"], row["symbol"], row["side"], float(row["qty"]))
        return self.execute(req, float(row["ref_price"]))


@dataclass
class BrokerContext:
    """What a broker needs of the loop."""

    ledger: Ledger
    exchange_now: Callable[[], int]  # ms, by the exchange's clock (as last measured)
    exchange_stops: bool = True
    deadline_s: int = 30  # Kraken's AddOrder deadline: 2..60 s after the request leaves


class PaperLoopBroker(PaperBroker):
    def __init__(self, ctx: BrokerContext, fee: float, slippage: float, cash: float) -> None:
        super().__init__(fee, slippage)
        self.ctx = ctx
        self.cash = cash

    def starting_cash(self) -> float:
        return self.cash

    def place_stops(self, engine: EngineParts) -> None:
        return  # paper stops are the engine's own, checked on every candle's range


class LiveLoopBroker:
    """Market orders and stops on the exchange; every order through ``ExchangeBroker.place``
    (idempotent by ``userref``), its ledger row written before the request leaves."""

    live = True

    def __init__(self, ctx: BrokerContext, ex: ExchangeBroker, quote: str) -> None:
        self.ctx = ctx
        self.ex = ex
        self.quote = quote
        self.engine: EngineParts | None = (
            None  # bound once the engine exists (stop fills book there)
        )

    def bind(self, engine: EngineParts) -> None:
        self.engine = engine

    def starting_cash(self) -> float:
        bal = self.ex.check()
        return float(bal.get(self.quote, 0.0))

    def balances(self) -> dict[str, float]:
        return self.ex.balances()

    def rules(self, symbol: str) -> MarketRules:
        return self.ex.rules(symbol)

    def deadline_ms(self) -> int | None:
        return self.ctx.exchange_now() + self.ctx.deadline_s * 1000

    def _deadline(self, key: str) -> Callable[[], int | None]:
        """A fresh deadline for each attempt, recorded in the order's row before it leaves,
        so recovery knows when a missing order is surely never going to exist."""

        def hook() -> int | None:
            ms = self.deadline_ms()
            self.ctx.ledger.set_deadline(key, ms)
            return ms

        return hook

    def execute(self, req: OrderRequest, ref_price: float) -> OrderStatus:
        assert self.engine is not None
        qty = req.qty
        if req.side == "sell":
            self.cancel_stop(req.symbol)  # Kraken holds the coins of a resting sell
            # The stop may have filled before it was canceled: sell only what is left.
            qty = min(qty, float(self.engine.acct[self.engine.symbols.index(req.symbol)]["qty"]))
            if qty <= 0:
                return OrderStatus(req.key, status="rejected", message="its stop sold it first")
        rules = self.ex.rules(req.symbol)
        if rules.qty_step > 0:
            qty = rk.floor_qty(qty, rules.qty_step)
        if qty <= 0 or qty < rules.min_qty or qty * ref_price < rules.min_cost:
            return OrderStatus(
                req.key, status="rejected", message=f"below the exchange minimum ({qty:g})"
            )
        if qty != req.qty:
            req = OrderRequest(req.key, req.symbol, req.side, qty, req.kind, req.stop_price)
        st: OrderStatus = self.ex.place(req, deadline=self._deadline(req.key))
        return st

    def settle(self, row: sqlite3.Row) -> OrderStatus | None:
        """The exchange's view of an order: by txid when the ledger has one, else by userref;
        None when the exchange does not know it (yet)."""
        if row["exchange_id"]:
            st = self.ex.refresh(
                OrderStatus(row["key"], row["exchange_id"], "open", extra=_extra(row))
            )
            return None if st.status == "missing" else st
        return self.ex.lookup(_req_of(row))

    # -- stops -------------------------------------------------------------------------------
    def _stop_rows(self, symbol: str) -> list[sqlite3.Row]:
        return [
            r
            for r in self.ctx.ledger.unsettled_orders()
            if r["symbol"] == symbol and r["kind"] == "stop"
        ]

    def cancel_stop(self, symbol: str) -> None:
        """Cancel the resting stop(s) of ``symbol``; a part that filled first is booked."""
        assert self.engine is not None
        for r in self._stop_rows(symbol):
            st = self.settle(r)
            if st is None:
                if r["status"] == "submitting":
                    continue  # recovery decides once its deadline has passed
                st = OrderStatus(r["key"], r["exchange_id"], "missing")
            elif st.status == "open":
                st = self.ex.cancel(st)
            self.engine.book(r, st)

    def place_stops(self, engine: EngineParts) -> None:
        """One resting stop per open position at the policy's stop level (moved up with a
        trailing stop: cancel and replace). On start this runs before anything else trades, so
        a position never waits longer than a restart for its stop."""
        if not self.ctx.exchange_stops:
            return
        for s in range(len(engine.symbols)):
            sym = engine.symbols[s]
            a = engine.acct[s]
            level = engine.stop_price(s)
            rows = self._stop_rows(sym)
            if a["qty"] <= 0 or level is None:
                if rows:
                    self.cancel_stop(sym)
                continue
            rules = self.ex.rules(sym)
            qty = float(a["qty"])
            if rules.qty_step > 0:
                qty = rk.floor_qty(qty, rules.qty_step)
            if rules.price_step > 0:
                level = math.floor(level / rules.price_step * (1 + 1e-12)) * rules.price_step
            current = rows[0] if rows else None
            if (
                current is not None
                and current["status"] == "open"
                and abs(current["stop_price"] - level) <= level * 1e-9
                and abs(current["qty"] - qty) <= qty * 1e-9
            ):
                continue  # the resting stop is still right
            if current is not None:
                self.cancel_stop(sym)
                if self._stop_rows(sym):
                    continue  # still unsettled (its request may be in flight): next cycle
            if qty <= 0 or qty < rules.min_qty or a["qty"] <= 0:
                continue
            self._place_stop(engine, s, qty, level)

    def _place_stop(self, engine: EngineParts, s: int, qty: float, level: float) -> None:
        sym = engine.symbols[s]
        a = engine.acct[s]
        base = f"{sym}|{int(a['entry_t'])}|stop|{engine.last_candle_ms}"
        key, n = base, 1
        while self.ctx.ledger.order(key) is not None:  # a replacement at the same candle
            n += 1
            key = f"{base}#{n}"
        reason = "trailing_stop" if _trailing(engine, s) else "stoploss"
        req = OrderRequest(key, sym, "sell", qty, "stop", level)
        self.ctx.ledger.add_order(
            key, req.userref, sym, "sell", "stop", qty, level, engine.last_candle_ms or 0,
            reason, ref_price=level, deadline_ms=self.deadline_ms(),
        )  # fmt: skip
        st = self.ex.place(req, deadline=self._deadline(key))
        row = self.ctx.ledger.order(key)
        assert row is not None
        engine.book(row, st)


def _trailing(engine: EngineParts, s: int) -> bool:
    from tradekit import policy as pol

    reason, _ = pol.stop_level(engine.ps[s], engine.pp[0])
    return bool(reason == pol.TRAILING_STOP)


def _req_of(r: Any) -> OrderRequest:
    return OrderRequest(
        r["key"], r["symbol"], r["side"], float(r["qty"]), r["kind"], float(r["stop_price"])
    )


def _extra(r: Any) -> dict[str, str]:
    return {"userref": str(r["userref"]), "symbol": r["symbol"], "side": r["side"]}


def make_broker(
    ctx: BrokerContext,
    *,
    live: bool,
    exchange: Any,
    retry: Any,
    quote: str,
    fee: float,
    slippage: float,
    paper_balance: float,
) -> PaperLoopBroker | LiveLoopBroker:
    if not live:
        return PaperLoopBroker(ctx, fee, slippage, paper_balance)
    from tradekit.live.exchange_broker import ExchangeBroker

    return LiveLoopBroker(ctx, ExchangeBroker(exchange, retry, quote=quote), quote)
