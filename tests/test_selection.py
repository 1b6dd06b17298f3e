"""DSR, PSR and PBO against a published worked example and plain reference implementations
written here (scipy's moments and normal distribution, itertools loops)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from tradekit import selection as sel
from tradekit.backtest.metrics import probabilistic_sharpe


def test_dsr_worked_example_of_the_paper():
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", numerical example: 100
    # trials, V[SR] = 1/2 annualised, best SR 2.5 annualised over 1,250 daily returns with
    # skewness -3 and kurtosis 10. The paper gives E[max SR] = 0.1132 (daily) and DSR = 0.9004.
    v_daily = 0.5 / 250
    assert sel.expected_max_sharpe(100, v_daily) == pytest.approx(0.1132, abs=5e-5)
    d = sel.dsr(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 100, v_daily)
    assert d == pytest.approx(0.9004, abs=5e-4)
    # One trial deflates nothing; more trials deflate more.
    p = sel.psr(2.5 / math.sqrt(250), 1250, -3.0, 10.0)
    assert sel.dsr(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 1, v_daily) == p
    assert sel.dsr(0.1, 1250, 0, 3, 1000, v_daily) < sel.dsr(0.1, 1250, 0, 3, 10, v_daily)


def reference_psr(x: np.ndarray, benchmark: float = 0.0) -> float:
    sr = x.mean() / x.std(ddof=1)
    g3 = stats.skew(x)
    g4 = stats.kurtosis(x, fisher=False)
    z = (sr - benchmark) * math.sqrt(len(x) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.float64, st.integers(10, 300), elements=st.floats(-0.05, 0.05)),
    st.floats(-0.2, 0.2),
)
def test_psr_matches_a_reference(x, benchmark):
    m = sel.moments(x)
    if m.sharpe is None or x.std() < 1e-9:
        return
    want = reference_psr(x, benchmark)
    got = sel.psr(m.sharpe, m.n, m.skew, m.kurtosis, benchmark)
    assert got == pytest.approx(want, abs=1e-9)
    if benchmark == 0.0:  # the backtest report's own PSR is the same statistic
        assert probabilistic_sharpe(x) == pytest.approx(got, abs=1e-9)


def test_expected_max_sharpe_against_simulation():
    # The False Strategy Theorem is an approximation of E[max] of N normal Sharpe estimates.
    rng = np.random.default_rng(3)
    for n in (10, 100, 1000):
        draws = rng.normal(0.0, 0.2, size=(4000, n)).max(axis=1).mean()
        assert sel.expected_max_sharpe(n, 0.04) == pytest.approx(draws, rel=0.04)
    assert sel.expected_max_sharpe(1, 0.04) == 0.0
    assert sel.expected_max_sharpe(50, 0.0) == 0.0


def reference_pbo(m: np.ndarray, s: int) -> float:
    """CSCV as the paper writes it: a loop over the combinations, concatenated sub-matrices."""
    t, n = m.shape
    size = t // s
    blocks = [m[i * size : (i + 1) * size] for i in range(s)]

    def sharpe(x: np.ndarray) -> np.ndarray:
        sd = x.std(axis=0, ddof=1)
        mu = x.mean(axis=0)
        return np.array(
            [0.0 if sd[j] <= 1e-12 * max(abs(mu[j]), 1e-300) else mu[j] / sd[j] for j in range(n)]
        )

    logits = []
    for combo in itertools.combinations(range(s), s // 2):
        rest = [i for i in range(s) if i not in combo]
        ins = sharpe(np.vstack([blocks[i] for i in combo]))
        oos = sharpe(np.vstack([blocks[i] for i in rest]))
        best = int(np.argmax(ins))
        rank = stats.rankdata(oos)[best]  # average rank of ties, 1 = worst
        w = rank / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return float(np.mean(np.array(logits) <= 0))


@settings(max_examples=25, deadline=None)
@given(
    st.integers(2, 12),
    st.sampled_from([2, 4, 6, 8]),
    st.integers(0, 2**32 - 1),
)
def test_pbo_matches_the_reference_loop(n, s, seed):
    rng = np.random.default_rng(seed)
    t = s * int(rng.integers(2, 8)) + int(rng.integers(0, 3))
    m = rng.normal(0.0, 0.01, (t, n)) + rng.normal(0.0, 0.002, n)
    # The sweep's usual ties: trials that never trade (flat zero columns) and identical trials.
    m[:, rng.random(n) < 0.3] = 0.0
    if n > 2 and rng.random() < 0.5:
        m[:, -1] = m[:, 0]
    got = sel.pbo(m, blocks=s)
    assert got is not None and got.blocks == s and got.trials == n
    assert got.splits == math.comb(s, s // 2)
    assert got.pbo == pytest.approx(reference_pbo(m, s), abs=1e-12)


def test_pbo_extremes():
    rng = np.random.default_rng(11)
    noise = rng.normal(0.0, 0.01, (480, 40))
    # One trial better than all others in every period: choosing it never overfits.
    skill = noise.copy()
    skill[:, 7] = noise.max(axis=1) + 0.001
    assert sel.pbo(skill).pbo == 0.0
    # Pure noise: the in-sample winner is a coin toss out of sample (on average over samples;
    # one sample's splits share their blocks, so a single PBO varies widely).
    runs = [sel.pbo(np.random.default_rng(k).normal(0, 0.01, (480, 40))).pbo for k in range(10)]
    assert 0.35 < float(np.mean(runs)) < 0.65
    # Trials that are good in one half of the periods are bad in the other: always overfit.
    flip = noise.copy()
    edge = np.linspace(-0.004, 0.004, 40)
    flip[:240] += edge
    flip[240:] -= edge * 1.5
    assert sel.pbo(flip, blocks=2).pbo == 1.0
    # Too few trials or rows: no statistic.
    assert sel.pbo(noise[:, :1]) is None
    assert sel.pbo(noise[:3]) is None


def test_period_returns_by_utc_day():
    day = 86_400_000
    ts = np.array([0, 3_600_000, day, day + 1, 2 * day + 5], dtype=np.int64)
    eq = np.array([101.0, 102.0, 99.0, 103.0, 103.0])
    got = sel.period_returns(eq, ts, 100.0, day)
    assert got == pytest.approx([102 / 100 - 1, 103 / 102 - 1, 0.0])
