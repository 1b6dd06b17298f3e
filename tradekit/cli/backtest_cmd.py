"""``tradekit backtest``: simulate the policy and risk limits on OHLCV + predictions."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tradekit.cli.main import state
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
    if breakdown is not None:
        _breakdown_tables(result.report)
    # A halt or a cap that blocked entries explains a flat equity curve: say so.
    blocked = {k: v for k, v in result.report.get("risk_events", {}).items() if k != "ok" and v}
    if blocked:
        out.say("risk limits: " + ", ".join(f"{k} {v}" for k, v in sorted(blocked.items())))
    if as_json:
        out.emit_json(result.report)


_STATS = ["trades", "win_rate", "pnl", "avg_pnl_pct", "return_contribution"]


def _breakdown_tables(report: dict[str, Any]) -> None:
    """Per pair, per exit reason and per period, as Freqtrade users know them."""
    from tradekit.cli import output as out

    def cells(d: dict[str, Any], keys: list[str]) -> list[str]:
        pct = ("win_rate", "avg_pnl_pct", "return_contribution", "return", "max_drawdown")
        return [
            "n/a" if d.get(k) is None else f"{d[k]:.2%}" if k in pct else _fmt(k, d[k])
            for k in keys
        ]

    pair_keys = ["trades", "win_rate", "pnl", "fees", "return_contribution"]
    rows = [[s, *cells(d, pair_keys)] for s, d in report["per_symbol"].items()]
    out.table("per pair", ["pair", *pair_keys], rows, justify_right=pair_keys)
    rows = [[r, *cells(d, _STATS)] for r, d in report["per_exit_reason"].items()]
    out.table("per exit reason", ["exit reason", *_STATS], rows, justify_right=_STATS)
    b = report["breakdown"]
    keys = ["trades", "win_rate", "pnl", "return", "max_drawdown"]
    rows = [[r["period"], *cells(r, keys)] for r in b["rows"]]
    out.table(f"per {b['period']}", [b["period"], *keys], rows, justify_right=keys)
