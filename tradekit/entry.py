"""The console entry point: the first lines of tradekit that run, before anything else is
imported, so that a SIGTERM during start-up is recorded (``tradekit.interrupt``) instead of
raising inside an import."""

from __future__ import annotations


def run() -> None:
    from tradekit import interrupt

    interrupt.defer()
    from tradekit.cli.main import run as main_run

    main_run()
