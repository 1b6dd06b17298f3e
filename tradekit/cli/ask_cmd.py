"""``tradekit ask`` (a read-only analyst: the answer on stdout) and ``summary`` (the day or week
in short lines for a phone)."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt

StateOpt = Annotated[
    str | None,
    typer.Option("--state", metavar="PATH", help="Ledger [default: [run] state]."),
]


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(metavar="QUESTION", help="The question, in quotes.")],
    state_file: StateOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", metavar="DIR", help="Model dir [default: [run] model]."),
    ] = None,
    context: Annotated[
        list[str] | None,
        typer.Option(
            "--context",
            metavar="FILE",
            help="Extra JSON or text file for the context (repeatable); a gate verdict, "
            "backtest report or model manifest is recognised by its schema.",
        ),
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            metavar="P",
            help="none, anthropic, openai or ollama [default: [ask] provider].",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print an ask/1 document (answer, tokens, cost).")
    ] = False,
) -> None:
    """Answer a question about the bot from its ledger, model and reports (reads only; it
    cannot place, change or cancel orders). Provider none answers offline. Secrets and phone
    numbers are masked; the context is fitted to the model's window ([ask] context_tokens)."""
    from tradekit.ask import answer
    from tradekit.cli import output as out

    cfg = state(ctx).config
    result = answer(
        cfg,
        question,
        state=state_file,
        model=model,
        context_files=context or (),
        provider=provider,
    )
    if as_json:
        out.emit_json(result.as_json())
    else:
        out.emit_text(result.text if result.text.endswith("\n") else result.text + "\n")


def summary(
    ctx: typer.Context,
    period: Annotated[
        str, typer.Option("--period", metavar="day|week", help="The window length.")
    ] = "day",
    state_file: StateOpt = None,
    png: Annotated[
        str | None,
        typer.Option("--png", metavar="FILE", help="Also write the period's equity curve PNG."),
    ] = None,
    as_json: JsonOpt = False,
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            metavar="ISO",
            help="End of the window [default: the ledger's latest equity candle].",
        ),
    ] = None,
) -> None:
    """The day or week for a phone: equity and change, realized P&L, trades, drawdown, open
    positions, risk state, model, notable events, times in [notify] timezone. Pipe it:
    tradekit summary | tradekit notify -"""
    from tradekit.cli import output as out
    from tradekit.report.summary import build_summary, render, write_png
    from tradekit.timeutil import parse_time, zone

    cfg = state(ctx).config
    path = state_file or cfg.run.state
    at_ms = parse_time(now, option="--now") if now else None
    tz = zone(cfg.notify.timezone)
    doc = build_summary(path, period=period, at_ms=at_ms, model_dir=cfg.run.model, tz=tz)
    if png:
        write_png(path, png, doc, tz)
    if as_json:
        out.emit_json(doc)
    else:
        # The phone's language when [ask] language names one; auto has no question: English.
        lang = cfg.ask.language if cfg.ask.language != "auto" else "en"
        out.emit_text(render(doc, tz, lang))
