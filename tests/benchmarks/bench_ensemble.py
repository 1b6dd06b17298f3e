"""Ensemble training time against the sum of its members' (``make bench``, "ensemble").

Features: 5 symbols x 20,000 5m candles x 40 features (with vol_20 and ret_20 for the regime
model), train window 4,000 candles, test and step 2,000 (8 folds + the final fit), 100 trees,
1 thread. Each run is its own ``python -m tradekit train`` process, timed by wall clock:

1. the members alone: ``--model lightgbm --global`` and ``--model lightgbm --per-symbol``;
2. ``--model ensemble`` with the default members (the same two, a regime model and the
   stacking meta-learner).

The ratio ensemble / (sum of the members) is the cost of the ensemble's own work (reading its
members' out-of-sample predictions, the regime model per fold, the meta-learner per fold and
the final one, its manifest and OOS file) on top of training the members; 1.0x is free.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

FIVE_MIN = 300_000


def _write(path: Path, symbols: int, rows: int, n_features: int, horizon: int) -> None:
    import numpy as np
    import pandas as pd

    from tradekit.contracts import FEATURES, write_table

    rng = np.random.default_rng(5)
    n = symbols * rows
    X = rng.standard_normal((n, n_features)).astype(np.float32)
    ret = 0.01 * (X[:, 0] + 0.5 * X[:, 1]) + 0.01 * rng.standard_normal(n)
    ret.reshape(symbols, rows)[:, -horizon:] = np.nan
    names = [f"f{i:03d}" for i in range(n_features - 2)] + ["vol_20", "ret_20"]
    X[:, -2] = np.abs(X[:, -2]) * 0.01
    X[:, -1] *= 0.05
    frame = pd.DataFrame(X, columns=names)
    frame.insert(
        0, "symbol", pd.Series(np.repeat([f"S{i}/USD" for i in range(symbols)], rows), dtype="str")
    )
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % FIVE_MIN
    ts = np.tile(t0 + np.arange(rows, dtype=np.int64) * FIVE_MIN, symbols)
    frame.insert(1, "timestamp", pd.to_datetime(ts, unit="ms", utc=True).as_unit("ms"))
    frame["label_return"] = ret
    meta = {
        "timeframe": "5m",
        "feature_set": "bench",
        "feature_set_hash": "sha256:bench",
        "features": names,
        "labels": ["label_return"],
        "label_horizon": horizon,
        "exchange": "synthetic",
        "source": "sha256:synthetic",
    }
    write_table(frame, path, FEATURES, meta)


def bench_ensemble(symbols: int = 5, rows: int = 20_000, n_features: int = 40) -> None:
    from tests.benchmarks.bench_models import _measure

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        feats = d / "f.parquet"
        _write(feats, symbols, rows, n_features, horizon=12)
        cfg = d / "bench.toml"
        cfg.write_text(
            "[model]\nn_estimators = 100\nthreads = 1\ntrain_window = 4000\n"
            "test_window = 2000\nstep = 2000\n"
        )
        py = [sys.executable, "-m", "tradekit", "--log-level", "info", "-c", str(cfg)]
        train = [*py, "train", str(feats), "--model"]
        runs = {
            "global": [*train, "lightgbm", "--global", "-o", str(d / "g")],
            "per_symbol": [*train, "lightgbm", "--per-symbol", "-o", str(d / "p")],
            "ensemble": [*train, "ensemble", "-o", str(d / "e")],
        }
        times: dict[str, float] = {}
        peak: dict[str, float] = {}
        inside = ""
        for name, args in runs.items():
            best = float("inf")
            for _ in range(2):  # the better of two: a busy machine only slows a run down
                wall, rss, err = _measure(args)
                if wall < best and name == "ensemble":
                    # The ensemble's own account: its members' fits, then the stacking.
                    inside = next(x for x in err.splitlines() if "ensemble: members" in x)
                best = min(best, wall)
            times[name], peak[name] = best, rss
    members = times["global"] + times["per_symbol"]
    print(f"ensemble {symbols} symbols x {rows:,} 5m candles x {n_features} features, 8 folds")
    for name in ("global", "per_symbol"):
        print(f"ensemble member {name:<10}           {times[name]:7.2f} s  {peak[name]:6.0f} MB")
    print(f"ensemble members, sum                 {members:7.2f} s")
    e = times["ensemble"]
    print(f"ensemble global + per_symbol stacked  {e:7.2f} s  {peak['ensemble']:6.0f} MB")
    print(f"ensemble in-process: {inside.split('ensemble: ', 1)[1]}")
    print(f"ensemble ratio ensemble/sum of members {times['ensemble'] / members:.2f}x")


if __name__ == "__main__":
    bench_ensemble()
