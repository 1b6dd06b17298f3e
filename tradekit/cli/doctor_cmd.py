"""``tradekit doctor``: placeholder until its issue lands."""

from __future__ import annotations

import typer

from tradekit.errors import UsageError


def doctor(ctx: typer.Context) -> None:
    """Not built yet."""
    raise UsageError("doctor: not built yet")
