"""A Kraken-speaking HTTP server on 127.0.0.1 for the real ccxt client.

It answers Assets/AssetPairs for the pairs it serves and builds OHLC and Trades answers from
real candles and trades (``tests/servers/market.py``: Kraken's own files in ``shared/data``, or
the installed offline sample on a fresh clone), with Kraken's rules: OHLC returns at most the
720 most recent candles plus the one still forming, whatever ``since`` says; Trades pages
1,000 trades from ``since`` and returns a nanosecond ``last`` cursor. The server's clock
(``now_ms``) is settable, so "now" lies inside the data.

Faults are injected per path, consumed in order: ``"500"`` (HTML 502/500 page), ``"429"``,
``"ratelimit"`` (``EAPI:Rate limit exceeded``), ``"busy"``, ``"malformed"`` (invalid JSON),
``"timeout"`` (answer after ``hang_s``), ``"unknown"`` (``EGeneral:Unknown method``).
``hold(path, after=n)`` answers n more requests to a path and keeps the next ones waiting
until ``release()``: a client is then stopped at a known request, whatever the machine's speed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from tests.servers.market import HOUR_S, Market, asset_pairs, assets, pair_decimals

HOLD_LIMIT_S = 120.0  # a held request gives up at last, so that no server thread is stuck


def resample(rows: np.ndarray, interval_s: int) -> np.ndarray:
    if interval_s == HOUR_S:
        return rows
    out: list[list[float]] = []
    for r in rows:
        b = r[0] - r[0] % interval_s
        if out and out[-1][0] == b:
            c = out[-1]
            c[2], c[3], c[4] = max(c[2], r[2]), min(c[3], r[3]), r[4]
            c[5] += r[5]
            c[6] += r[6]
        else:
            out.append([b, r[1], r[2], r[3], r[4], r[5], r[6]])
    return np.asarray(out)


@dataclass
class KrakenState:
    market: Market
    now_ms: int
    depth: int | None = 720  # None: serve any depth from `since` (a generic exchange)
    page: int = 720
    delay_s: float = 0.0
    hang_s: float = 3.0
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: tuple[str, int] | None = None  # (path, requests still answered)
    gate: threading.Event = field(default_factory=threading.Event)

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def hold(self, path: str, after: int) -> None:
        """Answer ``after`` more requests to ``path``, then keep the next ones waiting."""
        with self.lock:
            self.gate.clear()
            self.held = (path, after)

    def release(self) -> None:
        with self.lock:
            self.held = None
            self.gate.set()


def _ok(result: Any) -> bytes:
    return json.dumps({"error": [], "result": result}).encode()


class Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0") or 0)
        self.rfile.read(n)
        self._serve()

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self) -> None:
        st = self.server.state
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with st.lock:
            st.requests.append((url.path, q))
            queue = st.faults.get(url.path) or []
            fault = queue.pop(0) if queue else None
            wait = False
            if st.held is not None and st.held[0] == url.path:
                wait = st.held[1] <= 0
                st.held = (url.path, st.held[1] - 1)
        if wait:
            st.gate.wait(HOLD_LIMIT_S)
        if st.delay_s:
            time.sleep(st.delay_s)
        if fault == "500":
            self._send(502, b"<html><body>502 Bad Gateway</body></html>", "text/html")
            return
        if fault == "429":
            self._send(429, b'{"error":["EGeneral:Too many requests"]}')
            return
        if fault == "ratelimit":
            self._send(200, b'{"error":["EAPI:Rate limit exceeded"]}')
            return
        if fault == "busy":
            self._send(200, b'{"error":["EService:Unavailable"]}')
            return
        if fault == "malformed":
            self._send(200, b'{"error": [], "result": {"XXBTZUSD": [[1,')
            return
        if fault == "unknown":
            self._send(200, b'{"error":["EGeneral:Unknown method"]}')
            return
        if fault == "timeout":
            time.sleep(st.hang_s)
        try:
            body = self._route(url.path, q)
        except KeyError:
            body = b'{"error":["EQuery:Unknown asset pair"]}'
        if body is None:
            self._send(404, b'{"error":["EGeneral:Unknown method"]}')
        else:
            self._send(200, body)

    def _route(self, path: str, q: dict[str, str]) -> bytes | None:
        st = self.server.state
        if path == "/0/public/Assets":
            return _ok(assets())
        if path == "/0/public/AssetPairs":
            return _ok(asset_pairs())
        if path == "/0/public/Time":
            now_s = st.now_ms // 1000
            return _ok(
                {
                    "unixtime": now_s,
                    "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now_s)),
                }
            )
        if path == "/0/public/OHLC":
            return self._ohlc(q)
        if path == "/0/public/Trades":
            return self._trades(q)
        return None

    def _ohlc(self, q: dict[str, str]) -> bytes:
        st = self.server.state
        pair = q["pair"]
        interval_s = int(q.get("interval", "1")) * 60
        if interval_s < HOUR_S:
            return b'{"error":["EGeneral:Invalid arguments"]}'
        rows = resample(st.market.hourly(pair), interval_s)
        now_s = st.now_ms // 1000
        rows = rows[rows[:, 0] <= now_s]  # up to and including the candle still forming
        since = int(q["since"]) if "since" in q else None
        if st.depth is not None:
            rows = rows[-(st.depth + 1) :]  # Kraken: the newest 720 whatever `since` says
            if since is not None:
                rows = rows[rows[:, 0] > since]
        else:
            if since is not None:
                rows = rows[rows[:, 0] > since]
            rows = rows[: st.page]
        d = pair_decimals(pair)
        out = []
        for r in rows:
            prices = [f"{x:.{d}f}" for x in (r[1], r[2], r[3], r[4], (r[1] + r[4]) / 2)]
            out.append([int(r[0]), *prices, f"{r[5]:.8f}", int(r[6])])
        last = out[-1][0] if out else (since or 0)
        return _ok({pair: out, "last": last})

    def _trades(self, q: dict[str, str]) -> bytes:
        st = self.server.state
        pair = q["pair"]
        if pair != "XBTUSDT":
            return _ok({pair: [], "last": q.get("since", "0")})
        tape = st.market.trades()
        count = int(q.get("count", "1000"))
        since = int(q.get("since", "0"))
        ns = tape[:, 0].astype(np.int64)
        now_ns = st.now_ms * 1_000_000
        # Kraken reads a small `since` as seconds (what ccxt sends) and a huge one as the
        # nanosecond cursor from a previous `last`.
        lo = (
            np.searchsorted(ns, since * 1_000_000_000, "left")
            if since < 10**12
            else (np.searchsorted(ns, since, "right"))
        )
        hi = min(lo + count, int(np.searchsorted(ns, now_ns, "left")))
        chunk = tape[lo:hi]
        out = [[f"{r[1]:.1f}", f"{r[2]:.8f}", r[0] / 1e9, "b", "m", "", int(r[3])] for r in chunk]
        last = (
            str(int(chunk[-1][0]))
            if len(chunk)
            else str(since if since >= 10**12 else since * 1_000_000_000)
        )
        return _ok({pair: out, "last": last})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: KrakenState

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-answer (the resume tests do that) is expected, not an error.
        return


class KrakenServer:
    """Context manager: ``with KrakenServer(market, now_ms) as k: k.url``."""

    def __init__(self, market: Market, now_ms: int, **kw: Any) -> None:
        self.state = KrakenState(market=market, now_ms=now_ms, **kw)
        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.state = self.state
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self) -> KrakenServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.release()
        self.httpd.shutdown()
        self.httpd.server_close()
