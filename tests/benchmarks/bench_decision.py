"""One new candle through the trading loop's decision path, as ``run`` executes it (issue
targets: features + predict + policy + risk + ledger commit <= 10 ms for 9 symbols, <= 30 ms
for 30).

In a child process with the rules interpreted (``TRADEKIT_JIT=0``, as ``run``): the model
through treelite, the features a candle at a time (``IncrementalFeatures``), the paper engine's
close and open phases with the ledger commit. Same-run reference, in the same child afterwards:
the batch path of earlier versions (``build_features`` over each symbol's tail, then LightGBM).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

HOUR = 3_600_000

CHILD = r"""
import json, statistics, sys, time
import numpy as np
from pathlib import Path
from tradekit import jit
assert not jit.ENABLED
model_dir, data = Path(sys.argv[1]), Path(sys.argv[2])
n_sym, rounds = int(sys.argv[3]), int(sys.argv[4])
from tradekit.config import load_config
from tradekit.ledger import Ledger
from tradekit.live.brokers import PaperBroker
from tradekit.live.engine import Engine
from tradekit.live.history import History
from tradekit.live.signals import ModelSignals
from tradekit.models.predict import load_model
from tradekit.features.sets import tail_candles
arr = np.load(data)
symbols = [f"C{i}/USD" for i in range(n_sym)]
model = load_model(model_dir, lean=True)
signals = ModelSignals(model, symbols, "1h")
keep = tail_candles(signals.spec, "1h")
hist = History(sorted(set(symbols) | set(signals.spec.corr_symbols)), 3_600_000, keep)
series = {s: arr[f"s{i % 9}"] for i, s in enumerate(hist.symbols)}
start = len(next(iter(series.values()))) - rounds
for s in hist.symbols:
    hist.add(s, series[s][:start])
cfg = load_config(None)
ledger = Ledger(Path(sys.argv[5]))
engine = Engine(symbols, cfg.policy, cfg.risk, fee=cfg.backtest.fee, slippage=cfg.backtest.slippage,
                cash=10_000.0, broker=PaperBroker(cfg.backtest.fee, cfg.backtest.slippage),
                ledger=ledger, tf_ms=3_600_000, model_version=model.version)
t = time.perf_counter()
signals.predict(int(series[symbols[0]][start - 1][0]), hist)  # warms the features
warm = time.perf_counter() - t
feat, eng = [], []
for k in range(rounds):
    i = start + k
    for s in hist.symbols:
        hist.add(s, series[s][i:i + 1])
    t_ms = int(series[symbols[0]][i][0])
    bar = np.array([series[s][i][1:5] for s in symbols])
    a = time.perf_counter()
    pred, _ = signals.predict(t_ms, hist)
    b = time.perf_counter()
    engine.close_phase(t_ms, bar[:, 0], bar[:, 1], bar[:, 2], bar[:, 3], pred)
    engine.open_phase(t_ms + 3_600_000, bar[:, 3])
    c = time.perf_counter()
    feat.append(b - a); eng.append(c - b)
lean_loaded = sorted(m for m in ("numba", "pandas", "pyarrow", "lightgbm") if m in sys.modules)
# The reference: the batch path of earlier versions, on the same tails.
from tradekit.features.build import build_features
from tradekit.models.predict import load_model as load
full = load(model_dir)
ref = []
for k in range(min(rounds, 5)):
    a = time.perf_counter()
    feats, _ = build_features(hist.frame(), signals.spec, "1h", cost=0.0, labels=False,
                              drop_warmup=False, last=1)
    full.predict(feats[feats["symbol"].isin(symbols)].reset_index(drop=True))
    ref.append(time.perf_counter() - a)
med = lambda x: statistics.median(x[2:] if len(x) > 4 else x) * 1000
print(json.dumps({"warm_s": warm, "features_predict_ms": med(feat), "engine_ms": med(eng),
                  "total_ms": med([f + e for f, e in zip(feat, eng)]),
                  "p95_ms": float(np.quantile([f + e for f, e in zip(feat, eng)], 0.95)) * 1000,
                  "batch_ms": med(ref), "keep": keep, "loaded": lean_loaded}))
"""


def bench_decision(rounds: int = 30) -> None:
    import numpy as np

    from tests.benchmarks.bench_live import _candles, _train

    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TRADEKIT_MODEL__N_ESTIMATORS": "100",
            "TRADEKIT_MODEL__TRAIN_WINDOW": "1200",
            "TRADEKIT_MODEL__TEST_WINDOW": "400",
            "TRADEKIT_MODEL__STEP": "400",
        }
        t0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR
        names = ["BTC/USD", *[f"C{i}/USD" for i in range(8)]]
        model = _train(work, _candles(names, 4000, t0 - 4000 * HOUR, seed=2), env=env)
        df = _candles([f"S{i}" for i in range(9)], 2 * 8760 + rounds, t0)
        arrays = {}
        for i, (_, g) in enumerate(df.groupby("symbol", sort=True)):
            ts = g["timestamp"].dt.as_unit("ms").astype("int64").to_numpy(dtype=np.float64)
            arrays[f"s{i}"] = np.column_stack(
                [ts, g[["open", "high", "low", "close", "volume"]].to_numpy()]
            )
        np.savez(work / "candles.npz", **arrays)
        for n in (9, 30):
            child_env = {**env, "TRADEKIT_JIT": "0"}
            r = subprocess.run(
                [sys.executable, "-c", CHILD, str(model), str(work / "candles.npz"), str(n),
                 str(rounds), str(work / f"l{n}.db")],
                env=child_env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            doc = json.loads(r.stdout)
            target = 10 if n == 9 else 30
            print(
                f"decision {n} symbols x {doc['keep']} candles tail: features + predict "
                f"{doc['features_predict_ms']:.2f} ms, policy + risk + fills + ledger "
                f"{doc['engine_ms']:.2f} ms, total median {doc['total_ms']:.2f} ms "
                f"(p95 {doc['p95_ms']:.2f})  [target <= {target} ms]; warm-up at start "
                f"{doc['warm_s']:.2f} s; loaded {doc['loaded'] or 'none'} of numba/pandas/"
                f"pyarrow/lightgbm"
            )
            print(
                f"decision   reference: batch features over the tail + LightGBM "
                f"{doc['batch_ms']:.1f} ms -> {doc['batch_ms'] / doc['features_predict_ms']:.0f}x "
                "slower than features + predict a candle at a time"
            )
