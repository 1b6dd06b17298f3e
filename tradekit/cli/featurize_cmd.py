"""``tradekit featurize`` (being built)."""

from __future__ import annotations

import typer


def featurize(ctx: typer.Context) -> None:
    """Indicators, higher-timeframe and reference-pair context, and labels: OHLCV -> features/1."""
    from tradekit.errors import UsageError

    raise UsageError("featurize: not built yet")
