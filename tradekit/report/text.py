"""The snapshot as text: the ``status`` table for a terminal and the phone's ``status``.

Both draw the one :class:`Snapshot`; numbers go through :class:`~tradekit.report.fmt.Fmt`
(English for the CLI, the question's language on the phone). The phone's other commands are
in :mod:`tradekit.report.phone`.
"""

from __future__ import annotations

from tradekit.report.fmt import EN, Fmt
from tradekit.report.snapshot import Snapshot
from tradekit.sidecar import drift_line
from tradekit.timeutil import fmt_ms

PHONE_POSITIONS = 8  # more than this on a phone: "… and N more"


def _t(ms: int | None) -> str:
    return fmt_ms(ms) if ms is not None else "-"


def table(s: Snapshot, f: Fmt = EN) -> str:
    """The human status: a few aligned lines, then positions, orders and last decisions
    (times in UTC, as the ledger's; English numbers unless ``f`` says otherwise)."""
    lines = [
        f"mode       {s.mode} ({s.state})",
        f"model      {s.model_version or '-'}",
        f"candle     {_t(s.last_candle_ms)}  (heartbeat {_t(s.heartbeat_ms)})",
        f"equity     {f.money(s.equity)}  cash {f.money(s.cash)}  "
        f"drawdown {f.pct(s.drawdown, signed=False)}",
        f"realized   today {f.money(s.realized_pnl_today)} ({s.trades_today} trades)  "
        f"total {f.money(s.realized_pnl_total)} ({s.trades_total} trades)",
    ]
    for h in s.halts:
        since = f" since {_t(h.since_ms)}" if h.since_ms else ""
        lines.append(f"halted     {h.kind}{since}")
        for diff in h.differences:
            lines.append(
                f"  {diff['asset']:<10} exchange {diff['exchange']:.10g}  "
                f"ledger {diff['ledger']:.10g}"
            )
    for c in s.pending:
        lines.append(f"requested  {c.command} at {_t(c.requested_ms)}, not applied yet")
    if s.pending:
        lines.append(f"           {_pending_why(s)}")
    lines.append(f"positions  {len(s.positions) or 'none'}")
    for p in s.positions:
        lines.append(
            f"  {p.symbol:<10} {f.qty(p.qty)} @ {f.qty(p.entry_price)}  "
            f"last {f.qty(p.last_price)}  "
            f"P&L {f.money(p.unrealized_pnl)} ({f.pct(p.unrealized_pct)})"
            + (f"  stop {f.qty(p.stop_price)}" if p.stop_price else "")
        )
    lines.append(f"orders     {len(s.open_orders) or 'none'} open")
    for o in s.open_orders:
        lines.append(f"  {o.symbol:<10} {o.side} {o.kind} {f.qty(o.qty)} {o.status}")
    if s.last_decisions:
        lines.append("decisions")
        for d in s.last_decisions:
            ptxt = f" pred {d.prediction:+.4f}" if d.prediction is not None else ""
            lines.append(f"  {d.symbol:<10} {_t(d.candle_ms)} {d.action} ({d.reason}){ptxt}")
    if s.drift is not None:
        lines.append(drift_line(s.drift))
    return "\n".join(lines) + "\n"


def requested(command: str, running: bool) -> str:
    """The answer to a control request, honestly: applied soon, or only queued."""
    if running:
        return f"{command}: requested; the running loop applies it within one poll"
    # Nothing is in force yet: `status` shows it as pending until a loop applies it.
    return (
        f"{command}: queued, not applied: no loop is running; the next `tradekit run` "
        "applies it before anything else (status shows it as pending)"
    )


def _pending_why(s: Snapshot) -> str:
    if s.running:
        return "the running loop applies it within one poll"
    return "no loop is running: the next `tradekit run` applies it first"


def phone(s: Snapshot, f: Fmt | None = None) -> str:
    """``status`` cut to a phone screen, times in the person's zone (``f``; default English
    numbers with the snapshot's currency, UTC)."""
    f = f or Fmt("en", s.currency)
    lines = [f"📊 {s.mode}: {s.state}"]
    if s.last_candle_ms is not None:
        lines.append(f"last candle {f.time(s.last_candle_ms)}")
    if s.equity is not None:
        lines.append(
            f"equity {f.money(s.equity, cur=True)}, drawdown "
            f"{f.pct(s.drawdown, signed=False, digits=1)}"
        )
    lines.append(
        f"P&L today {f.money(s.realized_pnl_today, signed=True)} ({s.trades_today} trades), "
        f"total {f.money(s.realized_pnl_total, signed=True)} ({s.trades_total})"
    )
    if s.pending:
        lines.append(f"⏳ {s.pending_text()}")
    lines += position_lines(s, f)
    if s.open_orders:
        lines.append(f"{len(s.open_orders)} open order(s)")
    if s.model_version:
        lines.append(f"model {s.model_version}")
    if s.drift is not None and s.drift.get("status") not in (None, "ok"):
        lines.append("🌊 " + drift_line(s.drift).removeprefix("drift").strip())
    return "\n".join(lines)


def position_lines(s: Snapshot, f: Fmt) -> list[str]:
    """The open positions, one line each, for a phone."""
    if not s.positions:
        return ["no open positions"]
    lines = []
    for p in s.positions[:PHONE_POSITIONS]:
        pct = p.unrealized_pct
        pct_txt = f" ({f.pct(pct, digits=1)})" if pct is not None else ""
        stop = f", stop {f.price(p.stop_price)}" if p.stop_price else ""
        lines.append(
            f"• {p.symbol} {f.qty(p.qty, 6)} @ {f.price(p.entry_price)}, "
            f"now {f.price(p.last_price)}, {f.money(p.unrealized_pnl, signed=True)}{pct_txt}"
            f"{stop}"
        )
    if len(s.positions) > PHONE_POSITIONS:
        lines.append(f"… and {len(s.positions) - PHONE_POSITIONS} more")
    return lines
