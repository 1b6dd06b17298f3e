"""``tradekit candidates`` (the evidence of each candidate against live) and ``tradekit promote
NAME`` (make one live, with deploy's switch, restart, health check and rollback)."""

from pathlib import Path
from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt


def candidates(
    ctx: typer.Context,
    state_file: Annotated[
        str | None,
        typer.Option("--state", metavar="FILE", help="The live ledger [default: [run] state]."),
    ] = None,
    directory: Annotated[
        str | None,
        typer.Option(
            "--dir",
            metavar="DIR",
            help="Where the candidates are installed [default: [run] candidates].",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Each candidate model against the live one over the candles both traded: days, trades,
    return, Sortino, max drawdown, its gate receipt, and the evidence that one is better (a
    paired t-test and a sign test on the daily returns, the PSR of their difference).
    Candidates trade on paper in their own ledgers, state/candidates/NAME.db."""
    from tradekit import evidence
    from tradekit.cli import output as out

    cfg = state(ctx).config
    where = Path(directory) if directory else evidence.directory(cfg.run.candidates, cfg.run.model)
    doc = evidence.report(
        state=state_file or cfg.run.state, cand_dir=where, live_model=Path(cfg.run.model)
    )
    if as_json:
        out.emit_json(doc)
        return
    if not doc["candidates"]:
        out.say(f"no candidates in {where} (tradekit deploy MODEL_DIR --candidate NAME)")
        return
    rows = []
    for c in doc["candidates"]:
        cmp = c["comparison"] or {}
        for who in ("candidate", "live"):
            a = cmp.get(who) or {}
            rows.append(
                [
                    c["name"] if who == "candidate" else "  live",
                    (c["version"] if who == "candidate" else doc["live"]["version"]) or "-",
                    cmp.get("days", "-"),
                    a.get("trades", "-"),
                    _pct(a.get("return")),
                    _num(a.get("sortino")),
                    _pct(a.get("max_drawdown")),
                    _gate(c["receipt"] if who == "candidate" else doc["live"]["receipt"]),
                ]
            )
    out.table(
        f"candidates against live ({doc['state']})",
        ["model", "version", "days", "trades", "return", "sortino", "max dd", "gate"],
        rows,
        justify_right=["days", "trades", "return", "sortino", "max dd"],
    )
    for c in doc["candidates"]:
        out.say(f"{c['name']}: {c['evidence']}")


def _pct(v: object) -> str:
    return f"{v:+.2%}" if isinstance(v, int | float) else "-"


def _num(v: object) -> str:
    return f"{v:.2f}" if isinstance(v, int | float) else "-"


def _gate(receipt: object) -> str:
    if not isinstance(receipt, dict):
        return "-"
    return "passed" if receipt.get("deployable") else str(receipt.get("problem") or "no receipt")


def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The candidate to make live.")],
    host: Annotated[
        str | None,
        typer.Option(
            metavar="HOST", help="SSH host, or 'local' for this machine [default: [deploy] host]."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; change nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make candidate NAME live on [deploy] host: <path>/current switches atomically to its
    release, the loop restarts, and the health check waits until the loop runs its model; on a
    failure current switches back and the old model restarts (exit 4). Then the candidate's
    link is removed. Nothing promotes itself: a person runs this (or sends `promote NAME`
    from the phone, confirmed with a code)."""
    from tradekit.cli import output as out
    from tradekit.config import with_overrides
    from tradekit.deploy.candidate import promote as do_promote

    config = state(ctx).config
    cfg = with_overrides(config.deploy, "deploy", {"host": ("--host", host)})
    result = do_promote(
        name, cfg, dry_run=dry_run, sudo_password=config.secret("deploy_sudo_password")
    )
    if result.dry_run:
        out.say(f"dry run of promote {name} on {result.host}:{result.path}:")
        for step in result.plan:
            out.say(f"  {step}")
    else:
        out.say(f"{result.message} ({result.host}:{result.path}, {result.seconds:.1f}s)")
    if as_json:
        out.emit_json(result.as_json())
