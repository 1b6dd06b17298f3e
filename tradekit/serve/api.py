"""The ``/api/v1`` documents, built from the ledger's read-only view (stdlib only).

Where a Freqtrade script would read the same thing, the keys are Freqtrade's (``pair``,
``profit_abs``, ``profit_ratio``, ``open_rate``, ``open_timestamp`` ...; times in epoch
milliseconds and as ``YYYY-MM-DD HH:MM:SS`` UTC text); what Freqtrade has no word for keeps
tradekit's snake_case names with the unit in the name. README.md documents each endpoint.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tradekit.ledger import LedgerView
from tradekit.serve.site import Site

DAY_MS = 86_400_000


def date(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def quote_of(symbols: list[str]) -> str:
    """The quote currency every configured pair shares (the stake currency)."""
    quotes = {s.partition("/")[2].partition(":")[0] for s in symbols if "/" in s}
    return quotes.pop() if len(quotes) == 1 else ""


def _ratio(num: float | None, den: float | None) -> float:
    return num / den if num is not None and den else 0.0


# -- account ---------------------------------------------------------------------------------


def balance(view: LedgerView, snap: dict[str, Any]) -> dict[str, Any]:
    """Freqtrade's /balance: the quote currency's cash, then each held base currency."""
    quote = quote_of(view.symbols())
    cash = snap["cash"] or 0.0
    equity = snap["equity"] or 0.0
    start = view.first_equity() or 0.0
    rows = [_currency(quote, cash, cash, quote)]
    for p in snap["positions"]:
        rows.append(_currency(p["symbol"].partition("/")[0], p["qty"], p["value"], quote))
    return {
        "currencies": rows,
        "total": equity,
        "total_bot": equity,
        "value": equity,
        "value_bot": equity,
        "symbol": quote,
        "stake": quote,
        "note": f"{snap['mode']} ledger; values at the last candle's close",
        "starting_capital": start,
        "starting_capital_ratio": _ratio(equity - start, start),
        "starting_capital_pct": round(_ratio(equity - start, start) * 100, 2),
    }


def _currency(name: str, qty: float, value: float, quote: str) -> dict[str, Any]:
    return {
        "currency": name,
        "free": qty,
        "balance": qty,
        "used": 0.0,
        "est_stake": value,
        "stake": quote,
        "side": "long",
        "leverage": 1.0,
        "is_position": False,
        "position": 0.0,
        "is_bot_managed": True,
    }


def profit(view: LedgerView, snap: dict[str, Any]) -> dict[str, Any]:
    """Freqtrade's /profit: realized (closed) and all (closed + open) profit against the
    starting capital, win/loss counts, profit factor, expectancy and the max drawdown of the
    equity curve."""
    s = view.trade_summary()
    start = view.first_equity() or 0.0
    closed = float(s["pnl"])
    unrealized = sum(p["unrealized_pnl"] for p in snap["positions"])
    perf = view.performance()
    best = perf[0] if perf else None
    n = int(s["count"])
    wins, losses = int(s["wins"]), int(s["losses"])
    avg_win = s["gross_profit"] / wins if wins else 0.0
    avg_loss = s["gross_loss"] / losses if losses else 0.0
    winrate = wins / n if n else 0.0
    expectancy = closed / n if n else 0.0
    dd = max_drawdown(view.equity_rows(-(2**62), 2**62))
    mean = float(s["pnl_pct_mean"] or 0.0)
    run = view.last_run()
    return {
        "profit_closed_coin": closed,
        "profit_closed_ratio": _ratio(closed, start),
        "profit_closed_percent": round(_ratio(closed, start) * 100, 2),
        "profit_closed_ratio_mean": mean,
        "profit_closed_percent_mean": round(mean * 100, 2),
        "profit_closed_ratio_sum": float(s["pnl_pct_sum"]),
        "profit_closed_percent_sum": round(float(s["pnl_pct_sum"]) * 100, 2),
        "profit_all_coin": closed + unrealized,
        "profit_all_ratio": _ratio(closed + unrealized, start),
        "profit_all_percent": round(_ratio(closed + unrealized, start) * 100, 2),
        "trade_count": n + len(snap["positions"]),
        "closed_trade_count": n,
        "first_trade_timestamp": s["first_entry_ms"],
        "first_trade_date": date(s["first_entry_ms"]),
        "latest_trade_timestamp": s["last_exit_ms"],
        "latest_trade_date": date(s["last_exit_ms"]),
        "avg_duration_ms": round(s["duration_ms_mean"]) if s["duration_ms_mean"] else None,
        "avg_duration": _duration(s["duration_ms_mean"]),
        "best_pair": best["symbol"] if best else "",
        "best_pair_profit_ratio": float(best["pnl_pct_sum"]) if best else 0.0,
        "best_pair_profit_abs": float(best["pnl"]) if best else 0.0,
        "winning_trades": wins,
        "losing_trades": losses,
        "winrate": winrate,
        "profit_factor": (s["gross_profit"] / s["gross_loss"]) if s["gross_loss"] else None,
        "expectancy": expectancy,
        "expectancy_ratio": ((1 + avg_win / avg_loss) * winrate - 1) if avg_loss else None,
        "max_drawdown": dd["ratio"],
        "max_drawdown_abs": dd["abs"],
        "max_drawdown_start_timestamp": dd["start_ms"],
        "max_drawdown_start": date(dd["start_ms"]),
        "max_drawdown_end_timestamp": dd["end_ms"],
        "max_drawdown_end": date(dd["end_ms"]),
        "fees_paid": snap["fees_paid"],
        "starting_capital": start,
        "bot_start_timestamp": int(run["started_ms"]) if run else None,
        "bot_start_date": date(int(run["started_ms"])) if run else None,
    }


def _duration(ms: float | None) -> str:
    if not ms:
        return "0:00:00"
    sec = round(ms / 1000)
    days, rest = divmod(sec, 86400)
    text = f"{rest // 3600}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days} day{'s' if days != 1 else ''}, {text}" if days else text


def max_drawdown(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The deepest fall of equity from its running peak: ratio, amount, and the candles of
    the peak and the trough."""
    best: dict[str, Any] = {"ratio": 0.0, "abs": 0.0, "start_ms": None, "end_ms": None}
    peak, peak_ms = None, None
    for r in rows:
        eq = float(r["equity"])
        if peak is None or eq > peak:
            peak, peak_ms = eq, int(r["candle_ms"])
        elif peak > 0 and (peak - eq) / peak > best["ratio"]:
            best = {
                "ratio": (peak - eq) / peak,
                "abs": peak - eq,
                "start_ms": peak_ms,
                "end_ms": int(r["candle_ms"]),
            }
    return best


def performance(view: LedgerView) -> list[dict[str, Any]]:
    """Freqtrade's /performance: one entry per pair, best first (a list, as there)."""
    return [
        {
            "pair": r["symbol"],
            "count": int(r["count"]),
            "profit_abs": float(r["pnl"]),
            "profit_ratio": float(r["pnl_pct_sum"]),
            "profit_pct": round(float(r["pnl_pct_sum"]) * 100, 2),
            "profit": round(float(r["pnl_pct_sum"]) * 100, 2),
            "profit_ratio_mean": float(r["pnl_pct_mean"]),
            "winning_trades": int(r["wins"]),
        }
        for r in view.performance()
    ]


def daily(view: LedgerView, *, days: int, until_ms: int) -> dict[str, Any]:
    """Freqtrade's /daily: the ``days`` UTC days up to the one holding ``until_ms``, newest
    first, with the realized P&L of the trades closed each day against the equity the day
    started with."""
    last_day = until_ms - until_ms % DAY_MS
    first_day = last_day - (days - 1) * DAY_MS
    by_day = {int(r["day_ms"]): r for r in view.daily_pnl(first_day)}
    start = view.first_equity() or 0.0
    data = []
    for d in range(last_day, first_day - 1, -DAY_MS):
        row = view.equity_at(d)
        opening = float(row["equity"]) if row is not None else start
        got = by_day.get(d)
        pnl = float(got["pnl"]) if got else 0.0
        data.append(
            {
                "date": date(d)[:10],  # type: ignore[index]
                "date_ts": d,
                "abs_profit": pnl,
                "rel_profit": _ratio(pnl, opening),
                "starting_balance": opening,
                "trade_count": int(got["count"]) if got else 0,
            }
        )
    return {"data": data, "stake_currency": quote_of(view.symbols())}


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


def positions(view: LedgerView, snap: dict[str, Any]) -> dict[str, Any]:
    """Open positions (Freqtrade's open trades) with the stop the engine keeps and the stop
    order resting on the exchange, if any."""
    stops = {o["symbol"]: o for o in snap["open_orders"] if o["kind"] == "stop"}
    rows = {r["symbol"]: r for r in view.positions()}
    out = []
    for p in snap["positions"]:
        row = rows[p["symbol"]]
        stop = stops.get(p["symbol"])
        out.append(
            {
                "pair": p["symbol"],
                "is_open": True,
                "amount": p["qty"],
                "open_rate": p["entry_price"],
                "open_timestamp": p["entry_ms"],
                "open_date": date(p["entry_ms"]),
                "current_rate": p["last_price"],
                "stake_amount": row["cost"],
                "value": p["value"],
                "profit_abs": p["unrealized_pnl"],
                "profit_ratio": p["unrealized_pct"],
                "profit_pct": round(p["unrealized_pct"] * 100, 2)
                if p["unrealized_pct"] is not None
                else None,
                "enter_tag": row["entry_reason"],
                "stop_loss_abs": p["stop_price"],
                "stop_on_exchange": (
                    {
                        "order_id": stop["key"],
                        "exchange_id": stop["exchange_id"],
                        "stop_price": stop["stop_price"],
                        "amount": stop["qty"],
                        "status": stop["status"],
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
