"""The phone's read-only commands, as Freqtrade users know them from Telegram: ``profit``,
``daily [N]``, ``balance``, ``trades [N]``, ``performance``, ``positions``, ``model``.

Each draws the same documents the REST API serves (:mod:`tradekit.report.account`) or the
:class:`Snapshot`, so the phone and the dashboard never disagree; numbers follow the reader's
language (:class:`~tradekit.report.fmt.Fmt`), times the person's zone, days are UTC days.
Short lines: a phone shows about 40 columns.
"""

from __future__ import annotations

from pathlib import Path

from tradekit.ledger import LedgerView
from tradekit.report import account
from tradekit.report.fmt import Fmt
from tradekit.report.snapshot import Snapshot
from tradekit.report.text import position_lines


def profit(view: LedgerView, snap: Snapshot, f: Fmt) -> str:
    d = account.profit(view, snap)
    n = d["closed_trade_count"]
    lines = [
        f"💰 profit ({snap.mode})",
        f"closed {f.money(d['profit_closed_coin'], signed=True, cur=True)} "
        f"({f.pct(d['profit_closed_ratio'])}) in {n} trade(s)",
        f"with open {f.money(d['profit_all_coin'], signed=True)} ({f.pct(d['profit_all_ratio'])})",
    ]
    if n:
        pf = d["profit_factor"]
        lines += [
            f"won {d['winning_trades']}, lost {d['losing_trades']} "
            f"(win rate {f.pct(d['winrate'], signed=False, digits=1)})",
            f"expectancy {f.money(d['expectancy'], signed=True)} per trade; profit factor "
            f"{f.num(pf) if pf is not None else '-'}",
            f"best pair {d['best_pair']} {f.money(d['best_pair_profit_abs'], signed=True)}",
            f"avg duration {d['avg_duration']}",
            f"first trade {f.time(d['first_trade_timestamp'])}",
            f"latest exit {f.time(d['latest_trade_timestamp'])}",
        ]
    lines += [
        f"max drawdown {f.pct(d['max_drawdown'], signed=False)} ({f.money(d['max_drawdown_abs'])})",
        f"fees {f.money(d['fees_paid'])}; start capital {f.money(d['starting_capital'])}",
    ]
    return "\n".join(lines)


def daily(view: LedgerView, f: Fmt, *, days: int, until_ms: int) -> str:
    d = account.daily(view, days=days, until_ms=until_ms)
    lines = [f"📅 daily P&L, last {days} UTC day(s)"]
    for row in d["data"]:
        lines.append(
            f"{row['date']} {f.money(row['abs_profit'], signed=True)} "
            f"({f.pct(row['rel_profit'])}) {row['trade_count']} tr"
        )
    total = sum(r["abs_profit"] for r in d["data"])
    count = sum(r["trade_count"] for r in d["data"])
    lines.append(f"sum {f.money(total, signed=True, cur=True)}, {count} trade(s)")
    return "\n".join(lines)


def balance(view: LedgerView, snap: Snapshot, f: Fmt) -> str:
    d = account.balance(view, snap)
    lines = [f"🏦 balance ({d['note']})"]
    for c in d["currencies"]:
        if c["currency"] == d["symbol"]:
            lines.append(f"{c['currency'] or 'cash'} {f.money(c['balance'])}")
        else:
            lines.append(f"{c['currency']} {f.qty(c['balance'], 6)} = {f.money(c['est_stake'])}")
    lines.append(f"total {f.money(d['total'], cur=True)}")
    lines.append(f"vs start {f.money(d['starting_capital'])}: {f.pct(d['starting_capital_ratio'])}")
    return "\n".join(lines)


def trades(view: LedgerView, f: Fmt, *, limit: int) -> str:
    rows = view.trades(limit=limit, newest_first=True)
    if not rows:
        return "no closed trades yet"
    lines = [f"📜 last {len(rows)} closed trade(s), newest first"]
    for r in rows:
        icon = "✅" if r["pnl"] >= 0 else "🔻"
        lines.append(
            f"{icon} {r['symbol']} {f.money(r['pnl'], signed=True)} ({f.pct(r['pnl_pct'])}) "
            f"{r['exit_reason']}, {f.time(r['exit_ms'])}"
        )
    return "\n".join(lines)


def performance(view: LedgerView, f: Fmt) -> str:
    rows = account.performance(view)
    if not rows:
        return "no closed trades yet"
    lines = ["🏁 performance per pair (closed trades)"]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"{i}. {r['pair']} {f.money(r['profit_abs'], signed=True)} "
            f"({f.pct(r['profit_ratio'])}) {r['count']} tr, {r['winning_trades']} won"
        )
    return "\n".join(lines)


def positions(snap: Snapshot, f: Fmt) -> str:
    lines = [f"📈 open positions: {len(snap.positions) or 'none'}"]
    if snap.positions:
        lines += position_lines(snap, f)
        lines.append(
            f"exposure {f.money(snap.exposure)} of equity {f.money(snap.equity, cur=True)}"
        )
    stops = [o for o in snap.open_orders if o.kind == "stop"]
    if stops:
        lines.append(
            "stops on the exchange: "
            + ", ".join(f"{o.symbol} {f.price(o.stop_price)}" for o in stops)
        )
    others = [o for o in snap.open_orders if o.kind != "stop"]
    if others:
        lines.append(f"{len(others)} other open order(s)")
    return "\n".join(lines)


def model(model_dir: str | Path, snap: Snapshot, f: Fmt) -> str:
    from tradekit.report.model import model_info

    info = model_info(Path(model_dir))
    running = snap.model_version or "-"
    if not info["available"]:
        return f"🧠 model: none deployed ({info['problem']})\nthe loop last ran {running}"
    m, r = info["model"], info["receipt"]
    gate = "passed" if r["deployable"] else f"not deployable: {r['problem']}"
    lines = [
        f"🧠 model {m['version']} ({m['kind']}, {m['objective']})",
        f"the loop runs {running}"
        + ("" if running in ("-", m["version"]) else " (not the deployed one)"),
        f"trained {str(m['created_at'] or '-')[:16]}, {m['features']} features, {m['timeframe']}",
        f"gate receipt: {gate}",
    ]
    return "\n".join(lines)
