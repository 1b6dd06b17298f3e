"""Combinatorial purged cross-validation (López de Prado, *Advances in Financial Machine
Learning*, ch. 12): many out-of-sample paths instead of walk-forward's one.

The time axis is cut into ``groups`` contiguous groups; every choice of ``test_groups`` of them
is one split (C(N, K) splits): a model is fitted on the other groups and predicts the chosen
ones. Training rows are **purged** when their label window (the candle to the end of its
label) touches a test group, and **embargoed** for ``embargo`` candles after each test group
(serial correlation leaks backwards otherwise). Each group is tested by C(N-1, K-1) splits;
path ``j`` takes, for every group, the ``j``-th split that tested it, so there are
C(N-1, K-1) paths, each a complete out-of-sample prediction of the whole span.

Unlike walk-forward, a split trains on data after its test groups too: the paths measure how
much a result depends on the particular history, they do not simulate live trading. The
model dir's ``oos_predictions.parquet`` stays walk-forward; ``train --cv cpcv`` adds the paths
beside it (``paths/path-NNN.parquet``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tradekit.models.base import ModelSpec
    from tradekit.models.data import TrainingData


@dataclass(frozen=True)
class Plan:
    bounds: list[tuple[int, int]]  # candle ranges of the groups on the time axis, end exclusive
    splits: list[tuple[int, ...]]  # the test groups of each split
    paths: list[list[int]]  # paths[j][g]: the split whose prediction path j uses for group g


def plan(n: int, groups: int, test_groups: int, *, label: str = "features") -> Plan:
    if groups < 2 or not 1 <= test_groups < groups:
        raise UsageError("--cv cpcv: need --groups >= 2 and 1 <= --test-groups < --groups")
    if n < groups * 2:
        raise InputError(f"{label}: {n} candles cannot make {groups} CPCV groups")
    edges = [round(i * n / groups) for i in range(groups + 1)]
    bounds = list(itertools.pairwise(edges))
    splits = list(itertools.combinations(range(groups), test_groups))
    by_group: list[list[int]] = [[] for _ in range(groups)]
    for s, chosen in enumerate(splits):
        for g in chosen:
            by_group[g].append(s)
    n_paths = math.comb(groups - 1, test_groups - 1)
    assert all(len(b) == n_paths for b in by_group)
    paths = [[by_group[g][j] for g in range(groups)] for j in range(n_paths)]
    return Plan(bounds, splits, paths)


def train_rows(
    tidx: npt.NDArray[np.int64],
    label_end_idx: npt.NDArray[np.int64],
    bounds: list[tuple[int, int]],
    test: tuple[int, ...],
    embargo: int,
) -> npt.NDArray[np.bool_]:
    """Rows that may train a split: outside its test groups, not purged (their label window
    [tidx, label_end_idx] meets no test group) and not embargoed (not within ``embargo``
    candles after a test group)."""
    import numpy as np

    ok = np.ones(len(tidx), dtype=bool)
    for g in test:
        a, b = bounds[g]
        ok &= ~((tidx >= a) & (tidx < b))  # the test group itself
        ok &= ~((tidx < a) & (label_end_idx >= a))  # purge: the label reaches into it
        ok &= ~((tidx >= b) & (tidx < b + embargo))  # embargo after it
    out: npt.NDArray[np.bool_] = ok
    return out


def _nothing(n: int = 1) -> None:
    pass


def run_paths(
    data: TrainingData,
    spec: ModelSpec,
    per_symbol: bool,
    groups: int,
    test_groups: int,
    embargo: int,
    work: Path,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Fit every split, assemble the paths and write them as predictions/1 files under
    ``work/paths``; returns the manifest's ``cpcv`` block."""
    import numpy as np
    import pandas as pd

    from tradekit.contracts import PREDICTIONS, file_hash, write_table
    from tradekit.models.kinds import make_model
    from tradekit.models.walkforward import label_end_times

    p = plan(len(data.times), groups, test_groups, label=str(data.path))
    end_ts = label_end_times(data.codes, data.ts, data.horizon)
    end_idx = np.searchsorted(data.times, end_ts).astype(np.int64)  # past the end: unknown
    labelled = ~np.isnan(data.label_values)
    members = [np.ones(len(data.ts), bool)]
    if per_symbol:
        members = [data.codes == i for i in range(len(data.symbols))]
    pred = np.full((len(p.splits), len(data.ts)), np.nan)
    for s, test in enumerate(p.splits):
        train = train_rows(data.tidx, end_idx, p.bounds, test, embargo) & labelled
        tested = np.zeros(len(data.ts), bool)
        for g in test:
            a, b = p.bounds[g]
            tested |= (data.tidx >= a) & (data.tidx < b)
        for member in members:
            rows = np.flatnonzero(train & member).astype(np.int64)
            out = np.flatnonzero(tested & member).astype(np.int64)
            if len(rows) and len(out):
                model = make_model(spec, data.panel.features)
                model.fit(data.panel, rows, epoch_done=_nothing, checkpoint=None)
                pred[s, out] = model.predict(data.panel, out)
    (work / "paths").mkdir(exist_ok=True)
    files = []
    group_of = np.searchsorted([b for _, b in p.bounds], data.tidx, side="right")
    for j, path in enumerate(p.paths):
        values = pred[np.asarray(path)[group_of], np.arange(len(data.ts))]
        keep = ~np.isnan(values)
        frame = pd.DataFrame(
            {
                "symbol": data.keys["symbol"].to_numpy()[keep],
                "timestamp": data.keys["timestamp"][keep].reset_index(drop=True),
                "prediction": values[keep],
            }
        )
        name = f"paths/path-{j:03d}.parquet"
        write_table(frame, work / name, PREDICTIONS, {**meta, "cpcv_path": j})
        files.append({"file": name, "rows": int(keep.sum()), "sha256": file_hash(work / name)})
    return {
        "groups": groups,
        "test_groups": test_groups,
        "splits": len(p.splits),
        "embargo": embargo,
        "purge": "label window",
        "paths": files,
    }
