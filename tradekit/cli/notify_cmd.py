"""``tradekit notify`` and ``listen``: placeholders until their issue lands."""

from __future__ import annotations

import typer

from tradekit.errors import UsageError


def notify(ctx: typer.Context) -> None:
    """Not built yet."""
    raise UsageError("notify: not built yet")


def listen(ctx: typer.Context) -> None:
    """Not built yet."""
    raise UsageError("listen: not built yet")
