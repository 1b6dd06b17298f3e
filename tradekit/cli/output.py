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
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # A percentage, not "x/N": the units (fits, epochs) are not what the logs count (folds).
    # Log lines go through the redirected stderr (tradekit.log), printed above the bar.
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        "ETA",
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        redirect_stderr=True,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance
