"""A Kraken exchange simulator on 127.0.0.1 for the real ccxt client: public and private REST.

Public: Time, Assets, AssetPairs (as Kraken answers them, for the pairs served), OHLC (same
rules as ``tests/servers/kraken.py``: the newest 720 candles plus the forming one) and Ticker,
built from real hourly candles (``tests/servers/market.py``: Kraken's files in shared/data, or
the offline sample). Private (POST, form-encoded, signed by ccxt;
the signature is not checked, the key and an increasing nonce are): Balance, BalanceEx,
AddOrder, OpenOrders, ClosedOrders, QueryOrders, CancelOrder, CancelAll, CancelAllOrdersAfter,
TradesHistory, with Kraken's answer shapes and error strings.

The clock is settable: the current price is the open of the candle that contains ``now_ms``.
Market orders fill at once at that price (no slippage), the fee is charged in the quote
currency. Stop-loss orders rest until ``advance_to`` moves the clock over a candle that trades
through the trigger. ``CancelAllOrdersAfter`` arms a dead man's switch on the simulated clock.

Faults are injected per path (``sim.inject("AddOrder", "lost")``) and consumed in order:
``"500"`` (HTML 502), ``"429"``, ``"ratelimit"``, ``"busy"`` and ``"timeout"`` (hang past the
client timeout) leave the request unprocessed; ``"lost"`` processes it and then drops the
connection without an answer, ``"lost_slow"`` processes it and then hangs: the two cases in
which a client cannot know that its order exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from tests.servers.kraken import HOUR_S, Handler, resample
from tests.servers.market import Market, asset_pairs, assets

HOUR_MS = HOUR_S * 1000
# Faults a private call may meet at random: answers lost after the fact, 5xx, rate limits,
# busy, timeouts before processing, nonce errors, requests stuck in the queue.
RANDOM_FAULTS = (
    "lost",
    "lost_slow",
    "500",
    "429",
    "ratelimit",
    "busy",
    "timeout",
    "nonce",
    "queued",
)


class SimError(Exception):
    """A Kraken error string answered as ``{"error": [msg]}``."""


@dataclass
class SimOrder:
    txid: str
    pair: str  # Kraken pair id, e.g. XXBTZUSD
    side: str  # buy | sell
    ordertype: str  # market | stop-loss
    vol: float
    userref: int | None
    time_ms: int
    trigger: float = 0.0  # stop-loss trigger price
    cl_ord_id: str | None = None
    status: str = "open"  # pending | open | closed | canceled
    vol_exec: float = 0.0
    price: float = 0.0  # average fill price
    cost: float = 0.0
    fee: float = 0.0
    close_ms: int | None = None
    reason: str | None = None
    trades: list[str] = field(default_factory=list)
    pending_views: int = 0  # QueryOrders views left before a pending market order fills


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ok(result: Any) -> bytes:
    return json.dumps({"error": [], "result": result}).encode()


class KrakenSim:
    """Context manager: ``with KrakenSim(market, now_ms) as sim: sim.url``."""

    def __init__(
        self,
        market: Market,
        now_ms: int,
        *,
        api_key: str = "testkey",
        balances: dict[str, float] | None = None,
        fee: float = 0.0026,
        hang_s: float = 1.0,
    ) -> None:
        self.market = market
        self.now_ms = now_ms  # assigning it moves the clock without firing stops/the switch
        self.api_key = api_key
        self.balances: dict[str, float] = dict(balances or {"ZUSD": 10000.0})
        self.fee = fee
        self.hang_s = hang_s
        self.partial_fill_frac: float | None = None  # market orders fill this fraction only
        self.fill_after_queries = 0  # market orders stay pending for this many QueryOrders
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.orders: list[SimOrder] = []
        self.fills: list[dict[str, Any]] = []
        self.deadline_ms: int | None = None  # dead man's switch
        self.fault_rate = 0.0  # chance of a random fault on each private call
        self.rng = random.Random(0)
        self.queued: list[dict[str, str]] = []  # AddOrders stuck in the queue ("queued" fault)
        self.kill_at: tuple[str, int, int] | None = None  # (path suffix, nth request, pid)
        self.nonces: dict[str, int] = {}
        self.lock = threading.RLock()
        self._seq = 0
        self.pairs = asset_pairs()
        self.httpd = _SimServer(("127.0.0.1", 0), SimHandler)
        self.httpd.sim = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    # -- harness -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def __enter__(self) -> KrakenSim:
        # Parse the candle files now: a first request that parses them under a loaded test
        # run can outlast the short client timeouts the fault tests use.
        for pair in self.market.pairs:
            self.market.hourly(pair)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kill_after(self, method: str, nth: int, pid: int) -> None:
        """SIGKILL ``pid`` once the ``nth`` request to ``method`` (counted from now) has been
        processed, before it is answered."""
        self.kill_at = (self._path(method), nth, pid)

    def _kill_due(self, path: str) -> int | None:
        if self.kill_at is None or self.kill_at[0] != path:
            return None
        where, nth, pid = self.kill_at
        if nth > 1:
            self.kill_at = (where, nth - 1, pid)
            return None
        self.kill_at = None
        return pid

    def inject(self, method: str, *faults: str) -> None:
        """Queue faults for a method name (``AddOrder``) or a full path."""
        self.faults.setdefault(self._path(method), []).extend(faults)

    def count(self, method: str) -> int:
        path = self._path(method)
        return sum(1 for p, _ in self.requests if p == path)

    def orders_for(self, userref: int) -> list[SimOrder]:
        return [o for o in self.orders if o.userref == userref]

    def _path(self, method: str) -> str:
        if method.startswith("/"):
            return method
        public = {"Time", "Assets", "AssetPairs", "OHLC", "Ticker", "Trades", "Depth"}
        return f"/0/{'public' if method in public else 'private'}/{method}"

    # -- market ---------------------------------------------------------------------------------

    def pair_id(self, name: str) -> str:
        for pid, info in self.pairs.items():
            if name in (pid, info.get("altname")):
                return pid
        raise SimError("EQuery:Unknown asset pair")

    def candles(self, pair: str) -> np.ndarray:
        """Hourly candles [time_s, o, h, l, c, volume, count] of a Kraken pair id."""
        try:
            return self.market.hourly(pair)
        except KeyError:
            raise SimError("EQuery:Unknown asset pair") from None

    def _forming(self, pair: str, ms: int) -> np.ndarray:
        rows = self.candles(pair)
        i = int(np.searchsorted(rows[:, 0], ms // 1000, "right")) - 1
        if i < 0:
            raise SimError("EService:Unavailable")
        row: np.ndarray = rows[i]
        return row

    def price(self, pair: str) -> float:
        """The current price: the open of the candle that contains now (the forming one)."""
        return float(self._forming(self.pair_id(pair), self.now_ms)[1])

    def advance_to(self, ms: int) -> None:
        """Move the clock forward, firing stops crossed and the dead man's switch on the way."""
        with self.lock:
            old = self.now_ms
            if ms < old:
                raise ValueError("the simulated clock only moves forward")
            events: list[tuple[int, int, SimOrder | None, float]] = []
            for o in self.orders:
                if o.status == "open" and o.ordertype == "stop-loss":
                    hit = self._first_touch(o, old, ms)
                    if hit is not None:
                        events.append((hit[0], 1, o, hit[1]))
            if self.deadline_ms is not None and old < self.deadline_ms <= ms:
                events.append((self.deadline_ms, 0, None, 0.0))  # 0: before fills at that time
            for q in self.queued:
                # A queued AddOrder reaches the matching engine a minute later: refused when
                # its deadline has passed by then, else placed.
                self.now_ms = old + 60_000
                with contextlib.suppress(SimError):
                    Private(self, q).m_AddOrder()
                self.now_ms = old
            self.queued.clear()
            for t, _, order, px in sorted(events, key=lambda e: (e[0], e[1])):
                if order is None:
                    self.deadline_ms = None
                    for o in self.orders:
                        if o.status in ("open", "pending"):
                            self._close(o, "canceled", t, "Dead man's switch")
                elif order.status == "open":
                    self._fill(order, px, t, 1.0)
            self.now_ms = ms

    def _first_touch(self, o: SimOrder, old: int, new: int) -> tuple[int, float] | None:
        rows = self.candles(o.pair)
        lo = int(np.searchsorted(rows[:, 0], (old // 1000) - HOUR_S, "left"))
        for r in rows[lo:]:
            t = int(r[0]) * 1000
            if t > new:
                break
            if t + HOUR_MS <= old:
                continue
            sell = o.side == "sell"
            if t + HOUR_MS <= new:  # traversed candle: its whole range traded
                if (r[3] <= o.trigger) if sell else (r[2] >= o.trigger):
                    px = min(r[1], o.trigger) if sell else max(r[1], o.trigger)
                    return max(t, old), float(px)
            elif t > old and ((r[1] <= o.trigger) if sell else (r[1] >= o.trigger)):
                return t, float(r[1])  # the new forming candle: only its open has traded
        return None

    # -- accounting -----------------------------------------------------------------------------

    def _assets(self, pair: str) -> tuple[str, str]:
        info = self.pairs[pair]
        return str(info["base"]), str(info["quote"])

    def _held(self, asset: str) -> float:
        held = 0.0
        for o in self.orders:
            if o.status not in ("open", "pending"):
                continue
            base, quote = self._assets(o.pair)
            left = o.vol - o.vol_exec
            if o.side == "sell" and asset == base:
                held += left
            elif o.side == "buy" and asset == quote:
                px = o.trigger or self.price(o.pair)
                held += left * px * (1 + self.fee)
        return held

    def _fill(self, o: SimOrder, px: float, t_ms: int, frac: float) -> None:
        lot = int(self.pairs[o.pair].get("lot_decimals", 8))
        qty = round(o.vol * frac, lot)
        base, quote = self._assets(o.pair)
        cost = round(qty * px, 8)
        fee = round(cost * self.fee, 8)
        if qty > 0:
            sign = 1 if o.side == "buy" else -1
            self.balances[base] = round(self.balances.get(base, 0.0) + sign * qty, 10)
            self.balances[quote] = round(self.balances.get(quote, 0.0) - sign * cost - fee, 10)
            tid = self._id("T")
            o.trades.append(tid)
            self.fills.append(
                {"id": tid, "order": o, "time_ms": t_ms, "price": px, "vol": qty}
                | {"cost": cost, "fee": fee}
            )
        o.vol_exec, o.price, o.cost, o.fee = qty, px if qty > 0 else 0.0, cost, fee
        if qty >= o.vol:
            self._close(o, "closed", t_ms, None)
        else:
            self._close(o, "canceled", t_ms, "Insufficient liquidity")

    def _close(self, o: SimOrder, status: str, t_ms: int, reason: str | None) -> None:
        o.status, o.close_ms, o.reason = status, t_ms, reason

    def _id(self, prefix: str) -> str:
        """A Kraken-looking id (``OUF4EM-FRGI2-MQMWZD``), deterministic per simulator."""
        self._seq += 1
        digest = hashlib.sha256(f"{prefix}{self._seq}".encode()).digest()
        alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        s = "".join(alpha[b % 32] for b in digest[:16])
        return f"{prefix}{s[:5]}-{s[5:10]}-{s[10:16]}"

    # -- views ----------------------------------------------------------------------------------

    def order_info(self, o: SimOrder, trades: bool = False) -> dict[str, Any]:
        info = self.pairs[o.pair]
        alt = str(info.get("altname", o.pair))
        pd = int(info.get("pair_decimals", 1))
        if o.ordertype == "stop-loss":
            text = f"{o.side} {o.vol:.8f} {alt} @ stop loss {o.trigger:.{pd}f}"
            dprice = f"{o.trigger:.{pd}f}"
        else:
            text, dprice = f"{o.side} {o.vol:.8f} {alt} @ market", "0"
        out: dict[str, Any] = {
            "refid": None,
            "userref": o.userref if o.userref is not None else 0,
            "status": o.status,
            "reason": o.reason,
            "opentm": o.time_ms / 1000,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": alt,
                "type": o.side,
                "ordertype": o.ordertype,
                "price": dprice,
                "price2": "0",
                "leverage": "none",
                "order": text,
                "close": "",
            },
            "vol": f"{o.vol:.8f}",
            "vol_exec": f"{o.vol_exec:.8f}",
            "cost": f"{o.cost:.8f}",
            "fee": f"{o.fee:.8f}",
            "price": f"{o.price:.{pd}f}",
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": "fciq",
        }
        if o.cl_ord_id is not None:
            out["cl_ord_id"] = o.cl_ord_id
        if o.close_ms is not None:
            out["closetm"] = o.close_ms / 1000
        if trades and o.trades:
            out["trades"] = list(o.trades)
        return out


class SimHandler(Handler):
    server: _SimServer  # type: ignore[assignment]

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self._handle(url.path, {k: v[-1] for k, v in parse_qs(url.query).items()})

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(n).decode()
        url = urlparse(self.path)
        if body.startswith("{"):
            params = {k: str(v) for k, v in json.loads(body).items()}
        else:
            params = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        params.update({k: v[-1] for k, v in parse_qs(url.query).items()})
        self._handle(url.path, params)

    def _handle(self, path: str, q: dict[str, str]) -> None:
        sim = self.server.sim
        with sim.lock:
            sim.requests.append((path, dict(q)))
            queue = sim.faults.get(path) or []
            fault = queue.pop(0) if queue else None
            private = path.startswith("/0/private/")
            if fault is None and private and sim.fault_rate and sim.rng.random() < sim.fault_rate:
                fault = sim.rng.choice(RANDOM_FAULTS)
            kill = sim._kill_due(path)
        if kill:
            # The request reached the exchange and was processed; the client dies before it
            # hears the answer (SIGKILL between "sent" and "answered").
            with sim.lock:
                self._answer(path, q)
            os.kill(kill, signal.SIGKILL)
            self._drop()
            return
        if fault == "queued" and path.endswith("/AddOrder"):
            # Stuck in the exchange's queue: processed at the next clock step, after the
            # client gave up on an answer.
            with sim.lock:
                sim.queued.append(dict(q))
            self._drop()
            return
        if fault == "nonce":
            self._send(200, b'{"error":["EAPI:Invalid nonce"]}')
        elif fault == "500":
            self._send(502, b"<html><body>502 Bad Gateway</body></html>", "text/html")
        elif fault == "429":
            self._send(429, b'{"error":["EGeneral:Too many requests"]}')
        elif fault == "ratelimit":
            self._send(200, b'{"error":["EAPI:Rate limit exceeded"]}')
        elif fault == "busy":
            self._send(200, b'{"error":["EService:Unavailable"]}')
        elif fault == "timeout":
            time.sleep(sim.hang_s)  # the client gives up first; the request is never processed
            self._drop()
        else:
            status, body = self._answer(path, q)
            if fault == "lost":
                self._drop()
            elif fault == "lost_slow":
                time.sleep(sim.hang_s)
                self._drop()
            else:
                self._send(status, body)

    def _drop(self) -> None:
        """Close the connection without an answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _answer(self, path: str, q: dict[str, str]) -> tuple[int, bytes]:
        sim = self.server.sim
        try:
            with sim.lock:
                if path.startswith("/0/private/"):
                    self._authorize(q)
                    body = Private(sim, q).route(path.rsplit("/", 1)[1])
                else:
                    body = self._public(path, q)
        except SimError as e:
            return 200, json.dumps({"error": [str(e)]}).encode()
        if body is None:
            return 404, b'{"error":["EGeneral:Unknown method"]}'
        return 200, body

    def _authorize(self, q: dict[str, str]) -> None:
        sim = self.server.sim
        key = self.headers.get("API-Key", "")
        if key != sim.api_key:
            raise SimError("EAPI:Invalid key")
        try:
            nonce = int(q.get("nonce", ""))
        except ValueError:
            raise SimError("EAPI:Invalid nonce") from None
        if nonce <= sim.nonces.get(key, 0):
            raise SimError("EAPI:Invalid nonce")
        sim.nonces[key] = nonce

    def _public(self, path: str, q: dict[str, str]) -> bytes | None:
        sim = self.server.sim
        if path == "/0/public/Assets":
            return _ok(assets())
        if path == "/0/public/AssetPairs":
            return _ok(sim.pairs)
        if path == "/0/public/Time":
            now_s = sim.now_ms // 1000
            rfc = time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now_s))
            return _ok({"unixtime": now_s, "rfc1123": rfc})
        if path == "/0/public/OHLC":
            return self._sim_ohlc(q)
        if path == "/0/public/Ticker":
            out = {}
            for name in q.get("pair", "").split(","):
                pair = sim.pair_id(name)
                r = sim._forming(pair, sim.now_ms)
                px = f"{r[1]:.{int(sim.pairs[pair].get('pair_decimals', 1))}f}"
                vol, n = f"{r[5]:.8f}", int(r[6])
                out[pair] = {
                    "a": [px, "1", "1.000"],
                    "b": [px, "1", "1.000"],
                    "c": [px, "0.00100000"],
                    "v": [vol, vol],
                    "p": [px, px],
                    "t": [n, n],
                    "l": [px, px],
                    "h": [px, px],
                    "o": px,
                }
            return _ok(out)
        return None

    def _sim_ohlc(self, q: dict[str, str]) -> bytes:
        """As ``tests/servers/kraken.py``: the newest 720 candles plus the forming one."""
        sim = self.server.sim
        pair = sim.pair_id(q.get("pair", ""))
        interval_s = int(q.get("interval", "1")) * 60
        if interval_s < HOUR_S:
            raise SimError("EGeneral:Invalid arguments")
        rows = resample(sim.candles(pair), interval_s)
        rows = rows[rows[:, 0] <= sim.now_ms // 1000][-721:]
        since = int(q["since"]) if "since" in q else None
        if since is not None:
            rows = rows[rows[:, 0] > since]
        d = int(sim.pairs[pair].get("pair_decimals", 1))
        out = []
        for r in rows:
            prices = [f"{x:.{d}f}" for x in (r[1], r[2], r[3], r[4], (r[1] + r[4]) / 2)]
            out.append([int(r[0]), *prices, f"{r[5]:.8f}", int(r[6])])
        return _ok({pair: out, "last": out[-1][0] if out else (since or 0)})


class Private:
    """One private request, run under the simulator's lock."""

    def __init__(self, sim: KrakenSim, q: dict[str, str]) -> None:
        self.sim, self.q = sim, q

    def route(self, method: str) -> bytes | None:
        fn = getattr(self, f"m_{method}", None)
        return _ok(fn()) if fn is not None else None

    def _userref(self) -> int | None:
        raw = self.q.get("userref")
        if raw in (None, ""):
            return None
        try:
            return int(str(raw))
        except ValueError:
            raise SimError("EGeneral:Invalid arguments:userref") from None

    def _settle_pending(self, orders: list[SimOrder]) -> None:
        for o in orders:
            if o.status == "pending":
                o.pending_views -= 1
                if o.pending_views <= 0:
                    o.status = "open"
                    self._execute(o)

    def _execute(self, o: SimOrder) -> None:
        sim = self.sim
        frac = sim.partial_fill_frac if sim.partial_fill_frac is not None else 1.0
        sim._fill(o, sim.price(o.pair), sim.now_ms, frac)

    # -- balances --

    def m_Balance(self) -> dict[str, str]:
        return {a: f"{v:.10f}" for a, v in self.sim.balances.items()}

    def m_BalanceEx(self) -> dict[str, dict[str, str]]:
        return {
            a: {"balance": f"{v:.10f}", "hold_trade": f"{self.sim._held(a):.10f}"}
            for a, v in self.sim.balances.items()
        }

    # -- orders --

    def m_AddOrder(self) -> dict[str, Any]:
        sim, q = self.sim, self.q
        pair = sim.pair_id(q.get("pair", ""))
        info = sim.pairs[pair]
        side, otype = q.get("type", ""), q.get("ordertype", "")
        if side not in ("buy", "sell"):
            raise SimError("EGeneral:Invalid arguments:type")
        if otype not in ("market", "stop-loss"):
            raise SimError("EGeneral:Invalid arguments:ordertype")
        try:
            vol = float(q.get("volume", ""))
        except ValueError:
            raise SimError("EGeneral:Invalid arguments:volume") from None
        if not vol > 0:
            raise SimError("EGeneral:Invalid arguments:volume")
        trigger = 0.0
        if otype == "stop-loss":
            try:
                trigger = float(q.get("price", ""))
            except ValueError:
                raise SimError("EGeneral:Invalid arguments:price") from None
        userref = self._userref()
        deadline = q.get("deadline")
        if deadline:
            # Kraken: "RFC3339 timestamp after which the matching engine should reject the new
            # order request". The exact error string is not documented; any EOrder: answer is
            # a refusal to the client.
            try:
                limit = datetime.strptime(deadline, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except ValueError:
                raise SimError("EGeneral:Invalid arguments:deadline") from None
            if sim.now_ms > limit.timestamp() * 1000:
                raise SimError("EOrder:Deadline elapsed")
        if vol < float(info.get("ordermin", 0) or 0):
            raise SimError("EOrder:Order minimum not met")
        px = trigger or sim.price(pair)
        if vol * px < float(info.get("costmin", 0) or 0):
            raise SimError("EOrder:Cost minimum not met")
        base, quote = sim._assets(pair)
        if side == "buy":
            need, asset = vol * px * (1 + sim.fee), quote
        else:
            need, asset = vol, base
        if need > sim.balances.get(asset, 0.0) - sim._held(asset) + 1e-12:
            raise SimError("EOrder:Insufficient funds")
        o = SimOrder(
            txid="",
            pair=pair,
            side=side,
            ordertype=otype,
            vol=vol,
            userref=userref,
            time_ms=sim.now_ms,
            trigger=trigger,
            cl_ord_id=q.get("cl_ord_id"),
        )
        descr = {"order": sim.order_info(o)["descr"]["order"]}
        if q.get("validate", "").lower() == "true":
            return {"descr": descr}
        o.txid = sim._id("O")
        sim.orders.append(o)
        if otype == "market":
            if sim.fill_after_queries > 0:
                o.status, o.pending_views = "pending", sim.fill_after_queries
            else:
                self._execute(o)
        else:
            now = sim.price(pair)
            if (now <= trigger) if side == "sell" else (now >= trigger):
                sim._fill(o, now, sim.now_ms, 1.0)  # already through the trigger
        return {"descr": descr, "txid": [o.txid]}

    def _select(self, statuses: tuple[str, ...]) -> list[SimOrder]:
        userref = self._userref()
        cl = self.q.get("cl_ord_id")
        return [
            o
            for o in self.sim.orders
            if o.status in statuses
            and (userref is None or o.userref == userref)
            and (cl is None or o.cl_ord_id == cl)
        ]

    def _trades_flag(self) -> bool:
        return self.q.get("trades", "").lower() == "true"

    def m_OpenOrders(self) -> dict[str, Any]:
        orders = self._select(("pending", "open"))
        self._settle_pending(orders)
        tr = self._trades_flag()
        return {"open": {o.txid: self.sim.order_info(o, tr) for o in orders}}

    def m_ClosedOrders(self) -> dict[str, Any]:
        self._settle_pending(self._select(("pending",)))
        orders = self._select(("closed", "canceled"))
        start, end = self.q.get("start"), self.q.get("end")
        if start:
            orders = [o for o in orders if o.time_ms >= float(start) * 1000]
        if end:
            orders = [o for o in orders if o.time_ms <= float(end) * 1000]
        orders.sort(key=lambda o: (o.close_ms or 0, o.time_ms), reverse=True)  # newest first
        tr = self._trades_flag()
        closed = {o.txid: self.sim.order_info(o, tr) for o in orders[:50]}
        return {"closed": closed, "count": len(orders)}

    def m_QueryOrders(self) -> dict[str, Any]:
        by_id = {o.txid: o for o in self.sim.orders}
        userref = self._userref()
        out: dict[str, Any] = {}
        for txid in [t for t in self.q.get("txid", "").split(",") if t]:
            if txid not in by_id:
                raise SimError("EOrder:Invalid order")
            o = by_id[txid]
            if userref is not None and o.userref != userref:
                continue
            self._settle_pending([o])
            out[txid] = self.sim.order_info(o, self._trades_flag())
        return out

    def m_CancelOrder(self) -> dict[str, Any]:
        ref = self.q.get("txid", "")
        cl = self.q.get("cl_ord_id")
        live = [o for o in self.sim.orders if o.status in ("open", "pending")]
        if cl is not None:
            hit = [o for o in live if o.cl_ord_id == cl]
        elif ref.isdigit():  # Kraken: an integer txid is a userref and cancels all with it
            hit = [o for o in live if o.userref == int(ref)]
        else:
            hit = [o for o in live if o.txid == ref]
        if not hit:
            raise SimError("EOrder:Unknown order")
        for o in hit:
            self.sim._close(o, "canceled", self.sim.now_ms, "User requested")
        return {"count": len(hit)}

    def m_CancelAll(self) -> dict[str, Any]:
        live = [o for o in self.sim.orders if o.status in ("open", "pending")]
        for o in live:
            self.sim._close(o, "canceled", self.sim.now_ms, "User requested")
        return {"count": len(live)}

    def m_CancelAllOrdersAfter(self) -> dict[str, Any]:
        sim = self.sim
        try:
            timeout = int(self.q.get("timeout", ""))
        except ValueError:
            raise SimError("EGeneral:Invalid arguments:timeout") from None
        sim.deadline_ms = sim.now_ms + timeout * 1000 if timeout > 0 else None
        trigger = _iso(sim.deadline_ms) if sim.deadline_ms is not None else "0"
        return {"currentTime": _iso(sim.now_ms), "triggerTime": trigger}

    def m_TradesHistory(self) -> dict[str, Any]:
        trades = {}
        for f in reversed(self.sim.fills):
            o: SimOrder = f["order"]
            trades[f["id"]] = {
                "ordertxid": o.txid,
                "postxid": "TKH2SE-M7IF5-CFI7LT",
                "pair": o.pair,
                "time": f["time_ms"] / 1000,
                "type": o.side,
                "ordertype": o.ordertype,
                "price": f"{f['price']:.8f}",
                "cost": f"{f['cost']:.8f}",
                "fee": f"{f['fee']:.8f}",
                "vol": f"{f['vol']:.8f}",
                "margin": "0.00000",
                "misc": "",
                "maker": False,
            }
        return {"trades": trades, "count": len(trades)}


class _SimServer(ThreadingHTTPServer):
    daemon_threads = True
    sim: KrakenSim

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Dropped connections (the "lost" faults) are expected, not errors.
        return
