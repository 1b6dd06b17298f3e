"""Recovery after a restart (issue target: under 2 s plus network round trips).

A live ledger with two positions and their resting stops, plus N orders whose answers a crash
lost (on the exchange, ``submitting`` in the ledger), against the Kraken simulator on
127.0.0.1 through the real ccxt client. A real ``tradekit run --live --once`` recovers them;
its own log line gives the recovery time. Same-run reference: the round trip of one private
call (``fetch_balance``) times the private calls recovery made, so the figure left over is
tradekit's own cost.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

HOUR = 3_600_000


def _rtt_ms(sim: object) -> float:
    import base64

    from tradekit.data.exchange import open_exchange

    ex = open_exchange(
        "kraken",
        api_url=sim.url,  # type: ignore[attr-defined]
        api_key="testkey",
        secret=base64.b64encode(b"s").decode(),
        rate_limit=False,
    )
    ex.load_markets()
    times = []
    for _ in range(20):
        t = time.perf_counter()
        ex.fetch_balance()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def bench_recovery(counts: tuple[int, ...] = (0, 5, 20)) -> None:
    from tests.conftest import shared_data_dir
    from tests.servers.kraken_sim import KrakenSim
    from tests.servers.market import kraken_market
    from tests.test_live_chaos import START, predictions, run_args, setup
    from tradekit.data.exchange import RetryPolicy, open_exchange
    from tradekit.ledger import Ledger
    from tradekit.live.exchange_broker import ExchangeBroker
    from tradekit.live.orders import OrderRequest

    data = shared_data_dir()
    if data is None:
        print("recovery skipped: no ../shared/data")
        return
    for n in counts:
        with tempfile.TemporaryDirectory() as d, KrakenSim(kraken_market(data), START) as sim:
            tmp = Path(d)
            args, env = setup(tmp, sim)
            predictions(tmp / "p.parquet", eth_out_ms=START + 100 * HOUR)  # both stay in
            for _ in range(2):  # positions and their stops
                subprocess.run(run_args(args, "--once"), env=env, check=True, capture_output=True)
                sim.advance_to(sim.now_ms + HOUR)
            ex = ExchangeBroker(
                open_exchange(
                    "kraken",
                    api_url=sim.url,
                    api_key="testkey",
                    secret="c2VjcmV0",
                    rate_limit=False,
                ),
                RetryPolicy(2, 0.01),
            )
            with Ledger(tmp / "live.db") as led:
                for i in range(n):  # sent, filled, answer lost: the ledger says submitting
                    req = OrderRequest(f"BTC/USD|{i}|bench", "BTC/USD", "buy", 0.0001)
                    led.add_order(
                        req.key, req.userref, "BTC/USD", "buy", "market", 0.0001, 0.0,
                        sim.now_ms - sim.now_ms % HOUR, "entry_signal", ref_price=30_000.0,
                        deadline_ms=0,
                    )  # fmt: skip
                    ex.place(req)
            before = len(sim.requests)
            r = subprocess.run(
                run_args(args, "--once"), env=env, check=True, capture_output=True, text=True
            )
            run_reqs = [p for p, _ in sim.requests[before:]]
            # Recovery's calls: those before the first cycle fetches candles.
            first_cycle = next(
                (i for i, p in enumerate(run_reqs) if p == "/0/public/OHLC"), len(run_reqs)
            )
            private = [p for p in run_reqs[:first_cycle] if p.startswith("/0/private/")]
            m = re.search(r"recovered in ([0-9.]+)s: (\d+) unsettled", r.stderr)
            assert m is not None, r.stderr
            secs = float(m[1])
            rtt = _rtt_ms(sim)
        net = len(private) * rtt / 1000
        print(
            f"recovery {int(m[2]):3d} unsettled order(s) + 2 positions with stops: "
            f"{secs:.2f} s; {len(private)} private calls x {rtt:.1f} ms round trip "
            f"= {net:.2f} s; beyond the round trips {secs - net:.2f} s "
            f"[target < 2 s + round trips]"
        )
