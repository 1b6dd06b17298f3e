"""The ASGI application: pages, ``/api/v1``, ``/metrics``, the static files, and the one door
that writes (``POST /api/v1/pause|resume|kill``, only with the serve token).

Reads open the ledger read-only per request (Starlette runs the sync endpoints in its thread
pool, and each thread needs its own SQLite connection). A control goes through
:class:`tradekit.ledger.SideLedger`, as ``tradekit pause`` does: the loop applies it within one
poll.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradekit.contracts import finite
from tradekit.errors import InputError, UsageError
from tradekit.ledger import LedgerView
from tradekit.report.snapshot import Snapshot
from tradekit.report.snapshot import build as build_snapshot
from tradekit.report.snapshot import load as load_snapshot
from tradekit.serve import api, files, pages, records
from tradekit.serve.html import Page, day_ms, document, esc
from tradekit.serve.site import Site

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
CONTROLS = ("pause", "resume", "kill")
CHART_LIMIT = 2000
# Clickjacking cannot press a kill button in a frame; scripts and styles only from here.
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"frame-ancestors 'none'",
    ),
]


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(finite(doc), sort_keys=True, separators=(",", ":"))
    return Response(body, status, headers, media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


def _int(q: Any, name: str, default: int, *, low: int = 0, high: int = 10_000) -> int:
    text = q.get(name)
    if text in (None, ""):
        return default
    try:
        v = int(text)
    except ValueError:
        raise UsageError(f"{name}: expected an integer, got {text!r}") from None
    if not low <= v <= high:
        raise UsageError(f"{name}: must be between {low} and {high}, got {v}")
    return v


def _day(q: Any, name: str, *, end: bool = False) -> int | None:
    text = q.get(name)
    if not text:
        return None
    v = day_ms(text, end=end)
    if v is None:
        raise UsageError(f"{name}: expected a date YYYY-MM-DD, got {text!r}")
    return v


class Guard:
    """Pure ASGI middleware: refuses a ``Host`` this server does not answer to (DNS
    rebinding) and adds the security headers to every response."""

    def __init__(self, app: ASGIApp, site: Site) -> None:
        self.app = app
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if not self.site.host_allowed(host):
            resp = PlainTextResponse(
                f"Host {host!r} is not one this dashboard answers to: add it to [serve] "
                "allowed_hosts, or use the address it listens on",
                status_code=421,
            )
            await resp(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


API_READS = (
    "status",
    "balance",
    "profit",
    "performance",
    "daily",
    "trades",
    "positions",
    "orders",
    "decisions",
    "events",
    "model",
    "candidates",
    "deploys",
    "equity",
    "candles",
    "controls",
)
PAGES = (
    ("/", "overview"),
    ("/positions", "positions"),
    ("/trades", "trades"),
    ("/chart", "chart"),
    ("/decisions", "decisions"),
    ("/events", "events"),
    ("/models", "models"),
    ("/deploys", "deploys"),
)


class Reads:
    """The GET documents of ``/api/v1``; each runs inside one read transaction of the ledger
    (see :func:`build_app`), so its numbers agree with each other."""

    def __init__(self, site: Site) -> None:
        self.site = site

    def authorized(self, request: Request) -> bool:
        """Whether the request carries the serve token (compared in constant time)."""
        if not self.site.token:
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        return hmac.compare_digest(given.strip().encode(), self.site.token.encode())

    def snap(self, v: LedgerView) -> Snapshot:
        """The bot now, from the request's own read transaction."""
        return build_snapshot(v, ledger=str(self.site.ledger))

    def status(self, v: LedgerView, r: Request) -> Any:
        return self.snap(v).as_json()

    def balance(self, v: LedgerView, r: Request) -> Any:
        return api.balance(v, self.snap(v))

    def profit(self, v: LedgerView, r: Request) -> Any:
        return api.profit(v, self.snap(v))

    def performance(self, v: LedgerView, r: Request) -> Any:
        return api.performance(v)

    def daily(self, v: LedgerView, r: Request) -> Any:
        q = r.query_params
        until = _day(q, "until", end=True)
        days = _int(q, "days", 7, low=1, high=3660)
        return api.daily(v, days=days, until_ms=until or int(time.time() * 1000))

    def trades(self, v: LedgerView, r: Request) -> Any:
        q = r.query_params
        return api.trades(
            v,
            limit=_int(q, "limit", 100, low=1),
            offset=_int(q, "offset", 0, high=2**31),
            symbol=q.get("symbol") or None,
            reason=q.get("reason") or None,
            start_ms=_day(q, "from"),
            end_ms=_day(q, "to", end=True),
        )

    def positions(self, v: LedgerView, r: Request) -> Any:
        return api.positions(v, self.snap(v))

    def orders(self, v: LedgerView, r: Request) -> Any:
        q = r.query_params
        open_only = q.get("status", "open") == "open"
        return api.orders(v, open_only=open_only, limit=_int(q, "limit", 100, low=1))

    def decisions(self, v: LedgerView, r: Request) -> Any:
        q = r.query_params
        return api.decisions(
            v,
            symbol=q.get("symbol") or None,
            action=q.get("action") or None,
            reason=q.get("reason") or None,
            limit=_int(q, "limit", 200, low=1),
            before_id=_int(q, "before_id", 0, high=2**62) or None,
        )

    def events(self, v: LedgerView, r: Request) -> Any:
        q = r.query_params
        return api.events(
            v,
            warnings_only=q.get("level") == "warning",
            kind=q.get("kind") or None,
            limit=_int(q, "limit", 200, low=1),
        )

    def model(self, v: LedgerView, r: Request) -> Any:
        return {**files.model_info(self.site.model_dir), "running_version": _running(v)}

    def candidates(self, v: LedgerView, r: Request) -> Any:
        site = self.site
        return {"candidates": files.candidates(site.model_dir, site.ledger, site.candidates)}

    def deploys(self, v: LedgerView, r: Request) -> Any:
        return files.deploys(self.site.deploy_log)

    def equity(self, v: LedgerView, r: Request) -> Any:
        return api.equity(v, limit=_int(r.query_params, "limit", CHART_LIMIT, low=1, high=10**5))

    def candles(self, v: LedgerView, r: Request) -> Any:
        symbol = r.query_params.get("symbol", "")
        if symbol not in v.symbols():
            raise UsageError(f"symbol: {symbol!r} is not one of the ledger's {v.symbols()}")
        limit = _int(r.query_params, "limit", 500, low=1, high=20_000)
        site = self.site
        got = files.candles(site.store, site.exchange, site.timeframe, symbol, limit)
        return api.asset(v, site, symbol, got, limit=limit)

    def controls(self, v: LedgerView, r: Request) -> Any:
        return api.controls(v, authorized=self.authorized(r), token_set=bool(self.site.token))


def _running(view: LedgerView) -> str | None:
    run = view.last_run()
    return run["model_version"] if run is not None else None


class Screens:
    """The pages, each from one read of the ledger."""

    def __init__(self, reads: Reads) -> None:
        self.reads = reads
        self.site = reads.site

    def overview(self, v: LedgerView, r: Request) -> Page:
        return pages.overview(self.site, v, self.reads.snap(v))

    def positions(self, v: LedgerView, r: Request) -> Page:
        return pages.positions(self.site, v, self.reads.snap(v))

    def trades(self, v: LedgerView, r: Request) -> Page:
        return records.trades(self.site, v, r.query_params)

    def chart(self, v: LedgerView, r: Request) -> Page:
        return pages.chart(self.site, v, self.reads.snap(v), r.query_params.get("symbol"))

    def decisions(self, v: LedgerView, r: Request) -> Page:
        return records.decisions(self.site, v, r.query_params)

    def events(self, v: LedgerView, r: Request) -> Page:
        return records.events(self.site, v, r.query_params)

    def models(self, v: LedgerView, r: Request) -> Page:
        return records.models(self.site, v, self.reads.snap(v))

    def deploys(self, v: LedgerView, r: Request) -> Page:
        return records.deploys(self.site)


Handler = Callable[[LedgerView, Request], Any]


def build_app(site: Site) -> Starlette:
    """The whole server for one ledger and config."""
    from tradekit.serve import metrics

    registry = metrics.registry(site)
    reads = Reads(site)
    screens = Screens(reads)

    def reader(fn: Handler) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                with LedgerView(site.ledger) as view, view.snapshot():
                    return json_response(fn(view, request))
            except UsageError as e:
                return _error(400, str(e))
            except InputError as e:
                return _error(503, str(e))

        return endpoint

    def page(fn: Handler) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                with LedgerView(site.ledger) as view, view.snapshot():
                    p: Page = fn(view, request)
                status = 200
            except InputError as e:
                p = Page("tradekit", f'<p class="warn">{esc(str(e))}</p>')
                status = 503
            if request.query_params.get("fragment") == "live":
                return HTMLResponse(p.live, status)
            text = document(
                title=p.title,
                path=request.url.path,
                shell=p.shell,
                live=p.live,
                refresh_s=site.refresh_s,
                charts=p.charts,
            )
            ms = (time.perf_counter() - t0) * 1000
            return HTMLResponse(text, status, headers={"server-timing": f"render;dur={ms:.1f}"})

        return endpoint

    def scrape(request: Request) -> Response:
        body, ctype = metrics.render(registry)
        return Response(body, media_type=ctype)

    routes: list[BaseRoute] = [Route(path, page(getattr(screens, name))) for path, name in PAGES]
    routes += [Route(f"/api/v1/{name}", reader(getattr(reads, name))) for name in API_READS]
    routes += [
        Route(f"/api/v1/{command}", _control(site, command, reads.authorized), methods=["POST"])
        for command in CONTROLS
    ]
    routes += [
        Route("/api/v1/ping", lambda request: json_response({"status": "pong"})),
        Route("/metrics", scrape),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, max_body_size=4096)
    app.add_middleware(Guard, site=site)
    return app


def _control(
    site: Site, command: str, authorized: Callable[[Request], bool]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if not site.token:
            return _error(
                401,
                "controls are off: set TRADEKIT_SERVE_TOKEN and restart serve",
                {"www-authenticate": "Bearer"},
            )
        if not authorized(request):
            return _error(
                401,
                "a valid 'Authorization: Bearer <serve token>' header is needed",
                {"www-authenticate": "Bearer"},
            )
        if command == "kill":
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict) or body.get("confirm") != "kill":
                return _error(400, 'kill needs a confirmation: send the JSON {"confirm": "kill"}')
        try:
            doc = await run_in_threadpool(_request, site, command)
        except InputError as e:
            return _error(503, str(e))
        client = request.client.host if request.client else "?"
        log.warning("%s requested from the dashboard (client %s)", command, client)
        return json_response(doc, 202)

    return endpoint


def _request(site: Site, command: str) -> dict[str, Any]:
    from tradekit.ledger import SideLedger

    running = load_snapshot(site.ledger).running  # also checks the ledger is there
    with SideLedger(site.ledger) as side:
        cid = side.request(command)
    return {
        "status": f"{command} requested",
        "command": command,
        "id": cid,
        "running": running,
        "applies": "the running loop applies it within one poll"
        if running
        else "no loop is running: the next `tradekit run` applies it first",
    }
