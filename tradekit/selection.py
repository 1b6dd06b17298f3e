"""Honest selection statistics: what a Sharpe ratio is worth after many trials.

- ``psr``: the probabilistic Sharpe ratio (Bailey & López de Prado, 2012), P(true SR > SR*)
  from a sample's Sharpe ratio, skewness, kurtosis and length.
- ``expected_max_sharpe``: the Sharpe ratio that the best of ``n_trials`` unskilled trials
  reaches by luck, from the variance of the trials' Sharpe ratios (the False Strategy
  Theorem: E[max] ~ sqrt(V) ((1 - g) Z(1 - 1/N) + g Z(1 - 1/(N e))), g Euler's constant).
- ``dsr``: the deflated Sharpe ratio (Bailey & López de Prado, 2014): the PSR against that
  expected maximum instead of 0. One trial deflates nothing (DSR = PSR).
- ``pbo``: the probability of backtest overfitting by combinatorially symmetric
  cross-validation (CSCV; Bailey, Borwein, López de Prado & Zhu, 2015) over a (periods x
  trials) matrix of returns: how often the in-sample best trial ranks below the median out of
  sample.

Sharpe ratios here are per period (not annualised), as in the papers: annualising both sides
of the inequality changes nothing but the reader's intuition. ``psr``/``dsr`` need only the
standard library (the gate uses them); ``moments``/``pbo`` use numpy, imported inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


@dataclass(frozen=True)
class Moments:
    """A return series' length, per-period Sharpe ratio (ddof 1), skewness and kurtosis
    (population, not excess: 3 for a normal), as ``metrics.probabilistic_sharpe`` takes them.
    ``sharpe`` is None when the series has no variance."""

    n: int
    sharpe: float | None
    skew: float | None
    kurtosis: float | None


def moments(returns: NDArray[np.float64]) -> Moments:

    n = len(returns)
    if n < 3:
        return Moments(n, None, None, None)
    sd = float(returns.std(ddof=1))
    if not (sd > 0.0 and math.isfinite(sd)):
        return Moments(n, None, None, None)
    mean = float(returns.mean())
    c = returns - mean
    c2 = c * c  # products: numpy's c**3 and c**4 go through pow(), many times slower
    m2 = float(c2.mean())
    pop = math.sqrt(m2)
    if not pop**4 > 0.0:  # so tiny that its powers underflow: no usable moments
        return Moments(n, None, None, None)
    skew = float((c2 * c).mean()) / pop**3
    kurt = float((c2 * c2).mean()) / pop**4
    return Moments(n, mean / sd, skew, kurt)


def psr(sr: float, n: int, skew: float, kurt: float, benchmark: float = 0.0) -> float | None:
    """P(true Sharpe > ``benchmark``) given the estimate ``sr`` from ``n`` returns."""
    if n < 2 or not all(map(math.isfinite, (sr, skew, kurt, benchmark))):
        return None
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if var <= 0.0:
        return None
    return _N.cdf((sr - benchmark) * math.sqrt(n - 1) / math.sqrt(var))


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """E[max of ``n_trials`` Sharpe ratios] when the true Sharpe of each is 0 and the estimates
    vary with ``variance`` across trials; 0 for a single trial."""
    if n_trials <= 1 or not variance > 0.0:
        return 0.0
    a = _N.inv_cdf(1.0 - 1.0 / n_trials)
    b = _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(variance) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b)


def dsr(
    sr: float, n: int, skew: float, kurt: float, n_trials: int, variance: float
) -> float | None:
    """The deflated Sharpe ratio of the trial chosen out of ``n_trials`` (see module doc)."""
    return psr(sr, n, skew, kurt, expected_max_sharpe(n_trials, variance))


# -- PBO by CSCV ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pbo:
    """``pbo``: share of the splits whose in-sample best trial ranks at or below the median out
    of sample (logit <= 0); ``logits`` one per split; ``degradation``: mean out-of-sample
    minus in-sample Sharpe of the chosen trial."""

    pbo: float
    blocks: int
    splits: int
    trials: int
    logits: NDArray[np.float64]
    degradation: float

    def summary(self) -> dict[str, Any]:
        import numpy as np

        return {
            "pbo": self.pbo,
            "blocks": self.blocks,
            "splits": self.splits,
            "trials": self.trials,
            "logit_median": float(np.median(self.logits)),
            "sharpe_degradation": self.degradation,
        }


def _block_sharpe(s1: Any, s2: Any, cnt: Any) -> Any:
    """Sharpe ratios (ddof 1) from sums, sums of squares and counts; 0 where flat."""
    import numpy as np

    mean = s1 / cnt
    var = (s2 - cnt * mean * mean) / (cnt - 1)
    sd = np.sqrt(np.maximum(var, 0.0))
    scale = np.maximum(np.abs(mean), 1e-300)
    flat = sd <= 1e-12 * scale  # a constant series (e.g. never traded): no edge either way
    out = np.where(flat, 0.0, mean / np.where(flat, 1.0, sd))
    return out


def pbo(returns: NDArray[np.float64], blocks: int = 16) -> Pbo | None:
    """PBO of choosing the best-Sharpe column of ``returns`` (periods x trials).

    Rows are cut into ``blocks`` equal contiguous blocks (the last rows that do not fill a
    block are dropped; fewer blocks when there are too few rows: at least 2 rows a block);
    every half of the blocks is in-sample once, the other half out of sample. The OOS rank
    counts ties as half (average rank); the relative rank w = rank / (N + 1); logit = ln(w /
    (1 - w)). None with fewer than 2 trials or 4 rows."""
    import itertools

    import numpy as np

    t, n = returns.shape
    s = min(blocks, t // 2)
    s -= s % 2
    if n < 2 or s < 2:
        return None
    size = t // s
    r = returns[: s * size].reshape(s, size, n)
    s1 = r.sum(axis=1)  # (blocks, trials)
    s2 = (r * r).sum(axis=1)
    combos = np.array(list(itertools.combinations(range(s), s // 2)), dtype=np.int64)
    member = np.zeros((len(combos), s))
    member[np.arange(len(combos))[:, None], combos] = 1.0
    cnt = size * (s // 2)
    is_sr = _block_sharpe(member @ s1, member @ s2, cnt)
    oos_sr = _block_sharpe((1.0 - member) @ s1, (1.0 - member) @ s2, cnt)
    best = is_sr.argmax(axis=1)
    rows = np.arange(len(combos))
    chosen = oos_sr[rows, best]
    below = (oos_sr < chosen[:, None]).sum(axis=1)
    ties = (oos_sr == chosen[:, None]).sum(axis=1)
    rank = below + (ties + 1) / 2.0
    w = rank / (n + 1.0)
    logits = np.log(w / (1.0 - w))
    degradation = float((chosen - is_sr[rows, best]).mean())
    return Pbo(float((logits <= 0).mean()), s, len(combos), n, logits, degradation)


def period_returns(
    equity: NDArray[np.float64], ts: NDArray[np.int64], start: float, period_ms: int
) -> NDArray[np.float64]:
    """Returns per calendar period (UTC, e.g. a day): equity at each period's last close over
    the previous period's (the first from ``start``)."""
    import numpy as np

    if len(equity) == 0:
        return np.zeros(0)
    bucket = ts // period_ms
    last = np.flatnonzero(np.diff(bucket) != 0)
    ends = np.concatenate((equity[last], equity[-1:]))
    prev = np.concatenate(([start], ends[:-1]))
    out: NDArray[np.float64] = ends / prev - 1.0
    return out
