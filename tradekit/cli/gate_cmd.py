"""``tradekit gate`` (being built)."""

from __future__ import annotations

import typer


def gate(ctx: typer.Context) -> None:
    """Pass or fail a backtest report against quality thresholds (exit 0 pass, 1 fail)."""
    from tradekit.errors import UsageError

    raise UsageError("gate: not built yet")
