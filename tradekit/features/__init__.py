"""Feature stage: indicators, feature sets, labels; ohlcv/1 -> features/2.

The stable API for ``featurize`` and the live loop:

- :func:`load_spec` -- the :class:`FeatureSpec` of ``[features]`` or a feature-set file;
- :func:`build_features` -- a features/2 frame and its metadata from an ohlcv/1 frame;
- :func:`feature_columns` -- the feature column names a spec produces, in order;
- :func:`tail_candles` -- how many recent candles per symbol reproduce the last row exactly;
- :class:`tradekit.features.incremental.IncrementalFeatures` -- the live loop's features,
  updated candle by candle (no pandas).

``build_features`` (pandas) and ``featurize_file`` (Arrow, no pandas) load on first use, not on
import: the live loop imports this package without pandas.
``tradekit.features.sets`` alone is stdlib only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradekit.features.sets import (
    FeatureSpec,
    feature_columns,
    label_columns,
    load_spec,
    tail_candles,
    warmup_candles,
)

if TYPE_CHECKING:
    from tradekit.features.build import build_features
    from tradekit.features.featurize import FeaturizeResult, featurize_file

_LAZY = {
    "FeaturizeResult": "featurize",
    "build_features": "build",
    "featurize_file": "featurize",
}

__all__ = [
    "FeatureSpec",
    "FeaturizeResult",
    "build_features",
    "feature_columns",
    "featurize_file",
    "label_columns",
    "load_spec",
    "tail_candles",
    "warmup_candles",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"tradekit.features.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
