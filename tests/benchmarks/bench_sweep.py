"""``tradekit sweep`` speed: a policy-only sweep of 1,000 variants x 10 symbols x one year of 5m
candles (about 1e9 candle-decisions; target <= 60 s on 2 cores), against a plain loop of
``backtest`` over the same variants in the same run (a subset, extrapolated: the whole loop
would take many minutes), and the same sweep on Ray (a private local cluster) against local.

Run: ``.venv/bin/python -m tests.benchmarks sweep``; ``SWEEP_BENCH_TRIALS`` and
``SWEEP_BENCH_CANDLES`` shrink it for a quick look.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

SPACE = """
objective = "sharpe"
[constraints]
min_trades = 30
max_drawdown = 0.5
[params]
"policy.entry_threshold" = { low = 0.0, high = 1.0 }
"policy.exit_threshold" = { low = -1.0, high = 0.0 }
"policy.stoploss" = { choices = [0.0, 0.02, 0.05] }
"policy.trailing_stop" = { choices = [0.0, 0.03] }
"policy.persistence" = { low = 1, high = 4, step = 1 }
"risk.max_open_positions" = { low = 1, high = 10, step = 1 }
"""
CONFIG = """
[backtest]
fee = 0.001
[risk]
max_position_frac = 0.1
max_trade_frac = 0.1
max_exposure_frac = 1.0
"""


def write_inputs(d: Path, n: int, m: int) -> tuple[str, str]:
    from tests.benchmarks.bench_backtest import market
    from tradekit.contracts import PREDICTIONS, write_ohlcv, write_table

    x = market(n, m)
    ts = pd.to_datetime(x["ts"], unit="ms", utc=True).as_unit("ms")
    frames, preds = [], []
    for j in range(m):
        s = f"S{j:02d}/USD"
        frames.append(
            pd.DataFrame(
                {
                    "symbol": s,
                    "timestamp": ts,
                    "open": x["op"][:, j],
                    "high": x["hi"][:, j],
                    "low": x["lo"][:, j],
                    "close": x["cl"][:, j],
                    "volume": 1.0,
                }
            )
        )
        preds.append(pd.DataFrame({"symbol": s, "timestamp": ts, "prediction": x["pred"][:, j]}))
    o, p = d / "ohlcv.parquet", d / "preds.parquet"
    write_ohlcv(pd.concat(frames, ignore_index=True), o, {"exchange": "sample", "timeframe": "5m"})
    write_table(pd.concat(preds, ignore_index=True), p, PREDICTIONS, {})
    return str(o), str(p)


CPU: dict[str, float] = {}  # CPU seconds (user + system) of each sweep and its workers


def _sweep(d: Path, o: str, p: str, out: str, trials: int, *extra: str) -> tuple[float, float]:
    """(seconds, peak RSS MB of the sweep process and its workers) of one CLI sweep."""
    cmd = [sys.executable, "-m", "tradekit", "--config", str(d / "tk.toml"), "sweep"]
    cmd += [str(d / "space.toml"), "--ohlcv", o, "-p", p, "-o", str(d / out)]
    cmd += ["--trials", str(trials), *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Peak RSS of the children: a fresh `time -v`-like reading from a wrapper process.
    wrapper = (
        "import resource,subprocess,sys,time;t=time.perf_counter();"
        "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL,"
        "stderr=subprocess.DEVNULL);"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(time.perf_counter()-t,r.ru_maxrss,r.ru_utime+r.ru_stime)"
    )
    r = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], env=env, capture_output=True, text=True, check=True
    )
    secs, rss, cpu = r.stdout.split()
    CPU[out] = float(cpu)
    return float(secs), int(rss) / 1024


def bench_sweep() -> None:
    n = int(os.environ.get("SWEEP_BENCH_CANDLES", 365 * 288))  # one year of 5m candles
    m = 10
    trials = int(os.environ.get("SWEEP_BENCH_TRIALS", 1000))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        o, p = write_inputs(d, n, m)
        (d / "space.toml").write_text(SPACE)
        (d / "tk.toml").write_text(CONFIG)
        decisions = n * m * trials
        # Warm numba's cache for the kernel and the metrics (a first run compiles).
        _sweep(d, o, p, "warm", 2)
        for sampler in ("tpe", "random"):
            secs, rss = _sweep(
                d, o, p, f"sw-{sampler}", trials, "--jobs", "2", "--sampler", sampler
            )
            print(
                f"sweep    {sampler:6} {trials} x {m} x {n:,} ({decisions / 1e9:.2f}e9 decisions) "
                f"{secs:6.1f} s  {decisions / secs / 1e6:6.1f} M decisions/s  "
                f"peak RSS {rss:.0f} MB (largest process)  target <= 60 s"
            )
            cpu = CPU[f"sw-{sampler}"]
            print(
                f"sweep    {sampler:6} CPU {cpu:.1f} s in all processes: {cpu / 2:.1f} s on 2 idle "
                f"cores (the wall time above includes waiting for a loaded machine's CPU)"
            )
            if sampler == "tpe":
                t_sweep = secs
        # The plain loop: one `tradekit backtest` process per variant, on a subset.
        sub = int(os.environ.get("SWEEP_BENCH_LOOP", 8))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        import pyarrow.parquet as pq

        rows = pq.read_table(d / "sw-tpe" / "trials.parquet").to_pylist()[:sub]
        t = time.perf_counter()
        for i, row in enumerate(rows):
            cfg = d / f"v{i}.toml"
            pol = {k.split(".")[1]: v for k, v in row.items() if k.startswith("policy.")}
            rsk = {k.split(".")[1]: v for k, v in row.items() if k.startswith("risk.")}
            text = CONFIG.replace(
                "[risk]\n", "[risk]\n" + "".join(f"{k} = {v!r}\n" for k, v in rsk.items())
            )
            text += "[policy]\n" + "".join(f"{k} = {v!r}\n" for k, v in pol.items())
            cfg.write_text(text)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tradekit",
                    "--config",
                    str(cfg),
                    "backtest",
                    o,
                    "-p",
                    p,
                    "-o",
                    str(d / f"r{i}.json"),
                ],
                env=env,
                check=True,
                capture_output=True,
            )
        per = (time.perf_counter() - t) / len(rows)
        loop = per * trials
        print(
            f"sweep    plain loop of `tradekit backtest` ({len(rows)} run, extrapolated to "
            f"{trials}): {per:.2f} s each, {loop:.0f} s in all"
        )
        print(
            f"sweep    ratio sweep/loop time {t_sweep / loop:.3f}x  ({loop / t_sweep:.0f}x faster)"
        )
        # Ray (a private local cluster on this machine) against local, same sweep, fewer trials.
        rt = min(trials, int(os.environ.get("SWEEP_BENCH_RAY_TRIALS", 200)))
        try:
            import ray  # noqa: F401
        except ImportError:
            print("sweep    ray skipped: not installed (pip install 'tradekit[ray]')")
            return
        t_local, _ = _sweep(d, o, p, "rl", rt, "--jobs", "2")
        t_ray, _ = _sweep(d, o, p, "rr", rt, "--jobs", "2", "--executor", "ray")
        same = (
            pq.read_table(d / "rl" / "trials.parquet")
            .drop(["duration_s"])
            .equals(pq.read_table(d / "rr" / "trials.parquet").drop(["duration_s"]))
        )
        print(
            f"sweep    {rt} trials: local {t_local:.1f} s, ray {t_ray:.1f} s (cluster start "
            f"included), ratio ray/local {t_ray / t_local:.2f}x, identical trials: {same}"
        )


if __name__ == "__main__":
    bench_sweep()
