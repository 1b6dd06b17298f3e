"""``tradekit ask`` and ``summary``: placeholders until their issue lands."""

from __future__ import annotations

import typer

from tradekit.errors import UsageError


def ask(ctx: typer.Context) -> None:
    """Not built yet."""
    raise UsageError("ask: not built yet")


def summary(ctx: typer.Context) -> None:
    """Not built yet."""
    raise UsageError("summary: not built yet")
