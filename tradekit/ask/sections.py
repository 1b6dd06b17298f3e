"""The context's sections as text for a model: status, equity, verdict, limits, model, report,
events, trades. Times are the person's (``[notify] timezone``), each with its zone's name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from tradekit.ask.budget import Section
from tradekit.report.fmt import EN, Fmt
from tradekit.report.snapshot import Snapshot
from tradekit.timeutil import fmt_local

if TYPE_CHECKING:
    from tradekit.config import Config

RECENT_TRADES = 20
Clock = Callable[[Any], str]  # epoch ms -> the person's time


def clock(tz: tzinfo) -> Clock:
    return lambda ms: fmt_local(ms, tz)


def iso_local(iso: Any, tz: tzinfo) -> str:
    """An ISO-8601 time from a file (UTC when naive) in the person's zone; as given when it
    is not one."""
    if not isinstance(iso, str) or not iso:
        return "-" if iso in (None, "") else str(iso)
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return fmt_local(int(dt.timestamp() * 1000), tz)


def money(v: Any, currency: str = "") -> str:
    return Fmt("en", currency).money(v, cur=True)


def pct(v: Any, *, signed: bool = True) -> str:
    return EN.pct(v, signed=signed)


def status(f: dict[str, Any], t: Clock) -> Section:
    """The :class:`Snapshot` every view draws, as lines for a model (English numbers: the
    model reads them; it answers in the question's language)."""
    s: Snapshot = f["status"]
    cur = f["currency"]
    sec = Section("status (ledger snapshot)", 100)
    sec.lines += [
        f"ledger: {f['path']}",
        f"mode: {s.mode}; state: {s.state}",
        f"risk: {f['risk']['text']}",
        f"model version running: {s.model_version or 'unknown'}",
        f"last candle: {t(f['last_candle_ms'])}",
        f"equity: {money(s.equity, cur)}; cash: {money(s.cash, cur)}",
        f"peak equity: {money(s.peak_equity, cur)}; "
        f"drawdown from peak: {pct(s.drawdown, signed=False)}",
        f"realized P&L total: {money(s.realized_pnl_total, cur)} "
        f"over {s.trades_total} closed trades "
        f"({f['trades']['wins']} wins, {f['trades']['losses']} losses); "
        f"fees paid: {money(s.fees_paid, cur)}",
        f"open positions: {len(s.positions) or 'none'}",
    ]
    for p in s.positions:
        sec.lines.append(
            f"  {p.symbol} qty {EN.qty(p.qty)} entry {EN.qty(p.entry_price)} "
            f"({t(p.entry_ms)}) last {EN.qty(p.last_price)} "
            f"unrealized {money(p.unrealized_pnl, cur)} ({pct(p.unrealized_pct)})"
            + (f" stop {EN.qty(p.stop_price)}" if p.stop_price else "")
        )
    sec.lines.append(f"open orders: {len(s.open_orders) or 'none'}")
    if s.pending:
        sec.lines.append(f"controls pending: {s.pending_text()}")
    for d in s.last_decisions:
        ptxt = f" prediction {d.prediction:+.4f}" if d.prediction is not None else ""
        sec.lines.append(
            f"last decision {d.symbol}: {t(d.candle_ms)} {d.action} ({d.reason}){ptxt}"
        )
    return sec


def equity(f: dict[str, Any], t: Clock) -> Section:
    cur = f["currency"]
    sec = Section("equity", 90)
    sec.lines.append(f"starting equity (first candle): {money(f['first_equity'], cur)}")
    for label, w in f["equity_windows"].items():
        name = "since start" if label == "all" else f"last {label}"
        if w is None:
            sec.lines.append(f"{name}: no equity recorded")
            continue
        sec.lines.append(
            f"{name} ({t(w['from_ms'])} to {t(w['to_ms'])}): start "
            f"{money(w['start'], cur)}, end {money(w['end'], cur)}, change "
            f"{money(w['change'], cur)} ({pct(w['change_pct'])}), peak {money(w['peak'], cur)}, "
            f"max drawdown {pct(w['max_drawdown'], signed=False)}"
        )
    return sec


def verdict(v: dict[str, Any]) -> Section:
    sec = Section("gate verdict", 85)
    sec.lines.append("PASSED" if v["passed"] else f"FAILED: {', '.join(v['failed'])}")
    for r in v["rules"]:
        val = r["value"]
        vtxt = f"{val:.4g}" if isinstance(val, float) else str(val)
        sec.lines.append(
            f"{r['rule']}: {r['label']} {vtxt} (must be {r['op']} {r['threshold']}) "
            f"{'pass' if r['passed'] else 'FAIL'}"
        )
    return sec


def limits(cfg: Config) -> Section:
    """The risk limits and exit rules the loop trades under (numbers only, from the config)."""
    r, p = cfg.risk, cfg.policy
    sec = Section("risk limits and exit rules (config)", 75)
    sec.lines += [
        f"max open positions {r.max_open_positions}; max position "
        f"{pct(r.max_position_frac, signed=False)} of equity",
        f"daily loss halt {pct(r.daily_loss_halt_frac, signed=False)}; drawdown halt "
        f"{pct(r.max_drawdown_halt_frac, signed=False)} (0.00 % = off)",
        f"entry threshold {p.entry_threshold:g}; stoploss {pct(p.stoploss, signed=False)}; "
        f"take profit {pct(p.take_profit, signed=False)}",
    ]
    return sec


def model(m: dict[str, Any], tz: tzinfo) -> Section:
    sec = Section("model (manifest)", 80)
    sec.lines += [
        f"version: {m['version']}; kind: {m['kind']} ({m['objective']}); label: {m['label']} "
        f"horizon {m['label_horizon']} candles; timeframe {m['timeframe']}",
        f"symbols: {', '.join(m['symbols'] or [])}; features: {m['features']}",
        f"created: {iso_local(m['created_at'], tz)}; training span: "
        f"{iso_local(m['training_start'], tz)} to {iso_local(m['training_end'], tz)}",
    ]
    oos = m.get("oos") or {}
    if oos:
        metrics = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, int | float) else f"{k} {v}"
            for k, v in sorted(oos.items())
        )
        sec.lines.append(f"out-of-sample ({m['folds']} walk-forward folds): {metrics}")
    return sec


def report(r: dict[str, Any], tz: tzinfo) -> Section:
    sec = Section("backtest report", 70)
    span = r.get("span") or {}
    if isinstance(span, dict) and span:
        sec.lines.append(
            f"span: {iso_local(span.get('start'), tz)} to {iso_local(span.get('end'), tz)} "
            f"({span.get('timeframe')}, {', '.join(map(str, span.get('symbols') or []))})"
        )
    for k, v in r["metrics"].items():
        sec.lines.append(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    return sec


def events(f: dict[str, Any], t: Clock) -> Section:
    sec = Section("recent warning/error events (oldest first)", 50)
    for e in f["events"]:
        sec.items.append(f"{t(e['ts_ms'])} {e['level']} {e['kind']}: {e['message']}")
    if not sec.items:
        sec.lines.append("none")
    return sec


def trades(f: dict[str, Any], t: Clock) -> Section:
    cur = f["currency"]
    sec = Section(f"recent closed trades (last {RECENT_TRADES}, oldest first)", 40)
    for x in f["trades"]["recent"]:
        sec.items.append(
            f"{t(x['exit_ms'])} {x['symbol']} entry {x['entry_price']:.8g} "
            f"({t(x['entry_ms'])}) exit {x['exit_price']:.8g} qty {x['qty']:.8g} "
            f"P&L {money(x['pnl'], cur)} ({pct(x['pnl_pct'])}) fees {x['fees']:.2f} "
            f"exit {x['exit_reason']}"
        )
    if not sec.items:
        sec.lines.append("none")
    return sec
