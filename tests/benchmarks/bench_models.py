"""Model benchmarks: walk-forward LightGBM training time and memory, single-row predict latency.

``bench_train``:
1. 1M rows: 10 symbols x 100,000 5m candles x 60 features, one global model, train window
   20,000 candles, test and step 10,000 (8 folds + the final model: 9 fits on 200,000 rows),
   100 trees, 1 thread.
2. The FreqAI shape: 10 symbols x 4 daily windows = 40 models (per symbol), 7-day train window
   (2,016 5m candles), 1-day test window (288), 300 features, 100 trees, 31 leaves, lr 0.05,
   1 thread (+10 final models), against FreqAI's 115 s / 624 MB peak RSS measured on this
   machine class (shared/reference/freqtrade-anchor.md; targets <= 1/5 time, <= 1/3 memory).
Each run is a separate `python -m tradekit train` process (wall time and its own peak RSS via
wait4, through ``tests.benchmarks.child``: a child forked straight from this process would
report this process's peak), with the same fits in a bare `lgb.train` loop as the same-run
reference; then with every core (models fitted side by side, one thread each).

``bench_train_busy``: ``tradekit train`` on the demo's features, quiet and beside two busy
loops, against a bare ``lgb.train`` loop on every core with OpenMP's defaults.

``bench_predict``: median and p99 of LoadedModel.predict on a one-row frame (60 features, 300
trees) over 1,000 calls, against booster.predict on the same numpy row.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

FIVE_MIN = 300_000
FREQAI_S, FREQAI_MB = 115.2, 624.0


def _write_features(path: Path, symbols: int, rows: int, n_features: int, horizon: int) -> None:
    import numpy as np
    import pandas as pd

    from tradekit.contracts import FEATURES, write_table

    rng = np.random.default_rng(11)
    n = symbols * rows
    X = rng.standard_normal((n, n_features), dtype=np.float32).astype(np.float64)
    ret = 0.01 * (X[:, 0] + 0.5 * X[:, 1]) + 0.01 * rng.standard_normal(n)
    ret.reshape(symbols, rows)[:, -horizon:] = np.nan
    names = [f"f{i:03d}" for i in range(n_features)]
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % FIVE_MIN
    frame = pd.DataFrame(X, columns=names)
    del X
    frame.insert(
        0,
        "symbol",
        pd.Series(np.repeat([f"S{i:02d}/USD" for i in range(symbols)], rows), dtype="str"),
    )
    ts = np.tile(t0 + np.arange(rows, dtype=np.int64) * FIVE_MIN, symbols)
    frame.insert(1, "timestamp", pd.to_datetime(ts, unit="ms", utc=True).as_unit("ms"))
    frame["label_return"] = ret
    frame["label_class"] = np.sign(ret)
    meta = {
        "timeframe": "5m",
        "feature_set": "bench",
        "feature_set_hash": "sha256:bench",
        "features": names,
        "labels": ["label_return", "label_class"],
        "label_horizon": horizon,
        "exchange": "synthetic",
        "source": "sha256:synthetic",
    }
    write_table(frame, path, FEATURES, meta)


def _measure(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MB) of one child process, and its stderr."""
    from tests.benchmarks.child import measure

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    u = measure(args, env)
    return u.wall_s, u.rss_mb, u.stderr


BARE = textwrap.dedent(
    """
    import sys, json, numpy as np, pyarrow.parquet as pq, lightgbm as lgb
    path, spec = sys.argv[1], json.loads(sys.argv[2])
    t = pq.read_table(path)
    names = [c for c in t.column_names if c.startswith("f")]
    X = np.column_stack([t.column(c).to_numpy() for c in names]).astype(np.float32)
    y = t.column("label_return").to_numpy(zero_copy_only=False)
    sym = t.column("symbol").to_numpy(zero_copy_only=False)
    del t
    params = dict(objective="regression", learning_rate=0.05, num_leaves=31, seed=42,
                  deterministic=True, force_row_wise=True, num_threads=1, verbosity=-1,
                  max_bin=spec["max_bin"])
    groups = [np.ones(len(y), bool)]
    if spec["per_symbol"]:
        groups = [sym == s for s in np.unique(sym)]
    rows = len(y) // spec["symbols"]
    pos = np.tile(np.arange(rows), spec["symbols"])
    for a, b in spec["windows"]:
        for g in groups:
            m = g & (pos >= a) & (pos < b) & ~np.isnan(y)
            data = lgb.Dataset(X[m], label=y[m], params={"max_bin": spec["max_bin"]})
            bst = lgb.train(params, data, num_boost_round=spec["trees"])
            bst.predict(X[g & (pos >= b)][: spec["test"]], num_threads=1)
    """
)


def _train_case(
    name: str,
    d: Path,
    symbols: int,
    rows: int,
    n_features: int,
    train: int,
    test: int,
    per_symbol: bool,
) -> None:
    horizon = 12
    feats = d / f"{name}.parquet"
    t = time.perf_counter()
    _write_features(feats, symbols, rows, n_features, horizon)
    gen = time.perf_counter() - t
    size = feats.stat().st_size / 1e6

    def run_train(threads: int) -> tuple[float, float]:
        cfg = d / "bench.toml"
        cfg.write_text(
            f"[model]\nn_estimators = 100\nlearning_rate = 0.05\nnum_leaves = 31\n"
            f"threads = {threads}\ntrain_window = {train}\ntest_window = {test}\n"
            f"step = {test}\nper_symbol = {str(per_symbol).lower()}\n"
        )
        out = d / f"{name}-{threads}"
        args = [sys.executable, "-m", "tradekit", "-c", str(cfg), "train", str(feats), "-o"]
        wall, rss, _ = _measure([*args, str(out)])
        return wall, rss

    wall, rss = run_train(1)
    doc = json.loads((d / f"{name}-1" / "manifest.json").read_text())
    folds = doc["walk_forward"]["folds"]
    windows = [(f["fold"] * test, f["fold"] * test + train) for f in folds]
    windows.append((rows - horizon - train, rows - horizon))  # the final model
    models = len(windows) * (symbols if per_symbol else 1)
    print(
        f"train    {name}: {symbols} symbols x {rows:,} rows x {n_features} features "
        f"({size:.0f} MB Parquet, made in {gen:.1f} s); {len(folds)} folds, {models} models, "
        "100 trees, 31 leaves, 63 bins"
    )
    print(f"train    {name}: tradekit train, 1 thread     {wall:7.1f} s  peak RSS {rss:6.0f} MB")
    spec = {
        "max_bin": 63,
        "per_symbol": per_symbol,
        "symbols": symbols,
        "windows": windows,
        "trees": 100,
        "test": test,
    }
    bare_wall, bare_rss, _ = _measure([sys.executable, "-c", BARE, str(feats), json.dumps(spec)])
    print(
        f"train    {name}: bare lgb.train loop, 1 thread {bare_wall:7.1f} s  "
        f"peak RSS {bare_rss:6.0f} MB"
    )
    print(
        f"train    {name}: ratio tradekit/bare time {wall / bare_wall:.2f}x  "
        f"memory {rss / bare_rss:.2f}x"
    )
    cores = os.cpu_count() or 1
    # threads = cores, not 0: 0 (the default) takes the cores the load leaves free.
    wall_all, rss_all = (wall, rss) if cores == 1 else run_train(cores)
    print(
        f"train    {name}: tradekit train, {cores} threads    {wall_all:7.1f} s  "
        f"peak RSS {rss_all:6.0f} MB (models side by side, one thread each; load "
        f"{os.getloadavg()[0]:.1f})"
    )
    if name == "freqai-shape":
        for label, w, r in (("1 thread", wall, rss), (f"{cores} threads", wall_all, rss_all)):
            print(
                f"train    {name}: vs FreqAI 40 models {FREQAI_S:.0f} s / {FREQAI_MB:.0f} MB "
                f"({label}): time {w / FREQAI_S:.3f}x (target <= 0.2), "
                f"memory {r / FREQAI_MB:.3f}x (target <= 0.33)"
            )


def bench_train() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        _train_case("freqai-shape", d, 10, 2016 + 12 + 4 * 288, 300, 2016, 288, per_symbol=True)
        _train_case("1M-rows", d, 10, 100_000, 60, 20_000, 10_000, per_symbol=False)


def bench_predict(calls: int = 1000) -> None:
    import numpy as np

    from tradekit.config import ModelConfig
    from tradekit.contracts import FEATURES, read_table
    from tradekit.models.predict import load_model
    from tradekit.models.train import train

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        feats = d / "f.parquet"
        _write_features(feats, 2, 10_000, 60, 12)
        train(feats, d / "m", ModelConfig(n_estimators=300, threads=1), walk_forward=False)
        model = load_model(d / "m")
        frame, _ = read_table(feats, FEATURES)
    rows = [frame.iloc[[i]] for i in range(0, len(frame), max(1, len(frame) // calls))][:calls]
    mats = [r[model.features].to_numpy(dtype=np.float64) for r in rows]
    booster = model.models["*"].booster  # type: ignore[attr-defined]
    for r in rows[:20]:
        model.predict(r)

    def timed(fn, items) -> list[float]:  # type: ignore[no-untyped-def]
        out = []
        for it in items:
            t = time.perf_counter()
            fn(it)
            out.append(time.perf_counter() - t)
        return out

    ours = timed(model.predict, rows)
    raw = timed(lambda x: booster.predict(x, num_threads=1), mats)
    for a, b in zip(rows[:50], mats[:50], strict=True):
        assert model.predict(a)["prediction"].iloc[0] == booster.predict(b, num_threads=1)[0]

    def ms(v: list[float], q: float) -> float:
        return float(np.quantile(v, q)) * 1000

    print(
        f"predict  LoadedModel.predict 1 row  median {statistics.median(ours) * 1000:.3f} ms"
        f"  p99 {ms(ours, 0.99):.3f} ms  (target < 5 ms; 60 features, 300 trees)"
    )
    print(
        f"predict  booster.predict numpy row median {statistics.median(raw) * 1000:.3f} ms"
        f"  p99 {ms(raw, 0.99):.3f} ms"
    )
    print(
        "predict  ratio LoadedModel/booster "
        f"{statistics.median(ours) / statistics.median(raw):.1f}x (median)"
    )


BUSY_BARE = textwrap.dedent(
    """
    import sys, json, numpy as np, pyarrow.parquet as pq, lightgbm as lgb
    path, spans, threads = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    t = pq.read_table(path)
    meta = json.loads(t.schema.metadata[b"tradekit.meta"])
    X = np.column_stack([t.column(c).to_numpy() for c in meta["features"]]).astype(np.float32)
    y = t.column("label_return").to_numpy(zero_copy_only=False)
    ts = t.column("timestamp").cast("int64").to_numpy()
    params = dict(objective="regression", learning_rate=0.05, num_leaves=31, seed=42,
                  deterministic=True, force_row_wise=True, num_threads=threads, verbosity=-1,
                  max_bin=63)
    for a, b in spans:
        m = (ts >= a) & (ts <= b) & ~np.isnan(y)
        bst = lgb.train(params, lgb.Dataset(X[m], label=y[m], params={"max_bin": 63}), 300)
    """
)


def _timed_child(args: list[str], env: dict[str, str], timeout_s: float) -> tuple[float, float]:
    """(wall s, CPU s) of a child process; wall is inf if it was stopped at ``timeout_s``."""
    from tests.benchmarks.child import measure

    u = measure(args, env, timeout_s)
    return u.wall_s, u.cpu_s


class _Hogs:
    """Two busy-looping processes beside the measured one (a CPU hog, as `make test-busy`)."""

    def __enter__(self) -> _Hogs:
        self.procs = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)
        ]
        time.sleep(1)  # let them take their cores before the measured process starts
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def bench_train_busy(timeout_s: float = 240) -> None:
    """``tradekit train`` on the demo's features (3 symbols x 2 years of 1h candles, 105
    features, the default [model]: 5 folds + the final model, 300 trees) on a quiet machine and
    beside two busy loops; against a bare ``lgb.train`` loop over the same training spans with
    every core and OpenMP's defaults (what tradekit did before it set a passive wait policy and
    a thread count for the load). A run past ``timeout_s`` is stopped and shown as such."""
    cores = os.cpu_count() or 1
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        tk = [sys.executable, "-m", "tradekit"]
        subprocess.run(
            [*tk, "fetch", "BTC/USD", "ETH/USD", "LTC/USD", "--exchange", "sample", "-t", "1h",
             "--fill-gaps", "-o", str(d / "ohlcv.parquet")],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [*tk, "featurize", str(d / "ohlcv.parquet"), "-o", str(d / "f.parquet")],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        train = [*tk, "train", str(d / "f.parquet"), "-o"]
        quiet = _timed_child([*train, str(d / "m1")], env, timeout_s)
        doc = json.loads((d / "m1" / "manifest.json").read_text())
        spans = [
            (f["train"]["start_ms"], f["train"]["end_ms"]) for f in doc["walk_forward"]["folds"]
        ]
        spans.append((doc["training"]["start_ms"], doc["training"]["end_ms"]))
        bare = [
            sys.executable,
            "-c",
            BUSY_BARE,
            str(d / "f.parquet"),
            json.dumps(spans),
            str(cores),
        ]
        bare_quiet = _timed_child(bare, env, timeout_s)
        with _Hogs():
            busy = _timed_child([*train, str(d / "m2")], env, timeout_s)
            bare_busy = _timed_child(bare, env, timeout_s)

    def fmt(r: tuple[float, float]) -> str:
        wall = f"{r[0]:7.1f} s" if r[0] != float("inf") else f"> {timeout_s:.0f} s (stopped)"
        return f"{wall}  CPU {r[1]:6.1f} s"

    print(f"train-busy demo features, {len(spans)} fits x 300 trees, {cores} cores")
    print(f"train-busy tradekit train, quiet:            {fmt(quiet)}")
    print(f"train-busy tradekit train, 2 busy loops:     {fmt(busy)}")
    print(
        f"train-busy bare lgb.train {cores} threads, quiet:  {fmt(bare_quiet)}  (OpenMP defaults)"
    )
    print(f"train-busy bare lgb.train {cores} threads, busy:   {fmt(bare_busy)}")
    print(
        f"train-busy ratio busy/quiet: tradekit {busy[0] / quiet[0]:.1f}x, "
        f"bare {bare_busy[0] / bare_quiet[0]:.1f}x"
    )


if __name__ == "__main__":
    for name in sys.argv[1:] or ["predict", "train", "train-busy"]:
        {"train": bench_train, "predict": bench_predict, "train-busy": bench_train_busy}[name]()
