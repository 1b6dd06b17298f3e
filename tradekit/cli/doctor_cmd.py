"""``tradekit doctor``: check config, exchange, clock, key, Signal, model, ledger, disk and
units; a table on stderr, ``--json`` on stdout, exit 1 if any check fails."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt
from tradekit.errors import CheckFailed, ConfigError

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skip": "-"}


def doctor(
    ctx: typer.Context,
    offline: Annotated[
        bool, typer.Option("--offline", help="Skip the checks that need the network.")
    ] = False,
    live: Annotated[
        bool | None,
        typer.Option(
            "--live/--paper",
            help="Check for live trading (key required) [default: from [run] mode].",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Is this machine ready to trade? Config valid, exchange reachable and markets loaded, clock
    skew, API key present (and the permissions it must not have), Signal answering, deployed
    model compatible, ledger intact, free disk, systemd units. Exit 1 if any check fails."""
    from tradekit.cli.output import emit_json, table
    from tradekit.doctor import FAIL, SKIP, Check, Doctor, report

    try:
        cfg = state(ctx).config
    except ConfigError as e:
        # An invalid config is a failed check, not a crash: say so and skip the rest.
        checks = [Check("config", FAIL, str(e))] + [
            Check(n, SKIP, "config invalid")
            for n in ("exchange", "clock", "api key", "signal", "model", "state", "disk", "units")
        ]
    else:
        checks = Doctor(cfg, offline=offline, live=live).run()
    doc = report(checks)
    table(
        "tradekit doctor",
        ["check", "status", "detail"],
        [(c.name, _MARK[c.status], c.detail) for c in checks],
    )
    if as_json:
        emit_json(doc)
    if not doc["ok"]:
        failed = [c.name for c in checks if c.status == FAIL]
        raise CheckFailed(f"doctor: {len(failed)} check(s) failed: {', '.join(failed)}")
