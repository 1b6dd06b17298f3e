"""Feature stage: indicators, feature sets, labels; ohlcv/1 -> features/1.

The stable API for ``featurize`` and the live loop:

- :func:`load_spec` -- the :class:`FeatureSpec` of ``[features]`` or a feature-set file;
- :func:`build_features` -- a features/1 frame and its metadata from an ohlcv/1 frame;
- :func:`feature_columns` -- the feature column names a spec produces, in order;
- :func:`tail_candles` -- how many recent candles per symbol reproduce the last row exactly.

Importing this package loads numpy, pandas and numba (through ``build``); ``tradekit.features.sets``
alone is stdlib only.
"""

from __future__ import annotations

from tradekit.features.build import FeaturizeResult, build_features, featurize_file
from tradekit.features.sets import (
    FeatureSpec,
    feature_columns,
    label_columns,
    load_spec,
    tail_candles,
    warmup_candles,
)

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
