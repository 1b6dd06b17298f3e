"""``make bench``: speed figures, each with a reference measured in the same run.

1. ``tradekit --help`` start-up against a bare two-command typer app (same interpreter).
2. ``fetch`` throughput (candles/s) through the real ccxt client against the local
   Kraken-speaking server, against a bare ccxt ``fetch_ohlcv`` loop on the same server.
3. Store append with 1M candles, against a plain ``pyarrow.parquet`` write/read of the same data.

Needs ../shared/data (or $TRADEKIT_TEST_DATA) for 2.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))


def _wall(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True
        )
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def bench_help(runs: int = 15) -> None:
    bare = textwrap.dedent(
        """
        import typer
        app = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)
        @app.command()
        def one(x: int = 1) -> None:
            "First command."
        @app.command()
        def two(y: str = "a") -> None:
            "Second command."
        app()
        """
    )
    with tempfile.TemporaryDirectory() as d:
        script = Path(d) / "bare.py"
        script.write_text(bare)
        # Compiled modules cached as an installed tradekit has them (the bare app's typer is in
        # site-packages with its .pyc; PYTHONDONTWRITEBYTECODE would recompile ours each run).
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        py = sys.executable
        _wall([py, str(script), "--help"], 2, env)  # warm the page cache
        _wall([py, "-m", "tradekit", "--help"], 2, env)  # ... and write tradekit's .pyc
        b_min, b_med = _wall([py, str(script), "--help"], runs, env)
        t_min, t_med = _wall([py, "-m", "tradekit", "--help"], runs, env)
        exe = Path(py).with_name("tradekit")
        s_min = _wall([str(exe), "--help"], runs, env)[0] if exe.exists() else float("nan")
    print(
        f"help     tradekit --help      min {t_min * 1000:6.1f} ms  median {t_med * 1000:6.1f} ms"
        f"  (console script min {s_min * 1000:.1f} ms)"
    )
    print(
        f"help     bare 2-command typer min {b_min * 1000:6.1f} ms  median {b_med * 1000:6.1f} ms"
    )
    print(
        f"help     ratio tradekit/bare  {t_min / b_min:.2f}x (min)  {t_med / b_med:.2f}x (median)"
    )


def bench_fetch() -> None:
    from tests.conftest import shared_data_dir
    from tests.servers.kraken import KrakenServer
    from tests.servers.market import kraken_market
    from tradekit.data.exchange import RetryPolicy, open_exchange
    from tradekit.data.fetch import run_fetch
    from tradekit.data.records import FetchRequest
    from tradekit.timeutil import parse_time

    data = shared_data_dir()
    if data is None:
        print("fetch    skipped: no ../shared/data (set TRADEKIT_TEST_DATA)")
        return
    now = parse_time("2023-01-07T00:30")
    since = parse_time("2016-01-01")
    with KrakenServer(kraken_market(data), now, depth=None, page=720) as k:
        req = FetchRequest(
            "kraken",
            ["BTC/USD"],
            "1h",
            since_ms=since,
            api_url=k.url,
            rate_limit=False,
            retry=RetryPolicy(0, 0),
        )
        run_fetch(req, keep_frame=True)  # warm: imports, markets
        t = time.perf_counter()
        res = run_fetch(req, keep_frame=True)
        dt = time.perf_counter() - t
        n = res.symbols[0].fetched
        ex = open_exchange("kraken", api_url=k.url, rate_limit=False)
        ex.load_markets()
        t = time.perf_counter()
        cursor, got = since, 0
        while True:
            rows = ex.fetch_ohlcv("BTC/USD", "1h", cursor, 720)
            rows = [r for r in rows if r[0] >= cursor and r[0] + 3_600_000 <= now]
            if not rows:
                break
            got += len(rows)
            cursor = rows[-1][0] + 3_600_000
        ref = time.perf_counter() - t
    print(
        f"fetch    tradekit  {n:7d} candles {dt:6.2f} s  {n / dt:9.0f} candles/s"
        f"  ({res.symbols[0].requests} requests)"
    )
    print(f"fetch    bare ccxt {got:7d} candles {ref:6.2f} s  {got / ref:9.0f} candles/s")
    print(f"fetch    ratio tradekit/bare time {dt / ref:.2f}x")


def _timed(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_store(n: int = 1_000_000) -> None:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from tradekit.contracts import OHLCV, to_table
    from tradekit.data.store import Store

    rng = np.random.default_rng(7)
    start = 1_500_000_000_000 - 1_500_000_000_000 % 60_000
    ts = start + np.arange(n + 1000, dtype=np.int64) * 60_000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n + 1000)))
    frame = pd.DataFrame(
        {
            "symbol": pd.Series(["BTC/USD"] * (n + 1000), dtype="str"),
            "timestamp": pd.to_datetime(ts, unit="ms", utc=True).as_unit("ms"),
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": rng.random(n + 1000),
        }
    )
    base, tail = frame.iloc[:n].reset_index(drop=True), frame.iloc[n:].reset_index(drop=True)
    with tempfile.TemporaryDirectory() as d:

        def fresh_store() -> Store:
            s = Store(Path(d) / f"s{time.perf_counter_ns()}")
            s.append("kraken", "1m", "BTC/USD", base)
            return s

        t_first = _timed(fresh_store, runs=2)
        stores = [fresh_store() for _ in range(3)]
        it = iter(stores)
        t_append = _timed(lambda: next(it).append("kraken", "1m", "BTC/USD", tail), runs=3)
        t_noop = _timed(lambda: stores[0].append("kraken", "1m", "BTC/USD", tail), runs=3)
        t_last = _timed(lambda: stores[0].last_ms("kraken", "1m", "BTC/USD"), runs=5)
        table = to_table(base, OHLCV, {"exchange": "kraken", "timeframe": "1m"})
        ref_path = Path(d) / "ref.parquet"
        t_write = _timed(lambda: pq.write_table(table, ref_path, compression="zstd"))
        t_read = _timed(lambda: pq.read_table(ref_path).to_pandas())
        size = ref_path.stat().st_size
    print(f"store    first write of {n:,} candles          {t_first:6.3f} s")
    print(f"store    append 1,000 to {n:,} (read+merge+write) {t_append:6.3f} s")
    print(f"store    append already-stored 1,000 (no write)   {t_noop:6.3f} s")
    print(f"store    resume point from footer (last_ms)       {t_last * 1000:6.2f} ms")
    print(
        f"store    reference: pyarrow write {t_write:.3f} s + read {t_read:.3f} s "
        f"= {t_write + t_read:.3f} s ({size / 1e6:.1f} MB zstd)"
    )
    print(f"store    ratio append/(write+read) {t_append / (t_write + t_read):.2f}x")


def _stage(module: str, func: str) -> Callable[[], None]:
    def run() -> None:
        import importlib

        getattr(importlib.import_module(f"tests.benchmarks.{module}"), func)()

    return run


BENCHES: dict[str, Callable[[], None]] = {
    "help": bench_help,
    "fetch": bench_fetch,
    "store": bench_store,
    "features": _stage("bench_features", "bench_featurize"),
    "incremental": _stage("bench_features", "bench_incremental"),
    "backtest": _stage("bench_backtest", "bench_backtest"),
    "sweep": _stage("bench_sweep", "bench_sweep"),  # about 3 minutes
    "predict": _stage("bench_models", "bench_predict"),
    "train": _stage("bench_models", "bench_train"),  # about 5 minutes
    "ensemble": _stage("bench_ensemble", "bench_ensemble"),  # about 1 minute
    "train-busy": _stage("bench_models", "bench_train_busy"),  # 2-10 minutes
    "decision": _stage("bench_decision", "bench_decision"),
    "candidates": _stage("bench_candidates", "bench_candidates"),
    "live": _stage("bench_live", "bench_process"),
    "recovery": _stage("bench_recovery", "bench_recovery"),
    "deploy": _stage("bench_deploy", "bench_deploy"),
    "notify": _stage("bench_notify", "bench_notify"),
    "serve": _stage("bench_serve", "bench_serve"),
}


def main() -> None:
    which = sys.argv[1:] or list(BENCHES)
    unknown = [w for w in which if w not in BENCHES]
    if unknown:
        sys.exit(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    # Compiled modules on disk, as an installed tradekit has them: with PYTHONDONTWRITEBYTECODE
    # set (as on this machine) every child would otherwise compile tradekit afresh, a cost
    # no user pays (launch and --help figures would include it).
    import compileall

    compileall.compile_dir(str(ROOT / "tradekit"), quiet=1)
    for name in which:
        print(f"== {name}", flush=True)
        BENCHES[name]()


if __name__ == "__main__":
    main()
