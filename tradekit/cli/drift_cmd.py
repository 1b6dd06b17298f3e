"""``tradekit drift``: the deployed model against the newest data and against its live self."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt, OutputOpt


def drift(
    ctx: typer.Context,
    model_dir: Annotated[
        str | None,
        typer.Argument(metavar="[MODEL_DIR]", help="Model dir [default: [run] model]."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Argument(
            metavar="[FEATURES_OR_OHLCV]",
            help="features or ohlcv/1 file [default: the candle store, [data] store].",
        ),
    ] = None,
    state_file: Annotated[
        str | None,
        typer.Option(
            "--state",
            metavar="PATH",
            help="Ledger for live against replay; the report is kept beside it "
            "[default: [run] state].",
        ),
    ] = None,
    days: Annotated[
        float | None,
        typer.Option(min=0.01, help="Days of the newest data [default: [drift] window_days]."),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", metavar="ISO", help="Time of the check (the model's age)."),
    ] = None,
    alert_file: Annotated[
        str | None,
        typer.Option(
            "--alert-file",
            metavar="FILE",
            help="Write the phone's message here on an alert, an empty file otherwise "
            "(for `tradekit notify --file`).",
        ),
    ] = None,
    output: OutputOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Feature and prediction drift (PSI against the training distribution in the manifest)
    and live predictions against a replay on the stored candles. Exit 1 on an alert; with
    [risk] pause_on_drift, an alert also queues a pause for the loop."""
    from tradekit.cli import output as out
    from tradekit.contracts import write_json
    from tradekit.drift.check import alert_text, check_drift, record
    from tradekit.errors import CheckFailed
    from tradekit.fsutil import atomic_write_text
    from tradekit.timeutil import parse_time

    cfg = state(ctx).config
    ledger = state_file or cfg.run.state
    doc = check_drift(
        cfg,
        model_dir or cfg.run.model,
        data,
        state=ledger,
        window_days=days,
        now_ms=parse_time(now, option="--now") if now else None,
    )
    record(doc, ledger, pause_on_drift=cfg.risk.pause_on_drift)
    if alert_file:
        atomic_write_text(alert_file, alert_text(doc))
    if output:
        write_json(doc, output)
    if as_json:
        out.emit_json(doc)
    f, p, r = doc["features"], doc["prediction"], doc["live_replay"]
    out.say(
        f"drift {doc['status']}: model {doc['model']['version']}, {doc['data']['rows']} rows "
        f"of {doc['data']['source']} to {doc['data']['end'][:16]}"
    )
    if f:
        top = ", ".join(f"{n} {v:.3f}/{lim:.3f}" for n, v, lim in f["top"])
        out.say(f"  features: {len(f['shifted'])} of {len(f['psi'])} past their limit; {top}")
    if p:
        out.say(f"  predictions: PSI {p['psi']:.3f} (limit {p['limit']:.3f})")
    if r:
        out.say(f"  live vs replay: {r['mismatches']} of {r['compared']} differ")
    for line in doc["notes"]:
        out.say(f"  note: {line}")
    if doc["pause"]["requested"]:
        out.say("  pause requested ([risk] pause_on_drift)")
    if doc["status"] == "alert":
        raise CheckFailed("drift: " + "; ".join(doc["alerts"]))
