"""``tradekit summary``: the day or week in a few short lines for a phone (the 20:00 timer runs
``tradekit summary | tradekit notify -``), optionally with an equity PNG to attach.

The window ends at ``--now`` when given, else at the ledger's latest equity candle: a replay
(or the demo) lives in the past, and a live loop's latest candle is minutes old, so that is
"now" in practice. When the latest candle is over a day older than the clock the text says so.
Open positions and the risk state are the ledger's current ones. The text shows times in the
person's zone (``[notify] timezone``); the JSON keeps UTC and milliseconds and names the zone.
Stdlib and sqlite only; matplotlib loads inside :func:`write_png`.
"""

from __future__ import annotations

import json
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any

from tradekit.errors import UsageError
from tradekit.ledger import LedgerView
from tradekit.report.account import equity_window
from tradekit.report.fmt import Fmt
from tradekit.report.snapshot import DAY_MS
from tradekit.report.snapshot import build as build_snapshot
from tradekit.timeutil import fmt_ms, now_ms, zone_name

SCHEMA = "summary/1"
PERIODS = {"day": DAY_MS, "week": 7 * DAY_MS}
WIDTH = 38  # the longest free-text line (event messages); a phone shows ~40 columns
LEVEL_ORDER = {"critical": 0, "error": 1, "warning": 2}


def window(path: str | Path, period: str, at_ms: int | None = None) -> tuple[int, int]:
    """(start, end) of the period's window in ms; see the module doc for the anchor."""
    if period not in PERIODS:
        raise UsageError(f"--period {period!r}: expected day or week")
    if at_ms is None:
        with LedgerView(path) as view:
            at_ms = view.last_candle_ms()
    end = at_ms if at_ms is not None else now_ms()
    return end - PERIODS[period], end


def build_summary(
    path: str | Path,
    *,
    period: str = "day",
    at_ms: int | None = None,
    clock_ms: int | None = None,
    model_dir: str | Path | None = None,
    tz: tzinfo = UTC,
) -> dict[str, Any]:
    """The summary document (schema ``summary/1``) of the ledger at ``path`` over ``period``
    (day or week) ending at ``at_ms`` (default: the latest equity candle). ``clock_ms`` is the
    time the staleness note compares against (default: ``at_ms`` or the wall clock); ``tz``
    the zone the text will show times in (named in the document)."""
    start, end = window(path, period, at_ms)
    with LedgerView(path) as view, view.snapshot():
        snap = build_snapshot(view, ledger=str(path))
        eq = equity_window(view, start, end)
        peak_row = view.equity_at(end)
        trades = [
            {k: r[k] for k in ("symbol", "exit_ms", "pnl", "pnl_pct", "exit_reason")}
            for r in view.trades(start_ms=start, end_ms=end)
        ]
        events: dict[tuple[str, str], dict[str, Any]] = {}
        for r in view.events(start_ms=start, end_ms=end, warnings_only=True, newest_first=False):
            e = events.setdefault((r["level"], r["kind"]), {"count": 0})
            e.update(
                level=r["level"],
                kind=r["kind"],
                count=e["count"] + 1,
                last_ms=r["ts_ms"],
                last_message=r["message"],
            )
        last = view.last_candle_ms()
    peak = float(peak_row["peak"]) if peak_row else None
    if peak_row is not None:
        peak = max(peak or 0.0, float(peak_row["equity"]))
    equity_end = eq["end"] if eq else None
    wins = [t for t in trades if t["pnl"] > 0]
    best = max(trades, key=lambda t: t["pnl"]) if trades else None
    worst = min(trades, key=lambda t: t["pnl"]) if trades else None
    clock = clock_ms if clock_ms is not None else (at_ms if at_ms is not None else now_ms())
    version = snap.model_version or _manifest_version(model_dir)
    return {
        "schema": SCHEMA,
        "period": period,
        "start_ms": start,
        "end_ms": end,
        "start": fmt_ms(start),
        "end": fmt_ms(end),
        "timezone": zone_name(tz),
        "last_candle_ms": last,
        "stale_days": (clock - last) // DAY_MS if last is not None and clock - last > DAY_MS else 0,
        "mode": snap.mode,
        "state": snap.state.split(",")[0],
        "model_version": version,
        "currency": snap.currency,
        "equity": equity_end,
        "equity_start": eq["start"] if eq else None,
        "change": eq["change"] if eq else None,
        "change_pct": eq["change_pct"] if eq else None,
        "max_drawdown_period": eq["max_drawdown"] if eq else None,
        "peak": peak,
        "drawdown_from_peak": (1.0 - equity_end / peak) if equity_end and peak else None,
        "realized_pnl": sum(t["pnl"] for t in trades),
        "trades": len(trades),
        "wins": len(wins),
        "losses": len(trades) - len(wins),
        "best": best,
        "worst": worst,
        "positions": [
            {
                "symbol": p.symbol,
                "qty": p.qty,
                "entry_price": p.entry_price,
                "last_price": p.last_price,
                "unrealized_pnl": p.unrealized_pnl,
                "unrealized_pct": p.unrealized_pct,
            }
            for p in snap.positions
        ],
        "risk": snap.risk,
        "events": sorted(
            events.values(), key=lambda e: (LEVEL_ORDER.get(e["level"], 9), -e["count"], e["kind"])
        ),
    }


def _manifest_version(model_dir: str | Path | None) -> str | None:
    if model_dir is None:
        return None
    try:
        doc = json.loads((Path(model_dir) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    v = doc.get("version") if isinstance(doc, dict) else None
    return str(v) if v else None


def _cut(text: str, width: int = WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render(doc: dict[str, Any], tz: tzinfo = UTC, lang: str = "en") -> str:
    """Short lines for a phone (at most ~40 columns), times in ``tz``, numbers in ``lang``'s
    style (German: decimal commas)."""
    f = Fmt(lang, doc["currency"], tz)
    p = doc["period"]
    lines = [
        f"tradekit {'daily' if p == 'day' else 'weekly'} summary",
        f"from {f.time(doc['start_ms'])}",
        f"to   {f.time(doc['end_ms'])}",
        f"mode {doc['mode']}, {doc['state']}",
        f"model {doc['model_version'] or '-'}",
    ]
    if doc["stale_days"]:
        lines.append(f"! last candle {doc['stale_days']} d old")
    lines += [
        "",
        f"Equity  {f.money(doc['equity'], cur=True)}",
        f"Change  {f.money(doc['change'], signed=True)} ({f.pct(doc['change_pct'])})",
        f"P&L     {f.money(doc['realized_pnl'], signed=True)} realized",
    ]
    n = doc["trades"]
    if n:
        lines.append(f"Trades  {n}: {doc['wins']} won, {doc['losses']} lost")
        for label in ("best", "worst"):
            t = doc[label]
            lines.append(
                f" {label:<6} {t['symbol']} {f.money(t['pnl'], signed=True)} "
                f"({f.pct(t['pnl_pct'])})"
            )
    else:
        lines.append("Trades  none closed")
    lines += [
        f"DD {p:<5}{f.pct(doc['max_drawdown_period'], signed=False)}",
        f"DD peak {f.pct(doc['drawdown_from_peak'], signed=False)} of {f.money(doc['peak'])}",
        "",
    ]
    pos = doc["positions"]
    lines.append(f"Positions: {len(pos) or 'none'}")
    for x in pos:
        lines.append(
            f" {x['symbol']} {f.money(x['unrealized_pnl'], signed=True)} "
            f"({f.pct(x['unrealized_pct'])})"
        )
    lines.append(f"Risk: {doc['risk']['text']}")
    if doc["events"]:
        lines.append("Events:")
        for e in doc["events"]:
            lines.append(f" {e['count']}x {e['level']} {e['kind']}")
            lines.append(f"  {_cut(e['last_message'], WIDTH - 2)}")
    else:
        lines.append("Events: none")
    return "\n".join(lines) + "\n"


def write_png(path: str | Path, file: str | Path, doc: dict[str, Any], tz: tzinfo = UTC) -> None:
    """The period on a phone screen, as a PNG at ``file`` (written atomically): equity in the
    quote currency with each closed trade marked at its exit (green won, red lost), and the
    drawdown from the peak in percent underneath; times in ``tz``."""
    from datetime import datetime

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    from tradekit.fsutil import atomic_path
    from tradekit.report.charts import date_axis

    with LedgerView(path) as view, view.snapshot():
        rows = view.equity_rows(doc["start_ms"], doc["end_ms"])
        trades = view.trades(start_ms=doc["start_ms"], end_ms=doc["end_ms"])
    fig = Figure(figsize=(6.4, 4.4), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    cur = doc["currency"]
    f = Fmt("en", cur, tz)
    if rows:
        xs = [datetime.fromtimestamp(r["candle_ms"] / 1000, tz) for r in rows]
        eq = [float(r["equity"]) for r in rows]
        top.plot(xs, eq, color="tab:blue", linewidth=1.5, zorder=2)  # type: ignore[arg-type]
        # Each trade at its exit candle's equity (the ledger books a trade at a candle).
        at = {int(r["candle_ms"]): float(r["equity"]) for r in rows}
        for won in (True, False):
            mine = [t for t in trades if (t["pnl"] >= 0) == won and int(t["exit_ms"]) in at]
            if mine:
                top.scatter(
                    [datetime.fromtimestamp(t["exit_ms"] / 1000, tz) for t in mine],  # type: ignore[arg-type]
                    [at[int(t["exit_ms"])] for t in mine],
                    marker="o", s=22, zorder=3, color="tab:green" if won else "tab:red",
                    label=f"{len(mine)} trade(s) {'won' if won else 'lost'}",
                )  # fmt: skip
        if trades:
            top.legend(loc="best", fontsize=7, framealpha=0.9)
        peak = 0.0
        dd = []
        for r in rows:
            peak = max(peak, float(r["peak"] or 0.0), float(r["equity"]))
            dd.append((float(r["equity"]) / peak - 1.0) * 100 if peak > 0 else 0.0)
        bottom.fill_between(xs, dd, 0.0, color="tab:red", alpha=0.45, linewidth=0)  # type: ignore[arg-type]
        bottom.set_ylim(min(-1.0, min(dd) * 1.15), 0.3)
        date_axis(bottom, tz)  # ticks in the person's zone, not matplotlib's UTC default
        fig.autofmt_xdate()
    else:
        top.text(0.5, 0.5, "no equity in this period", ha="center", va="center")
    top.set_ylabel(f"equity ({cur})" if cur else "equity", fontsize=9)
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    bottom.set_ylabel("from peak", fontsize=9)  # the drawdown since the all-time peak
    bottom.yaxis.set_major_formatter(PercentFormatter(100, decimals=1))
    end = f.time(doc["end_ms"])
    top.set_title(
        f"{'Day' if doc['period'] == 'day' else 'Week'} to {end}: {f.pct(doc['change_pct'])}, "
        f"{doc['trades']} trade(s), max DD {f.pct(doc['max_drawdown_period'], signed=False)}",
        fontsize=9,
    )
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    with atomic_path(file) as tmp:
        fig.savefig(tmp, format="png")
