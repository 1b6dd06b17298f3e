"""A local signal-cli-rest-api (bbernhard) on 127.0.0.1 for the real notify client.

It speaks what tradekit uses (reference/interfaces.md §1): ``POST /v2/send`` (the body shape is
validated like the Go server does, and recorded), ``GET /v1/receive/{number}`` (normal mode: a
JSON array of the queued envelopes, served once, after waiting up to ``timeout`` seconds for
one; json-rpc mode: a WebSocket with one JSON object per frame, served by the real
``websockets`` library on the same port), ``GET /v1/about`` (``mode`` settable), ``GET
/v1/health`` (204) and ``GET /v1/accounts``.

Faults for ``/v2/send``, consumed in order from ``state.faults``: ``"429"`` (rate limited, with
challenge tokens; nothing recorded as sent), ``"500"``/``"503"``, ``"400"``, ``"partial:NUMBER"``
(201 listing NUMBER under ``errors.recipients``), ``"slow"`` (answers after ``hang_s``: the
client times out while the message still goes out, as with the real service). ``down()`` stops
listening and drops every open connection (connection refused); ``up()`` listens again on the
same port. Unlike the real json-rpc service, envelopes queued while no WebSocket is connected
wait for the next one (the real one drops them).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

_DATA_URI = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;filename=[^;,]+)?;base64,(?P<b64>.*)$", re.S)


@dataclass
class SignalState:
    number: str
    mode: str = "normal"
    version: str = "0.99"
    hang_s: float = 2.0
    receive_cap_s: float = 1.0  # longest wait of a receive poll with an empty queue
    faults: list[str] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)  # every valid /v2/send body
    sent: list[dict[str, Any]] = field(default_factory=list)  # the ones answered 201
    sent_at: list[float] = field(default_factory=list)  # time.perf_counter() of each
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    inbox: list[dict[str, Any]] = field(default_factory=list)  # envelopes waiting
    ws_clients: int = 0  # receive WebSockets opened so far
    cond: threading.Condition = field(default_factory=threading.Condition)

    def count(self, method: str, path: str) -> int:
        with self.cond:
            return sum(1 for m, p in self.requests if (m, p) == (method, path))

    def messages(self) -> list[str]:
        with self.cond:
            return [str(b.get("message", "")) for b in self.sent]


def envelope(
    source: str,
    text: str,
    *,
    shape: str = "data",
    uuid: str = "",
    destination: str | None = None,
    group: bool = False,
) -> dict[str, Any]:
    """An incoming text as signal-cli reports it: ``dataMessage`` (someone wrote to the account)
    or ``syncMessage.sentMessage`` (the owner wrote from their own phone, to ``destination``)."""
    ts = time.time_ns() // 1_000_000
    env: dict[str, Any] = {
        "source": source,
        "sourceNumber": source,
        "sourceUuid": uuid or "5e4c1b0e-0000-4000-8000-000000000001",
        "sourceName": "Owner",
        "sourceDevice": 1,
        "timestamp": ts,
        "serverReceivedTimestamp": ts,
        "serverDeliveredTimestamp": ts,
    }
    msg: dict[str, Any] = {"timestamp": ts, "message": text, "expiresInSeconds": 0}
    if group:
        msg["groupInfo"] = {"groupId": "Z3JvdXA=", "type": "DELIVER"}
    if shape == "data":
        env["dataMessage"] = msg
    else:
        dest = source if destination is None else destination
        env["syncMessage"] = {
            "sentMessage": {**msg, "destination": dest, "destinationNumber": dest}
        }
    return env


def receipt(source: str) -> dict[str, Any]:
    ts = time.time_ns() // 1_000_000
    return {
        "source": source,
        "sourceNumber": source,
        "timestamp": ts,
        "receiptMessage": {"when": ts, "isDelivery": True, "timestamps": [ts - 1]},
    }


class _Http(HTTPServer):
    """Only a home for the handler's ``server`` attribute: connections are accepted by
    ``SignalServer`` and handed over one by one."""

    def __init__(self, state: SignalState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self.state = state


class _Handler(BaseHTTPRequestHandler):
    server: _Http
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, doc: Any = None) -> None:
        body = b"" if doc is None else json.dumps(doc).encode()
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        st = self.server.state
        url = urlparse(self.path)
        with st.cond:
            st.requests.append(("GET", url.path))
        if url.path == "/v1/about":
            self._reply(
                200,
                {
                    "versions": ["v1", "v2"],
                    "build": 2,
                    "mode": st.mode,
                    "version": st.version,
                    "capabilities": {"v2/send": ["quotes", "mentions"]},
                },
            )
        elif url.path == "/v1/health":
            self._reply(204)
        elif url.path == "/v1/accounts":
            self._reply(200, [st.number])
        elif url.path.startswith("/v1/receive/"):
            self._receive(unquote(url.path.removeprefix("/v1/receive/")), url.query)
        else:
            self._reply(404, {"error": "not found"})

    def _receive(self, number: str, query: str) -> None:
        st = self.server.state
        if st.mode.startswith("json-rpc"):
            self._reply(
                400,
                {
                    "error": "websocket: the client is not using the websocket protocol: "
                    "'upgrade' token not found in 'Connection' header"
                },
            )
            return
        if number != st.number:
            self._reply(400, {"error": f"User {number} is not registered."})
            return
        q = {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            wait = min(float(q.get("timeout", "1")), st.receive_cap_s)
        except ValueError:
            self._reply(400, {"error": "Couldn't process request - invalid timeout"})
            return
        with st.cond:
            st.cond.wait_for(lambda: bool(st.inbox), timeout=wait)
            out = [{"envelope": e, "account": st.number} for e in st.inbox]
            st.inbox.clear()
        self._reply(200, out)

    def do_POST(self) -> None:
        st = self.server.state
        url = urlparse(self.path)
        n = int(self.headers.get("Content-Length", "0") or 0)
        raw = self.rfile.read(n)
        with st.cond:
            st.requests.append(("POST", url.path))
        if url.path != "/v2/send":
            self._reply(404, {"error": "not found"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._reply(400, {"error": "Couldn't process request - invalid request"})
            return
        problem = _validate(body, st.number)
        if problem:
            self._reply(400, {"error": problem})
            return
        with st.cond:
            st.posts.append(body)
            fault = st.faults.pop(0) if st.faults else None
        if fault == "429":
            self._reply(
                429,
                {
                    "error": "Failed to send message due to rate limiting. Use the attached "
                    "challenge tokens to lift the rate limit restrictions via the "
                    "'/v1/accounts/{number}/rate-limit-challenge' endpoint.",
                    "challenge_tokens": ["1f6e5a2c-challenge"],
                    "account": st.number,
                },
            )
            return
        if fault in ("500", "503"):
            self._reply(int(fault), {"error": "signal-cli exited unexpectedly"})
            return
        if fault == "400":
            self._reply(400, {"error": "Failed to send message due to untrusted identities"})
            return
        if fault == "slow":
            time.sleep(st.hang_s)
        stamp = str(time.time_ns() // 1_000_000)
        doc: dict[str, Any] = {"timestamp": stamp}
        if fault and fault.startswith("partial:"):
            bad = fault.split(":", 1)[1]
            doc["errors"] = {
                "recipients": [
                    {"number": bad, "uuid": "", "reason": "UNREGISTERED_FAILURE"},
                ]
            }
        with st.cond:
            st.sent.append(body)
            st.sent_at.append(time.perf_counter())
        self._reply(201, doc)


def _validate(body: Any, number: str) -> str:
    """The Go server's checks on a SendMessageV2 body (api.go)."""
    if not isinstance(body, dict):
        return "Couldn't process request - invalid request"
    if body.get("number") != number:
        return f"User {body.get('number')} is not registered."
    rec = body.get("recipients")
    if not isinstance(rec, list) or not rec or not all(isinstance(r, str) for r in rec):
        return "Couldn't process request - please provide at least one recipient"
    if not isinstance(body.get("message", ""), str):
        return "Couldn't process request - invalid request"
    if body.get("text_mode", "normal") not in ("normal", "styled"):
        return "Couldn't process request - invalid text mode"
    atts = body.get("base64_attachments", [])
    if not isinstance(atts, list):
        return "Couldn't process request - invalid request"
    for a in atts:
        m = _DATA_URI.match(a) if isinstance(a, str) else None
        data = m.group("b64") if m else a
        try:
            base64.b64decode(str(data), validate=True)
        except (binascii.Error, ValueError):
            return "Couldn't process request - invalid attachment"
    return ""


class SignalServer:
    """The server; ``with SignalServer("+43...") as s:`` gives ``s.url`` and ``s.state``."""

    def __init__(self, number: str = "+4366012345678", *, mode: str = "normal") -> None:
        from websockets.sync.server import serve

        self.state = SignalState(number=number, mode=mode)
        self._http = _Http(self.state)
        # A websockets server that never accepts by itself: upgrade requests are handed to
        # its per-connection handler (the real library does the handshake and framing).
        self._ws_sock = socket.socket()
        self._ws_sock.bind(("127.0.0.1", 0))
        self._ws = serve(self._ws_handler, sock=self._ws_sock)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self.port = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------
    def up(self) -> None:
        """Listen (again, on the same port after ``down``)."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(64)
        s.settimeout(0.05)
        self.port = s.getsockname()[1]
        self._listener = s
        self._running.set()
        self._thread = threading.Thread(target=self._accept, args=(s,), daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening and drop every connection: clients get 'connection refused'."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        with self.state.cond:
            self.state.cond.notify_all()

    def close(self) -> None:
        self.down()
        self._http.server_close()
        # The websockets server never ran serve_forever: close what its constructor opened.
        self._ws.socket.close()
        self._ws.shutdown_watcher.close()
        self._ws.shutdown_notifier.close()

    def __enter__(self) -> SignalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def queue(self, *envelopes: dict[str, Any]) -> None:
        """Envelopes for the next receive (poll or WebSocket)."""
        with self.state.cond:
            self.state.inbox.extend(envelopes)
            self.state.cond.notify_all()

    # -- connections -------------------------------------------------------------------------
    def _accept(self, listener: socket.socket) -> None:
        while self._running.is_set():
            try:
                conn, addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True).start()

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        try:
            head = self._peek_head(conn)
            if head is None:
                return
            if b"upgrade: websocket" in head.lower() and b" /v1/receive/" in head:
                self._ws.handler(conn, addr)  # type: ignore[attr-defined]
                return
            with contextlib.suppress(OSError):
                _Handler(conn, addr, self._http)
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    @staticmethod
    def _peek_head(conn: socket.socket) -> bytes | None:
        """The request head, left in the socket for whoever serves it."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = conn.recv(8192, socket.MSG_PEEK)
            except OSError:
                return None
            if not data:
                return None
            if b"\r\n\r\n" in data or len(data) >= 8192:
                return data
            time.sleep(0.002)
        return None

    def _ws_handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        st = self.state
        number = unquote(ws.request.path.removeprefix("/v1/receive/").split("?")[0])
        if not st.mode.startswith("json-rpc") or number != st.number:
            ws.close(1008, "not a json-rpc receive for this account")
            return
        with st.cond:
            st.ws_clients += 1
        while self._running.is_set():
            with st.cond:
                st.cond.wait_for(lambda: bool(st.inbox) or not self._running.is_set(), 0.05)
                batch = list(st.inbox)
                st.inbox.clear()
            try:
                for env in batch:
                    ws.send(json.dumps({"envelope": env, "account": st.number}))
                with contextlib.suppress(TimeoutError):
                    ws.recv(timeout=0)  # notices a client that went away
            except ConnectionClosed:
                with st.cond:  # not delivered: keep them for the next client
                    st.inbox[:0] = batch
                return

    def drop_websockets(self) -> None:
        """Close the open receive WebSockets (the service restarting, a proxy timing out)."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
