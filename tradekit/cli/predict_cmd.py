"""``tradekit predict`` (being built)."""

from __future__ import annotations

import typer


def predict(ctx: typer.Context) -> None:
    """Predictions of a trained model: model dir + features/1 -> predictions/1."""
    from tradekit.errors import UsageError

    raise UsageError("predict: not built yet")
