"""Controls from another shell or the phone, applied by the loop between cycles: ``pause``,
``resume`` (also lifts the risk halts), ``kill`` (close everything, stay paused, stop) and
``adopt`` (``reconcile --adopt``: take the exchange's balances)."""

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


def adopt(engine: Engine, broker: PaperLoopBroker | LiveLoopBroker, ledger: Ledger) -> str:
    from tradekit.live.brokers import LiveLoopBroker
    from tradekit.live.recovery import adopt as adopt_balances

    if not isinstance(broker, LiveLoopBroker):
        return "nothing to adopt: a paper ledger is its own exchange"
    done = adopt_balances(engine, broker, ledger, "adopt")
    broker.place_stops(engine)  # an adopted position gets its stop at once
    return "adopted " + ("; ".join(done) if done else "nothing: the ledger equals the exchange")
