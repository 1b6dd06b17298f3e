"""Controls from another shell or the phone, applied by the loop between cycles: ``pause``,
``resume`` (also lifts the risk halts), ``kill`` (close everything, stay paused, stop),
``forceexit:SYMBOL`` (sell that one position at market; the loop trades on) and ``adopt``
(``reconcile --adopt``: take the exchange's balances)."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from tradekit.live.orders import OrderRequest

if TYPE_CHECKING:
    from tradekit.ledger import Ledger
    from tradekit.live.brokers import LiveLoopBroker, PaperLoopBroker
    from tradekit.live.engine import Engine

log = logging.getLogger(__name__)
FORCEEXIT = "forceexit:"  # + the symbol; the person's own command (the phone), never ask's


def apply(engine: Engine, broker: PaperLoopBroker | LiveLoopBroker, ledger: Ledger) -> str | None:
    """Apply every pending control in order; returns "killed" when the loop must stop."""
    stop = None
    for row in ledger.pending_controls():
        cmd = str(row["command"])
        if cmd == "pause":
            engine.paused = True
            result = "paused: no new entries; exits and stops go on"
        elif cmd == "resume":
            engine.paused = False
            lifted = engine.lift_halts()
            result = "resumed" + (f"; halts lifted: {lifted}" if lifted else "")
        elif cmd == "kill":
            result = kill(engine)
            stop = "killed"
        elif cmd.startswith(FORCEEXIT):
            result = forceexit(engine, cmd.removeprefix(FORCEEXIT))
        elif cmd == "adopt":
            result = adopt(engine, broker, ledger)
        else:
            result = f"unknown command {cmd!r}"
        with ledger.tx():
            ledger.control_done(int(row["id"]), result)
            engine.commit()
        ledger.event("info", "control", f"{cmd}: {result}")
        log.info("%s: %s", cmd, result)
    return stop


def kill(engine: Engine) -> str:
    """Sell every position at market (the exchange's stops are canceled first by the live
    broker), drop pending intents and stay paused until ``resume``."""
    # The candle in progress: positions entered at its open are sold after they were bought.
    t_ms = engine.open_ms or engine.last_candle_ms or 0
    tag = f"kill{int(time.time())}"
    closed = []
    for s in engine.held():
        a = engine.acct[s]
        ref = float(a["last_close"]) if not math.isnan(a["last_close"]) else float(a["entry_price"])
        qty = float(a["qty"])
        engine.decide(t_ms, s, f"kill-{tag}", "exit", "kill", price=ref, qty=qty)
        sym = engine.symbols[s]
        engine.place(OrderRequest(f"{sym}|{t_ms}|{tag}", sym, "sell", qty), ref, t_ms, "kill")
        if engine.acct[s]["qty"] <= 0:
            closed.append(sym)
    engine.acct["pending"] = 0
    engine.paused = True
    engine.commit()
    return f"closed {', '.join(closed) or 'nothing'}; paused; stopping"


def forceexit(engine: Engine, symbol: str) -> str:
    """Sell one position at market with reason ``forceexit``, as :func:`kill` does for all
    (the live broker cancels its exchange stop first), and drop that symbol's pending intent.
    Entries are not paused: the policy may enter the symbol again at a later signal."""
    if symbol not in engine.symbols:
        return f"{symbol}: not a symbol of this loop; nothing done"
    s = engine.symbols.index(symbol)
    a = engine.acct[s]
    if a["qty"] <= 0.0:
        return f"{symbol}: no open position; nothing done"
    t_ms = engine.open_ms or engine.last_candle_ms or 0
    tag = f"forceexit{int(time.time())}"
    ref = float(a["last_close"]) if not math.isnan(a["last_close"]) else float(a["entry_price"])
    qty = float(a["qty"])
    engine.decide(t_ms, s, f"forceexit-{tag}", "exit", "forceexit", price=ref, qty=qty)
    engine.place(OrderRequest(f"{symbol}|{t_ms}|{tag}", symbol, "sell", qty), ref, t_ms,
                 "forceexit")  # fmt: skip
    engine.acct["pending"][s] = 0
    engine.acct["pend_steps"][s] = 0
    engine.commit()
    if engine.acct[s]["qty"] > 0.0:
        return f"{symbol}: sell of {qty:.8g} placed, not filled yet"
    return f"closed {symbol} ({qty:.8g} sold at market)"


def adopt(engine: Engine, broker: PaperLoopBroker | LiveLoopBroker, ledger: Ledger) -> str:
    from tradekit.live.brokers import LiveLoopBroker
    from tradekit.live.recovery import adopt as adopt_balances

    if not isinstance(broker, LiveLoopBroker):
        return "nothing to adopt: a paper ledger is its own exchange"
    done = adopt_balances(engine, broker, ledger, "adopt")
    broker.place_stops(engine)  # an adopted position gets its stop at once
    return "adopted " + ("; ".join(done) if done else "nothing: the ledger equals the exchange")
