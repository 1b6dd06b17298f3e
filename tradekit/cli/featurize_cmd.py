"""``tradekit featurize``: OHLCV candles -> features/1 (indicators, context, labels)."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import OutputOpt
from tradekit.errors import UsageError


def featurize(
    ctx: typer.Context,
    ohlcv: Annotated[
        str,
        typer.Argument(
            metavar="OHLCV", help="ohlcv/1 Parquet file; - reads stdin.", show_default=False
        ),
    ],
    output: OutputOpt = None,
    feature_set: Annotated[
        str | None,
        typer.Option(
            "--feature-set",
            metavar="NAME|FILE",
            help="Built-in set (default, minimal) or a feature-set TOML file "
            "[default: [features] set].",
        ),
    ] = None,
    label_horizon: Annotated[
        int | None,
        typer.Option(
            "--label-horizon",
            min=1,
            metavar="N",
            help="Candles ahead for the labels [default: [features] label_horizon].",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a featurize/1 summary on stdout.")
    ] = False,
) -> None:
    """Indicators, higher-timeframe and reference-pair context, and labels: OHLCV -> features/1."""
    import dataclasses

    from tradekit.cli import output as out
    from tradekit.features import featurize_file, load_spec

    cfg = state(ctx).config
    if not output:
        raise UsageError("nothing to write: give -o FEATURES (- for stdout)")
    if as_json and output == "-":
        raise UsageError("--json and -o - both want stdout; write the features to a file")
    spec = load_spec(cfg.features, feature_set)
    if label_horizon is not None:
        spec = dataclasses.replace(spec, label_horizon=label_horizon)
    cost = 2 * (cfg.backtest.fee + cfg.backtest.slippage)
    with out.status(f"featurize {ohlcv}"):
        result = featurize_file(ohlcv, output, spec, cost=cost)
    meta = result.meta
    rows = [
        (s, n, meta["warmup_dropped"][s], n - meta["warmup_dropped"][s])
        for s, n in result.rows_in.items()
    ]
    out.table(
        f"featurize {meta['feature_set']} {meta['timeframe']} ({result.seconds:.1f}s)",
        ["symbol", "rows in", "warm-up dropped", "rows out"],
        rows,
        justify_right=["rows in", "warm-up dropped", "rows out"],
    )
    out.say(
        f"featurize: {meta['rows_in']} rows in, {meta['rows_out']} out, "
        f"{len(meta['features'])} features, labels {', '.join(meta['labels']) or 'none'}"
    )
    if meta["dropped_symbols"]:
        out.say(
            "featurize: warning: too short for the warm-up, left out: "
            + ", ".join(meta["dropped_symbols"])
        )
    if as_json:
        out.emit_json(result.as_json())
