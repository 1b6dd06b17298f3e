"""The drift sentinel's yardstick: each feature's (and the predictions') distribution at train
time, as quantile bins and their proportions, and the population stability index against it.

The reference goes into the manifest (``drift_reference``), so a model carries what "normal"
looked like for it. Bins are the deciles of the training rows (fewer where values repeat),
open at both ends, plus a bin for missing values (NaN): a feature that starts arriving empty is
drift too. Every value is binned by the same ``searchsorted`` at train and check time.

PSI = sum over bins of (actual - expected) * ln(actual / expected), with both shares floored at
``EPS`` so an empty bin counts as rare, not impossible. Read as usual: below 0.1 no shift,
0.1-0.25 a moderate one, above 0.25 a significant one.

Those readings assume independent rows. On n rows drawn from the reference itself PSI is
about (bins - 1) * (1/n + 1/N): 0.03 for 300 rows of 10 bins. Features of a time series are
not independent: rsi_50 moves little from one candle to the next, so ten days of it hold a
handful of independent values, and their PSI against six months is large by chance alone
(measured on a random walk: 0.7 over 480 rows). The reference therefore keeps each column's
autocorrelation time ``tau`` (AR(1): (1 + rho) / (1 - rho), rho the lag-1 autocorrelation),
and :func:`noise` gives the PSI that sampling alone produces over a window: the thresholds
apply above it (:func:`limit`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

REFERENCE_VERSION = 1
BINS = 10
EPS = 1e-4
TAU_MAX = 400.0
NOISE_MARGIN = 2.5  # the chi-square's 99th percentile is ~2.4x its mean at 9 degrees of freedom


def _edges(values: npt.NDArray[np.float64]) -> list[float]:
    import numpy as np

    finite = values[np.isfinite(values)]
    if not len(finite):
        return []
    qs = np.quantile(finite, np.arange(1, BINS) / BINS)
    return [float(v) for v in np.unique(qs)]


def shares(values: npt.NDArray[Any], edges: Sequence[float]) -> list[float]:
    """The share of ``values`` in each bin of ``edges`` (len(edges) + 1 bins), then the share
    missing (NaN or infinite): len(edges) + 2 numbers that add up to 1 (all 0 when empty)."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if not n:
        return [0.0] * (len(edges) + 2)
    ok = np.isfinite(v)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), v[ok], side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    return [float(c) / n for c in counts] + [float((~ok).sum()) / n]


def autocorrelation_time(values: npt.NDArray[Any]) -> float:
    """(1 + rho) / (1 - rho) of the lag-1 autocorrelation rho of ``values`` in row order (1:
    independent rows), capped at ``TAU_MAX``."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    a, b = v[:-1], v[1:]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return 1.0
    a, b = a[ok], b[ok]
    sa, sb = a.std(), b.std()
    if sa < 1e-15 or sb < 1e-15:
        return 1.0
    rho = float(np.clip(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb), 0.0, 0.9999))
    return round(min((1.0 + rho) / (1.0 - rho), TAU_MAX), 3)


def distribution(values: npt.NDArray[Any]) -> dict[str, Any]:
    """One column's reference: bin edges, the training rows' shares (the last is NaN), and the
    autocorrelation time of the rows in their order (symbol, then time)."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    edges = _edges(v)
    return {
        "edges": edges,
        "shares": [round(s, 6) for s in shares(v, edges)],
        "rows": len(v),
        "tau": autocorrelation_time(v),
    }


def noise(ref: dict[str, Any], rows: int) -> float:
    """The PSI that sampling alone gives between ``ref`` and a window of ``rows`` rows of the
    same process: (bins - 1) * tau * (1 / rows + 1 / reference rows)."""
    tau = float(ref.get("tau", 1.0))
    bins = len(ref["shares"]) - 1  # the bins that can hold values (less the missing one)
    n_ref = max(int(ref.get("rows", 0)), 1)
    return max(bins - 1, 1) * tau * (1.0 / max(rows, 1) + 1.0 / n_ref)


def limit(threshold: float, ref: dict[str, Any], rows: int) -> float:
    """``threshold`` above the sampling noise of a window of ``rows`` rows."""
    return threshold + NOISE_MARGIN * noise(ref, rows)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    import numpy as np

    e = np.maximum(np.asarray(expected, dtype=np.float64), EPS)
    a = np.maximum(np.asarray(actual, dtype=np.float64), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def build_reference(
    X: npt.NDArray[Any],
    rows: npt.NDArray[Any],
    features: Sequence[str],
    predictions: npt.NDArray[Any] | None,
    prediction_source: str,
) -> dict[str, Any]:
    """The manifest's ``drift_reference``: ``features`` of ``X[rows]`` (the final model's
    training rows; taken column by column, no copy of the matrix) and the distribution of
    ``predictions`` (the walk-forward out-of-sample ones: what the model says on data it has
    not seen), or None."""
    doc: dict[str, Any] = {
        "version": REFERENCE_VERSION,
        "bins": BINS,
        "rows": len(rows) if rows.dtype != bool else int(rows.sum()),
        "features": {f: distribution(X[:, j][rows]) for j, f in enumerate(features)},
        "prediction": None,
    }
    if predictions is not None and len(predictions):
        doc["prediction"] = {**distribution(predictions), "source": prediction_source}
    return doc
