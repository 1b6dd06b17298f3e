"""``tradekit fetch``: closed candles from an exchange (or the offline sample) into files.

Candles come from the OHLC endpoint, paginated with ``since`` until ``--until`` or now, or
(``from_trades``) are built from the public trade tape, which reaches back to the start of a
market on Kraken where OHLC stops at the 720 most recent candles. With a store, each symbol
resumes after its newest stored candle and finished candles are saved every few seconds, so a
killed fetch loses at most that much and the next run continues without gaps or duplicates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from tradekit.data import candles
from tradekit.data.exchange import (
    RetryPolicy,
    call,
    exchange_now_ms,
    load_markets,
    open_exchange,
    page_limit,
    resolve_symbol,
    resolve_timeframe,
)
from tradekit.data.records import FetchRequest, FetchResult, SymbolResult
from tradekit.data.store import Store
from tradekit.errors import UsageError
from tradekit.timeutil import fmt_ms, timeframe_ms

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

KRAKEN_OHLC_DEPTH = 720
TRADES_PAGE = 1000

Progress = Callable[[str, int], None]  # (symbol, cursor ms)


# -- sources ---------------------------------------------------------------------------------


class _Counter:
    def __init__(self) -> None:
        self.n = 0


def ohlc_pages(
    ex: Any,
    symbol: str,
    timeframe: str,
    since_ms: int,
    end_ms: int,
    retry: RetryPolicy,
    counter: _Counter,
) -> Iterator[list[list[float]]]:
    """Pages of closed candles with open time in [since, end), walking forward with since."""
    tf = timeframe_ms(timeframe)
    limit = page_limit(ex)
    cursor = since_ms
    while cursor < end_ms:
        counter.n += 1
        rows = call(
            ex,
            ex.fetch_ohlcv,
            symbol,
            timeframe,
            cursor,
            limit,
            retry=retry,
            what=f"OHLC {symbol} {timeframe}",
        )
        # Closed only: the exchange's last row is usually the candle still forming.
        page = [r for r in rows if r[0] >= cursor and r[0] + tf <= end_ms]
        if not page:
            return
        page.sort(key=lambda r: r[0])
        yield page
        nxt = int(page[-1][0]) + tf
        if nxt <= cursor:
            return
        cursor = nxt


class _TradeBuckets:
    """Aggregates time-ordered trades into candles; a candle is final once a later trade,
    or the end of the span, has been seen."""

    def __init__(self, tf_ms: int) -> None:
        self.tf = tf_ms
        self.open: dict[int, list[float]] = {}  # bucket -> [o, h, l, c, v]

    def add(self, ts: int, price: float, amount: float) -> None:
        b = ts - ts % self.tf
        c = self.open.get(b)
        if c is None:
            self.open[b] = [price, price, price, price, amount]
        else:
            c[1] = max(c[1], price)
            c[2] = min(c[2], price)
            c[3] = price
            c[4] += amount

    def pop_closed(self, before_ms: int) -> list[list[float]]:
        """Candles whose interval ends at or before ``before_ms``."""
        done = sorted(b for b in self.open if b + self.tf <= before_ms)
        return [[b, *self.open.pop(b)] for b in done]


def trade_pages(
    ex: Any,
    symbol: str,
    timeframe: str,
    since_ms: int,
    end_ms: int,
    retry: RetryPolicy,
    counter: _Counter,
) -> Iterator[list[list[float]]]:
    """Pages of closed candles built from public trades in [since, end).

    On Kraken the pages follow the ``last`` cursor that each Trades answer carries (ccxt
    appends it to the last trade's ``info``); elsewhere they advance by trade time and drop
    trades already seen.
    """
    tf = timeframe_ms(timeframe)
    buckets = _TradeBuckets(tf)
    kraken = ex.id == "kraken"
    cursor_ms = since_ms
    kraken_cursor: str | None = None
    seen_at_cursor: set[str] = set()
    while True:
        counter.n += 1
        if kraken_cursor is not None:
            trades = call(
                ex,
                ex.fetch_trades,
                symbol,
                None,
                TRADES_PAGE,
                {"since": kraken_cursor},
                retry=retry,
                what=f"trades {symbol}",
            )
        else:
            trades = call(
                ex,
                ex.fetch_trades,
                symbol,
                cursor_ms,
                TRADES_PAGE,
                retry=retry,
                what=f"trades {symbol}",
            )
        fresh = [
            t
            for t in trades
            if t["timestamp"] is not None
            and t["timestamp"] >= since_ms
            and str(t.get("id")) not in seen_at_cursor
        ]
        fresh.sort(key=lambda t: t["timestamp"])
        for t in fresh:
            if t["timestamp"] < end_ms:
                buckets.add(int(t["timestamp"]), float(t["price"]), float(t["amount"]))
        last_ts = int(fresh[-1]["timestamp"]) if fresh else None
        if last_ts is None or last_ts >= end_ms:
            yield buckets.pop_closed(end_ms)  # the span is exhausted: all its candles are final
            return
        closed = buckets.pop_closed(last_ts - last_ts % tf)
        if closed:
            yield closed
        if kraken:
            info = trades[-1].get("info")
            nxt = info[-1] if isinstance(info, list) and len(info) > 7 else None
            if nxt is None or nxt == kraken_cursor:
                yield buckets.pop_closed(end_ms)
                return
            kraken_cursor = str(nxt)
        else:
            if last_ts == cursor_ms and not fresh:
                return
            if last_ts > cursor_ms:
                seen_at_cursor = set()
            cursor_ms = last_ts
            seen_at_cursor |= {str(t.get("id")) for t in fresh if t["timestamp"] == last_ts}


# -- orchestration ---------------------------------------------------------------------------


def _start_ms(
    req: FetchRequest, store: Store | None, symbol: str, tf: int, end: int, depth: int
) -> int:
    """Where a symbol's fetch begins: after the newest stored candle, else --since, else one
    page back from now."""
    if store is not None:
        last = store.last_ms(req.exchange, req.timeframe, symbol)
        if last is not None:
            resume = last + tf
            return resume if req.since_ms is None else max(resume, req.since_ms)
    if req.since_ms is not None:
        return req.since_ms - req.since_ms % tf
    return end - end % tf - depth * tf


def run_fetch(
    req: FetchRequest, *, keep_frame: bool, progress: Progress | None = None
) -> FetchResult:
    """Fetch every symbol of ``req``; append to the store and/or keep the frame."""
    t0 = time.perf_counter()
    tf = timeframe_ms(req.timeframe)
    if req.until_ms is not None and req.since_ms is not None and req.until_ms <= req.since_ms:
        raise UsageError(
            f"--until {fmt_ms(req.until_ms)} is not after --since {fmt_ms(req.since_ms)}"
        )
    store = Store(req.store) if req.store else None
    if req.exchange == "sample":
        from tradekit.data.sample import fetch_sample

        return fetch_sample(req, store, keep_frame=keep_frame, started=t0)

    ex = open_exchange(
        req.exchange, api_url=req.api_url, timeout_s=req.timeout_s, rate_limit=req.rate_limit
    )
    load_markets(ex, req.retry)
    symbols = [resolve_symbol(ex, s) for s in req.symbols]
    resolve_timeframe(ex, req.timeframe)
    if req.from_trades and not ex.has.get("fetchTrades"):
        raise UsageError(f"{ex.id} offers no public trades; --from-trades cannot work there")
    now = exchange_now_ms(ex, req.retry)
    end = now if req.until_ms is None else min(req.until_ms, now)
    depth = KRAKEN_OHLC_DEPTH if ex.id == "kraken" else page_limit(ex)
    results = []
    frames = []
    for symbol in symbols:
        res = SymbolResult(symbol)
        start = _start_ms(req, store, symbol, tf, end, depth)
        oldest_served = now - now % tf - depth * tf
        if ex.id == "kraken" and not req.from_trades and start < oldest_served:
            res.warnings.append(
                f"{symbol}: Kraken's OHLC endpoint serves only the most recent "
                f"{KRAKEN_OHLC_DEPTH} candles ({req.timeframe}: from {fmt_ms(oldest_served)}); "
                f"{(min(oldest_served, end) - start) // tf} candles from {fmt_ms(start)} cannot "
                "come from it. For deeper history use --from-trades (one request per 1,000 "
                "trades) or 'tradekit data import' with Kraken's OHLCVT archive."
            )
            log.warning(res.warnings[-1])
        pages_fn = trade_pages if req.from_trades else ohlc_pages
        counter = _Counter()
        pending: list[pd.DataFrame] = []
        kept: list[pd.DataFrame] = []
        last_flush = time.monotonic()

        def flush(
            symbol: str = symbol, res: SymbolResult = res, pending: list[pd.DataFrame] = pending
        ) -> None:
            if store is not None and pending:
                res.added += store.append(
                    req.exchange, req.timeframe, symbol, candles.combine(pending)
                )
            pending.clear()

        try:
            for page in pages_fn(ex, symbol, req.timeframe, start, end, req.retry, counter):
                if not page:
                    continue
                chunk = candles.from_rows(symbol, page)
                res.fetched += len(chunk)
                first, last = int(page[0][0]), int(page[-1][0])
                res.first_ms = first if res.first_ms is None else min(res.first_ms, first)
                res.last_ms = last if res.last_ms is None else max(res.last_ms, last)
                pending.append(chunk)
                if keep_frame:
                    kept.append(chunk)
                if progress:
                    progress(symbol, last + tf)
                if store is not None and time.monotonic() - last_flush >= req.flush_s:
                    flush()
                    last_flush = time.monotonic()
        except BaseException:
            flush()  # keep every finished candle: the next run resumes after it
            raise
        flush()
        if store is None:
            res.added = res.fetched
        if res.first_ms is not None and res.first_ms > start + tf and not res.warnings:
            res.warnings.append(
                f"{symbol}: asked from {fmt_ms(start)}, the exchange served from "
                f"{fmt_ms(res.first_ms)}"
            )
            log.warning(res.warnings[-1])
        res.requests = counter.n
        results.append(res)
        if keep_frame:
            frames.extend(kept)
    frame = None
    if keep_frame:
        frame = candles.combine(frames)
    return FetchResult(req.exchange, req.timeframe, results, frame, time.perf_counter() - t0)


def read_span(
    store: Store,
    exchange: str,
    timeframe: str,
    symbols: list[str],
    since_ms: int | None,
    until_ms: int | None,
) -> pd.DataFrame:
    """The stored candles of ``symbols`` in [since, until), for ``-o`` next to ``--store``."""
    parts = []
    for s in symbols:
        df = store.read(exchange, timeframe, s)
        if df is not None:
            parts.append(candles.between(df, since_ms, until_ms))
    return candles.combine(parts)
