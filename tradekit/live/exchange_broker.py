"""The live broker: orders on a real exchange (Kraken) through ccxt, idempotent by ``userref``.

The one rule that matters: an order whose answer was lost (timeout, 5xx, rate limit, a dropped
connection) may exist on the exchange and may already have filled, so it is never sent again
blindly. The broker looks it up by its ``userref`` (open orders, then closed ones) and sends it
again, with the same ``userref``, only when the exchange does not know it. Kraken does not
reject a second order with the same ``userref``: the look-up is the only protection.

ccxt is imported inside the methods, like in ``tradekit.data.exchange``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

from tradekit import interrupt
from tradekit.data.exchange import RetryPolicy, call, describe, load_markets, resolve_symbol
from tradekit.errors import ConfigError, ExternalError
from tradekit.live.orders import MarketRules, OrderRequest, OrderStatus, Status

log = logging.getLogger(__name__)
T = TypeVar("T")

PERMISSIONS = "Query Funds, Query Open Orders & Trades, Create & Modify Orders, Cancel/Close Orders"
_STATUS: dict[str, Status] = {
    "open": "open",
    "closed": "closed",
    "canceled": "canceled",
    "expired": "canceled",
    "rejected": "rejected",
}
# Kraken order errors that ccxt does not map to InvalidOrder (e.g. "EOrder:Cost minimum not
# met" and "EQuery:Unknown asset pair" become a plain ExchangeError): the order was refused.
_REJECT_MARKERS = ("EOrder:", "EQuery:Unknown asset pair")


def _ccxt() -> Any:
    import ccxt

    return ccxt


class _Through(Exception):
    """Carries a ccxt exception past ``call``'s conversion to ExternalError."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class ExchangeBroker:
    """Places, looks up and cancels orders for the live engine; every call retries transient
    faults with ``retry`` (see ``tradekit.data.exchange.call``)."""

    def __init__(
        self,
        exchange: Any,
        retry: RetryPolicy,
        *,
        quote: str = "USD",
        poll_s: float = 0.25,
        polls: int = 20,
    ) -> None:
        self.ex = exchange
        self.retry = retry
        self.quote = quote
        self.poll_s = poll_s  # wait between status polls of a market order not yet closed
        self.polls = polls

    # -- plumbing -------------------------------------------------------------------------------

    def _refused(self, e: Exception) -> ConfigError:
        return ConfigError(
            f"{self.ex.id}: the API key was refused ({describe(e)}); check the key and secret: "
            f"the key needs only the permissions {PERMISSIONS}, never Withdraw Funds"
        )

    def _is_refusal(self, e: Exception) -> bool:
        ccxt = _ccxt()
        text = str(e)
        return isinstance(e, ccxt.AuthenticationError) or "EAPI:Invalid signature" in text

    def _call(
        self,
        fn: Callable[..., T],
        *args: Any,
        what: str,
        keep: tuple[type[Exception], ...] = (),
        **kwargs: Any,
    ) -> T:
        """``call`` with retries; exceptions in ``keep`` reach the caller as ccxt raised them;
        a refused key becomes a ConfigError."""
        ccxt = _ccxt()

        def guarded(*a: Any, **k: Any) -> T:
            try:
                return fn(*a, **k)
            except ccxt.BaseError as e:
                if isinstance(e, keep) or self._is_refusal(e):
                    raise _Through(e) from e
                raise

        try:
            return call(self.ex, guarded, *args, retry=self.retry, what=what, **kwargs)
        except _Through as t:
            if self._is_refusal(t.error):
                raise self._refused(t.error) from None
            raise t.error from None

    def _markets(self) -> dict[str, Any]:
        if not self.ex.markets:
            self._call(self.ex.load_markets, what="loading markets")
        markets: dict[str, Any] = self.ex.markets
        return markets

    # -- account --------------------------------------------------------------------------------

    def check(self) -> dict[str, float]:
        """Load markets and read the balance: proves the URL, the key and its permissions."""
        load_markets(self.ex, self.retry)
        bal = self.balances()
        bal.setdefault(self.quote, 0.0)
        return bal

    def rules(self, symbol: str) -> MarketRules:
        self._markets()
        m = self.ex.market(resolve_symbol(self.ex, symbol))
        limits, precision = m.get("limits") or {}, m.get("precision") or {}

        def step(p: Any) -> float:
            if p is None:
                return 0.0
            # DECIMAL_PLACES (2) counts digits; TICK_SIZE (4, Kraken) is the step itself.
            return float(10.0 ** -float(p)) if self.ex.precisionMode == 2 else float(p)

        return MarketRules(
            min_qty=float((limits.get("amount") or {}).get("min") or 0.0),
            qty_step=step(precision.get("amount")),
            min_cost=float((limits.get("cost") or {}).get("min") or 0.0),
            price_step=step(precision.get("price")),
        )

    def balances(self) -> dict[str, float]:
        """Total balance per unified currency code (USD, BTC, ...)."""
        self._markets()
        bal = self._call(self.ex.fetch_balance, what="reading the balance")
        return {str(c): float(v) for c, v in (bal.get("total") or {}).items() if v is not None}

    # -- orders ---------------------------------------------------------------------------------

    def place(
        self,
        req: OrderRequest,
        *,
        maybe_sent: bool = False,
        deadline: Callable[[], int | None] | None = None,
    ) -> OrderStatus:
        """Send ``req`` once: a lost answer is resolved by looking the order up by userref.

        ``deadline`` gives, before each attempt, the exchange time (ms) after which Kraken's
        matching engine must reject this request if it has not reached it (AddOrder
        ``deadline``): an attempt lost in a queue can then not fill minutes later, and a
        restart that does not find the order after its deadline knows it never existed. The
        caller records the value before the request leaves."""
        ccxt = _ccxt()
        self._markets()
        if maybe_sent:
            found = self.lookup(req)
            if found is not None:
                log.info("%s: order %s is already on the exchange", self.ex.id, req.key)
                return self._settle(req, found, fresh=False)
        delay, last = self.retry.backoff_s, ""
        for attempt in range(self.retry.retries + 1):
            try:
                order = self._send(req, deadline() if deadline is not None else None)
            except (ccxt.InsufficientFunds, ccxt.InvalidOrder, ccxt.BadSymbol) as e:
                return self._rejected(req, e)
            except ccxt.NetworkError as e:
                last = describe(e)
                log.warning(
                    "%s: placing %s (userref %d): %s; looking it up (%d/%d)",
                    self.ex.id,
                    req.key,
                    req.userref,
                    last,
                    attempt + 1,
                    self.retry.retries + 1,
                )
                interrupt.sleep(delay)
                delay = min(max(delay * 2, 0.0), self.retry.max_backoff_s)
                found = self.lookup(req)
                if found is not None:
                    return self._settle(req, found, fresh=False)
                continue
            except ccxt.BaseError as e:
                if self._is_refusal(e):
                    raise self._refused(e) from None
                if any(m in str(e) for m in _REJECT_MARKERS):
                    return self._rejected(req, e)
                raise ExternalError(f"{self.ex.id}: placing {req.key}: {describe(e)}") from None
            st = self._status(req.key, order)
            st.extra.update(self._extra(req))
            return self._settle(req, st, fresh=True)
        raise ExternalError(
            f"{self.ex.id}: placing {req.key} (userref {req.userref}) failed after "
            f"{self.retry.retries + 1} attempts and the exchange does not list it: {last}"
        )

    def _send(self, req: OrderRequest, deadline_ms: int | None) -> Any:
        params: dict[str, Any] = {"userref": req.userref}
        if deadline_ms is not None:
            params["deadline"] = rfc3339(deadline_ms)
        if req.kind == "stop":
            # ccxt turns type "market" + stopLossPrice into Kraken's ordertype=stop-loss with
            # price=<trigger>; it applies the price and amount precision itself.
            # Plain floats: ccxt drops a numpy float64 trigger and would send a market sell.
            params["stopLossPrice"] = float(req.stop_price)
        return self.ex.create_order(req.symbol, "market", req.side, float(req.qty), None, params)

    def _rejected(self, req: OrderRequest, e: Exception) -> OrderStatus:
        log.warning("%s: order %s rejected: %s", self.ex.id, req.key, describe(e))
        return OrderStatus(
            key=req.key, status="rejected", message=describe(e), extra=self._extra(req)
        )

    def _settle(self, req: OrderRequest, st: OrderStatus, *, fresh: bool) -> OrderStatus:
        """Query a just-placed order for its real status; poll a market order until it is done
        (Kraken's AddOrder answer carries only the txid)."""
        if fresh:
            st = self.refresh(st)
        for _ in range(self.polls):
            # "missing" too is polled: Kraken may list an order a moment after accepting it.
            if st.done or (req.kind != "market" and st.status == "open"):
                break
            interrupt.sleep(self.poll_s)
            st = self.refresh(st)
        return st

    def lookup(self, req: OrderRequest) -> OrderStatus | None:
        """The order with ``req``'s userref on the exchange (open first, then closed), or None."""
        st = self._find(req.key, req.userref)
        if st is not None:
            st.extra.update({k: v for k, v in self._extra(req).items() if k not in st.extra})
        return st

    def _find(self, key: str, userref: int) -> OrderStatus | None:
        self._markets()
        what = f"looking up order {key} (userref {userref})"
        # Open first: an order that closes between the two queries is then still seen.
        for fetch in (self.ex.fetch_open_orders, self.ex.fetch_closed_orders):
            orders = self._call(fetch, params={"userref": userref}, what=what)
            mine = [o for o in orders if _userref(o) == userref]
            if mine:
                mine.sort(key=lambda o: o.get("timestamp") or 0)
                st = self._status(key, mine[0])
                if len(mine) > 1:
                    others = ",".join(str(o.get("id")) for o in mine[1:])
                    log.error("%s: duplicate orders for %s: %s", self.ex.id, key, others)
                    st.extra["duplicates"] = others
                return st
        return None

    def refresh(self, st: OrderStatus) -> OrderStatus:
        """The order's current state on the exchange, queried by txid (by userref without one)."""
        if not st.exchange_id:
            ref = st.extra.get("userref", "")
            found = self._find(st.key, int(ref)) if ref.isdigit() else None
            return found if found is not None else st
        ccxt = _ccxt()
        self._markets()
        try:
            o = self._call(
                self.ex.fetch_order,
                st.exchange_id,
                what=f"querying order {st.exchange_id}",
                keep=(ccxt.InvalidOrder,),
            )
        except ccxt.InvalidOrder as e:  # OrderNotFound, or Kraken's "EOrder:Invalid order"
            return OrderStatus(
                key=st.key,
                exchange_id=st.exchange_id,
                status="missing",
                message=describe(e),
                extra=dict(st.extra),
            )
        new = self._status(st.key, o)
        new.extra = {**st.extra, **new.extra}
        return new

    def cancel(self, st: OrderStatus) -> OrderStatus:
        """Cancel an open order; one that has closed meanwhile is just refreshed."""
        ccxt = _ccxt()
        self._markets()
        ref = st.exchange_id or st.extra.get("userref", "")
        if not ref:
            return st
        try:
            self._call(
                self.ex.cancel_order,
                ref,
                what=f"canceling order {ref}",
                keep=(ccxt.OrderNotFound,),
            )
        except ccxt.OrderNotFound:
            log.info("%s: order %s is no longer open", self.ex.id, ref)
        return self.refresh(st)

    def open_orders(self) -> list[OrderStatus]:
        """Every open order on the account, for reconciliation (key "", extra["userref"])."""
        self._markets()
        orders = self._call(self.ex.fetch_open_orders, what="listing open orders")
        return [self._status("", o) for o in orders]

    # -- parsing --------------------------------------------------------------------------------

    def _extra(self, req: OrderRequest) -> dict[str, str]:
        return {
            "userref": str(req.userref),
            "symbol": req.symbol,
            "side": req.side,
            "kind": req.kind,
        }

    def _status(self, key: str, o: dict[str, Any]) -> OrderStatus:
        """An OrderStatus from a ccxt order; an order with an id and no status is open."""
        oid = str(o.get("id") or "")
        raw = o.get("status")
        status: Status = _STATUS.get(str(raw), "open") if raw else ("open" if oid else "missing")
        filled = float(o.get("filled") or 0.0)
        avg = _num(o.get("average"))
        if filled > 0 and math.isnan(avg):
            avg = _num(o.get("cost")) / filled
        info = o.get("info") or {}
        cost = _num(o.get("cost"))
        when = o.get("lastTradeTimestamp") or _num(info.get("closetm")) * 1000
        extra = {
            k: str(v)
            for k, v in (
                ("userref", _userref(o)),
                ("symbol", o.get("symbol")),
                ("side", o.get("side")),
                ("type", info.get("descr", {}).get("ordertype") if info.get("descr") else None),
            )
            if v not in (None, "", 0)
        }
        reason = info.get("reason")
        return OrderStatus(
            key=key,
            exchange_id=oid,
            status=status,
            filled=filled,
            avg_price=avg if filled > 0 else math.nan,
            fee=self._fee(o, avg),
            message=str(reason) if reason and status != "closed" else "",
            extra=extra,
            cost=cost if filled > 0 and not math.isnan(cost) else math.nan,
            time_ms=int(when) if filled > 0 and when and not math.isnan(when) else None,
        )

    def _fee(self, o: dict[str, Any], avg: float) -> float:
        """The fee in the quote currency (Kraken charges the quote by default, ``fciq``)."""
        fee = o.get("fee") or {}
        cost = _num(fee.get("cost"))
        if math.isnan(cost):
            return 0.0
        cur, symbol = fee.get("currency"), str(o.get("symbol") or "")
        base = symbol.split("/")[0] if "/" in symbol else None
        if cur is not None and cur == base and not math.isnan(avg):
            return cost * avg
        return cost


def rfc3339(ms: int) -> str:
    """Kraken's deadline format, whole seconds rounded up (never earlier than asked)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(-(-ms // 1000), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(v: Any) -> float:
    try:
        return float(v) if v is not None and v != "" else math.nan
    except (TypeError, ValueError):
        return math.nan


def _userref(o: dict[str, Any]) -> int | None:
    raw = (o.get("info") or {}).get("userref")
    try:
        return int(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None
