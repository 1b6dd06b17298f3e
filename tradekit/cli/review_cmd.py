"""``tradekit review``: the night's evidence (``review/1``) for the phone and ``ask``."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt


def review(
    ctx: typer.Context,
    period: Annotated[
        str, typer.Option("--period", metavar="day|week", help="The window length.")
    ] = "day",
    state_file: Annotated[
        str | None,
        typer.Option("--state", metavar="PATH", help="Ledger [default: [run] state]."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", metavar="DIR", help="Model dir [default: [run] model]."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="ISO",
            help="End of the window [default: the ledger's latest candle].",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="review/1 JSON; - writes to stdout [default: beside the ledger, "
            "state/NAME.review.json, where ask finds it].",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """What happened (trades with MAE/MFE, halts, rejected entries by reason), the candidates'
    evidence, drift, and the model's age and gate receipt, as review/1 JSON."""
    from tradekit.cli import output as out
    from tradekit.contracts import write_json
    from tradekit.review import build_review, render
    from tradekit.sidecar import review_path
    from tradekit.timeutil import parse_time

    cfg = state(ctx).config
    ledger = state_file or cfg.run.state
    doc = build_review(
        state=ledger,
        model_dir=model or cfg.run.model,
        period=period,
        at_ms=parse_time(now, option="--now") if now else None,
        candidates=cfg.run.candidates or None,
    )
    write_json(doc, output or review_path(ledger))
    if as_json:
        out.emit_json(doc)
    if output != "-":
        out.say(render(doc).rstrip("\n"))
