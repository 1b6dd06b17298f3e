"""``tradekit deploy``: placeholder until its issue lands."""

from __future__ import annotations

import typer

from tradekit.errors import UsageError


def deploy(ctx: typer.Context) -> None:
    """Not built yet."""
    raise UsageError("deploy: not built yet")
