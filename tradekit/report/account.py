"""The account in Freqtrade's shapes: balance, profit, per-pair performance and daily P&L,
over the ledger's read-only view and its :class:`Snapshot` (stdlib only).

The REST API serves these documents as they are (``/api/v1/balance`` ...) and the phone's
``balance``, ``profit``, ``daily`` and ``performance`` draw their text from the same ones, so
the two never disagree. Where Freqtrade has a word the key is Freqtrade's (``pair``,
``profit_abs``, ``profit_ratio`` ...; times in epoch milliseconds and ``YYYY-MM-DD HH:MM:SS``
UTC text); days are UTC days, as the ledger's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tradekit.ledger import LedgerView
from tradekit.report.snapshot import Snapshot, quote_currency

DAY_MS = 86_400_000


def date(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ratio(num: float | None, den: float | None) -> float:
    return num / den if num is not None and den else 0.0


def balance(view: LedgerView, snap: Snapshot) -> dict[str, Any]:
    """Freqtrade's /balance: the quote currency's cash, then each held base currency."""
    quote = snap.currency
    cash = snap.cash or 0.0
    equity = snap.equity or 0.0
    start = view.first_equity() or 0.0
    rows = [_currency(quote, cash, cash, quote)]
    for p in snap.positions:
        rows.append(_currency(p.symbol.partition("/")[0], p.qty, p.value, quote))
    return {
        "currencies": rows,
        "total": equity,
        "total_bot": equity,
        "value": equity,
        "value_bot": equity,
        "symbol": quote,
        "stake": quote,
        "note": f"{snap.mode} ledger; values at the last candle's close",
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


def profit(view: LedgerView, snap: Snapshot) -> dict[str, Any]:
    """Freqtrade's /profit: realized (closed) and all (closed + open) profit against the
    starting capital, win/loss counts, profit factor, expectancy and the max drawdown of the
    equity curve."""
    s = view.trade_summary()
    start = view.first_equity() or 0.0
    closed = float(s["pnl"])
    unrealized = snap.unrealized_pnl
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
        "trade_count": n + len(snap.positions),
        "closed_trade_count": n,
        "first_trade_timestamp": s["first_entry_ms"],
        "first_trade_date": date(s["first_entry_ms"]),
        "latest_trade_timestamp": s["last_exit_ms"],
        "latest_trade_date": date(s["last_exit_ms"]),
        "avg_duration_ms": round(s["duration_ms_mean"]) if s["duration_ms_mean"] else None,
        "avg_duration": duration(s["duration_ms_mean"]),
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
        "fees_paid": snap.fees_paid,
        "starting_capital": start,
        "bot_start_timestamp": int(run["started_ms"]) if run else None,
        "bot_start_date": date(int(run["started_ms"])) if run else None,
    }


def duration(ms: float | None) -> str:
    """``2 days, 3:04:05`` (Freqtrade's way)."""
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
    return {"data": data, "stake_currency": quote_currency(view.symbols())}


def equity_window(view: LedgerView, start_ms: int, end_ms: int) -> dict[str, Any] | None:
    """Equity over (start, end]: the value at the start (the last candle at or before it, else
    the first inside), at the end, the peak inside, the deepest drawdown inside (from the
    running peak, starting at the start value) and the change."""
    before = view.equity_at(start_ms)
    rows = view.equity(start_ms, end_ms)
    points = ([(int(before["candle_ms"]), float(before["equity"]))] if before else []) + rows
    if not points:
        return None
    peak = points[0][1]
    max_dd = 0.0
    for _t, eq in points:
        peak = max(peak, eq)
        if peak > 0:
            max_dd = max(max_dd, 1.0 - eq / peak)
    first, last = points[0][1], points[-1][1]
    return {
        "from_ms": points[0][0],
        "to_ms": points[-1][0],
        "start": first,
        "end": last,
        "peak": max(e for _t, e in points),
        "low": min(e for _t, e in points),
        "change": last - first,
        "change_pct": (last / first - 1.0) if first else None,
        "max_drawdown": max_dd,
        "candles": len(rows),
    }
