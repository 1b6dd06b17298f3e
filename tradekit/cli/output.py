"""Output for people (stderr: messages, tables, progress) and for programs (stdout: data).

rich is imported only when a table or progress bar is drawn.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tradekit.errors import StdoutClosed


def emit_json(doc: Any) -> None:
    """One JSON document on stdout: compact with sorted keys when piped, indented on a tty."""
    if sys.stdout.isatty():
        text = json.dumps(doc, indent=2, sort_keys=True, default=str)
    else:
        text = json.dumps(doc, separators=(",", ":"), sort_keys=True, default=str)
    emit_text(text + "\n")


def emit_text(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise StdoutClosed("stdout closed by its reader") from None


def say(message: str) -> None:
    """A line for people, on stderr."""
    sys.stderr.write(message + "\n")


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    justify_right: Sequence[str] = (),
) -> None:
    """A rich table on stderr."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, justify="right" if c in justify_right else "left", no_wrap=True)
    for r in rows:
        # Values are data, not markup: "[notify] sender" must print as written.
        t.add_row(*("" if v is None else escape(str(v)) for v in r))
    # Piped stderr (logs, CI) gets a wide fixed width instead of rich's 80 columns.
    width = None if sys.stderr.isatty() else 160
    Console(stderr=True, soft_wrap=False, width=width).print(t)


@contextlib.contextmanager
def status(description: str) -> Iterator[Callable[[str], None]]:
    """A live status line on stderr when it is a terminal; yields ``update(text)``."""
    if not sys.stderr.isatty():
        yield lambda text: None
        return
    from rich.console import Console

    with Console(stderr=True).status(description) as live:
        yield lambda text: live.update(text)


@contextlib.contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr when it is a terminal (silent otherwise: logs carry the
    milestones); yields ``advance(n)``."""
    if not sys.stderr.isatty():

        def nothing(n: int = 1) -> None:
            pass

        yield nothing
        return
    from rich.progress import BarColumn, TaskProgressColumn

    # A percentage, not "x/N": the units (fits, epochs) are not what the logs count (folds).
    with _bar("[progress.description]{task.description}", BarColumn(), TaskProgressColumn()) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


@contextlib.contextmanager
def counter(description: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A bar of whole units (``12/200``, ``3.1 trials/s``, ETA) on stderr when it is a
    terminal, silent otherwise; yields ``update(done, total)``."""
    if not sys.stderr.isatty():

        def nothing(done: int, total: int) -> None:
            pass

        yield nothing
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn

    columns = (description, BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"))
    with _bar(*columns) as bar:
        task: Any = None

        def update(done: int, total: int) -> None:
            nonlocal task
            if task is None:  # the total is known once the run has read its journal
                task = bar.add_task(description, total=total, completed=done, rate="")
            bar.update(task, completed=done)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:.1f} {unit}/s" if speed else "")

        yield update


def _bar(*columns: Any) -> Any:
    """A rich progress bar on stderr with the elapsed time and an ETA after ``columns``. Log
    lines go through the redirected stderr (tradekit.log) and print above the bar."""
    from rich.console import Console
    from rich.progress import Progress, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        *columns,
        TimeElapsedColumn(),
        "ETA",
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        redirect_stderr=True,
    )
