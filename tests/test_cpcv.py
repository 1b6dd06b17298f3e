"""CPCV: split and path geometry (hypothesis), purging and embargo of training rows, and
`tradekit train --cv cpcv` writing its out-of-sample paths."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_models import write_features
from tradekit.contracts import PREDICTIONS, read_table
from tradekit.errors import UsageError
from tradekit.models.cpcv import plan, train_rows


@settings(max_examples=150, deadline=None)
@given(n=st.integers(20, 500), groups=st.integers(2, 8), k=st.integers(1, 7))
def test_splits_and_paths(n, groups, k):
    if k >= groups:
        with pytest.raises(UsageError):
            plan(n, groups, k)
        return
    p = plan(n, groups, k)
    assert len(p.splits) == math.comb(groups, k)
    assert len(p.paths) == math.comb(groups - 1, k - 1)
    # The groups tile the axis.
    assert p.bounds[0][0] == 0 and p.bounds[-1][1] == n
    assert all(a < b for a, b in p.bounds)
    assert all(p.bounds[i][1] == p.bounds[i + 1][0] for i in range(groups - 1))
    for g in range(groups):
        used = [path[g] for path in p.paths]
        assert len(set(used)) == len(used)  # each path a different split for this group
        assert all(g in p.splits[s] for s in used)  # ... and that split tested the group


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(40, 300),
    groups=st.integers(3, 8),
    horizon=st.integers(0, 10),
    embargo=st.integers(0, 10),
    seed=st.integers(0, 1000),
)
def test_training_rows_are_purged_and_embargoed(n, groups, horizon, embargo, seed):
    p = plan(n, groups, 2)
    rng = np.random.default_rng(seed)
    test = p.splits[int(rng.integers(len(p.splits)))]
    tidx = np.arange(n, dtype=np.int64)
    end = tidx + horizon
    ok = train_rows(tidx, end, p.bounds, test, embargo)
    for g in test:
        a, b = p.bounds[g]
        inside = (tidx >= a) & (tidx < b)
        touches = (tidx < b) & (end >= a)  # label window meets the test group
        after = (tidx >= b) & (tidx < b + embargo)
        assert not (ok & (inside | touches | after)).any()
    # Nothing else is dropped.
    dropped = ~ok
    for t in np.flatnonzero(dropped):
        assert any(
            (a <= t < b) or (t < a <= end[t]) or (b <= t < b + embargo)
            for a, b in (p.bounds[g] for g in test)
        )


def test_train_cv_cpcv_writes_paths(run_cli, tmp_path):
    f = write_features(tmp_path / "f.parquet")
    Path("tradekit.toml").write_text("[model]\nn_estimators = 20\nnum_leaves = 7\n")
    r = run_cli(
        "train",
        str(f),
        "-o",
        "m",
        "--train-window",
        "100",
        "--test-window",
        "50",
        "--step",
        "50",
        "--cv",
        "cpcv",
        "--groups",
        "4",
        "--test-groups",
        "2",
        "--json",
    )
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    block = doc["cpcv"]
    assert block["splits"] == 6 and len(block["paths"]) == 3
    frames = [read_table(Path("m") / x["file"], PREDICTIONS)[0] for x in block["paths"]]
    keys = [set(zip(fr["symbol"], fr["timestamp"], strict=True)) for fr in frames]
    assert keys[0] == keys[1] == keys[2] and len(keys[0]) > 0.9 * 800
    # Different training sets per path: the predictions differ somewhere.
    assert not np.allclose(frames[0]["prediction"], frames[1]["prediction"])
    r = run_cli("train", str(f), "-o", "m2", "--cv", "kfold")
    assert r.code == 2 and "--cv" in r.err
