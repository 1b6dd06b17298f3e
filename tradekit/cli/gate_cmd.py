"""``tradekit gate``: pass or fail a backtest report; exit 0 pass, 1 fail, 3 unreadable.
With ``--model DIR`` the verdict becomes the model dir's receipt, which ``deploy`` checks."""

from pathlib import Path
from typing import Annotated, Any

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt, OutputOpt
from tradekit.errors import CheckFailed


def _fmt(v: Any, metric: str) -> str:
    if v is None:
        return "n/a"
    if metric in ("max_drawdown", "win_rate", "total_return"):
        return f"{v:.2%}"
    if metric == "trades":
        return f"{v:.0f}"
    return f"{v:.3f}"


def gate(
    ctx: typer.Context,
    report: Annotated[
        str, typer.Argument(metavar="REPORT", help="backtest/1 report JSON, - for stdin.")
    ],
    min_sortino: Annotated[
        float | None, typer.Option(help="Lowest Sortino ratio [default: [gate] min_sortino].")
    ] = None,
    max_drawdown: Annotated[
        float | None,
        typer.Option(help="Highest max drawdown, a fraction [default: [gate] max_drawdown]."),
    ] = None,
    min_trades: Annotated[
        int | None, typer.Option(help="Fewest trades [default: [gate] min_trades].")
    ] = None,
    min_profit_factor: Annotated[
        float | None, typer.Option(help="Lowest profit factor; 0 = not checked.")
    ] = None,
    min_win_rate: Annotated[
        float | None, typer.Option(help="Lowest win rate, a fraction; 0 = not checked.")
    ] = None,
    min_sharpe: Annotated[
        float | None, typer.Option(help="Lowest Sharpe ratio; 0 = not checked.")
    ] = None,
    min_psr: Annotated[
        float | None,
        typer.Option(help="Lowest probabilistic Sharpe ratio (0..1); 0 = not checked."),
    ] = None,
    beat_buy_and_hold: Annotated[
        bool | None,
        typer.Option(
            "--beat-buy-and-hold/--no-beat-buy-and-hold",
            help="Require a higher return than buy-and-hold [default: [gate] "
            "must_beat_buy_and_hold].",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            metavar="MODEL_DIR",
            help="The model dir whose backtest REPORT is: the verdict names the model and is "
            "written to MODEL_DIR/verdict.json, the receipt 'deploy' requires.",
        ),
    ] = None,
    sweep: Annotated[
        Path | None,
        typer.Option(
            "--sweep",
            metavar="SWEEP_DIR",
            help="The sweep REPORT's config was chosen by: the deflated Sharpe ratio (by the "
            "sweep's own trial count) and the probability of overfitting must pass too.",
        ),
    ] = None,
    min_dsr: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="With --sweep: lowest deflated Sharpe ratio [default: [gate] min_dsr].",
            show_default=False,
        ),
    ] = None,
    max_pbo: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="With --sweep: highest probability of overfitting [default: [gate] max_pbo].",
            show_default=False,
        ),
    ] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Judge a backtest report against quality thresholds.

    Exit 0 when every rule passes, 1 when any fails, 3 when the report is unreadable or lacks
    a metric a rule needs. Flags override [gate] in the config. With --model, the report must
    come from MODEL_DIR/oos_predictions.parquet (exit 3 otherwise), and the verdict, passed or
    failed, is stored as MODEL_DIR/verdict.json: deploy ships only a model whose own receipt
    passed. With --sweep, REPORT must be the sweep's best trial re-run with its best.toml
    (exit 3 otherwise), and its deflated Sharpe ratio and the sweep's PBO are rules too.
    """
    from tradekit.cli import output as out
    from tradekit.config import with_overrides
    from tradekit.contracts import write_json
    from tradekit.gate import gate_file, write_receipt

    cfg = with_overrides(
        state(ctx).config.gate,
        "gate",
        {
            "min_sortino": ("--min-sortino", min_sortino),
            "max_drawdown": ("--max-drawdown", max_drawdown),
            "min_trades": ("--min-trades", min_trades),
            "min_profit_factor": ("--min-profit-factor", min_profit_factor),
            "min_win_rate": ("--min-win-rate", min_win_rate),
            "min_sharpe": ("--min-sharpe", min_sharpe),
            "min_psr": ("--min-psr", min_psr),
            "must_beat_buy_and_hold": ("--beat-buy-and-hold", beat_buy_and_hold),
            "min_dsr": ("--min-dsr", min_dsr),
            "max_pbo": ("--max-pbo", max_pbo),
        },
    )
    chosen = (sweep, cfg.min_dsr, cfg.max_pbo) if sweep is not None else None
    verdict = gate_file(report, cfg, model_dir=model, sweep=chosen)
    rows = []
    for r in verdict["rules"]:
        rows.append(
            (
                r["label"],
                _fmt(r["value"], r["metric"]),
                f"{r['op']} {_fmt(r['threshold'], r['metric'])}",
                "pass" if r["passed"] else "FAIL",
                r.get("note", ""),
            )
        )
    label = "stdin" if report == "-" else report
    out.table(
        f"gate {label}",
        ["rule", "value", "needs", "result", "note"],
        rows,
        justify_right=["value", "needs"],
    )
    if output:
        write_json(verdict, output)
    if model is not None:
        receipt = write_receipt(verdict, model)
        out.say(f"verdict of model {verdict['model']['version']} stored in {receipt}")
    if as_json:
        out.emit_json(verdict)
    if not verdict["passed"]:
        raise CheckFailed(f"gate failed: {', '.join(verdict['failed'])}")
    out.say(f"gate passed: {len(verdict['rules'])} rule(s)")
