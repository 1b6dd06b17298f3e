"""Walk-forward geometry: purge gaps, disjoint test spans, and out-of-sample coverage.

Properties over window, step, purge and horizon sizes with hypothesis; coverage end to end
through `tradekit train` on symbols that start at different times and have missing candles.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_models import HOUR, features_frame, oos, write_features
from tradekit.errors import InputError, UsageError
from tradekit.models.walkforward import effective_purge, label_end_times, plan_folds


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 400),
    train=st.integers(1, 120),
    test=st.integers(1, 60),
    extra_step=st.integers(0, 40),
    purge=st.integers(0, 30),
    horizon=st.integers(1, 30),
)
def test_folds_keep_the_purge_gap_and_never_overlap(n, train, test, extra_step, purge, horizon):
    step = test + extra_step
    gap = effective_purge(purge, horizon)
    assert gap >= horizon and gap >= purge
    if n < train + gap + test:
        with pytest.raises(InputError, match=f"{n} candles available"):
            plan_folds(n, train, test, step, gap)
        return
    folds = plan_folds(n, train, test, step, gap)
    assert folds, "enough data gives at least one fold"
    assert folds[0].test_end - folds[0].test_start == test  # the first test window is whole
    prev_end = 0
    for k, f in enumerate(folds):
        assert f.index == k
        assert 0 <= f.train_start < f.train_end <= n
        assert f.train_end - f.train_start == train
        assert f.train_end + gap <= f.test_start  # the purge gap, in candles
        assert f.test_start - f.train_end >= horizon  # no training label reaches the test span
        assert f.test_start < f.test_end <= n
        assert f.test_end - f.test_start <= test
        assert f.test_start >= prev_end  # test spans are disjoint and in order
        prev_end = f.test_end
        assert f.train_start == k * step
    # No fold left out: one more step would leave no test candle.
    last = folds[-1]
    assert last.train_start + step + train + gap >= n


def test_overlapping_test_windows_are_refused():
    with pytest.raises(UsageError, match="step 5 < test window 10"):
        plan_folds(1000, 100, 10, 5, 4)


def test_label_end_times_stay_inside_each_symbol():
    codes = np.array([0, 0, 0, 0, 1, 1, 1], dtype=np.int64)
    ts = np.array([0, 1, 2, 5, 0, 1, 2], dtype=np.int64)  # symbol 0 misses candles 3 and 4
    big = np.iinfo(np.int64).max
    assert label_end_times(codes, ts, 2).tolist() == [2, 5, big, big, 2, big, big]


@settings(max_examples=6, deadline=None)
@given(
    train=st.integers(40, 120),
    test=st.integers(10, 60),
    extra_step=st.integers(0, 30),
    purge=st.integers(0, 12),
    horizon=st.integers(1, 8),
)
def test_oos_predictions_cover_exactly_the_test_spans(train, test, extra_step, purge, horizon):
    from tradekit.config import ModelConfig
    from tradekit.models.train import train as run_train

    # Symbol B starts 30 candles later; C misses a stretch of candles in the middle.
    frame = features_frame(("A/USD", "B/USD", "C/USD"), rows=260, horizon=horizon, offsets=(0, 30))
    drop = frame.index[frame["symbol"] == "C/USD"][100:107]
    frame = frame.drop(index=drop).reset_index(drop=True)
    cfg = ModelConfig(
        n_estimators=5,
        train_window=train,
        test_window=test,
        step=test + extra_step,
        purge=purge,
        threads=1,
    )
    with tempfile.TemporaryDirectory() as d:
        write_features(Path(d) / "f.parquet", frame, horizon=horizon)
        result = run_train(Path(d) / "f.parquet", Path(d) / "m", cfg)
        got = oos(Path(d) / "m")
    walk = result.manifest["walk_forward"]
    assert walk["purge"] == max(purge, horizon)
    ts = frame["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
    times = np.unique(ts)
    want = np.zeros(len(frame), dtype=np.int64) - 1
    for f in walk["folds"]:
        t0, t1 = f["test"]["start_ms"], f["test"]["end_ms"]
        # The gap on the time axis is the purge, in candles of the unique-timestamp axis.
        i_train_end = np.searchsorted(times, f["train"]["end_ms"])
        assert np.searchsorted(times, t0) - i_train_end - 1 == walk["purge"]
        # No training row's label (horizon candles of its own symbol) reaches the test span.
        assert f["train"]["end_ms"] + horizon * HOUR < t0
        inside = (ts >= t0) & (ts <= t1)
        assert (want[inside] == -1).all(), "a row in two test spans"
        want[inside] = f["fold"]
    expected = frame.loc[want >= 0, ["symbol", "timestamp"]].reset_index(drop=True)
    assert got[["symbol", "timestamp"]].equals(expected)  # each test-span row once, no other
    assert got["fold"].tolist() == want[want >= 0].tolist()
    assert got["prediction"].notna().all()
