"""Short phone lines: what a trade, an event or the status looks like on a small screen.

Pure functions over ledger rows (mappings with the ledger's column names), so the courier and
the tests render the same text. Times are the person's (``[notify] timezone``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from tradekit.report.fmt import EN, Fmt

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
    return EN.qty(x, 6)


def price(x: float) -> str:
    return EN.price(x)  # NaN (no exit price: nothing sold) is "-"


def money(x: float) -> str:
    return EN.money(x, signed=True)


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
    return Fmt(tz=tz).clock(ms)


HELP = (
    "tradekit commands:\n"
    "status: state, equity, P&L, positions\n"
    "profit: closed and open P&L, win rate\n"
    "daily [N]: P&L of the last N UTC days (7)\n"
    "balance: cash and holdings\n"
    "trades [N]: the last N closed trades (10)\n"
    "performance: P&L per pair\n"
    "positions: open positions and stops\n"
    "model: the model and its gate receipt\n"
    "pause: no new entries (exits go on)\n"
    "resume: allow entries again\n"
    "forceexit SYMBOL: sell one position (asks for a code)\n"
    "kill: close everything and stop (asks for a code)\n"
    "promote [NAME]: the candidate models; make one live (asks for a code)\n"
    "ask <question>: a read-only analyst's answer\n"
    "help: this list"
)
