"""``tradekit backtest`` (being built)."""

from __future__ import annotations

import typer


def backtest(ctx: typer.Context) -> None:
    """Simulate the policy and risk limits on OHLCV + predictions: -> backtest/1 report."""
    from tradekit.errors import UsageError

    raise UsageError("backtest: not built yet")
