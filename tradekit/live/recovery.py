"""Recovery: the exchange is the source of truth, the ledger its exact, explained copy.

On every start, and in every cycle that finds an order whose fate is uncertain, :func:`settle`
asks the exchange about each order the ledger left unsettled (``submitting``: a crash may have
lost the answer; ``open``: resting stops, pending market orders) and books what the exchange
did through :meth:`Engine.book`, whatever phase or candle the order was sent in, exactly once
(each booking moves the order's ``booked_*`` and the engine state in one transaction, so a kill
at any point of recovery and another restart converge to the same ledger). An order the
exchange does not know after its request's deadline has passed never existed: it is closed as
such and never lingers.

Then, live, :func:`reconcile` sets the ledger's cash and holdings beside the exchange's
balances, asset by asset, to the exchange's precision. A difference the bot's own orders cannot
explain (a trade by hand, a deposit) halts new entries and is reported; only ``reconcile
--adopt`` (:func:`adopt`) takes the exchange's balances, recorded with a reason. Nothing is
adopted silently.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit import accounting as ac
from tradekit import interrupt
from tradekit.ledger import now_ms
from tradekit.live.booking import close_position
from tradekit.live.orders import OrderStatus

if TYPE_CHECKING:
    from tradekit.ledger import Ledger
    from tradekit.live.brokers import LiveLoopBroker, PaperLoopBroker
    from tradekit.live.engine import Engine

log = logging.getLogger(__name__)

GRACE_MS = 2_000  # past an order's deadline before a missing order counts as never placed
QUOTE_TOL = 5e-5  # half of Kraken's smallest fiat unit (4 decimals)


@dataclass(frozen=True)
class Difference:
    asset: str
    ledger: float
    exchange: float
    tolerance: float

    def as_json(self) -> dict[str, Any]:
        return {"asset": self.asset, "ledger": self.ledger, "exchange": self.exchange}

    def __str__(self) -> str:
        return f"{self.asset}: exchange {self.exchange:.10g}, ledger {self.ledger:.10g}"


def settle(
    engine: Engine, broker: PaperLoopBroker | LiveLoopBroker, ledger: Ledger, *, wait: bool
) -> int:
    """Book what the exchange did with every unsettled order; returns how many orders other
    than resting stops are still unsettled (an order whose request may still be queued until
    its deadline; with ``wait`` that deadline is waited out once, as on start)."""
    left = 0
    for row in ledger.unsettled_orders():
        st = broker.settle(row)
        if st is None:
            deadline = row["deadline_ms"]
            clock = broker.ctx.exchange_now()
            if deadline is not None and clock <= int(deadline) + GRACE_MS:
                if not wait:
                    left += 1
                    continue
                interrupt.sleep((int(deadline) + GRACE_MS - clock) / 1000)
                st = broker.settle(row)
            if st is None:
                st = OrderStatus(row["key"], row["exchange_id"], "missing")
                st.message = (
                    "never reached the exchange"
                    if row["status"] == "submitting"
                    else "no longer on the exchange"
                )
        row = ledger.order(row["key"]) or row  # a cancel_stop inside settle may have booked it
        engine.book(row, st)
        if st.status == "open" and row["kind"] != "stop":
            left += 1
    return left


def reconcile(engine: Engine, broker: LiveLoopBroker, ledger: Ledger) -> list[Difference]:
    """The ledger's holdings and cash beside the exchange's balances. A difference halts new
    entries (``engine.reconcile_halt``) and is an event for the phone; none lifts that halt."""
    diffs = differences(engine, broker)
    was = engine.reconcile_halt
    if diffs:
        engine.reconcile_halt = {
            "since_ms": (was or {}).get("since_ms") or now_ms(),
            "differences": [d.as_json() for d in diffs],
        }
        if was is None or was.get("differences") != engine.reconcile_halt["differences"]:
            msg = (
                "halted: the exchange's balances differ from the ledger and the bot's orders do "
                "not explain it (a trade by hand, a deposit?): "
                + "; ".join(map(str, diffs))
                + ". New entries wait; `tradekit reconcile` shows it, `reconcile --adopt` "
                "takes the exchange's balances"
            )
            ledger.event("critical", "reconcile", msg, differences=[d.as_json() for d in diffs])
            log.error("%s", msg)
    elif was is not None:
        engine.reconcile_halt = None
        ledger.event("info", "reconcile", "the ledger equals the exchange again: halt lifted")
    engine.commit()
    return diffs


def differences(engine: Engine, broker: LiveLoopBroker) -> list[Difference]:
    """Each traded asset whose exchange balance differs from the ledger's."""
    held: dict[str, float] = {}
    for s, sym in enumerate(engine.symbols):
        base = sym.split("/")[0]
        held[base] = held.get(base, 0.0) + float(engine.acct[s]["qty"])
    steps = {sym: broker.rules(sym).qty_step for sym in engine.symbols}
    return compare(held, engine.cash, broker.quote, broker.balances(), steps)


def compare(
    held: dict[str, float],
    cash: float,
    quote: str,
    balances: dict[str, float],
    steps: dict[str, float],
) -> list[Difference]:
    """Assets whose exchange balance differs from the ledger's by more than half the
    exchange's smallest unit: the lot size for coins, Kraken's 4 decimals for fiat."""
    tol: dict[str, float] = {}
    for sym, step in steps.items():
        base = sym.split("/")[0]
        tol[base] = max(tol.get(base, 0.0), (step or 1e-8) / 2)
    out = [
        Difference(asset, q, float(balances.get(asset, 0.0)), tol.get(asset, 5e-9))
        for asset, q in sorted(held.items())
        if abs(float(balances.get(asset, 0.0)) - q) > tol.get(asset, 5e-9)
    ]
    have = float(balances.get(quote, 0.0))
    if abs(have - cash) > QUOTE_TOL:
        out.append(Difference(quote, cash, have, QUOTE_TOL))
    return out


def check(cfg: Any, state: str | Path) -> dict[str, Any]:
    """``tradekit reconcile``: the ledger beside the exchange's balances, read-only on both
    sides (safe beside a running loop). Schema ``reconcile/1``."""
    from tradekit.data.exchange import RetryPolicy, load_markets
    from tradekit.ledger import LedgerView
    from tradekit.live.exchange_broker import ExchangeBroker
    from tradekit.live.startup import check_config, open_exchange

    check_config(cfg, live=True)
    with LedgerView(state) as view:
        meta = view.meta()
        doc = view.engine()
    if meta.get("mode") != "live":
        from tradekit.errors import UsageError

        raise UsageError(
            f"{state}: a {meta.get('mode', 'fresh')} ledger; reconcile compares a live ledger "
            "with the exchange (a paper ledger is its own exchange)"
        )
    symbols = list(doc.get("symbols") or cfg.exchange.symbols)
    held: dict[str, float] = {}
    for sym, acct in zip(symbols, doc.get("accounts") or [], strict=False):
        base = sym.split("/")[0]
        held[base] = held.get(base, 0.0) + float(acct.get("qty", 0.0))
    quote = symbols[0].split("/")[1]
    retry = RetryPolicy(cfg.exchange.retries, cfg.exchange.retry_backoff_s)
    ex = open_exchange(cfg, live=True)
    load_markets(ex, retry)
    broker = ExchangeBroker(ex, retry, quote=quote)
    balances = broker.balances()
    steps = {sym: broker.rules(sym).qty_step for sym in symbols}
    cash = float((doc.get("wallet") or {}).get("cash", 0.0))
    diffs = compare(held, cash, quote, balances, steps)
    assets = sorted({*held, quote})
    return {
        "schema": "reconcile/1",
        "ledger": str(state),
        "assets": [
            {
                "asset": a,
                "ledger": cash if a == quote else held.get(a, 0.0),
                "exchange": float(balances.get(a, 0.0)),
            }
            for a in assets
        ],
        "differences": [d.as_json() for d in diffs],
        "halted": bool(doc.get("reconcile_halt")),
    }


def adopt(engine: Engine, broker: LiveLoopBroker, ledger: Ledger, reason: str) -> list[str]:
    """Take the exchange's balances for every traded asset that differs: positions grow,
    shrink, open or close at their last close, the cash is set; each change an
    ``adjustments`` row with ``reason``; the drawdown peak and the day re-base to the new
    equity. Returns what changed."""
    from tradekit import risk as rk

    diffs = differences(engine, broker)
    done = []
    t = engine.last_candle_ms or now_ms()
    with ledger.tx():
        for d in diffs:
            if d.asset == broker.quote:
                engine.wallet[0]["cash"] = d.exchange
                ledger.add_adjustment(d.asset, None, d.ledger, d.exchange, None, reason)
                done.append(str(d))
                continue
            s = next(i for i, sym in enumerate(engine.symbols) if sym.split("/")[0] == d.asset)
            _adopt_position(engine, ledger, s, d, t, reason)
            done.append(str(d))
        engine.reconcile_halt = None
        engine.wallet[0]["equity"] = ac.equity(engine.acct, engine.cash)
        rk.lift(engine.rs[0], engine.equity)
        if done:
            ledger.event(
                "warning", "reconcile", f"adopted the exchange's balances ({reason}): "
                + "; ".join(done),
            )  # fmt: skip
        engine.commit()
    return done


def _adopt_position(
    engine: Engine, ledger: Ledger, s: int, d: Difference, t: int, reason: str
) -> None:
    a = engine.acct[s]
    sym = engine.symbols[s]
    price = float(a["last_close"])
    if math.isnan(price):
        price = float(a["entry_price"]) if a["qty"] > 0 else math.nan
    ledger.add_adjustment(d.asset, sym, d.ledger, d.exchange, price, reason)
    if d.exchange <= d.tolerance and a["qty"] > 0:
        # Gone from the exchange: the trade closes at its last close (marked, no fill).
        entry_ms = int(a["entry_t"])
        qty = float(a["qty"])
        ac.book_sell(a, engine.wallet[0], qty, qty * price, 0.0, 1.0)
        engine.wallet[0]["cash"] -= qty * price  # no cash came in: the quote is adopted apart
        close_position(engine, s, t, "adopted", price, entry_ms)
        return
    from tradekit import policy as pol

    flat = a["qty"] <= 0
    ac.adopt(a, d.exchange, price, t)
    if flat:
        pol.on_entry(engine.ps[s], price)
