"""``run`` benchmarks (issue targets in brackets; Freqtrade's dry-run loop from
shared/reference/freqtrade-anchor.md section 10 beside them).

``bench_decision``: one new 1h candle for 9 symbols, in process: features of the newest rows
(the default feature set over each symbol's tail), LightGBM predict, policy, risk, paper
fills and the ledger commit [< 50 ms]. Same-run reference: the naive loop that recomputes the
features over the whole stored history (2 years) for every new candle.

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


def bench_decision(rounds: int = 30) -> None:
    import numpy as np

    from tradekit.config import load_config
    from tradekit.features.build import build_features
    from tradekit.features.sets import tail_candles
    from tradekit.ledger import Ledger
    from tradekit.live.brokers import PaperBroker
    from tradekit.live.engine import Engine
    from tradekit.live.history import History
    from tradekit.live.signals import ModelSignals
    from tradekit.models.predict import load_model

    symbols = ["BTC/USD", *[f"C{i}/USD" for i in range(8)]]
    cfg = load_config(None)
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TRADEKIT_MODEL__N_ESTIMATORS": "100",
            "TRADEKIT_MODEL__TRAIN_WINDOW": "1200",
            "TRADEKIT_MODEL__TEST_WINDOW": "400",
            "TRADEKIT_MODEL__STEP": "400",
            "TRADEKIT_EXCHANGE__SYMBOLS": ",".join(symbols),
        }
        history_n = 2 * 8760  # two years stored per symbol
        t0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR
        train_df = _candles(symbols, 4000, t0 - 4000 * HOUR, seed=2)
        model_dir = _train(work, train_df, env=env)
        model = load_model(model_dir)
        signals = ModelSignals(model, symbols, "1h")
        keep = tail_candles(signals.spec, "1h")
        df = _candles(symbols, history_n + rounds, t0)
        rows = {
            s: g[["timestamp", "open", "high", "low", "close", "volume"]]
            for s, g in df.groupby("symbol")
        }
        arr = {
            s: np.column_stack(
                [g["timestamp"].dt.as_unit("ms").astype("int64").to_numpy(dtype=np.float64),
                 g[["open", "high", "low", "close", "volume"]].to_numpy()]
            ).tolist()
            for s, g in rows.items()
        }  # fmt: skip
        hist = History(sorted(symbols), HOUR, keep)
        for s in symbols:
            hist.add(s, arr[s][:history_n])
        ledger = Ledger(work / "l.db")
        engine = Engine(
            symbols,
            cfg.policy,
            cfg.risk,
            fee=cfg.backtest.fee,
            slippage=cfg.backtest.slippage,
            cash=10_000.0,
            broker=PaperBroker(cfg.backtest.fee, cfg.backtest.slippage),
            ledger=ledger,
            tf_ms=HOUR,
            model_version=model.version,
        )
        feat, pred_t, eng_t, total = [], [], [], []
        for k in range(rounds):
            i = history_n + k
            for s in symbols:
                hist.add(s, [arr[s][i]])
            t_ms = int(arr[symbols[0]][i][0])
            bar = np.array([arr[s][i][1:5] for s in symbols])
            a = time.perf_counter()
            frame = hist.frame()
            build_features(
                frame, signals.spec, "1h", cost=0.0, labels=False, drop_warmup=False, last=1
            )
            b = time.perf_counter()
            pred, _ = signals.predict(t_ms, hist)  # features again + predict
            c = time.perf_counter()
            engine.close_phase(t_ms, bar[:, 0], bar[:, 1], bar[:, 2], bar[:, 3], pred)
            engine.open_phase(t_ms + HOUR, bar[:, 3])
            e = time.perf_counter()
            feat.append(b - a)
            pred_t.append((c - b) - (b - a))
            eng_t.append(e - c)
            total.append(e - b)
        ledger.close()
        # The naive loop: the whole stored history through the features at every candle.
        full = df[df.groupby("symbol").cumcount() < history_n]
        naive = []
        for _ in range(3):
            a = time.perf_counter()
            build_features(full, signals.spec, "1h", cost=0.0, labels=False, drop_warmup=False)
            naive.append(time.perf_counter() - a)

    def ms(x: list[float], q: float = 0.5) -> float:
        return float(np.quantile(x[3:], q)) * 1000  # the first rounds load numba's cache

    print(
        f"decision 9 symbols x {keep} candles tail, LightGBM {model.kind} "
        f"({len(model.features)} features): median {ms(total):.1f} ms, p95 "
        f"{ms(total, 0.95):.1f} ms  [target < 50 ms]"
    )
    print(
        f"decision   parts (median): features {ms(feat):.1f} ms, predict "
        f"{max(ms(pred_t), 0.0):.1f} ms, policy+risk+fills+ledger {ms(eng_t):.2f} ms"
    )
    nv = statistics.median(naive) * 1000
    print(
        f"decision reference: features over the whole history ({history_n} candles x 9) "
        f"{nv:.0f} ms per candle -> {nv / ms(total):.1f}x slower; Freqtrade FreqAI new-candle "
        f"iteration {FT['candle_s'] * 1000:.0f} ms (1 pair, anchor doc)"
    )


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
    from tests.servers.kraken import KrakenServer, hourly
    from tradekit.data import candles as ck
    from tradekit.data.store import Store

    data = shared_data_dir()
    if data is None:
        print("process  skipped: no ../shared/data")
        return
    now = 1_654_041_600_000 + 30_000  # 2022-06-01 00:00:30 UTC: a candle just closed
    symbols = ["BTC/USD", "BTC/USDT"]
    with tempfile.TemporaryDirectory() as d, KrakenServer(data, now) as k:
        work = Path(d)
        store = Store(work / "store")
        import pandas as pd

        frames = []
        for sym, pair in (("BTC/USD", "XXBTZUSD"), ("BTC/USDT", "XBTUSDT")):
            rows = hourly(data, pair)
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
    if p.returncode not in (0, 130):  # 130: the clean stop after SIGTERM
        print("process  run exited", p.returncode, err.decode()[-300:])
