"""Booking: what the exchange reports of an order becomes fills, accounts, trades and the
engine's state, in one transaction, exactly once (by the order's ``booked_*`` columns), for
the engine's own orders and for those recovery finds after a crash alike."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tradekit import accounting as ac
from tradekit import policy as pol
from tradekit.live.orders import OrderStatus

if TYPE_CHECKING:
    import sqlite3

    from tradekit.live.parts import EngineParts

ADOPTED = "adopted"  # entry/exit reason of a position taken from the exchange by hand
_STOP_REASONS = ("stoploss", "trailing_stop")
_OPEN_EXITS = ("exit_signal", "take_profit", "partial_tp")
_CODES = {name: code for code, name in pol.REASON_NAMES.items()}


def reason_name(code: int) -> str:
    """A position's entry reason: a policy reason, or ``adopted`` (code -1)."""
    return ADOPTED if code < 0 else pol.REASON_NAMES[code]


def book(engine: EngineParts, row: sqlite3.Row, st: OrderStatus) -> OrderStatus:
    """What the exchange reports of an order beyond what is booked already: the order row,
    a fill row, the accounts and the engine state, in one transaction. Idempotent: booking
    the same status twice books nothing the second time."""
    key = str(row["key"])
    dq = st.filled - float(row["booked_qty"])
    dv = st.cost - float(row["booked_cost"])
    df = st.fee - float(row["booked_fee"])
    status = st.status if st.status != "missing" else "canceled"
    message = st.message or ("not found on the exchange" if st.status == "missing" else "")
    with engine.ledger.tx():
        engine.ledger.update_order(
            key, status=status, exchange_id=st.exchange_id, filled=st.filled,
            avg_price=None if math.isnan(st.avg_price) else st.avg_price, fee=st.fee,
            cost=st.cost, message=message,
        )  # fmt: skip
        if dq > st.filled * 1e-12 and dq > 0.0:
            first = float(row["booked_qty"]) <= 0.0
            price = st.avg_price if first else dv / dq
            _apply_fill(engine, row, dq, price, dv, df, st.time_ms)
            engine.ledger.set_booked(key, st.filled, st.cost, st.fee)
        if st.done and st.filled <= 0.0 and row["kind"] != "stop":
            engine.ledger.event(
                "error",
                "order",
                f"{row['symbol']}: {row['side']} {float(row['qty']):g} {status}: {message}",
                key=key,
            )
        engine.commit()
    return st


def _apply_fill(
    engine: EngineParts,
    row: sqlite3.Row,
    qty: float,
    price: float,
    value: float,
    fee: float,
    time_ms: Any,
) -> None:
    sym = str(row["symbol"])
    reason = str(row["reason"])
    candle = int(row["candle_ms"])
    if row["kind"] == "stop" and time_ms is not None:
        candle = max(candle, int(time_ms) - int(time_ms) % engine.tf_ms)
    engine.ledger.add_fill(row["key"], sym, row["side"], qty, price, value, fee, reason, candle)
    if sym not in engine.symbols:
        engine.ledger.event("warning", "orphan", f"{sym}: fill of an unconfigured symbol")
        return
    s = engine.symbols.index(sym)
    a = engine.acct[s]
    w = engine.wallet[0]
    if row["side"] == "buy":
        if a["qty"] <= 0.0:
            sig = row["sig_ms"] if row["sig_ms"] is not None else candle
            code = _CODES.get(reason, pol.ENTRY_SIGNAL)
            ac.book_buy(a, w, qty, price, value, fee, candle, code, int(sig))
            pol.on_entry(engine.ps[s], price)
        else:
            ac.book_more(a, w, qty, value, fee)
            engine.ps[s]["entry"] = a["entry_price"]
    elif a["qty"] <= 0.0:
        # The exchange sold coins the ledger does not hold: the cash is real; the coins'
        # difference is for reconcile to explain.
        w["cash"] += value - fee
        w["fees"] += fee
        engine.ledger.event(
            "warning", "order", f"{sym}: sell fill of a flat position", key=row["key"]
        )
    else:
        entry_ms, first_partial = int(a["entry_t"]), float(row["booked_qty"]) <= 0.0
        if ac.book_sell(a, w, qty, value, fee, ac.DUST):
            close_position(engine, s, candle, reason, _mae_price(engine, row, s, price), entry_ms)
        elif reason == "partial_tp" and first_partial:
            a["n_partial"] += int(row["steps"])
    _mark(engine)


def _mae_price(engine: EngineParts, row: sqlite3.Row, s: int, price: float) -> float:
    reason = str(row["reason"])
    if reason in _STOP_REASONS:
        ref = row["ref_price"] if row["kind"] != "stop" else row["stop_price"]
        return float(ref) if ref else price
    if reason in _OPEN_EXITS:
        return math.inf  # filled at an open: the MAE covers the candles before it
    return float(engine.acct[s]["last_close"])  # kill, adopted


def close_position(
    engine: EngineParts, s: int, exit_ms: int, reason: str, mae_price: float, entry_ms: int
) -> None:
    a = engine.acct[s]
    entry_price, entry_qty, fees = (
        float(a["entry_price"]),
        float(a["entry_qty"]),
        float(a["fees"]),
    )
    n_partial, entry_code = int(a["n_partial"]), int(a["entry_reason"])
    exit_price, pnl, pnl_pct, mae, mfe = ac.close_trade(a, mae_price)
    engine.ledger.add_trade(
        {
            "symbol": engine.symbols[s],
            "entry_ms": entry_ms,
            "exit_ms": exit_ms,
            "entry_price": entry_price,
            "exit_price": exit_price,
            "qty": entry_qty,
            "fees": fees,
            "pnl": pnl,
            "pnl_pct": pnl_pct,
            "exit_reason": reason,
            "entry_reason": ADOPTED if entry_code < 0 else pol.REASON_NAMES[entry_code],
            "mae": mae,
            "mfe": mfe,
            "partial_exits": n_partial,
        }
    )
    pol.on_exit(engine.ps[s])


def _mark(engine: EngineParts) -> None:
    """Equity between closes: cash and every position at its last close."""
    engine.wallet[0]["equity"] = ac.equity(engine.acct, engine.cash)
