"""The ``tradekit`` command: global options, subcommands, and the one place that turns
exceptions into exit codes (DESIGN.md): 0 ok, 1 a check said no, 2 usage, 3 bad input or
config, 4 external service, 70 internal error, 130 interrupted, 141 broken pipe.

Module-level imports stay light (stdlib, typer, tradekit's small modules) so ``--help`` is
fast; each command imports its stage inside the function body. The command modules
(``*_cmd.py``, ``options.py``) do without ``from __future__ import annotations``: typer reads
every command's signature to build the tree, and string annotations cost a compile and an eval
each (``tradekit --help`` took 1.7x a bare two-command typer app with them, 1.3x without).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Annotated

import typer

from tradekit import __version__
from tradekit import log as tklog
from tradekit.cli import helpfmt
from tradekit.cli.args import command as named_command
from tradekit.cli.context import AppState
from tradekit.errors import TradekitError

app = typer.Typer(
    name="tradekit",
    help="Composable tools for an ML-driven crypto trading bot. Stages pass Parquet and JSON "
    "files; data goes to stdout, messages to stderr.",
    rich_markup_mode=None,  # plain help: rich's help renderer costs ~200 ms at start-up
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    add_completion=True,
    context_settings=helpfmt.CONTEXT,  # -h too; help as wide as the terminal, up to 120
)
helpfmt.install()  # FEATURES, not {FEATURES} <str>; --seed SEED; first sentences uncut


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"tradekit {__version__}\n")
        raise typer.Exit()


LEVELS = ("debug", "info", "warning", "error")


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Config file [default: $TRADEKIT_CONFIG, else ./tradekit.toml, else built-ins].",
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            help="debug, info, warning or error; debug shows tracebacks.",
            envvar="TRADEKIT_LOG_LEVEL",
        ),
    ] = "info",
    log_json: Annotated[bool, typer.Option("--log-json", help="Log JSON lines on stderr.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    if log_level.lower() not in LEVELS:
        raise typer.BadParameter(
            f"{log_level!r} is not one of {', '.join(LEVELS)}", param_hint="--log-level"
        )
    ctx.obj = AppState(config_path=config, log_level=log_level.lower(), log_json=log_json)
    tklog.setup(log_level.lower(), log_json)


def _register() -> None:
    from tradekit.cli import (
        ask_cmd,
        backtest_cmd,
        candidates_cmd,
        config_cmd,
        data_cmd,
        deploy_cmd,
        doctor_cmd,
        drift_cmd,
        featurize_cmd,
        fetch_cmd,
        gate_cmd,
        notify_cmd,
        predict_cmd,
        reconcile_cmd,
        review_cmd,
        run_cmd,
        serve_cmd,
        sweep_cmd,
        trades_cmd,
        train_cmd,
    )

    app.command("fetch", no_args_is_help=False)(fetch_cmd.fetch)
    app.command("featurize")(featurize_cmd.featurize)
    app.command("train")(train_cmd.train)
    app.command("predict")(predict_cmd.predict)
    app.command("backtest")(backtest_cmd.backtest)
    app.command("trades")(trades_cmd.trades)
    app.command("sweep")(sweep_cmd.sweep)
    app.command("gate")(gate_cmd.gate)
    app.command("run")(run_cmd.run)
    app.command("status")(run_cmd.status)
    app.command("pause")(run_cmd.pause)
    app.command("resume")(run_cmd.resume)
    app.command("kill")(run_cmd.kill)
    app.command("reconcile")(reconcile_cmd.reconcile)
    app.command("deploy")(deploy_cmd.deploy)
    app.command("candidates")(candidates_cmd.candidates)
    app.command("promote")(candidates_cmd.promote)
    app.command("summary")(ask_cmd.summary)
    app.command("notify")(notify_cmd.notify)
    app.command("listen")(notify_cmd.listen)
    app.command("ask")(ask_cmd.ask)
    app.command("doctor")(doctor_cmd.doctor)
    app.command("serve")(serve_cmd.serve)
    app.command("drift")(drift_cmd.drift)
    app.command("review")(review_cmd.review)
    app.add_typer(data_cmd.app, name="data")
    app.add_typer(config_cmd.app, name="config")


_register()


DEFERRING = ("run",)  # commands that stop at safe points (tradekit.interrupt)


def _error(message: str) -> None:
    with contextlib.suppress(BrokenPipeError, ValueError):
        sys.stderr.write(f"tradekit: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (never raises, never prints a traceback unless
    the log level is debug)."""
    from typer import _click

    from tradekit import interrupt

    args = sys.argv[1:] if argv is None else argv
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    command = typer.main.get_command(app)
    code: int
    try:
        # SIGTERM (systemd stop) and Ctrl-C: `run` stops at its next safe point; any other
        # command unwinds at once, rolling back its atomic writes (a fetch saves what it has).
        if named_command(args) in DEFERRING:
            interrupt.defer()
        else:
            interrupt.raise_now()
        rv = command.main(args=argv, prog_name="tradekit", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
        if code == 130:  # typer turns Ctrl-C/SIGTERM into Exit(130) before we see it
            _error("interrupted")
    except _click.exceptions.ClickException as e:
        e.show()
        code = e.exit_code
    except typer.Abort:
        code = 130
    except TradekitError as e:
        if tklog.state["debug"]:
            import traceback

            traceback.print_exc()
        _error(str(e))
        code = e.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        code = 130
    except BrokenPipeError:
        code = 141
    except Exception as e:  # a bug: one line, the traceback only at debug level
        if tklog.state["debug"]:
            import traceback

            traceback.print_exc()
        _error(
            f"internal error: {type(e).__name__}: {e} (run with --log-level debug for "
            "the traceback)"
        )
        code = 70
    finally:
        if argv is not None and threading.current_thread() is threading.main_thread():
            for sig, h in saved.items():  # an in-process call leaves the caller's handlers
                signal.signal(sig, h)
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        # The reader left: point stdout at /dev/null so the interpreter's own final flush
        # does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 141 if code == 0 else code
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
