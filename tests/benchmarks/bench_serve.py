"""``tradekit serve`` over a replay's ledger (tests/servers/dashboard.py::make_bot).

1. Start-up: from exec to the first answer of ``/api/v1/ping``, median of 5. Reference: a
   bare Starlette app with one route on uvicorn (same interpreter, same settings).
2. Memory: RSS right after start, after every page, API document and /metrics, after the
   candle charts (their files are read by a child process), and after 300 more rounds.
3. Page and API times: the server's own render time (its ``Server-Timing`` header) and the
   round trip with ``http.client`` on a kept-alive connection, median of 30. Reference: the
   bare app's one route.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from tests.conftest import cli_env
from tests.servers.dashboard import make_bot
from tradekit.serve.app import API_READS
from tradekit.serve.app import PAGES as ROUTES

# Every page (the chart with a symbol) and every API read; the candles are timed on their own.
PAGES = [p + "?symbol=S0/USD" if p == "/chart" else p for p, _ in ROUTES]
APIS = [name for name in API_READS if name != "candles"]
BARE = textwrap.dedent(
    """
    import socket, sys, uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    app = Starlette(routes=[Route("/api/v1/ping", lambda r: JSONResponse({"status": "pong"}))])
    sock = socket.socket(); sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", int(sys.argv[1]))); sock.listen(128)
    uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                   lifespan="off", loop="asyncio", http="h11", ws="none")).run(sockets=[sock])
    """
)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


def _start(cmd: list[str], port: int, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/api/v1/ping")
            if c.getresponse().status == 200:
                c.close()
                return proc, time.perf_counter() - t0
        except OSError:
            time.sleep(0.005)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited {proc.returncode}")


def _timed(conn: http.client.HTTPConnection, path: str, runs: int) -> tuple[float, float]:
    server, total = [], []
    for _ in range(runs):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        total.append((time.perf_counter() - t) * 1000)
        timing = r.getheader("server-timing") or "dur=nan"
        server.append(float(timing.split("dur=")[1]))
    return statistics.median(server), statistics.median(total)


def bench_serve() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        cwd = Path.cwd()
        os.chdir(d)
        try:
            cfg = make_bot(d)
        finally:
            os.chdir(cwd)
        env = cli_env(TRADEKIT_CONFIG=str(cfg))
        starts, bare_starts = [], []
        for i in range(5):
            port = _port()
            bare, t = _start([sys.executable, "-c", BARE, str(port)], port, env)
            bare_starts.append(t)
            bare_port = port
            if i < 4:
                bare.terminate()
                bare.wait()
            port = _port()
            cmd = [sys.executable, "-m", "tradekit", "serve", "--port", str(port)]
            proc, t = _start(cmd, port, env)
            starts.append(t)
            if i < 4:
                proc.terminate()
                proc.wait()
        try:
            ratio = statistics.median(starts) / statistics.median(bare_starts)
            print(
                f"serve start-up to first answer: median {statistics.median(starts):.3f} s "
                f"(bare Starlette+uvicorn {statistics.median(bare_starts):.3f} s, "
                f"ratio {ratio:.2f})"
            )
            print(
                f"  RSS after start: {_rss_mb(proc.pid):.1f} MB "
                f"(bare app {_rss_mb(bare.pid):.1f} MB)"
            )
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            ref = http.client.HTTPConnection("127.0.0.1", bare_port, timeout=60)
            _, bare_ms = _timed(ref, "/api/v1/ping", 30)
            for path in PAGES:
                srv, tot = _timed(conn, path, 30)
                print(
                    f"  page {path:22s} render {srv:6.1f} ms, round trip {tot:6.1f} ms "
                    f"(bare route {bare_ms:.1f} ms)"
                )
            for name in APIS:
                _, tot = _timed(conn, f"/api/v1/{name}", 10)
                print(f"  api {name:12s} round trip {tot:6.1f} ms")
            _, tot = _timed(conn, "/metrics", 10)
            print(f"  /metrics scrape {tot:.1f} ms")
            print(f"  RSS after every page, API and /metrics: {_rss_mb(proc.pid):.1f} MB")
            t = time.perf_counter()
            _timed(conn, "/api/v1/candles?symbol=S1/USD", 1)
            first = (time.perf_counter() - t) * 1000
            _, cached = _timed(conn, "/api/v1/candles?symbol=S1/USD", 10)
            print(f"  candles: first read {first:.0f} ms (child process), then {cached:.1f} ms")
            for _ in range(300):
                _timed(conn, "/", 1)
                _timed(conn, "/api/v1/equity", 1)
            print(f"  RSS after the candles and 300 more rounds: {_rss_mb(proc.pid):.1f} MB")
        finally:
            for p in (proc, bare):
                p.terminate()
                p.wait()
