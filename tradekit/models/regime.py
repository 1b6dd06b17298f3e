"""The market regime of each row: range, trend or high volatility, by rule.

Rule-based, not learned, on purpose: the stacking meta-learner keeps one set of weights per
regime, so a regime must mean the same thing in every walk-forward fold and in the deployed
model. A learned classifier (clustering, an HMM) renumbers its states from fit to fit and
drifts with the window it was fitted on; the rule below only calibrates one quantile on the
training window's feature values (never a label), is deterministic, costs two comparisons per
row in the live loop, and can be told to a person ("high volatility: vol_20 above 0.0123").

- high volatility: realized volatility (``vol_P``, the std of 1-candle log returns over P
  candles) above the ``high_vol_quantile`` of the training window's values;
- otherwise trend: ``|ret_P| / (vol_P * sqrt(P))`` above ``trend_threshold`` (the P-candle
  return measured in its own expected spread: about a t-statistic of the drift);
- otherwise range. A row without both values (warm-up) counts as range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError
from tradekit.models.members import RegimeSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

REGIMES = ("range", "trend", "high_vol")
RANGE, TREND, HIGH_VOL = 0, 1, 2


def pick_features(spec: RegimeSpec, features: Sequence[str]) -> tuple[str, str, int]:
    """(volatility column, return column, P) of the rule, from the spec or the feature names:
    the middle period P that has both ``vol_P`` and ``ret_P``."""
    have = set(features)
    if spec.vol_feature or spec.trend_feature:
        missing = [f for f in (spec.vol_feature, spec.trend_feature) if f not in have]
        if missing or not (spec.vol_feature and spec.trend_feature):
            raise InputError(
                "regime: set both vol_feature and trend_feature to feature columns; "
                f"not among the features: {', '.join(missing) or '(one left empty)'}"
            )
        m = re.search(r"(\d+)$", spec.trend_feature)
        period = int(m.group(1)) if m else 1
        return spec.vol_feature, spec.trend_feature, period
    periods = sorted(
        int(m.group(1))
        for f in features
        if (m := re.fullmatch(r"vol_(\d+)", f)) and f"ret_{m.group(1)}" in have
    )
    if not periods:
        raise InputError(
            "regime: no pair of volatility and return features (vol_P and ret_P, the "
            "'volatility' and 'returns' families) among the features; add them to the feature "
            "set or name two columns in [regime] vol_feature and trend_feature"
        )
    p = periods[(len(periods) - 1) // 2]
    return f"vol_{p}", f"ret_{p}", p


@dataclass(frozen=True)
class RegimeModel:
    vol_feature: str
    trend_feature: str
    period: int
    vol_cut: float  # high volatility above this (the training window's quantile)
    trend_threshold: float
    high_vol_quantile: float

    @classmethod
    def fit(cls, spec: RegimeSpec, features: Sequence[str], vol: npt.NDArray[Any]) -> RegimeModel:
        """Calibrate on the training window's volatility values (features only)."""
        import numpy as np

        vol_f, trend_f, period = pick_features(spec, features)
        v = np.asarray(vol, dtype=np.float64)
        v = v[np.isfinite(v)]
        if not len(v):
            raise InputError(f"regime: {vol_f} has no values in the training window")
        cut = float(np.quantile(v, spec.high_vol_quantile))
        return cls(vol_f, trend_f, period, cut, spec.trend_threshold, spec.high_vol_quantile)

    def classify(self, vol: npt.NDArray[Any], ret: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        import numpy as np

        v = np.asarray(vol, dtype=np.float64)
        r = np.asarray(ret, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.abs(r) / (v * math.sqrt(self.period))
        ok = np.isfinite(v) & np.isfinite(r)
        trend = ok & np.isfinite(t) & (t > self.trend_threshold)
        high = ok & (v > self.vol_cut)
        out: npt.NDArray[np.int64] = np.where(high, HIGH_VOL, np.where(trend, TREND, RANGE))
        return out.astype(np.int64)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": "rule",
            "regimes": list(REGIMES),
            "vol_feature": self.vol_feature,
            "trend_feature": self.trend_feature,
            "period": self.period,
            "vol_cut": self.vol_cut,
            "trend_threshold": self.trend_threshold,
            "high_vol_quantile": self.high_vol_quantile,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RegimeModel:
        return cls(
            str(doc["vol_feature"]),
            str(doc["trend_feature"]),
            int(doc["period"]),
            float(doc["vol_cut"]),
            float(doc["trend_threshold"]),
            float(doc["high_vol_quantile"]),
        )
