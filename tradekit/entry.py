"""The console entry point: the first lines of tradekit that run, before anything else is
imported. A SIGTERM during start-up is recorded from here on (``tradekit.interrupt``) instead
of raising inside an import; and ``run`` (the trading loop, and its replay) runs the shared rules
interpreted, without numba (``tradekit.jit``)."""

from __future__ import annotations

import sys


def _runs_the_engine(argv: list[str]) -> bool:
    """``run``: the live engine, a candle at a time (interpreted rules are faster there than
    calls into compiled ones, and they spare the trading loop numba)."""
    from tradekit.cli.args import command

    return command(argv) == "run"


def run() -> None:
    from tradekit import interrupt, jit

    interrupt.defer()
    if _runs_the_engine(sys.argv[1:]):
        jit.configure(enabled=False)
    from tradekit.cli.main import run as main_run

    main_run()
