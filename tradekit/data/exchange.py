"""Exchange access through ccxt: construction, URL override, retries, symbol checks.

ccxt is imported inside these functions only, so the CLI starts without it.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from tradekit import interrupt
from tradekit.errors import ExternalError, InputError, MissingDependency, UsageError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0


def _import_ccxt() -> Any:
    try:
        import ccxt
    except ImportError:  # pragma: no cover - ccxt is a core dependency
        raise MissingDependency("ccxt is not installed: pip install ccxt") from None
    return ccxt


def _lean_ccxt(exchange_id: str) -> Any | None:
    """ccxt with only ``exchange_id``'s module loaded, or None when that is not possible.

    ``import ccxt`` imports all of its ~100 exchanges: 0.5 s and 76 MB here, against 0.2 s and
    39 MB for one. The trading loop needs one, so it puts a bare ``ccxt`` package object in
    ``sys.modules`` (with ccxt's error classes, which ccxt code and ours read from it) and lets
    Python import ``ccxt.<id>`` and its base modules below it, unchanged."""
    import importlib
    import importlib.util
    import sys
    import types

    mod = sys.modules.get("ccxt")
    if mod is None:
        spec = importlib.util.find_spec("ccxt")
        if spec is None or not spec.submodule_search_locations:
            return None
        mod = types.ModuleType("ccxt")
        mod.__path__ = list(spec.submodule_search_locations)
        mod.__spec__ = spec
        mod.__file__ = spec.origin
        mod.__package__ = "ccxt"
        mod.exchanges = []  # type: ignore[attr-defined]
        mod.lean = True  # type: ignore[attr-defined]
        sys.modules["ccxt"] = mod
        errors = importlib.import_module("ccxt.base.errors")
        for name in errors.__all__:
            setattr(mod, name, getattr(errors, name))
    if hasattr(mod, exchange_id):
        return mod
    if not getattr(mod, "lean", False):
        return None  # the whole of ccxt is loaded and has no such exchange
    try:
        cls = getattr(importlib.import_module(f"ccxt.{exchange_id}"), exchange_id)
    except (ImportError, AttributeError):
        return None
    setattr(mod, exchange_id, cls)
    mod.exchanges.append(exchange_id)
    return mod


def open_exchange(
    exchange_id: str,
    *,
    api_url: str = "",
    timeout_s: float = 30.0,
    rate_limit: bool = True,
    api_key: str | None = None,
    secret: str | None = None,
    password: str | None = None,
    lean: bool = False,
) -> Any:
    """A ccxt client for ``exchange_id``; ``api_url`` replaces the API host of every endpoint.
    ``lean`` loads only that exchange's part of ccxt (the trading loop: see ``_lean_ccxt``).

    For Kraken both ``urls.api.public`` and ``urls.api.private`` are replaced: replacing only
    ``public`` would send private calls to the real host.
    """
    ccxt = (_lean_ccxt(exchange_id) if lean else None) or _import_ccxt()
    if exchange_id not in ccxt.exchanges:
        close = difflib.get_close_matches(exchange_id, ccxt.exchanges, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see ccxt.exchanges)"
        raise UsageError(f"unknown exchange {exchange_id!r}{hint}")
    params: dict[str, Any] = {"timeout": int(timeout_s * 1000), "enableRateLimit": rate_limit}
    if api_key:
        params["apiKey"] = api_key
    if secret:
        params["secret"] = secret
    if password:
        params["password"] = password
    # Keep the last parsed body so that `call` can tell an unparseable answer (ccxt returns
    # it as text, which then reads as "no data") from a genuinely empty one.
    params["enableLastJsonResponse"] = True
    params["enableLastHttpResponse"] = True
    ex = getattr(ccxt, exchange_id)(params)
    if api_url:
        ex.urls["api"] = _rebase(ex.urls.get("api"), api_url)
    return ex


def _rebase(urls: Any, base: str) -> Any:
    """Replace scheme and host of every URL in a ccxt ``urls['api']`` tree, keeping paths."""
    if isinstance(urls, str):
        path = urlparse(urls.replace("{hostname}", "host")).path
        return base.rstrip("/") + path
    if isinstance(urls, dict):
        return {k: _rebase(v, base) for k, v in urls.items()}
    return urls


def describe(e: BaseException) -> str:
    """One line for a ccxt exception: its class and the start of its message."""
    text = " ".join(str(e).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def call(
    ex: Any, fn: Callable[..., T], *args: Any, retry: RetryPolicy, what: str, **kwargs: Any
) -> T:
    """Call a ccxt method, retrying transient faults with exponential backoff.

    Transient: ccxt's NetworkError family (timeouts, HTTP 5xx, DDoSProtection, which is what
    Kraken's ``EAPI:Rate limit exceeded`` becomes, RateLimitExceeded) and unparseable answers
    (BadResponse). Anything else, or a transient fault that outlasts the retries, becomes an
    ExternalError (exit 4) naming the exchange.
    """
    ccxt = _import_ccxt()
    delay = retry.backoff_s
    for attempt in range(retry.retries + 1):
        try:
            ex.last_http_response = ex.last_json_response = None
            result = fn(*args, **kwargs)
            body = ex.last_http_response
            if isinstance(body, str) and body.strip() and ex.last_json_response is None:
                raise ccxt.BadResponse(f"{ex.id} answered with malformed JSON: {body[:80]!r}")
            return result
        except ccxt.BadSymbol as e:
            raise UsageError(f"{ex.id}: {what}: {describe(e)}") from None
        except (ccxt.NetworkError, ccxt.BadResponse) as e:
            if attempt >= retry.retries:
                raise ExternalError(
                    f"{ex.id}: {what} failed after {retry.retries + 1} attempts: {describe(e)}"
                ) from None
            log.warning(
                "%s: %s: %s; retry %d/%d in %.1fs",
                ex.id,
                what,
                describe(e),
                attempt + 1,
                retry.retries,
                delay,
            )
            interrupt.sleep(delay)  # a SIGTERM wakes it (and, in `run`, stops at this point)
            delay = min(max(delay * 2, 0.0), retry.max_backoff_s)
        except ccxt.BaseError as e:
            raise ExternalError(f"{ex.id}: {what} failed: {describe(e)}") from None
    raise AssertionError("unreachable")  # pragma: no cover


MARKETS_MAX_AGE_S = 86_400.0  # a cached market list older than a day is fetched again


def load_markets(ex: Any, retry: RetryPolicy, *, cache: Path | None = None) -> dict[str, Any]:
    """The exchange's markets. With ``cache`` (a JSON file), markets fetched less than
    ``MARKETS_MAX_AGE_S`` ago are read from it instead: a restart then asks the exchange nothing
    before its first cycle (Kraken: two requests, and the rate limit's pause after each). A
    cache that cannot be read is simply fetched again."""
    import json
    import time

    if cache is not None:
        try:
            doc = json.loads(cache.read_text(encoding="utf-8"))
            if doc.get("exchange") == ex.id and time.time() - doc["saved_s"] < MARKETS_MAX_AGE_S:
                ex.set_markets(doc["markets"], doc["currencies"])
                return dict(ex.markets)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    markets: dict[str, Any] = call(ex, ex.load_markets, retry=retry, what="loading markets")
    if cache is not None:
        from tradekit.fsutil import atomic_path

        doc = {
            "exchange": ex.id,
            "saved_s": time.time(),
            "markets": ex.markets,
            "currencies": ex.currencies,
        }
        try:
            with atomic_path(cache) as tmp:
                Path(tmp).write_text(json.dumps(doc, default=str), encoding="utf-8")
        except (OSError, InputError) as e:
            log.warning("markets cache %s not written: %s", cache, e)
    return markets


def resolve_symbol(ex: Any, symbol: str) -> str:
    """The symbol itself when the exchange lists it; otherwise a UsageError with close matches.

    Exchange ids and altnames (XBTUSD, XXBTZUSD) are mapped to their unified symbol.
    """
    markets: dict[str, Any] = ex.markets or {}
    if symbol in markets:
        return symbol
    by_id = {}
    for sym, m in markets.items():
        by_id[str(m.get("id", "")).upper()] = sym
        alt = (m.get("info") or {}).get("altname")
        if alt:
            by_id[str(alt).upper()] = sym
    squashed = symbol.replace("/", "").replace("-", "").upper()
    if squashed in by_id:
        raise UsageError(f"{ex.id}: {symbol!r} is written {by_id[squashed]!r} (ccxt unified form)")
    names = list(markets)
    close = difflib.get_close_matches(symbol.upper(), names, n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else f" ({len(names)} markets listed)"
    raise UsageError(f"{ex.id}: unknown symbol {symbol!r}{hint}")


def resolve_timeframe(ex: Any, timeframe: str) -> str:
    supported = list((ex.timeframes or {}).keys())
    if not supported or timeframe in supported:
        return timeframe
    close = difflib.get_close_matches(timeframe, supported, n=3, cutoff=0.3)
    hint = f"; close matches: {', '.join(close)}" if close else ""
    raise UsageError(
        f"{ex.id}: timeframe {timeframe!r} is not offered{hint} (supported: {', '.join(supported)})"
    )


def exchange_now_ms(ex: Any, retry: RetryPolicy) -> int:
    """The exchange's clock, so 'closed candle' does not depend on a Pi's drifting clock."""
    from tradekit.timeutil import now_ms

    if ex.has.get("fetchTime"):
        try:
            t = call(
                ex,
                ex.fetch_time,
                retry=RetryPolicy(retries=min(retry.retries, 1), backoff_s=retry.backoff_s),
                what="reading the server time",
            )
            if t:
                return int(t)
        except ExternalError as e:
            log.warning("%s; using the local clock", e)
    return now_ms()


def page_limit(ex: Any) -> int:
    """Candles per OHLC request: the exchange's own maximum where ccxt knows it."""
    try:
        limit = ex.features["spot"]["fetchOHLCV"]["limit"]
    except (KeyError, TypeError, AttributeError):
        limit = None
    return int(limit) if limit else 1000
