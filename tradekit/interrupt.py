"""SIGTERM and SIGINT, honoured at every point of a command and never swallowed (stdlib only).

Python's default is to raise ``KeyboardInterrupt`` wherever the main thread happens to be. In
the middle of an import that surfaces as some other error (``RuntimeError: Error calling
__set_name__``) or is swallowed by a library's ``except``; in the middle of an order it would
cut the order's bookkeeping in two. So the trading loop *defers*: the handler only records the
signal, and the loop stops at the next :func:`check` (between start-up steps, between cycles,
in every wait), with exit code 130 through :class:`Interrupted`. Other commands *raise* at once
(``KeyboardInterrupt``), which their atomic writes already roll back cleanly.

``tradekit.entry`` installs the deferring handler before anything else is imported, so a signal
that arrives during start-up is kept until a command decides how to stop.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from tradekit.errors import TradekitError

_event = threading.Event()
_signum: int | None = None
_mode = "default"


class Interrupted(TradekitError):
    """Stopped by SIGTERM or SIGINT at a safe point."""

    exit_code = 130


def _record(signum: int, frame: Any) -> None:
    global _signum
    _signum = signum
    _event.set()


def _raise(signum: int, frame: Any) -> None:
    _record(signum, frame)
    raise KeyboardInterrupt


def _install(handler: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)


def defer() -> None:
    """From now on a signal is recorded, not raised; :func:`check` raises it."""
    global _mode
    _mode = "defer"
    _install(_record)


def raise_now() -> None:
    """Signals raise ``KeyboardInterrupt`` at once (one already recorded raises now)."""
    global _mode
    _mode = "raise"
    _install(_raise)
    if _event.is_set():
        raise KeyboardInterrupt


def requested() -> bool:
    return _event.is_set()


def name() -> str:
    return signal.Signals(_signum).name if _signum is not None else "signal"


def check() -> None:
    """Raise :class:`Interrupted` if a signal was recorded."""
    if _event.is_set():
        raise Interrupted(f"interrupted by {name()}: stopped cleanly at a safe point")


def sleep(seconds: float) -> None:
    """Sleep, waking at once for a signal (then :func:`check` raises)."""
    if seconds > 0:
        _event.wait(seconds)
    if _mode == "defer":
        check()


def event() -> threading.Event:
    """The event a signal sets: a loop may wait on it instead of sleeping."""
    return _event


def reset() -> None:
    """Forget a recorded signal (each in-process CLI call starts clean)."""
    global _signum
    _signum = None
    _event.clear()
