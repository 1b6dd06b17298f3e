"""``tradekit run`` (the loop), ``pause``, ``resume``, ``kill`` (controls for a running loop)
and ``status``. Only the stdlib ledger is imported here; the loop's stack loads inside ``run``."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt
from tradekit.errors import UsageError

StateOpt = Annotated[
    str | None,
    typer.Option("--state", metavar="FILE", help="SQLite ledger (default: [run] state)."),
]


def run(
    ctx: typer.Context,
    live: Annotated[
        bool,
        typer.Option(
            "--live/--paper",
            help='Trade real money (also needs [run] mode = "live") or paper (the default).',
        ),
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="One cycle, then exit (cron, timers, tests).")
    ] = False,
    replay: Annotated[
        str | None,
        typer.Option(
            "--replay",
            metavar="OHLCV",
            help="Drive the loop from an ohlcv/1 file at full speed (paper; needs --predictions).",
        ),
    ] = None,
    predictions: Annotated[
        str | None,
        typer.Option(
            "--predictions",
            "-p",
            metavar="FILE",
            help="predictions/1 file to trade on instead of the deployed model.",
        ),
    ] = None,
    state_file: StateOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", metavar="DIR", help="Model directory (default: [run] model)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Trade: on every new closed candle, predict, decide, order, record (paper by default)."""
    from tradekit.cli import output as out

    cfg = state(ctx).config
    path = state_file or cfg.run.state
    if replay is not None:
        if live:
            raise UsageError("--replay uses the paper broker; drop --live")
        if predictions is None:
            raise UsageError("--replay needs --predictions FILE")
        from tradekit.live.replay import replay as run_replay

        with out.status(f"replay {replay}"):
            res = run_replay(cfg, replay, predictions, path)
        if as_json:
            out.emit_json(res.as_json())
        else:
            out.say(
                f"replayed {res.candles} candles of {', '.join(res.symbols)} in {res.seconds:.2f}s"
                f" ({res.skipped} already in the ledger): {res.trades} trades, "
                f"{res.open_positions} open, final equity {res.final_equity:,.2f}; ledger {path}"
            )
        return
    from tradekit.live.loop import Runner

    runner = Runner(
        cfg, live=live, state=path, model_dir=model or cfg.run.model, predictions=predictions
    )
    summary = runner.run(once=once)
    for e in summary.events:
        out.say(e)
    if as_json:
        out.emit_json(summary.as_json())
    else:
        out.say(
            f"{summary.mode}: {summary.cycles} new candle(s) in {summary.iterations} "
            f"iteration(s); {summary.exit}"
        )
    from tradekit import interrupt

    interrupt.check()  # stopped by a signal: a clean stop, exit 130


def control(ctx: typer.Context, command: str, path: str | None) -> None:
    """Queue a control for the loop (it applies it within one poll, or at its next start)."""
    from tradekit.cli import output as out
    from tradekit.ledger import SideLedger
    from tradekit.report.snapshot import load
    from tradekit.report.text import requested

    cfg = state(ctx).config
    p = path or cfg.run.state
    snap = load(p)  # also checks that the ledger exists and is readable
    with SideLedger(p) as ledger:
        ledger.request(command)
    out.say(requested(command, snap.running))


def pause(ctx: typer.Context, state_file: StateOpt = None) -> None:
    """Stop opening positions (exits and stops go on) until `resume`."""
    control(ctx, "pause", state_file)


def resume(ctx: typer.Context, state_file: StateOpt = None) -> None:
    """Allow new positions again after `pause` or `kill`; also lifts the risk halts."""
    control(ctx, "resume", state_file)


def kill(ctx: typer.Context, state_file: StateOpt = None) -> None:
    """Cancel open orders, close every position at market, and stop the loop."""
    control(ctx, "kill", state_file)


def status(ctx: typer.Context, state_file: StateOpt = None, as_json: JsonOpt = False) -> None:
    """Mode, positions with unrealized P&L, open orders, P&L, equity, drawdown, last decisions,
    and the controls still waiting for a loop."""
    from tradekit.cli import output as out
    from tradekit.report.snapshot import dumps, load
    from tradekit.report.text import table

    cfg = state(ctx).config
    snap = load(state_file or cfg.run.state)  # with the latest drift check beside the ledger
    out.emit_text(dumps(snap) + "\n" if as_json else table(snap))
