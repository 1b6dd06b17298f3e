"""The stacking meta-learner: one small linear model per regime over the members' predictions.

Why ridge per regime, shrunk in two steps, and not a tree model: its inputs are two to four
predictions of the same label, highly correlated with each other, and the rows it learns from
are the members' out-of-sample predictions only (a few thousand, split three ways by regime).
A linear model with a prior is the most a sample like that supports. The prior is the plain
average of the members; the pooled fit (all regimes) is shrunk toward it, and each regime's
fit toward the pooled one, so a regime with few rows stays near the pooled weights and little
data gives the plain average. It is solved in closed form (no seed, no iterations: the same
rows give the same weights), is readable in the manifest (an intercept and a weight per
member and regime), and costs a dot product per row in the live loop. LightGBM with few
leaves would fit the noise of such a sample and hide what it learned.

``shrink`` is the prior's weight in rows: with the predictions scaled to unit spread, the fit
is ``theta = prior + (A'A + shrink I)^-1 A'(y - A prior)``, A = [1, P / scale].

:func:`stack_folds` is the leakage rule in code: the combiner of walk-forward fold k learns only
from rows that earlier folds tested (each member predicted them out of sample, fitted before
that fold's test span) and whose label ends before fold k's test span starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradekit.models.regime import REGIMES

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True)
class MetaModel:
    members: tuple[str, ...]
    objective: str
    # theta per regime in the members' own units: (intercept, weight per member)
    weights: tuple[tuple[float, ...], ...]
    pooled: tuple[float, ...]
    rows: tuple[int, ...]  # stacking rows per regime (0 everywhere for equal weights)
    kind: str = "ridge"  # or "equal": the plain average, no fit

    @classmethod
    def equal(cls, members: Sequence[str], objective: str) -> MetaModel:
        m = len(members)
        theta = (0.0, *([1.0 / m] * m))
        return cls(
            tuple(members), objective, tuple(theta for _ in REGIMES), theta,
            tuple(0 for _ in REGIMES), "equal",
        )  # fmt: skip

    @classmethod
    def fit(
        cls,
        members: Sequence[str],
        objective: str,
        P: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        regime: npt.NDArray[np.int64],
        shrink: float,
    ) -> MetaModel:
        """Fit on rows of member predictions ``P`` (n x m, all finite), targets ``y`` and
        regimes."""
        import numpy as np

        n, m = P.shape
        scale = P.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        A = np.column_stack([np.ones(n), P / scale])
        prior = np.r_[0.0, scale / m]  # the plain average, in scaled units

        def solve(rows: npt.NDArray[np.bool_], base: npt.NDArray[np.float64]) -> Any:
            a, t = A[rows], y[rows]
            lhs = a.T @ a + shrink * np.eye(m + 1)
            return base + np.linalg.solve(lhs, a.T @ (t - a @ base))

        every = np.ones(n, dtype=bool)
        pooled = solve(every, prior)
        per = [solve(regime == r, pooled) for r in range(len(REGIMES))]

        def raw(theta: Any) -> tuple[float, ...]:
            return (float(theta[0]), *(float(w) for w in theta[1:] / scale))

        return cls(
            tuple(members),
            objective,
            tuple(raw(t) for t in per),
            raw(pooled),
            tuple(int((regime == r).sum()) for r in range(len(REGIMES))),
        )

    def predict(
        self, P: npt.NDArray[np.float64], regime: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64]:
        """The combined prediction of each row (NaN where a member's is missing)."""
        import numpy as np

        W = np.asarray(self.weights, dtype=np.float64)[regime]  # rows x (1 + m)
        out: npt.NDArray[np.float64] = W[:, 0] + np.einsum("ij,ij->i", P, W[:, 1:])
        if self.objective == "classification":
            out = np.clip(out, 0.0, 1.0)  # a probability, as every member's is
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "members": list(self.members),
            "objective": self.objective,
            "pooled": {"intercept": self.pooled[0], "weights": list(self.pooled[1:])},
            "regimes": {
                name: {"intercept": w[0], "weights": list(w[1:]), "rows": n}
                for name, w, n in zip(REGIMES, self.weights, self.rows, strict=True)
            },
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MetaModel:
        regs = doc["regimes"]
        return cls(
            tuple(doc["members"]),
            str(doc["objective"]),
            tuple((float(regs[r]["intercept"]), *map(float, regs[r]["weights"])) for r in REGIMES),
            (float(doc["pooled"]["intercept"]), *map(float, doc["pooled"]["weights"])),
            tuple(int(regs[r]["rows"]) for r in REGIMES),
            str(doc["kind"]),
        )


@dataclass(frozen=True)
class FoldStack:
    """How the combiner of one walk-forward fold was made (the manifest's lineage)."""

    fold: int
    rows: int  # stacking rows it learned from
    from_folds: tuple[int, ...]  # the folds whose test spans those rows lie in
    last_label_end_ms: int | None  # the latest label end among them
    test_start_ms: int
    kind: str  # ridge, or equal when too few rows

    def as_json(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "rows": self.rows,
            "from_folds": list(self.from_folds),
            "last_label_end_ms": self.last_label_end_ms,
            "test_start_ms": self.test_start_ms,
            "combiner": self.kind,
        }


def stacking_rows(
    fold_of: npt.NDArray[np.int64],
    label_end: npt.NDArray[np.int64],
    labelled: npt.NDArray[np.bool_],
    fold: int,
    test_start_ms: int,
) -> npt.NDArray[np.bool_]:
    """The rows the combiner of ``fold`` may learn from: tested by an earlier fold (out of
    sample for every member) with a known label that ends before this fold's test span."""
    mask: npt.NDArray[np.bool_] = (
        (fold_of >= 0) & (fold_of < fold) & labelled & (label_end < test_start_ms)
    )
    return mask


def stack_folds(
    members: Sequence[str],
    objective: str,
    P: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    fold_of: npt.NDArray[np.int64],
    label_end: npt.NDArray[np.int64],
    test_starts_ms: Sequence[int],
    regimes: Sequence[npt.NDArray[np.int64]],
    shrink: float,
    min_rows: int,
) -> tuple[npt.NDArray[np.float64], list[FoldStack]]:
    """The ensemble's out-of-sample prediction of every row (NaN outside the test spans or
    where a member has none), fold by fold, and each fold's lineage.

    ``P`` holds the members' out-of-sample predictions (rows x members, NaN where missing),
    ``fold_of`` the fold that tested each row (-1: none), ``regimes[k]`` every row's regime by
    fold k's regime model."""
    import numpy as np

    complete = np.isfinite(P).all(axis=1) & (fold_of >= 0)
    labelled = np.isfinite(y)
    out = np.full(len(y), np.nan)
    lineage = []
    for k, start in enumerate(test_starts_ms):
        train = stacking_rows(fold_of, label_end, labelled, k, start) & complete
        n = int(train.sum())
        if n >= min_rows:
            meta = MetaModel.fit(members, objective, P[train], y[train], regimes[k][train], shrink)
        else:
            meta = MetaModel.equal(members, objective)
        test = complete & (fold_of == k)
        out[test] = meta.predict(P[test], regimes[k][test])
        used = fold_of[train]
        lineage.append(
            FoldStack(
                fold=k,
                rows=n,
                from_folds=tuple(int(f) for f in np.unique(used)),
                last_label_end_ms=int(label_end[train].max()) if n else None,
                test_start_ms=int(start),
                kind=meta.kind,
            )
        )
    return out, lineage
