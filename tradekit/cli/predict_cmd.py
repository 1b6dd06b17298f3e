"""``tradekit predict``: a trained model over a features file -> predictions/1."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.errors import UsageError


def predict(
    ctx: typer.Context,
    model_dir: Annotated[
        str, typer.Argument(metavar="MODEL_DIR", help="Model directory (from train).")
    ],
    features: Annotated[
        str,
        typer.Argument(metavar="FEATURES", help="features/1 Parquet file; - reads stdin."),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output", "-o", metavar="FILE", help="predictions/1 file; - writes to stdout."
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a predict/1 summary on stdout.")
    ] = False,
) -> None:
    """Predictions of a trained model: model dir + features/1 -> predictions/1."""
    from tradekit.cli import output as out
    from tradekit.models.predict import predict_file

    if as_json and output == "-":
        raise UsageError("--json and -o - both want stdout; write the predictions to a file")
    summary = predict_file(model_dir, features, output, threads=state(ctx).config.model.threads)
    out.say(
        f"predicted {summary['predicted']} of {summary['rows']} rows with {summary['kind']} "
        f"model {summary['model_version']} -> {output}"
    )
    if as_json:
        out.emit_json(summary)
