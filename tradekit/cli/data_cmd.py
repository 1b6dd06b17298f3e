"""``tradekit data``: import Kraken CSVs, check candle files, list the store."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt, OutputOpt
from tradekit.errors import CheckFailed, UsageError

app = typer.Typer(
    help="Candle files: import, check, list.", no_args_is_help=True, rich_markup_mode=None
)


@app.command("import")
def import_(
    ctx: typer.Context,
    files: Annotated[
        list[str],
        typer.Argument(metavar="FILE.csv...", help="Kraken OHLCVT CSV files, e.g. XBTUSD_60.csv."),
    ],
    symbol: Annotated[
        str | None, typer.Option(help="Symbol [default: from the file name].")
    ] = None,
    timeframe: Annotated[
        str | None,
        typer.Option("--timeframe", "-t", help="Timeframe [default: from the file name]."),
    ] = None,
    exchange: Annotated[
        str, typer.Option("--exchange", "-e", help="Exchange id recorded in the metadata.")
    ] = "kraken",
    output: OutputOpt = None,
    store: Annotated[
        str | None, typer.Option(metavar="DIR", help="Merge into this candle store instead.")
    ] = None,
    fill_gaps: Annotated[
        bool,
        typer.Option(
            "--fill-gaps", help="Insert flat zero-volume candles for intervals without trades."
        ),
    ] = False,
) -> None:
    """Read Kraken's downloadable OHLCVT CSV files into ohlcv/1 Parquet."""
    from tradekit.cli import output as out
    from tradekit.contracts import write_ohlcv
    from tradekit.data import candles
    from tradekit.data.importer import read_kraken_csv
    from tradekit.data.store import Store
    from tradekit.timeutil import fmt_ms, timeframe_ms

    state(ctx).config  # a broken config is reported even here  # noqa: B018
    if not output and not store:
        raise UsageError("nothing to write: give -o FILE (- for stdout) or --store DIR")
    if symbol and len(files) > 1:
        raise UsageError("--symbol names one market; import one file at a time with it")
    parts = [read_kraken_csv(f, symbol, timeframe) for f in files]  # all read before any write
    tfs = {p.timeframe for p in parts}
    if output and len(tfs) > 1:
        raise UsageError(
            f"files of different timeframes ({', '.join(sorted(tfs))}) cannot share one output file"
        )
    rows = []
    frames = []
    for p in parts:
        df, filled = (
            candles.fill_gaps(p.frame, timeframe_ms(p.timeframe)) if fill_gaps else (p.frame, 0)
        )
        added = Store(store).append(exchange, p.timeframe, p.symbol, df) if store else len(df)
        ts = df["timestamp"].astype("int64")
        rows.append(
            (
                p.symbol,
                p.timeframe,
                len(df),
                added,
                filled,
                p.dropped_duplicates,
                fmt_ms(int(ts.min())),
                fmt_ms(int(ts.max())),
            )
        )
        frames.append(df)
    if output:
        merged = candles.combine(frames)
        write_ohlcv(
            merged,
            output,
            {"exchange": exchange, "timeframe": parts[0].timeframe, "source": "kraken-ohlcvt-csv"},
        )
    out.table(
        "data import",
        ["symbol", "tf", "rows", "new", "filled", "duplicates dropped", "first", "last"],
        rows,
        justify_right=["rows", "new", "filled", "duplicates dropped"],
    )


@app.command("check")
def check(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="ohlcv/1 Parquet file, - for stdin.")],
    timeframe: Annotated[
        str | None,
        typer.Option(
            "--timeframe", "-t", help="Expected spacing [default: from the file's metadata]."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Report gaps, duplicates, misaligned times, NaN, bad prices, OHLC inconsistencies.

    Exit 1 when any problem is found.
    """
    from tradekit.cli import output as out
    from tradekit.contracts import OHLCV, read_table
    from tradekit.data.check import check_frame

    df, meta = read_table(file, OHLCV, strict=False)
    report = check_frame(df, timeframe, "stdin" if file == "-" else file, meta)
    rows = []
    for sym, r in report["symbols"].items():
        found = r["problems"]
        gaps = found.get("gaps", {})
        others = ", ".join(f"{k} {v['count']}" for k, v in found.items() if k != "gaps")
        rows.append(
            (
                sym,
                r["rows"],
                r["first"],
                r["last"],
                f"{gaps.get('count', 0)} ({gaps.get('missing_candles', 0)} candles)",
                r["zero_volume"],
                others or "none",
            )
        )
    out.table(
        f"data check {report['file']} ({report['timeframe']})",
        ["symbol", "rows", "first", "last", "gaps", "zero volume", "other problems"],
        rows,
        justify_right=["rows", "zero volume"],
    )
    if as_json:
        out.emit_json(report)
    if not report["ok"]:
        kinds = sorted({p["check"] for p in report["problems"]})
        # Gaps are hours without a trade on a quiet market, most often: say how to fill them.
        hint = (
            "fetch or data import with --fill-gaps fills intervals without trades with flat "
            "zero-volume candles"
            if "gaps" in kinds
            else None
        )
        raise CheckFailed(
            f"{report['file']}: {len(report['problems'])} problem(s): {', '.join(kinds)}",
            hint=hint,
        )
    out.say(f"{report['file']}: no problems in {report['rows']} candles")


@app.command("ls")
def ls(
    ctx: typer.Context,
    store: Annotated[
        str | None, typer.Option(metavar="DIR", help="Store directory [default: [data] store].")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List what a candle store holds (read from file footers; fast)."""
    from tradekit.cli import output as out
    from tradekit.data.store import Store
    from tradekit.timeutil import fmt_ms

    root = store or state(ctx).config.data.store
    entries = Store(root).entries()
    if as_json:
        out.emit_json(
            {
                "schema": "store/1",
                "store": root,
                "files": [
                    {
                        "exchange": e.exchange,
                        "timeframe": e.timeframe,
                        "symbol": e.symbol,
                        "path": str(e.path),
                        "rows": e.rows,
                        "first": fmt_ms(e.first_ms),
                        "last": fmt_ms(e.last_ms),
                        "bytes": e.bytes,
                    }
                    for e in entries
                ],
            }
        )
        return
    out.table(
        f"store {root}",
        ["exchange", "tf", "symbol", "rows", "first", "last", "size"],
        [
            (
                e.exchange,
                e.timeframe,
                e.symbol,
                e.rows,
                fmt_ms(e.first_ms),
                fmt_ms(e.last_ms),
                f"{e.bytes / 1024:.0f} KiB",
            )
            for e in entries
        ],
        justify_right=["rows", "size"],
    )
