"""``tradekit fetch``: closed candles from an exchange or the offline sample."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import OutputOpt
from tradekit.errors import UsageError


def fetch(
    ctx: typer.Context,
    symbols: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SYMBOL...",
            help="Unified symbols such as BTC/USD [default: [exchange] symbols].",
            show_default=False,
        ),
    ] = None,
    timeframe: Annotated[
        str | None,
        typer.Option("--timeframe", "-t", help="Candle timeframe [default: [exchange] timeframe]."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Start: ISO date, epoch seconds/ms, or an age like 30d [default: after the newest "
            "stored candle, else one page back]."
        ),
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (exclusive) [default: now].")] = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            "--exchange",
            "-e",
            help="ccxt exchange id, or 'sample' for the bundled offline candles "
            "[default: [exchange] id].",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            metavar="URL",
            help="Base URL replacing the exchange's API host [default: [exchange] api_url].",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            metavar="DIR",
            help="Candle store: append only what is missing, one Parquet per "
            "exchange/timeframe/symbol.",
        ),
    ] = None,
    output: OutputOpt = None,
    from_trades: Annotated[
        bool,
        typer.Option(
            "--from-trades",
            help="Build candles from the public trade tape (deep Kraken history; "
            "one request per 1,000 trades).",
        ),
    ] = False,
    fill_gaps: Annotated[
        bool,
        typer.Option(
            "--fill-gaps",
            help="In -o output, insert flat zero-volume candles for intervals without trades.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a fetch/1 summary on stdout.")
    ] = False,
) -> None:
    """Fetch closed OHLCV candles (ohlcv/1) through ccxt, paginating until --until or now."""
    from tradekit.cli import output as out
    from tradekit.contracts import write_ohlcv
    from tradekit.data import candles
    from tradekit.data.exchange import RetryPolicy
    from tradekit.data.fetch import read_span, run_fetch
    from tradekit.data.records import FetchRequest
    from tradekit.data.store import Store
    from tradekit.timeutil import fmt_ms, parse_time, timeframe_ms

    cfg = state(ctx).config
    if not store and not output:
        raise UsageError("nothing to write: give -o FILE (- for stdout) and/or --store DIR")
    if as_json and output == "-":
        raise UsageError("--json and -o - both want stdout; write the candles to a file")
    ex_id = exchange or cfg.exchange.id
    tf = timeframe or cfg.exchange.timeframe
    tf_ms = timeframe_ms(tf)
    wanted = list(symbols or cfg.exchange.symbols)
    if not wanted:
        raise UsageError("no symbols: name them or set [exchange] symbols")
    req = FetchRequest(
        exchange=ex_id,
        symbols=wanted,
        timeframe=tf,
        since_ms=parse_time(since, option="--since") if since else None,
        until_ms=parse_time(until, option="--until") if until else None,
        store=store,
        from_trades=from_trades,
        api_url=api_url if api_url is not None else cfg.exchange.api_url,
        timeout_s=cfg.exchange.timeout_s,
        rate_limit=cfg.exchange.rate_limit,
        retry=RetryPolicy(cfg.exchange.retries, cfg.exchange.retry_backoff_s),
        flush_s=cfg.data.flush_s,
    )
    with out.status(f"fetch {ex_id} {tf}") as update:

        def on_page(symbol: str, cursor_ms: int) -> None:
            update(f"fetch {ex_id} {tf} {symbol}: up to {fmt_ms(cursor_ms)}")

        result = run_fetch(req, keep_frame=bool(output) and not store, progress=on_page)
    if output:
        frame = result.frame
        if store:
            frame = read_span(
                Store(store),
                ex_id,
                tf,
                [s.symbol for s in result.symbols],
                req.since_ms,
                req.until_ms,
            )
        assert frame is not None
        filled = 0
        if fill_gaps:
            frame, filled = candles.fill_gaps(frame, tf_ms)
        write_ohlcv(
            frame,
            output,
            {
                "exchange": ex_id,
                "timeframe": tf,
                "filled_gaps": filled,
                "source": "trades" if from_trades else "ohlc",
            },
        )
        if filled:
            out.say(f"filled {filled} missing candles with flat zero-volume candles")
    rows = [
        (
            s.symbol,
            s.fetched,
            s.added if store else "-",
            fmt_ms(s.first_ms),
            fmt_ms(s.last_ms),
            s.requests,
        )
        for s in result.symbols
    ]
    out.table(
        f"fetch {ex_id} {tf} ({result.seconds:.1f}s)",
        ["symbol", "candles", "new in store", "first", "last", "requests"],
        rows,
        justify_right=["candles", "new in store", "requests"],
    )
    if as_json:
        out.emit_json(result.as_json())
