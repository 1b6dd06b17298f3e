"""Short phone lines: what a trade, an event or the status looks like on a small screen.

Pure functions over ledger rows (mappings with the ledger's column names), so the courier and
the tests render the same text. Times are the person's (``[notify] timezone``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from tradekit.timeutil import fmt_local

LEVELS = {"info": 0, "warning": 1, "error": 2}
OFF = 99  # [notify] events = "off": no level reaches it
ICON = {"info": "ℹ️", "warning": "⚠️", "error": "‼️"}
KIND_ICON = {
    "start": "▶️",
    "restart": "🔁",
    "halt": "⛔",
    "control": "🎛",
    "model": "🧠",
    "stop": "⏹",
}
MAX_LINE = 300  # one event's text on the phone; the ledger keeps the whole message


def level_rank(level: str) -> int:
    """Rank of an event level (unknown levels count as info); ``off`` is above all."""
    if level == "off":
        return OFF
    return LEVELS.get(level, 0)


def qty(x: float) -> str:
    return f"{x:.6g}"


def price(x: float) -> str:
    if x != x:  # NaN: no exit price (nothing sold)
        return "-"
    return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.6g}"


def money(x: float) -> str:
    return f"{x:+,.2f}"


def _clip(text: str, n: int = MAX_LINE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def opened(fill: Mapping[str, Any]) -> str:
    """A buy fill: a trade opened."""
    return (
        f"🟢 opened {fill['symbol']} {qty(fill['qty'])} @ {price(fill['price'])} ({fill['reason']})"
    )


def partial(fill: Mapping[str, Any]) -> str:
    """A sell fill that leaves part of the position open."""
    return (
        f"◐ partial exit {fill['symbol']} {qty(fill['qty'])} @ {price(fill['price'])} "
        f"({fill['reason']})"
    )


def closed(trade: Mapping[str, Any]) -> str:
    """A closed trade with its P&L."""
    icon = "✅" if trade["pnl"] >= 0 else "🔻"
    return (
        f"{icon} closed {trade['symbol']} {money(trade['pnl'])} ({trade['pnl_pct']:+.2%}) "
        f"{price(trade['entry_price'])} → {price(trade['exit_price'])} ({trade['exit_reason']})"
    )


def event(ev: Mapping[str, Any]) -> str:
    icon = KIND_ICON.get(str(ev["kind"])) or ICON.get(str(ev["level"]), ICON["info"])
    if ev["level"] == "error" and ev["kind"] in KIND_ICON:
        icon = ICON["error"]
    return f"{icon} {_clip(str(ev['message']))}"


def repeated(kind: str, count: int, last: str) -> str:
    """Several events of one noisy kind (exchange errors) as one line."""
    return f"{ICON['error']} {count} {kind} errors, last: {_clip(last, 200)}"


def clock(ms: int, tz: tzinfo) -> str:
    """A time of day for the phone: ``21:02:30 CET``."""
    dt = datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz)
    return f"{dt:%H:%M:%S} {dt.tzname()}"


def status(snap: Mapping[str, Any], tz: tzinfo = UTC) -> str:
    """``tradekit status`` cut to a phone screen, times in ``tz``."""
    lines = [f"📊 {snap['mode']}: {snap['state']}"]
    if snap.get("last_candle_ms") is not None:
        lines.append(f"last candle {fmt_local(snap['last_candle_ms'], tz)}")
    eq, dd = snap.get("equity"), snap.get("drawdown")
    if isinstance(eq, int | float):
        dd_txt = f", drawdown {dd:.1%}" if isinstance(dd, int | float) else ""
        lines.append(f"equity {eq:,.2f}{dd_txt}")
    lines.append(
        f"P&L today {money(snap['realized_pnl_today'])} ({snap['trades_today']} trades), "
        f"total {money(snap['realized_pnl_total'])} ({snap['trades_total']})"
    )
    positions = snap.get("positions") or []
    if not positions:
        lines.append("no open positions")
    for p in positions[:8]:
        pct = p.get("unrealized_pct")
        pct_txt = f" ({pct:+.1%})" if isinstance(pct, int | float) else ""
        lines.append(
            f"• {p['symbol']} {qty(p['qty'])} @ {price(p['entry_price'])}, "
            f"now {price(p['last_price'])}, {money(p['unrealized_pnl'])}{pct_txt}"
        )
    if len(positions) > 8:
        lines.append(f"… and {len(positions) - 8} more")
    orders = snap.get("open_orders") or []
    if orders:
        lines.append(f"{len(orders)} open order(s)")
    if snap.get("model_version"):
        lines.append(f"model {snap['model_version']}")
    return "\n".join(lines)


HELP = (
    "tradekit commands:\n"
    "status: positions, P&L, equity\n"
    "pause: no new entries (exits go on)\n"
    "resume: allow entries again\n"
    "kill: close everything and stop (asks for a code)\n"
    "ask <question>: a read-only analyst's answer\n"
    "help: this list"
)
