"""``tradekit backtest`` speed: the kernel against a minimal hand-written numba loop with the
same fills (next-open fills, fee per fill, a stop on the candle's low, one shared wallet,
equity at each close), and the whole CLI process on a million candles.

Run: ``.venv/bin/python -c "from tests.benchmarks.bench_backtest import bench_backtest;
bench_backtest()"``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

FEE = 0.001
STOP = 0.05
CASH = 10_000.0


@njit(cache=True)
def reference(op, lo, cl, valid, pred, entry, exit_, frac, equity_out):  # type: ignore[no-untyped-def]
    """The practical limit: the same fills as the kernel, with nothing else."""
    n, m = op.shape
    cash = CASH
    qty = np.zeros(m)
    stop = np.zeros(m)
    last = np.zeros(m)
    pending = np.zeros(m, dtype=np.int64)
    trades = 0
    for t in range(n):
        for s in range(m):
            if valid[t, s] and pending[s] == 2 and qty[s] > 0.0:
                cash += qty[s] * op[t, s] * (1.0 - FEE)
                qty[s] = 0.0
                trades += 1
                pending[s] = 0
        expo = 0.0
        for s in range(m):
            if qty[s] > 0.0:
                expo += qty[s] * (op[t, s] if valid[t, s] else last[s])
        for s in range(m):
            if valid[t, s] and pending[s] == 1:
                pending[s] = 0
                price = op[t, s]
                value = min((cash + expo) * frac, cash / (1.0 + FEE) * (1.0 - 1e-12))
                q = value / price
                if q > 0.0:
                    qty[s] = q
                    cash -= q * price * (1.0 + FEE)
                    stop[s] = price * (1.0 - STOP)
                    expo += q * price
        total = 0.0
        for s in range(m):
            if not valid[t, s]:
                if qty[s] > 0.0:
                    total += qty[s] * last[s]
                continue
            if qty[s] > 0.0 and lo[t, s] <= stop[s]:
                cash += qty[s] * min(op[t, s], stop[s]) * (1.0 - FEE)
                qty[s] = 0.0
                trades += 1
            p = pred[t, s]
            if qty[s] > 0.0:
                if p < exit_:
                    pending[s] = 2
            elif p >= entry:
                pending[s] = 1
            last[s] = cl[t, s]
            total += qty[s] * last[s]
        equity_out[t] = cash + total
    return trades


def market(n: int, m: int, seed: int = 20240601) -> dict[str, Any]:
    """A continuous 5-minute random walk (open = previous close) and smooth predictions."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1.5e-3, (n, m)), axis=0))
    op = np.vstack([close[:1], close[:-1]])
    hi = np.maximum(op, close) * (1 + np.abs(rng.normal(0, 5e-4, (n, m))))
    lo = np.minimum(op, close) * (1 - np.abs(rng.normal(0, 5e-4, (n, m))))
    noise = rng.normal(0, 1, (n, m))
    pred = np.empty((n, m))
    pred[0] = noise[0]
    for t in range(1, n):  # AR(1): a position every few dozen candles
        pred[t] = 0.9 * pred[t - 1] + 0.44 * noise[t]
    ts = 1_600_000_000_000 + np.arange(n, dtype=np.int64) * 300_000
    return {"ts": ts, "op": op, "hi": hi, "lo": lo, "cl": close, "pred": pred}


def best(fn: Callable[[], Any], runs: int = 3) -> float:
    fn()
    out = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def bench_kernel(n: int, m: int) -> None:
    from tradekit import policy as pol
    from tradekit import risk as rk
    from tradekit.backtest.engine import simulate_arrays
    from tradekit.config import PolicyConfig, RiskConfig

    d = market(n, m)
    valid = np.ones((n, m), np.uint8)
    frac = 1.0 / m
    pp = pol.params(PolicyConfig(entry_threshold=0.5, exit_threshold=-0.5, stoploss=STOP))
    rp, member = rk.params(
        RiskConfig(
            max_open_positions=m,
            max_position_frac=frac,
            max_trade_frac=frac,
            max_exposure_frac=1.0,
            daily_loss_halt_frac=0.0,
            max_drawdown_halt_frac=0.0,
            min_order_value=0.0,
        ),
        [f"S{j}/USD" for j in range(m)],
    )
    args = (d["ts"], d["op"], d["hi"], d["lo"], d["cl"], valid, d["pred"], pp, rp, member)
    res: list[Any] = []

    def ours() -> None:
        res[:] = [simulate_arrays(*args, FEE, 0.0, CASH)]

    eq = np.empty(n)
    ref_trades: list[int] = []

    def ref() -> None:
        ref_trades[:] = [
            reference(d["op"], d["lo"], d["cl"], valid, d["pred"], 0.5, -0.5, frac, eq)
        ]

    t_ours = best(ours)
    t_ref = best(ref)
    sim = res[0]
    closed = int((sim.trades[:, 9] != 8).sum())  # T_EXIT_REASON != END
    total = n * m
    label = f"{m} x {n:,}"
    for name, secs, trades, final in (
        ("kernel   ", t_ours, closed, sim.final_equity),
        ("reference", t_ref, ref_trades[0], eq[-1]),
    ):
        print(
            f"backtest {name} {label:>13}  {secs * 1e3:7.1f} ms  "
            f"{total / secs / 1e6:6.1f} M candles/s  trades {trades}  final equity {final:.4f}"
        )
    print(f"backtest ratio kernel/reference {label}: {t_ours / t_ref:.2f}x (target <= 2x)")


def bench_process(n: int = 1_000_000, runs: int = 3) -> None:
    import pandas as pd

    from tradekit.contracts import PREDICTIONS, write_ohlcv, write_table

    d = market(n, 1)
    ts = pd.to_datetime(d["ts"], unit="ms", utc=True).as_unit("ms")
    sym = pd.Series(["BTC/USD"] * n, dtype="str")
    frame = pd.DataFrame(
        {
            "symbol": sym,
            "timestamp": ts,
            "open": d["op"][:, 0],
            "high": d["hi"][:, 0],
            "low": d["lo"][:, 0],
            "close": d["cl"][:, 0],
            "volume": np.ones(n),
        }
    )
    preds = pd.DataFrame({"symbol": sym, "timestamp": ts, "prediction": d["pred"][:, 0]})
    with tempfile.TemporaryDirectory() as tmp:
        o, p = Path(tmp) / "ohlcv.parquet", Path(tmp) / "preds.parquet"
        write_ohlcv(frame, o, {"exchange": "sample", "timeframe": "5m"})
        write_table(preds, p, PREDICTIONS, {})
        out = Path(tmp)
        cmd = [sys.executable, "-m", "tradekit", "backtest", str(o), "-p", str(p)]
        cmd += ["-o", str(out / "r.json"), "--trades", str(out / "t.parquet")]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        subprocess.run(cmd, env=env, check=True, capture_output=True)  # warms numba's cache
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
    print(
        f"backtest process   1 x {n:,}  min {min(times):.2f} s  median "
        f"{statistics.median(times):.2f} s  (start, read Parquet, simulate, metrics, report, "
        f"trades; target < 2 s, vectorbt one-shot ~8 s)"
    )


def bench_backtest() -> None:
    bench_kernel(1_000_000, 1)
    bench_kernel(200_000, 10)
    bench_process()


if __name__ == "__main__":
    bench_backtest()
