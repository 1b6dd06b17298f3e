"""Out-of-sample metrics in plain numpy: information coefficient (Spearman), RMSE, hit rate,
and for classifiers AUC and log-loss. Undefined values (one class, constant input) are None,
so they stay valid JSON."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Floats = npt.NDArray[np.float64]


def rankdata(a: Floats) -> Floats:
    """Ranks 1..n, ties sharing their average rank (as scipy's ``rankdata``)."""
    import numpy as np

    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    new = np.concatenate(([True], sorted_a[1:] != sorted_a[:-1]))
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, len(a)))
    avg = starts + (counts + 1) / 2.0  # 1-based mean rank of each tie group
    ranks = np.empty(len(a), dtype=np.float64)
    ranks[order] = avg[group]
    return ranks


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def pearson(x: Floats, y: Floats) -> float | None:
    import numpy as np

    if len(x) < 2:
        return None
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.dot(xc, xc)) * float(np.dot(yc, yc)))
    return _finite(float(np.dot(xc, yc)) / den) if den > 0 else None


def spearman(x: Floats, y: Floats) -> float | None:
    """Information coefficient: rank correlation of prediction and label."""
    return pearson(rankdata(x), rankdata(y)) if len(x) >= 2 else None


def rmse(pred: Floats, label: Floats) -> float | None:
    import numpy as np

    return _finite(float(np.sqrt(np.mean((pred - label) ** 2)))) if len(pred) else None


def hit_rate(pred: Floats, label: Floats) -> float | None:
    """Share of rows where the prediction and the label have the same sign."""
    import numpy as np

    return float(np.mean(np.sign(pred) == np.sign(label))) if len(pred) else None


def auc(prob: Floats, up: Floats) -> float | None:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half)."""
    pos = up > 0.5
    n1 = int(pos.sum())
    n0 = len(up) - n1
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(prob)
    return _finite((float(ranks[pos].sum()) - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def log_loss(prob: Floats, up: Floats, eps: float = 1e-15) -> float | None:
    import numpy as np

    if not len(prob):
        return None
    p = np.clip(prob, eps, 1 - eps)
    return _finite(float(-np.mean(up * np.log(p) + (1 - up) * np.log(1 - p))))


def score(pred: Floats, label: Floats, objective: str) -> dict[str, float | int | None]:
    """Metrics of one fold (or all OOS rows). ``label`` is the learned label's raw value
    (a return, or -1/0/1); rows with NaN labels or predictions are left out."""
    import numpy as np

    ok = ~(np.isnan(pred) | np.isnan(label))
    p, y = pred[ok], label[ok]
    out: dict[str, float | int | None] = {"rows": int(ok.sum()), "ic": spearman(p, y)}
    if objective == "classification":
        up = (y > 0).astype(np.float64)
        out["auc"] = auc(p, up)
        out["log_loss"] = log_loss(p, up)
        out["hit_rate"] = float(np.mean((p > 0.5) == (up > 0.5))) if len(p) else None
    else:
        out["rmse"] = rmse(p, y)
        out["hit_rate"] = hit_rate(p, y)
    return out
