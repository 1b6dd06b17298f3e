"""``tradekit trades``: closed trades from a backtest's trades/1 file or a ledger, as a table
(stderr) or ``tradelist/1`` JSON (stdout)."""

from typing import Annotated, Any

import typer

from tradekit.cli.options import JsonOpt


def trades(
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE_OR_LEDGER",
            help="trades/1 Parquet (backtest --trades) or a ledger (run, run --replay).",
        ),
    ],
    symbol: Annotated[
        str | None, typer.Option("--symbol", "-s", metavar="SYMBOL", help="Only this pair.")
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason", metavar="REASON", help="Only this exit reason, e.g. stoploss, forceexit."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="TIME", help="Exits after this: ISO date, epoch, or an age (30d)."
        ),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="TIME", help="Exits up to this time.")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", metavar="N", min=0, help="Only the newest N trades."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List closed trades: when, pair, prices, P&L, exit reason, MAE/MFE, and their totals."""
    from tradekit.cli import output as out
    from tradekit.report.trades import load
    from tradekit.timeutil import parse_time

    got = load(
        source,
        symbol=symbol,
        reason=reason,
        since_ms=parse_time(since, option="--since") if since else None,
        until_ms=parse_time(until, option="--until") if until else None,
        limit=limit,
    )
    if as_json:
        out.emit_json(got.as_json())
        return
    from tradekit.report.fmt import EN
    from tradekit.timeutil import fmt_ms

    def hours(r: dict[str, Any]) -> str:
        h = (int(r["exit_ms"]) - int(r["entry_ms"])) / 3_600_000
        return f"{h:.0f} h" if h < 72 else f"{h / 24:.1f} d"

    cols = ["exit (UTC)", "pair", "entry", "exit", "qty", "P&L", "P&L %", "held", "reason",
            "MAE", "MFE"]  # fmt: skip
    rows = [
        [
            fmt_ms(r["exit_ms"]),
            r["symbol"],
            EN.price(r["entry_price"]),
            EN.price(r["exit_price"]),
            EN.qty(r["qty"]),
            EN.money(r["pnl"], signed=True),
            EN.pct(r["pnl_pct"]),
            hours(r),
            r["exit_reason"],
            EN.pct(r["mae"], signed=False),
            EN.pct(r["mfe"], signed=False),
        ]
        for r in got.rows
    ]
    right = ["entry", "exit", "qty", "P&L", "P&L %", "held", "MAE", "MFE"]
    out.table(f"trades {got.source} ({got.kind})", cols, rows, justify_right=right)
    n = len(got.rows)
    if not n:
        out.say("no trades match")
        return
    reasons = ", ".join(
        f"{k} {int(v['trades'])} ({EN.money(v['pnl'], signed=True)})"
        for k, v in sorted(got.by_reason().items(), key=lambda kv: -kv[1]["trades"])
    )
    out.say(
        f"{n} trade(s), {got.wins} won ({EN.pct(got.wins / n, signed=False, digits=1)}), "
        f"P&L {EN.money(got.pnl, signed=True)}; by exit: {reasons}"
    )
