"""The drift sentinel's yardstick: each feature's (and the predictions') distribution at train
time, as quantile bins and their proportions, and the population stability index against it.

The reference goes into the manifest (``drift_reference``), so a model carries what "normal"
looked like for it. Bins are the deciles of the training rows (fewer where values repeat),
open at both ends, plus a bin for missing values (NaN): a feature that starts arriving empty is
drift too. Every value is binned by the same ``searchsorted`` at train and check time.

PSI = sum over bins of (actual - expected) * ln(actual / expected), with both shares floored at
``EPS`` so an empty bin counts as rare, not impossible. Read as usual: below 0.1 no shift,
0.1-0.25 a moderate one, above 0.25 a significant one. On a sample of n rows drawn from the
reference itself, PSI is about (bins - 1) / n: 0.03 for 300 rows of 10 bins.
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


def distribution(values: npt.NDArray[Any]) -> dict[str, Any]:
    """One column's reference: bin edges and the training rows' shares (the last is NaN)."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    edges = _edges(v)
    return {"edges": edges, "shares": [round(s, 6) for s in shares(v, edges)], "rows": len(v)}


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
