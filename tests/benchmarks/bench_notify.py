"""``notify`` and ``listen`` against the local signal-cli-rest-api (tests/servers/signal.py).

1. One notify, in process: ``tradekit.notify.send`` (a fresh client and connection per
   message, as each ``tradekit notify`` process has), median of 50. Reference: a bare
   ``httpx.post`` of the same body to the same server (``verify=False``, as tradekit uses for
   plain http; httpx's default loads the CA bundle, ~20 ms, also shown).
2. One ``tradekit notify`` process, median of 5. Reference: a bare interpreter that imports
   httpx and posts the same body.
3. A command round trip: ``status`` queued on the server → ``listen`` receives it, renders the
   status from a ledger and POSTs the answer (time until the server records the answer), median
   of 20, by receive poll (poll_s 0.2) and by WebSocket. Reference: a bare loop with the same
   cadence that receives and POSTs a fixed answer.

The real service adds its own time (JVM per request in normal mode: seconds; json-rpc: ~0.3 s,
reference/interfaces.md §1.1), so these figures are tradekit's own overhead.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(ROOT))

OWNER = "+4366012345678"


def _median_ms(fn: Callable[[], Any], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def _round_trip(server: Any, n: int) -> float:
    """Median ms from queueing a ``status`` envelope to the answer's POST arriving."""
    from tests.servers.signal import envelope

    out = []
    for _ in range(n):
        k = len(server.state.sent_at)
        t = time.perf_counter()
        server.queue(envelope(OWNER, "status"))
        end = time.monotonic() + 10
        while len(server.state.sent_at) <= k:
            if time.monotonic() > end:
                raise RuntimeError("no answer within 10 s")
            time.sleep(0.001)
        out.append(server.state.sent_at[k] - t)
        time.sleep(0.05)
    return statistics.median(out) * 1000


def _bare_responder(server: Any, mode: str, poll_s: float, stop: threading.Event) -> None:
    import httpx

    body = {"number": OWNER, "recipients": [OWNER], "message": "ok", "text_mode": "normal"}
    with httpx.Client(base_url=server.url, timeout=10) as http:
        if mode == "websocket":
            from websockets.sync.client import connect

            with connect(server.url.replace("http", "ws") + f"/v1/receive/{OWNER}") as ws:
                while not stop.is_set():
                    try:
                        json.loads(ws.recv(timeout=0.1))
                    except TimeoutError:
                        continue
                    http.post("/v2/send", json=body)
            return
        while not stop.is_set():
            t0 = time.monotonic()
            for _ in http.get(f"/v1/receive/{OWNER}", params={"timeout": "1"}).json():
                http.post("/v2/send", json=body)
            stop.wait(max(poll_s - (time.monotonic() - t0), 0.0))


def bench_notify() -> None:
    import httpx

    from tests.servers.signal import SignalServer
    from tradekit.config import load_config
    from tradekit.ledger import Ledger
    from tradekit.notify import send
    from tradekit.notify.listen import listen

    with tempfile.TemporaryDirectory() as tmp, SignalServer(OWNER) as server:
        cfg = load_config(None)
        ncfg = replace(
            cfg.notify,
            url=server.url,
            sender=OWNER,
            recipients=[OWNER],
            text_mode="normal",
            poll_s=0.2,
            batch_s=0.0,
        )
        cfg = replace(cfg, notify=ncfg)
        body = {"number": OWNER, "recipients": [OWNER], "message": "bench", "text_mode": "normal"}

        send(ncfg, "warm-up")
        ours = _median_ms(lambda: send(ncfg, "bench"), 50)
        url = f"{server.url}/v2/send"
        bare = _median_ms(lambda: httpx.post(url, json=body, verify=False), 50)
        default = _median_ms(lambda: httpx.post(url, json=body), 50)
        print(
            f"notify in process (send, median of 50): {ours:.2f} ms; bare httpx.post "
            f"{bare:.2f} ms (verify=False; {default:.2f} ms with httpx's default CA loading); "
            f"ratio {ours / bare:.2f}"
        )

        toml = Path(tmp) / "t.toml"
        toml.write_text(
            f'[notify]\nurl = "{server.url}"\nsender = "{OWNER}"\nrecipients = ["{OWNER}"]\n'
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "tradekit", "--config", str(toml), "notify", "bench"]
        code = (
            "import httpx; httpx.post(%r, json=%r)" % (f"{server.url}/v2/send", body)  # noqa: UP031
        )
        run = subprocess.run
        ours_p = _median_ms(lambda: run(cli, env=env, check=True, capture_output=True), 5)
        bare_p = _median_ms(
            lambda: run([sys.executable, "-c", code], env=env, check=True, capture_output=True), 5
        )
        print(
            f"`tradekit notify` process (median of 5): {ours_p:.0f} ms; bare python+httpx "
            f"process {bare_p:.0f} ms; ratio {ours_p / bare_p:.2f}"
        )

        ledger = Path(tmp) / "ledger.db"
        Ledger(ledger).close()
        for mode in ("poll", "websocket"):
            server.state.mode = "json-rpc" if mode == "websocket" else "normal"
            stop = threading.Event()
            th = threading.Thread(
                target=listen, args=(cfg, ledger), kwargs={"stop": stop, "receive": mode}
            )
            th.start()
            time.sleep(0.5)
            ours_rt = _round_trip(server, 20)
            stop.set()
            th.join()
            stop = threading.Event()
            th = threading.Thread(target=_bare_responder, args=(server, mode, 0.2, stop))
            th.start()
            time.sleep(0.5)
            bare_rt = _round_trip(server, 20)
            stop.set()
            th.join()
            print(
                f"command round trip by {mode} (status in -> answer POSTed, median of 20"
                f"{', poll_s 0.2' if mode == 'poll' else ''}): {ours_rt:.1f} ms; bare "
                f"receive+POST loop {bare_rt:.1f} ms; ratio {ours_rt / bare_rt:.2f}"
            )


if __name__ == "__main__":
    bench_notify()
