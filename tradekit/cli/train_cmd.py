"""``tradekit train`` (being built)."""

from __future__ import annotations

import typer


def train(ctx: typer.Context) -> None:
    """Walk-forward training (LightGBM, LSTM, Transformer): features/1 -> model dir."""
    from tradekit.errors import UsageError

    raise UsageError("train: not built yet")
