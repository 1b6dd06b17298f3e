"""Model kinds to classes: the one place that knows LightGBM and the torch models apart, so
the base interface never imports its implementations (they import it)."""

from __future__ import annotations

from collections.abc import Sequence

from tradekit.errors import UsageError
from tradekit.models.base import DEEP_KINDS, KINDS, Model, ModelSpec


def model_class(kind: str) -> type[Model]:
    if kind == "lightgbm":
        from tradekit.models.lgbm import LightGBMModel

        return LightGBMModel
    if kind in DEEP_KINDS:
        from tradekit.models.deep import DeepModel

        return DeepModel
    raise UsageError(f"model kind {kind!r}: expected one of {', '.join(KINDS)}")


def make_model(spec: ModelSpec, features: Sequence[str]) -> Model:
    return model_class(spec.kind)(spec, features)
