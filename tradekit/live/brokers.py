"""The loop's brokers: paper (fills like the backtest, state in the ledger) and live (orders on
the exchange through ``ExchangeBroker``, with exchange-side stops and the dead man's switch).

Besides ``execute`` (the engine's market orders) a loop broker answers ``starting_cash``,
``reconcile`` (on start), ``idle`` (every iteration), ``after_cycle`` (after each new candle)
and ``kill``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from tradekit import risk as rk
from tradekit.live.engine import PaperBroker
from tradekit.live.orders import OrderRequest, OrderStatus

if TYPE_CHECKING:
    from tradekit.config import Config
    from tradekit.live.engine import Engine
    from tradekit.live.loop import Runner

log = logging.getLogger(__name__)


def make_broker(runner: Runner, ex: Any) -> PaperLoopBroker | LiveLoopBroker:
    cfg = runner.cfg
    if not runner.live:
        return PaperLoopBroker(runner, cfg.backtest.fee, cfg.backtest.slippage)
    from tradekit.live.exchange_broker import ExchangeBroker

    quote = cfg.exchange.symbols[0].split("/")[1]
    return LiveLoopBroker(runner, ExchangeBroker(ex, runner.retry, quote=quote), quote)


class PaperLoopBroker(PaperBroker):
    def __init__(self, runner: Runner, fee: float, slippage: float) -> None:
        super().__init__(fee, slippage)
        self.runner = runner

    def starting_cash(self, cfg: Config) -> float:
        return cfg.run.paper_balance

    def reconcile(self, engine: Engine) -> None:
        ledger = self.runner.ledger
        n = len(ledger.open_orders())
        held = sum(1 for a in engine.acct if a.qty > 0)
        msg = (
            f"paper state loaded: cash {engine.cash:.2f}, {held} position(s), equity "
            f"{engine.equity:.2f}"
            + (f", {n} order(s) interrupted mid-cycle (completed when it repeats)" if n else "")
        )
        ledger.event("info", "reconcile", msg)
        self.runner.summary.events.append(msg)

    def idle(self, engine: Engine) -> None:
        return

    def before_close(self, engine: Engine) -> None:
        return

    def after_cycle(self, engine: Engine) -> None:
        return

    def kill(self, engine: Engine) -> str:
        """Close every position at its last close (a paper market order)."""
        return close_all(engine, self.runner.ledger, f"kill{int(time.time())}")


def close_all(engine: Engine, ledger: Any, tag: str) -> str:
    from tradekit import policy as pol

    # The candle in progress: positions entered at its open are sold after they were bought.
    t_ms = engine.open_ms or engine.last_candle_ms or 0
    closed = []
    for s, a in enumerate(engine.acct):
        if a.qty <= 0:
            continue
        ref = a.last_close if not math.isnan(a.last_close) else a.entry_price
        engine._decide(t_ms, s, f"kill-{tag}", "exit", "kill", price=ref, qty=a.qty)
        if engine._sell(s, t_ms, a.qty, ref, pol.EXIT_SIGNAL, tag) > 0 and a.qty <= 0:
            engine._close_trade(s, t_ms, pol.EXIT_SIGNAL, a.last_close, "kill")
            pol.on_exit(engine.ps[s])
            a.pending = 0
            closed.append(engine.symbols[s])
    for a in engine.acct:
        a.pending = 0
    engine.paused = True  # a killed bot stays out until `resume`
    engine.equity = engine.cash + engine.positions_value()
    engine._commit(t_ms)
    return f"closed {', '.join(closed) or 'nothing'}; paused; stopping"


class LiveLoopBroker:
    """Market orders and stops on the exchange. Every order goes through ``ExchangeBroker.place``
    (idempotent by ``userref``); the ledger row exists before the request leaves."""

    live = True

    def __init__(self, runner: Runner, ex: Any, quote: str) -> None:
        self.runner = runner
        self.ex = ex
        self.quote = quote

    def starting_cash(self, cfg: Config) -> float:
        bal = self.ex.check()
        return float(bal.get(self.quote, 0.0))

    def execute(self, req: OrderRequest, ref_price: float, *, maybe_sent: bool) -> OrderStatus:
        rules = self.ex.rules(req.symbol)
        qty = req.qty
        if rules.qty_step > 0:
            qty = rk.floor_qty(qty, rules.qty_step)
        if qty <= 0 or qty < rules.min_qty or qty * ref_price < rules.min_cost:
            return OrderStatus(
                req.key, status="rejected", message=f"below the exchange minimum ({qty:g})"
            )
        if qty != req.qty:
            req = OrderRequest(req.key, req.symbol, req.side, qty, req.kind, req.stop_price)
        if req.side == "sell":
            self.cancel_stop(req.symbol)
        deadman = self.runner.cfg.run.deadman_s
        if deadman > 0:
            # Armed only while an order is in flight: should the Pi die now, the exchange
            # cancels what is left of it. Resting stops must outlive the Pi, so the switch is
            # disarmed again once the order has settled.
            self.ex.heartbeat(deadman)
        try:
            st: OrderStatus = self.ex.place(req, maybe_sent=maybe_sent)
        finally:
            if deadman > 0:
                self.ex.heartbeat(0)
        return st

    # -- stops -------------------------------------------------------------------------------
    def _stop_rows(self, symbol: str) -> list[Any]:
        return [
            r
            for r in self.runner.ledger.open_orders()
            if r["symbol"] == symbol and r["kind"] == "stop"
        ]

    def cancel_stop(self, symbol: str) -> None:
        ledger = self.runner.ledger
        for r in self._stop_rows(symbol):
            st = OrderStatus(r["key"], r["exchange_id"], "open")
            if not st.exchange_id:
                found = self.ex.lookup(_req_of(r))
                if found is None:
                    ledger.update_order(
                        r["key"], status="canceled", exchange_id="", filled=0.0,
                        avg_price=None, fee=0.0, message="never reached the exchange",
                    )  # fmt: skip
                    continue
                st = found
            st = self.ex.cancel(st)
            _record(ledger, st)

    def sync_stops(self, engine: Engine) -> None:
        """Stops that filled on the exchange close their positions in the ledger."""
        from tradekit import policy as pol

        ledger = self.runner.ledger
        for r in ledger.open_orders():
            if r["kind"] != "stop" or not r["exchange_id"]:
                continue
            st = self.ex.refresh(OrderStatus(r["key"], r["exchange_id"], "open"))
            _record(ledger, st)
            if st.filled <= 0 or r["symbol"] not in engine.symbols:
                continue
            s = engine.symbols.index(r["symbol"])
            a = engine.acct[s]
            if a.qty <= 0:
                continue
            engine._fills.append(
                (st.key, r["symbol"], "sell", st.filled, st.avg_price, st.fee, "stoploss",
                 int(r["candle_ms"]))
            )  # fmt: skip
            # A stop floored to the lot size may leave dust: a looser flat threshold.
            engine._book_sell(s, min(st.filled, a.qty), st.avg_price, st.fee, dust=1e-9)
            if a.qty <= 0:
                t_ms = engine.last_candle_ms or 0
                engine._close_trade(s, t_ms, pol.STOPLOSS, st.avg_price)
                pol.on_exit(engine.ps[s])
                ledger.event(
                    "info", "stop", f"{r['symbol']}: exchange stop filled at {st.avg_price:g}"
                )

    def place_stops(self, engine: Engine) -> None:
        """One resting stop per open position at the policy's stop level (raised with a
        trailing stop: cancel and replace)."""
        if not self.runner.cfg.run.exchange_stops:
            return
        ledger = self.runner.ledger
        for s, a in enumerate(engine.acct):
            sym = engine.symbols[s]
            level = engine.stop_price(s)
            rows = self._stop_rows(sym)
            if a.qty <= 0 or level is None:
                if rows:
                    self.cancel_stop(sym)
                continue
            rules = self.ex.rules(sym)
            qty = a.qty
            if rules.qty_step > 0:
                qty = rk.floor_qty(qty, rules.qty_step)
            if rules.price_step > 0:
                level = math.floor(level / rules.price_step * (1 + 1e-12)) * rules.price_step
            current = rows[0] if rows else None
            if (
                current is not None
                and abs(current["stop_price"] - level) <= level * 1e-9
                and abs(current["qty"] - qty) <= qty * 1e-9
            ):
                continue  # the resting stop is still right
            if current is not None:
                self.cancel_stop(sym)
            if qty <= 0 or qty < rules.min_qty:
                continue
            key = f"{sym}|{a.entry_ms}|stop|{engine.last_candle_ms}"
            req = OrderRequest(key, sym, "sell", qty, "stop", level)
            row = ledger.order(key)
            if row is not None and row["status"] != "submitting":
                continue
            if row is None:
                ledger.add_order(
                    key, req.userref, sym, "sell", "stop", qty, level,
                    engine.last_candle_ms or 0, "stoploss",
                )  # fmt: skip
            st = self.ex.place(req, maybe_sent=row is not None)
            _record(ledger, st)

    # -- the loop's hooks -----------------------------------------------------------------------
    def reconcile(self, engine: Engine) -> None:
        """Orders the ledger left unfinished are looked up on the exchange; balances are set
        beside the ledger's positions and cash."""
        ledger = self.runner.ledger
        fixed = 0
        for r in ledger.open_orders():
            if r["kind"] == "stop" and r["status"] == "open":
                continue  # resting stops stay; sync_stops follows them
            st = self.ex.lookup(_req_of(r))
            if st is None:
                if r["status"] == "submitting":
                    continue  # never reached the exchange: the repeated cycle sends it once
                st = OrderStatus(r["key"], r["exchange_id"], "missing")
            _record(ledger, st)
            fixed += 1
        self.sync_stops(engine)  # stops that filled while the loop was down, first
        bal = self.ex.balances()
        notes = []
        for s, a in enumerate(engine.acct):
            base = engine.symbols[s].split("/")[0]
            have = float(bal.get(base, 0.0))
            if abs(have - a.qty) > max(a.qty, 1e-12) * 1e-6 and (a.qty > 0 or have > 0):
                notes.append(f"{base}: exchange {have:g}, ledger {a.qty:g}")
        cash = float(bal.get(self.quote, 0.0))
        if abs(cash - engine.cash) > 0.01 and engine.last_candle_ms is not None:
            notes.append(f"{self.quote}: exchange {cash:.2f}, ledger {engine.cash:.2f}")
        msg = f"live state reconciled: {fixed} order(s) looked up"
        if notes:
            msg += "; differences (a repeated cycle or a hand trade): " + "; ".join(notes)
        ledger.event("warning" if notes else "info", "reconcile", msg)
        self.runner.summary.events.append(msg)
        log.info(msg)

    def idle(self, engine: Engine) -> None:
        return  # the dead man's switch is armed per order (see execute)

    def before_close(self, engine: Engine) -> None:
        self.sync_stops(engine)

    def after_cycle(self, engine: Engine) -> None:
        self.place_stops(engine)
        engine._commit(engine.last_candle_ms or 0)

    def kill(self, engine: Engine) -> str:
        for o in self.ex.open_orders():
            self.ex.cancel(o)
        for r in self.runner.ledger.open_orders():
            if r["kind"] == "stop":
                self.runner.ledger.update_order(
                    r["key"], status="canceled", exchange_id=r["exchange_id"],
                    filled=float(r["filled"]), avg_price=r["avg_price"], fee=float(r["fee"]),
                    message="kill",
                )  # fmt: skip
        return close_all(engine, self.runner.ledger, f"kill{int(time.time())}")


def _req_of(r: Any) -> OrderRequest:
    return OrderRequest(
        r["key"], r["symbol"], r["side"], float(r["qty"]), r["kind"], float(r["stop_price"])
    )


def _record(ledger: Any, st: OrderStatus) -> None:
    ledger.update_order(
        st.key,
        status=st.status if st.status != "missing" else "canceled",
        exchange_id=st.exchange_id,
        filled=st.filled,
        avg_price=None if math.isnan(st.avg_price) else st.avg_price,
        fee=st.fee,
        message=st.message or ("not found on the exchange" if st.status == "missing" else ""),
    )
