"""``run`` benchmarks (issue targets in brackets; Freqtrade's dry-run loop from
shared/reference/freqtrade-anchor.md section 10 beside them).

(One new candle through the decision path: ``bench_decision.py``.)

``bench_process``: a real ``tradekit run --paper`` process with a LightGBM model against the
Kraken-speaking local server (2 symbols): launch to the first cycle (READY=1 on
$NOTIFY_SOCKET, sent after the first new-candle cycle) [< 1.5 s], steady RSS [< 150 MB] and
CPU per idle loop iteration [< 2 ms]. Same-run reference: a bare interpreter importing what
the loop imports (numpy, pandas, pyarrow, ccxt, lightgbm, numba).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

HOUR = 3_600_000
FT = {"rss_mb": 308.0, "rss_freqai_mb": 387.0, "first_s": 3.7, "idle_ms": 7.5, "candle_s": 0.19}


def _candles(symbols: list[str], n: int, t0: int, seed: int = 1) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frames = []
    for j, s in enumerate(symbols):
        c = 100.0 * (j + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        o = c * np.exp(rng.normal(0, 0.002, n))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": s,
                    "timestamp": pd.to_datetime(
                        t0 + np.arange(n) * HOUR, unit="ms", utc=True
                    ).as_unit("ms"),
                    "open": o,
                    "high": np.maximum(o, c) * 1.003,
                    "low": np.minimum(o, c) * 0.997,
                    "close": c,
                    "volume": rng.uniform(1, 10, n),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _train(work: Path, ohlcv: Any, *, env: dict[str, str]) -> Path:
    """A small global LightGBM model on the default feature set (tradekit featurize/train)."""
    from tradekit.contracts import write_ohlcv

    write_ohlcv(ohlcv, work / "o.parquet", {"exchange": "kraken", "timeframe": "1h"})
    py = [sys.executable, "-m", "tradekit"]
    run = {"env": env, "check": True, "capture_output": True}
    subprocess.run(
        [*py, "featurize", str(work / "o.parquet"), "-o", str(work / "f.parquet")], **run
    )  # type: ignore[call-overload]
    subprocess.run([*py, "train", str(work / "f.parquet"), "-o", str(work / "model")], **run)  # type: ignore[call-overload]
    return work / "model"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def bench_process(idle_s: float = 8.0) -> None:
    from tests.conftest import shared_data_dir
    from tests.servers.kraken import KrakenServer
    from tests.servers.market import kraken_market
    from tradekit.data import candles as ck
    from tradekit.data.store import Store

    data = shared_data_dir()
    if data is None:
        print("process  skipped: no ../shared/data")
        return
    now = 1_654_041_600_000 + 30_000  # 2022-06-01 00:00:30 UTC: a candle just closed
    symbols = ["BTC/USD", "BTC/USDT"]
    market = kraken_market(data)
    with tempfile.TemporaryDirectory() as d, KrakenServer(market, now) as k:
        work = Path(d)
        store = Store(work / "store")
        import pandas as pd

        frames = []
        for sym, pair in (("BTC/USD", "XXBTZUSD"), ("BTC/USDT", "XBTUSDT")):
            rows = market.hourly(pair)
            rows = rows[rows[:, 0] * 1000 < now - 2 * HOUR][-8000:]
            got = ck.from_rows(sym, [[r[0] * 1000, *r[1:6]] for r in rows])
            store.append("kraken", "1h", sym, got)
            frames.append(got)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TRADEKIT_EXCHANGE__SYMBOLS": ",".join(symbols),
            "TRADEKIT_EXCHANGE__API_URL": k.url,
            "TRADEKIT_EXCHANGE__RATE_LIMIT": "false",
            "TRADEKIT_DATA__STORE": str(work / "store"),
            "TRADEKIT_RUN__POLL_S": "0.05",
            "TRADEKIT_MODEL__N_ESTIMATORS": "100",
            "TRADEKIT_MODEL__TRAIN_WINDOW": "1200",
            "TRADEKIT_MODEL__TEST_WINDOW": "400",
            "TRADEKIT_MODEL__STEP": "400",
        }
        model = _train(work, pd.concat(frames, ignore_index=True), env=env)
        sock_path = str(work / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(30)
        env["NOTIFY_SOCKET"] = sock_path
        args = [sys.executable, "-m", "tradekit", "run", "--json", "--model", str(model)]
        args += ["--state", str(work / "l.db")]
        t = time.perf_counter()
        p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        msg = sock.recv(4096).decode()
        first = time.perf_counter() - t
        assert msg.startswith("READY=1"), msg
        time.sleep(2.0)  # settle
        cpu0, it0 = _cpu_s(p.pid), time.perf_counter()
        rss = []
        end = time.time() + idle_s
        while time.time() < end:
            rss.append(_rss_kb(p.pid) / 1024)
            time.sleep(0.25)
        cpu1, it1 = _cpu_s(p.pid), time.perf_counter()
        p.terminate()
        out, err = p.communicate(timeout=30)
        summary = json.loads(out)
        iters = summary["iterations"]
        idle_iters = (it1 - it0) / 0.05  # poll interval; counted below from the summary too
        per_iter = (cpu1 - cpu0) / max(idle_iters, 1) * 1000
        ref = subprocess.run(
            [
                sys.executable,
                "-c",
                "import numpy, pandas, pyarrow.parquet, ccxt, lightgbm, numba, resource, sys;"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        ref_mb = int(ref.stdout) / 1024
        once = _once(work, model, env)
    med = statistics.median(rss)
    print(
        f"process  launch -> first cycle (READY=1) {first:.2f} s  [target < 1.5 s]; "
        f"Freqtrade {FT['first_s']} s to its first heartbeat -> {FT['first_s'] / first:.1f}x"
    )
    print(
        f"process  steady RSS median {med:.0f} MB (max {max(rss):.0f})  [target < 150 MB]; "
        f"bare imports of the same libraries {ref_mb:.0f} MB -> {med / ref_mb:.2f}x; "
        f"Freqtrade {FT['rss_mb']:.0f} MB plain / {FT['rss_freqai_mb']:.0f} MB FreqAI"
    )
    print(
        f"process  idle CPU {per_iter:.2f} ms per loop iteration ({iters} iterations, "
        f"{cpu1 - cpu0:.3f} CPU s in {it1 - it0:.1f} s)  [target < 2 ms]; Freqtrade "
        f"{FT['idle_ms']} ms -> {FT['idle_ms'] / max(per_iter, 1e-9):.1f}x"
    )
    for label, u in once:
        print(
            f"once     run --paper --once, {label}: {u.wall_s:.2f} s wall, {u.cpu_s:.2f} s CPU, "
            f"peak RSS {u.rss_mb:.0f} MB  [target < 1.5 s]; Freqtrade "
            f"{FT['first_s']} s to its first heartbeat"
        )
    if p.returncode not in (0, 130):  # 130: the clean stop after SIGTERM
        print("process  run exited", p.returncode, err.decode()[-300:])


def _once(work: Path, model: Path, env: dict[str, str]) -> list[tuple[str, Any]]:
    """``run --paper --once`` from launch to exit, on a fresh ledger each time: with ccxt's
    rate limiter (the default config: Kraken's published spacing, about 1 s a public call, so
    one OHLC request per symbol after the clock costs 1.2 s each) and without it; the first
    start asks for markets, a restart reads them from the state directory's cache."""
    from tests.benchmarks.child import measure

    out = []
    for label, limit in (("rate limit off", "false"), ("default config (rate limit on)", "true")):
        state = work / f"once-{limit}"
        state.mkdir()
        e = {**env, "TRADEKIT_EXCHANGE__RATE_LIMIT": limit}
        e.pop("NOTIFY_SOCKET", None)
        for start in ("first start", "restart, markets cached"):
            args = [sys.executable, "-m", "tradekit", "run", "--once", "--model", str(model)]
            args += ["--state", str(state / f"{start[:5]}.db")]
            out.append((f"{label}, {start}", measure(args, e, timeout_s=120)))
    return out
