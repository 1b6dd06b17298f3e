"""The per-cycle cost of candidate models beside the live one (issue 16 target: 3 candidates on
9 symbols add at most 5 ms to the live decision).

In a child process as ``run`` executes it (``TRADEKIT_JIT=0``, the model through treelite,
features a candle at a time): each round adds one candle to every symbol, times the live
decision (features + predict + the paper engine's close and open phases with their ledger
commits) and then ``Candidates.cycle`` (the directory rescan, each candidate's prediction and
its paper account's candle, one transaction of its own ledger). Two set-ups:

- ``shared``: three candidates on the live model's feature set (retrains, the usual case):
  the features are computed once per candle for all four models;
- ``own``: three candidates on another feature set, with their features computed for them
  (they share among themselves): the cost of one more feature set plus three accounts.

The reference, in the same run: the live decision itself.
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
import json, os, statistics, sys, time
import numpy as np
from pathlib import Path
from tradekit import jit
assert not jit.ENABLED
live_dir, cand_dir, data, work = (Path(a) for a in sys.argv[1:5])
n_sym, rounds = int(sys.argv[5]), int(sys.argv[6])
symbols = [f"C{i}/USD" for i in range(n_sym)]
os.environ["TRADEKIT_EXCHANGE__SYMBOLS"] = ",".join(symbols)
os.environ["TRADEKIT_EXCHANGE__ID"] = "kraken"
from tradekit.config import load_config
from tradekit.features.sets import tail_candles
from tradekit.ledger import Ledger
from tradekit.live import startup
from tradekit.live.brokers import PaperBroker
from tradekit.live.candidates import Candidates
from tradekit.live.engine import Engine
from tradekit.live.history import History
from tradekit.live.signals import ModelSignals
cfg = load_config(None)
arr = np.load(data)
signals = ModelSignals(startup.load_model(cfg, live_dir), symbols, "1h")
keep = tail_candles(signals.spec, "1h")
hist = History(sorted(set(symbols) | set(signals.spec.corr_symbols)), 3_600_000, keep)
notes = []
cands = Candidates(cfg, directory=cand_dir, state=work / "live.db", tf_ms=3_600_000,
                   note=lambda *a, **k: notes.append(a[2]))
cands.scan(signals, hist)
assert len(cands.slots) == 3, notes
series = {s: arr[f"s{i % 9}"] for i, s in enumerate(hist.symbols)}
start = len(next(iter(series.values()))) - rounds
for s in hist.symbols:
    hist.add(s, series[s][:start])
ledger = Ledger(work / "live.db")
engine = Engine(symbols, cfg.policy, cfg.risk, fee=cfg.backtest.fee, slippage=cfg.backtest.slippage,
                cash=10_000.0, broker=PaperBroker(cfg.backtest.fee, cfg.backtest.slippage),
                ledger=ledger, tf_ms=3_600_000, model_version="live")
t0 = int(series[symbols[0]][start - 1][0])
w = time.perf_counter()
signals.predict(t0, hist)  # warms the features
def ohlc_at(i):
    bar = np.array([series[s][i][1:5] for s in symbols])
    return bar[:, 0], bar[:, 1], bar[:, 2], bar[:, 3]
opens = ohlc_at(start - 1)[0]
cands.cycle(t0, lambda m: ohlc_at(start - 1), opens, hist, signals, lambda: None)  # warms theirs
warm = time.perf_counter() - w
live_t, cand_t = [], []
for k in range(rounds):
    i = start + k
    for s in hist.symbols:
        hist.add(s, series[s][i:i + 1])
    t_ms = int(series[symbols[0]][i][0])
    o, h, lo, c = ohlc_at(i)
    a = time.perf_counter()
    pred, digest = signals.predict(t_ms, hist)
    engine.close_phase(t_ms, o, h, lo, c, pred, digest)
    engine.open_phase(t_ms + 3_600_000, c)
    b = time.perf_counter()
    cands.cycle(t_ms, lambda m, i=i: ohlc_at(i), c, hist, signals, lambda: None)
    cc = time.perf_counter()
    live_t.append(b - a); cand_t.append(cc - b)
bad = [n for n in notes if "paper-trading" not in n]
assert not bad, bad
med = lambda x: statistics.median(x[2:]) * 1000
print(json.dumps({"live_ms": med(live_t), "candidates_ms": med(cand_t),
                  "p95_ms": float(np.quantile(cand_t[2:], 0.95)) * 1000, "warm_s": warm,
                  "shared": sum(s.signals.shares_features for s in cands.slots.values())}))
"""


def bench_candidates(rounds: int = 40) -> None:
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
        train = _candles(names, 4000, t0 - 4000 * HOUR, seed=2)
        (work / "live").mkdir()
        (work / "other").mkdir()
        live = _train(work / "live", train, env=env)
        # Another feature set: other look-back periods (another spec hash).
        other = _train(work / "other", train, env={**env, "TRADEKIT_FEATURES__PERIODS": "7,30"})
        df = _candles([f"S{i}" for i in range(9)], 2 * 8760 + rounds, t0)
        arrays = {}
        for i, (_, g) in enumerate(df.groupby("symbol", sort=True)):
            ts = g["timestamp"].dt.as_unit("ms").astype("int64").to_numpy(dtype=np.float64)
            arrays[f"s{i}"] = np.column_stack(
                [ts, g[["open", "high", "low", "close", "volume"]].to_numpy()]
            )
        np.savez(work / "candles.npz", **arrays)
        for setup, model in (("shared", live), ("own", other)):
            run = work / setup
            links = run / "opt" / "candidates"
            links.mkdir(parents=True)
            for name in ("c1", "c2", "c3"):
                os.symlink(model, links / name)
            r = subprocess.run(
                [sys.executable, "-c", CHILD, str(live), str(links),
                 str(work / "candles.npz"), str(run), "9", str(rounds)],
                env={**env, "TRADEKIT_JIT": "0"}, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if r.returncode != 0:
                raise SystemExit(r.stderr[-3000:])
            doc = json.loads(r.stdout)
            print(
                f"candidates {setup:>6}: 3 candidates x 9 symbols add {doc['candidates_ms']:.2f} "
                f"ms per candle (p95 {doc['p95_ms']:.2f}) after the live decision's "
                f"{doc['live_ms']:.2f} ms -> {doc['candidates_ms'] / doc['live_ms']:.2f}x the "
                f"live decision [target <= 5 ms]; {doc['shared']} of 3 take their features "
                f"from another model's; warm-up at start {doc['warm_s']:.2f} s"
            )
