"""``tradekit reconcile [--adopt]``: the live ledger beside the exchange's balances."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt
from tradekit.cli.run_cmd import StateOpt
from tradekit.errors import CheckFailed


def reconcile(
    ctx: typer.Context,
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt",
            help="Take the exchange's balances for every asset that differs (recorded with a "
            "reason; the loop applies it now, or first thing at its next start).",
        ),
    ] = False,
    state_file: StateOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show where the ledger and the exchange differ (exit 1 if they do)."""
    from tradekit.cli import output as out

    cfg = state(ctx).config
    path = state_file or cfg.run.state
    if adopt:
        from tradekit.cli.run_cmd import control

        control(ctx, "adopt", path)
        return
    from tradekit.live.recovery import check

    doc = check(cfg, path)
    if as_json:
        out.emit_json(doc)
    else:
        lines = [f"{'asset':<8} {'ledger':>18} {'exchange':>18}"]
        for a in doc["assets"]:
            lines.append(f"{a['asset']:<8} {a['ledger']:>18.10g} {a['exchange']:>18.10g}")
        out.emit_text("\n".join(lines) + "\n")
    if doc["differences"]:
        names = ", ".join(d["asset"] for d in doc["differences"])
        raise CheckFailed(
            f"the ledger differs from the exchange in {names}; "
            "`tradekit reconcile --adopt` takes the exchange's balances"
        )
    if not as_json:
        out.say("the ledger equals the exchange")
