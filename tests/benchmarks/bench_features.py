"""``featurize`` throughput on 1M candles (10 symbols x 100k 5-minute candles, random walks),
and the live loop's features per new candle, incremental against batch.

``bench_featurize``:
1. The whole command, ``tradekit featurize`` in a child process (wall time and its own peak
   RSS through wait4): read Parquet, default spec (105 features: 49 base indicators, the same
   on 4h candles, BTC/USD context), three labels, warm-up drop, write features/2. Rows/s.
2. The same in this process, warmed up (no imports, kernels loaded): ``featurize_file``.
3. Base indicators only (no 4h, no context, no labels), against the same indicators computed
   with TA-Lib's C functions on the same arrays in the same run: ratio = ours / TA-Lib time.

``bench_incremental``: per new hourly candle, ``IncrementalFeatures`` (update every symbol,
then the feature matrix) against ``build_features`` over each symbol's ``tail_candles`` (what
the live loop recomputed per candle before), for 9 and 30 symbols; and the warm-up of 9.

For scale: FreqAI's documentation reports 115 s for 10 pairs of 5m candles with feature
engineering and 40 model trainings (features and training together, so not a like-for-like
figure).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

FIVE_MIN = 300_000


def _candles(symbols: int, n: int):  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    start = 1_700_000_000_000 - 1_700_000_000_000 % 14_400_000
    names = ["BTC/USD", *(f"C{i:02d}/USD" for i in range(1, symbols))]
    parts = []
    for name in sorted(names):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 2e-3, n)))
        open_ = np.r_[close[0], close[:-1]]
        spread = np.abs(rng.normal(0, 1e-3, n))
        parts.append(
            pd.DataFrame(
                {
                    "symbol": name,
                    "timestamp": pd.to_datetime(
                        start + np.arange(n, dtype=np.int64) * FIVE_MIN, unit="ms", utc=True
                    ).as_unit("ms"),
                    "open": open_,
                    "high": np.maximum(open_, close) * (1 + spread),
                    "low": np.minimum(open_, close) * (1 - spread),
                    "close": close,
                    "volume": rng.lognormal(3, 1, n),
                }
            )
        )
    return pd.concat(parts, ignore_index=True).astype({"symbol": "str"})


def _talib_base(df, periods: tuple[int, ...]) -> None:  # type: ignore[no-untyped-def]
    """The base indicator families with TA-Lib's C functions, per symbol."""
    import numpy as np
    import talib

    for _, part in df.groupby("symbol", sort=False):
        h, lo, c, v = (part[x].to_numpy() for x in ("high", "low", "close", "volume"))
        lr = np.log(c[1:] / c[:-1])
        for k in (1, 3, *periods):
            talib.ROC(c, k)
        talib.MACD(c, 12, 26, 9)
        talib.TRANGE(h, lo, c)
        obv = talib.OBV(c, v)
        lv = np.log1p(v)
        for p in periods:
            talib.SMA(c, p), talib.EMA(c, p), talib.RSI(c, p), talib.ATR(h, lo, c, p)
            talib.BBANDS(c, p, 2, 2)
            talib.ADX(h, lo, c, p), talib.PLUS_DI(h, lo, c, p), talib.MINUS_DI(h, lo, c, p)
            talib.MOM(obv, p), talib.SUM(v, p)
            talib.STDDEV(lr, p)
            talib.MAX(h, p), talib.MIN(lo, p)
            talib.SMA(lv, p), talib.STDDEV(lv, p)


def _child(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process."""
    from tests.benchmarks.child import measure

    u = measure(args, {**os.environ, "PYTHONPATH": str(ROOT)})
    return u.wall_s, u.rss_mb


def bench_featurize(symbols: int = 10, n: int = 100_000) -> None:
    from tradekit.config import FeaturesConfig
    from tradekit.contracts import write_ohlcv
    from tradekit.features import build_features, featurize_file, load_spec

    df = _candles(symbols, n)
    rows = len(df)
    spec = load_spec(FeaturesConfig())
    base_only = dataclasses.replace(spec, include_timeframes=(), corr_symbols=())
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "ohlcv.parquet", Path(d) / "features.parquet"
        write_ohlcv(df, src, {"exchange": "bench", "timeframe": "5m"})
        cmd = [sys.executable, "-m", "tradekit", "featurize", str(src), "-o", str(dst)]
        _child(cmd)  # warm the page cache and numba's kernel cache
        runs = [_child(cmd) for _ in range(3)]
        wall, rss = min(w for w, _ in runs), max(r for _, r in runs)
        featurize_file(src, dst, spec, cost=0.009)
        t_in = min(_timed(lambda: featurize_file(src, dst, spec, cost=0.009)) for _ in range(3))
        res = featurize_file(src, dst, spec, cost=0.009)
        size = dst.stat().st_size
    feats = len(res.meta["features"])
    t = time.perf_counter()
    build_features(df, base_only, "5m", cost=0.009, labels=False, drop_warmup=False)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    _talib_base(df, spec.periods)
    t_ref = time.perf_counter() - t
    print(
        f"features tradekit featurize, {rows:,} candles ({symbols} x {n:,} 5m), {feats} features"
        f" + 3 labels: {wall:6.2f} s  {rows / wall:10,.0f} rows/s  peak RSS {rss:,.0f} MB"
        f"  ({res.meta['rows_out']:,} rows out, {size / 1e6:.0f} MB features/2; best of 3"
        " processes, imports included)"
    )
    print(
        f"features featurize_file in a warm process:      {t_in:6.2f} s  {rows / t_in:10,.0f}"
        f" rows/s  (target >= 1,000,000; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})"
    )
    print(f"features base indicators only, tradekit {t_ours:6.2f} s  {rows / t_ours:10,.0f} rows/s")
    print(f"features base indicators only, TA-Lib C {t_ref:6.2f} s  {rows / t_ref:10,.0f} rows/s")
    print(
        f"features ratio tradekit/TA-Lib time {t_ours / t_ref:.2f}x (base indicators); whole "
        f"featurize vs TA-Lib's base indicators alone {t_in / t_ref:.2f}x"
    )


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _live_tails(symbols: int = 9):  # type: ignore[no-untyped-def]
    """Each symbol's last ``tail_candles`` hourly candles (random walks), BTC/USD among them:
    the frame the live loop passes to ``build_features`` on every new candle."""
    import numpy as np
    import pandas as pd

    from tradekit.config import FeaturesConfig
    from tradekit.features import load_spec, tail_candles

    spec = load_spec(FeaturesConfig())
    n = tail_candles(spec, "1h")
    rng = np.random.default_rng(0)
    names = sorted(["BTC/USD", *(f"S{i}/USD" for i in range(symbols - 1))])
    parts = []
    for name in names:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.r_[close[0], close[:-1]]
        spread = np.abs(rng.normal(0, 2e-3, n))
        parts.append(
            pd.DataFrame(
                {
                    "symbol": name,
                    "timestamp": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC").as_unit(
                        "ms"
                    ),
                    "open": open_,
                    "high": np.maximum(open_, close) * (1 + spread),
                    "low": np.minimum(open_, close) * (1 - spread),
                    "close": close,
                    "volume": rng.lognormal(3, 1, n),
                }
            )
        )
    return spec, n, pd.concat(parts, ignore_index=True).astype({"symbol": "str"})


_FIRST_CALL = """
import time, pickle, sys
t = time.perf_counter()
from tradekit.features import build_features
spec, df = pickle.load(open(sys.argv[1], "rb"))
t1 = time.perf_counter()
build_features(df, spec, "1h", cost=0.002, labels=False, drop_warmup=False)
print(t1 - t, time.perf_counter() - t1)
"""


def bench_live_features(symbols: int = 9, repeat: int = 10) -> None:
    """The live loop's per-candle feature step: ``build_features`` on the last
    ``tail_candles`` (6,293 at 1h, default set) candles of 9 symbols, median of ``repeat``
    calls after warm-up; against TA-Lib's C functions for the base indicators on the same
    arrays (less work: no 4h candles, no context, no frame). Also the first call in a fresh
    process (numba kernels loaded from their cache, not compiled)."""
    import pickle
    import statistics
    import subprocess

    from tradekit.features import build_features

    spec, n, df = _live_tails(symbols)

    def call() -> None:
        build_features(df, spec, "1h", cost=0.002, labels=False, drop_warmup=False)

    def median_ms(f) -> float:  # type: ignore[no-untyped-def]
        for _ in range(3):
            f()
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    ours = median_ms(call)
    ref = median_ms(lambda: _talib_base(df, spec.periods))
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "tails.pkl"
        path.write_bytes(pickle.dumps((spec, df)))
        run = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL, str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
    imp, first = (float(v) for v in run.stdout.split())
    print(
        f"features live step, {symbols} symbols x {n:,} 1h candles: median {ours:6.1f} ms "
        f"(target 35 ms)"
    )
    print(
        f"features live step, fresh process: import {imp * 1e3:.0f} ms, first call "
        f"{first * 1e3:.0f} ms"
    )
    print(f"features live step, TA-Lib C base indicators only: median {ref:6.1f} ms")
    print(f"features live ratio tradekit/TA-Lib time {ours / ref:.2f}x")


def _hourly(symbols: int, n: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """{symbol: (n x 6) candle rows}: hourly random walks, BTC/USD among them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = sorted(["BTC/USD", *(f"S{i:02d}/USD" for i in range(symbols - 1))])
    out = {}
    for name in names:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = np.r_[close[0], close[:-1]]
        spread = np.abs(rng.normal(0, 2e-3, n))
        t = 1_704_067_200_000 + np.arange(n) * 3_600_000
        out[name] = np.column_stack(
            [
                t.astype(float),
                open_,
                np.maximum(open_, close) * (1 + spread),
                np.minimum(open_, close) * (1 - spread),
                close,
                rng.lognormal(3, 1, n),
            ]
        )
    return out


def bench_incremental(candles: int = 200) -> None:
    import statistics

    import numpy as np
    import pandas as pd

    from tradekit.config import FeaturesConfig
    from tradekit.features import build_features, feature_columns, load_spec, tail_candles
    from tradekit.features.incremental import IncrementalFeatures

    spec = load_spec(FeaturesConfig())
    tail = tail_candles(spec, "1h")
    cols = feature_columns(spec)
    for symbols in (9, 30):
        data = _hourly(symbols, tail + candles)
        inc = IncrementalFeatures(spec, "1h", list(data))
        t = time.perf_counter()
        for s, rows in data.items():
            inc.warm(s, rows[:tail])
        warm = time.perf_counter() - t
        times = []
        for i in range(tail, tail + candles):
            t = time.perf_counter()
            for s, rows in data.items():
                inc.update(s, rows[i])
            inc.matrix(cols)
            times.append(time.perf_counter() - t)
        ours = statistics.median(times) * 1e3
        p99 = float(np.quantile(times, 0.99)) * 1e3

        frame = pd.concat(
            [
                pd.DataFrame(
                    {
                        "symbol": s,
                        "timestamp": pd.to_datetime(
                            r[-tail:, 0].astype("int64"), unit="ms", utc=True
                        ),
                        **{
                            c: r[-tail:, j + 1]
                            for j, c in enumerate(("open", "high", "low", "close", "volume"))
                        },
                    }
                )
                for s, r in data.items()
            ],
            ignore_index=True,
        ).astype({"symbol": "str"})
        frame["timestamp"] = frame["timestamp"].dt.as_unit("ms")

        def batch(frame: pd.DataFrame = frame) -> None:
            build_features(frame, spec, "1h", cost=0.002, labels=False, drop_warmup=False, last=1)

        batch()
        ref = statistics.median(_timed(batch) for _ in range(10)) * 1e3
        print(
            f"features per new candle, {symbols} symbols: incremental median {ours:6.2f} ms"
            f" (p99 {p99:.2f}); batch over {tail:,}-candle tails {ref:7.1f} ms;"
            f" ratio {ours / ref:.3f}x; warm-up from the tails {warm * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    bench_featurize()
    bench_incremental()
    bench_live_features()
