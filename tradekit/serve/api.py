"""The ``/api/v1`` documents, built from the ledger's read-only view (stdlib only).

Where a Freqtrade script would read the same thing, the keys are Freqtrade's (``pair``,
``profit_abs``, ``profit_ratio``, ``open_rate``, ``open_timestamp`` ...; times in epoch
milliseconds and as ``YYYY-MM-DD HH:MM:SS`` UTC text); what Freqtrade has no word for keeps
tradekit's snake_case names with the unit in the name. The account documents (balance,
profit, performance, daily) live in :mod:`tradekit.report.account`, shared with the phone.
README.md documents each endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from tradekit.ledger import LedgerView
from tradekit.report.account import balance, daily, date, performance, profit
from tradekit.report.snapshot import Snapshot
from tradekit.serve.site import Site

__all__ = [
    "asset",
    "balance",
    "controls",
    "daily",
    "decisions",
    "equity",
    "events",
    "orders",
    "performance",
    "positions",
    "profit",
    "trades",
]


# -- trades, positions, orders ---------------------------------------------------------------


def trade(r: dict[str, Any]) -> dict[str, Any]:
    """A closed trade in Freqtrade's words, with tradekit's excursions (MAE/MFE, fractions of
    the entry price) and partial exits."""
    return {
        "trade_id": int(r["id"]),
        "pair": r["symbol"],
        "is_open": False,
        "amount": r["qty"],
        "open_rate": r["entry_price"],
        "close_rate": r["exit_price"],
        "open_timestamp": r["entry_ms"],
        "open_date": date(r["entry_ms"]),
        "close_timestamp": r["exit_ms"],
        "close_date": date(r["exit_ms"]),
        "stake_amount": r["qty"] * r["entry_price"],
        "profit_abs": r["pnl"],
        "profit_ratio": r["pnl_pct"],
        "profit_pct": round(r["pnl_pct"] * 100, 2),
        "fees": r["fees"],
        "enter_tag": r["entry_reason"],
        "exit_reason": r["exit_reason"],
        "mae": r["mae"],
        "mfe": r.get("mfe"),
        "partial_exits": int(r["partial_exits"]),
    }


def trades(
    view: LedgerView,
    *,
    limit: int,
    offset: int,
    symbol: str | None = None,
    reason: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> dict[str, Any]:
    """Freqtrade's /trades (newest first here), filtered by pair, exit reason and exit time."""
    rows, total = view.trades_page(
        symbol=symbol, reason=reason, start_ms=start_ms, end_ms=end_ms, limit=limit, offset=offset
    )
    return {
        "trades": [trade(r) for r in rows],
        "trades_count": len(rows),
        "offset": offset,
        "total_trades": total,
    }


def positions(view: LedgerView, snap: Snapshot) -> dict[str, Any]:
    """Open positions (Freqtrade's open trades) with the stop the engine keeps and the stop
    order resting on the exchange, if any."""
    stops = {o.symbol: o for o in snap.open_orders if o.kind == "stop"}
    out = []
    for p in snap.positions:
        stop = stops.get(p.symbol)
        pct = p.unrealized_pct
        out.append(
            {
                "pair": p.symbol,
                "is_open": True,
                "amount": p.qty,
                "open_rate": p.entry_price,
                "open_timestamp": p.entry_ms,
                "open_date": date(p.entry_ms),
                "current_rate": p.last_price,
                "stake_amount": p.cost,
                "value": p.value,
                "profit_abs": p.unrealized_pnl,
                "profit_ratio": pct,
                "profit_pct": round(pct * 100, 2) if pct is not None else None,
                "enter_tag": p.entry_reason,
                "stop_loss_abs": p.stop_price,
                "stop_on_exchange": (
                    {
                        "order_id": stop.key,
                        "exchange_id": stop.exchange_id,
                        "stop_price": stop.stop_price,
                        "amount": stop.qty,
                        "status": stop.status,
                    }
                    if stop
                    else None
                ),
            }
        )
    return {"positions": out, "count": len(out)}


def order(r: dict[str, Any]) -> dict[str, Any]:
    is_open = r["status"] in ("submitting", "open")
    return {
        "order_id": r["key"],
        "exchange_id": r["exchange_id"],
        "pair": r["symbol"],
        "ft_order_side": r["side"],
        "order_type": r["kind"],
        "status": r["status"],
        "is_open": is_open,
        "amount": r["qty"],
        "filled": r["filled"],
        "remaining": r["qty"] - r["filled"] if is_open else 0.0,
        "safe_price": r["avg_price"] if r["avg_price"] is not None else r.get("ref_price"),
        "stop_price": r["stop_price"] or None,
        "fee": r["fee"],
        "reason": r["reason"],
        "candle_timestamp": r["candle_ms"],
        "order_timestamp": r["created_ms"],
        "updated_timestamp": r["updated_ms"],
        "message": r["message"],
    }


def orders(view: LedgerView, *, open_only: bool, limit: int) -> dict[str, Any]:
    rows = view.open_orders() if open_only else view.orders(limit=limit)
    return {"orders": [order(r) for r in rows], "counts": view.order_counts()}


# -- decisions, events, controls -------------------------------------------------------------


def decisions(
    view: LedgerView,
    *,
    symbol: str | None,
    action: str | None,
    reason: str | None,
    limit: int,
    before_id: int | None,
) -> dict[str, Any]:
    """Decisions newest first with their reason codes, and how often each code was given
    (why nothing was bought is a decision too: ``wait``/``skip`` with its reason)."""
    rows = view.decisions_where(
        symbol=symbol, action=action, reason=reason, limit=limit, before_id=before_id
    )
    return {
        "decisions": [{**r, "candle_date": date(r["candle_ms"])} for r in rows],
        "reasons": view.decision_reasons(symbol=symbol),
    }


def events(
    view: LedgerView, *, warnings_only: bool, kind: str | None, limit: int
) -> dict[str, Any]:
    rows = view.events(warnings_only=warnings_only, kind=kind, limit=limit)
    out = []
    for e in rows:
        try:
            data = json.loads(e["data"] or "{}")
        except json.JSONDecodeError:
            data = {"unreadable": e["data"]}
        out.append({**e, "data": data, "date": date(e["ts_ms"])})
    return {"events": out, "counts": view.event_counts()}


def controls(view: LedgerView, *, authorized: bool, token_set: bool) -> dict[str, Any]:
    return {
        "token_set": token_set,
        "authorized": authorized,
        "pending": view.pending_controls(),
        "recent": view.recent_controls(10),
    }


# -- charts ----------------------------------------------------------------------------------


def equity(view: LedgerView, *, limit: int) -> dict[str, Any]:
    """The newest ``limit`` equity points with the drawdown from the running peak, and the
    halts that started or lifted among them."""
    last = view.last_candle_ms()
    rows = view.equity_rows(-(2**62), 2**62) if last is not None else []
    peak = 0.0
    points = []
    for r in rows:
        peak = max(peak, float(r["equity"]))
        points.append(
            {
                "time": int(r["candle_ms"]),
                "equity": r["equity"],
                "drawdown": (1 - r["equity"] / peak) if peak > 0 else 0.0,
                "exposure": r["exposure"],
                "cash": r["cash"],
            }
        )
    points = points[-limit:]
    first = points[0]["time"] if points else 0
    halts = []
    for e in view.events(kind="halt", newest_first=False):
        data = json.loads(e["data"] or "{}")
        if data.get("candle_ms", 0) >= first:
            halts.append(
                {
                    "time": data.get("candle_ms"),
                    "halt": data.get("halt"),
                    "change": data.get("change"),
                    "message": e["message"],
                }
            )
    return {"points": points, "halts": halts}


def asset(
    view: LedgerView, site: Site, symbol: str, candles: dict[str, Any], *, limit: int
) -> dict[str, Any]:
    """One symbol's chart: candles from the store, the fills (entries and exits) and the
    model's predictions over the same span, and the stop of an open position."""
    rows = candles["rows"]
    if rows:
        start, end = int(rows[0][0]), int(rows[-1][0])
    else:  # no candles stored: the span of the newest decisions
        last = view.last_candle_ms() or 0
        start, end = last - (limit - 1) * site.tf_ms, last
    pos = next((p for p in view.positions() if p["symbol"] == symbol), None)
    return {
        "symbol": symbol,
        "timeframe": site.timeframe,
        "candles": {"available": candles["available"], "path": candles["path"], "rows": rows},
        "fills": [
            {
                "time": f["candle_ms"],
                "side": f["side"],
                "price": f["price"],
                "qty": f["qty"],
                "reason": f["reason"],
            }
            for f in view.symbol_fills(symbol, start, end)
        ],
        "predictions": [[t, p] for t, p in view.predictions(symbol, start, end)],
        "position": (
            {"entry_price": pos["entry_price"], "stop_price": pos["stop_price"], "qty": pos["qty"]}
            if pos
            else None
        ),
        "exchange_stops": [
            o["stop_price"]
            for o in view.open_orders()
            if o["symbol"] == symbol and o["kind"] == "stop" and o["stop_price"]
        ],
    }
