"""``tradekit backtest``: simulate the policy and risk limits on OHLCV + predictions."""

from typing import Annotated, Any

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt, OutputOpt
from tradekit.errors import UsageError

_PCT = ("total_return", "cagr", "max_drawdown", "win_rate", "exposure", "buy_and_hold_return")


def _fmt(key: str, v: Any) -> str:
    if v is None:
        return "n/a"
    if key in _PCT:
        return f"{v:+.2%}" if key.endswith("return") or key == "cagr" else f"{v:.2%}"
    if isinstance(v, int):
        return str(v)
    return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.3f}"


def backtest(
    ctx: typer.Context,
    ohlcv: Annotated[str, typer.Argument(metavar="OHLCV", help="ohlcv/1 Parquet: the candles.")],
    predictions: Annotated[
        str,
        typer.Option(
            "--predictions",
            "-p",
            metavar="FILE",
            help="predictions/1 Parquet (out-of-sample rows of any model).",
        ),
    ],
    output: OutputOpt = None,
    trades: Annotated[
        str | None,
        typer.Option("--trades", metavar="FILE", help="Also write the trades (trades/1 Parquet)."),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot", metavar="FILE", help="Also draw equity vs buy-and-hold and drawdown (PNG)."
        ),
    ] = None,
    breakdown: Annotated[
        str | None,
        typer.Option(
            "--breakdown",
            metavar="PERIOD",
            help="Also results per pair, per exit reason and per day, week or month "
            "(tables, and 'breakdown' in the report).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Simulate the policy and risk limits on OHLCV + predictions: -> backtest/1 report."""
    from tradekit.backtest.report import BREAKDOWNS, run_backtest, write_trades
    from tradekit.cli import output as out
    from tradekit.contracts import write_json

    if as_json and output == "-":
        raise UsageError("--json and -o - both want stdout; write the report to a file")
    if breakdown is not None and breakdown not in BREAKDOWNS:
        raise UsageError(f"--breakdown {breakdown!r}: choose {', '.join(BREAKDOWNS)}")
    cfg = state(ctx).config
    with out.status(f"backtest {ohlcv}"):
        result = run_backtest(
            ohlcv, predictions, cfg.policy, cfg.risk, cfg.backtest, breakdown=breakdown
        )
    if trades:
        write_trades(result, trades)
    if plot:
        from tradekit.backtest.plot import write_plot

        write_plot(result, plot)
    if output:
        write_json(result.report, output)
    m = result.report["metrics"]
    span = result.report["span"]
    keys = [
        "total_return",
        "cagr",
        "sharpe",
        "sortino",
        "calmar",
        "probabilistic_sharpe",
        "max_drawdown",
        "trades",
        "win_rate",
        "profit_factor",
        "exposure",
        "fees_paid",
        "final_equity",
        "buy_and_hold_return",
    ]
    rows = [("span", f"{span['start']} -> {span['end']}"), ("candles", str(span["candles"]))]
    rows += [(k, _fmt(k, m[k])) for k in keys]
    out.table(
        f"backtest {', '.join(span['symbols'])} {span['timeframe']}",
        ["metric", "value"],
        rows,
        justify_right=["value"],
    )
    _breakdown_tables(result.report)
    # A halt or a cap that blocked entries explains a flat equity curve: say so.
    blocked = {k: v for k, v in result.report.get("risk_events", {}).items() if k != "ok" and v}
    if blocked:
        out.say("risk limits: " + ", ".join(f"{k} {v}" for k, v in sorted(blocked.items())))
    if as_json:
        out.emit_json(result.report)


_SIGNED_PCT = ("return", "return_contribution", "avg_pnl_pct", "buy_and_hold_return")
_UNSIGNED_PCT = ("win_rate", "max_drawdown")


def _cells(d: dict[str, Any], keys: list[str]) -> list[str]:
    def one(k: str) -> str:
        v = d.get(k)
        if v is None:
            return "n/a"
        if k in _SIGNED_PCT:
            return f"{v:+.2%}"
        if k in _UNSIGNED_PCT:
            return f"{v:.2%}"
        if k == "pnl":
            return f"{v:+,.2f}"
        if k == "avg_candles":
            return f"{v:.1f}"
        return _fmt(k, v)

    return [one(k) for k in keys]


def _total(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The "all" row of a breakdown: the parts summed (its win rate over every trade)."""
    n = sum(int(d["trades"]) for d in rows.values())
    wins = sum(int(d.get("wins") or 0) for d in rows.values())
    pnl = sum(float(d["pnl"]) for d in rows.values())
    out: dict[str, Any] = {
        "trades": n,
        "wins": wins,
        "win_rate": wins / n if n else None,
        "pnl": pnl,
        "return_contribution": sum(float(d["return_contribution"]) for d in rows.values()),
    }
    if all("fees" in d for d in rows.values()):
        out["fees"] = sum(float(d["fees"]) for d in rows.values())
    if all(d.get("avg_pnl_pct") is not None for d in rows.values()) and n:
        out["avg_pnl_pct"] = sum(d["avg_pnl_pct"] * d["trades"] for d in rows.values()) / n
        out["avg_candles"] = sum(d["avg_candles"] * d["trades"] for d in rows.values()) / n
    return out


def _breakdown_tables(report: dict[str, Any]) -> None:
    """Per pair and per exit reason always (a glance shows which pair and which exit made the
    result, with an "all" row as Freqtrade's tables have); per period with --breakdown."""
    from tradekit.cli import output as out

    pairs = report["per_symbol"]
    keys = ["trades", "win_rate", "pnl", "fees", "return_contribution", "buy_and_hold_return"]
    rows = [[s, *_cells(d, keys)] for s, d in pairs.items()]
    if len(pairs) > 1:
        rows.append(["all", *_cells(_total(pairs), keys)])
    out.table("per pair", ["pair", *keys], rows, justify_right=keys)
    exits = report.get("per_exit_reason") or {}
    if exits:
        keys = ["trades", "win_rate", "pnl", "avg_pnl_pct", "avg_candles", "return_contribution"]
        by_pnl = sorted(exits.items(), key=lambda kv: -float(kv[1]["pnl"]))
        rows = [[r, *_cells(d, keys)] for r, d in by_pnl]
        if len(exits) > 1:
            rows.append(["all", *_cells(_total(exits), keys)])
        out.table("per exit reason", ["exit reason", *keys], rows, justify_right=keys)
    b = report.get("breakdown")
    if b:
        keys = ["trades", "win_rate", "pnl", "return", "max_drawdown"]
        rows = [[r["period"], *_cells(r, keys)] for r in b["rows"]]
        out.table(f"per {b['period']}", [b["period"], *keys], rows, justify_right=keys)
