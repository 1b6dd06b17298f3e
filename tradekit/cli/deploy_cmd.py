"""``tradekit deploy``: ship a model dir that passed the gate to the Pi as a release, switch
to it atomically, restart, wait for the loop to run it; roll back on failure."""

import logging
from pathlib import Path
from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt
from tradekit.errors import UsageError


def deploy(
    ctx: typer.Context,
    model_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="MODEL_DIR",
            help="Model dir from 'train' (not needed with --rollback).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            metavar="HOST", help="SSH host, or 'local' for this machine [default: [deploy] host]."
        ),
    ] = None,
    rollback: Annotated[
        bool,
        typer.Option("--rollback", help="Switch current back to the release before it."),
    ] = False,
    keep: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="Releases to keep after a deploy (current and previous always stay) "
            "[default: [deploy] keep].",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Check, pack and print the plan; change nothing."),
    ] = False,
    attach: Annotated[
        list[Path] | None,
        typer.Option(
            "--attach",
            metavar="FILE",
            help="Extra file for the release root, e.g. report.json or verdict.json (repeatable).",
        ),
    ] = None,
    force: Annotated[
        str | None,
        typer.Option(
            "--force",
            metavar="REASON",
            help="Deploy without a passing gate verdict for this model; REASON goes into "
            "deploys.jsonl and to the phone.",
        ),
    ] = None,
    candidate: Annotated[
        str | None,
        typer.Option(
            "--candidate",
            metavar="NAME",
            help="Install MODEL_DIR as candidate NAME beside the live model (paper-traded by "
            "the loop; at most 3); current is untouched.",
        ),
    ] = None,
    remove: Annotated[
        bool,
        typer.Option("--remove", help="With --candidate NAME: remove that candidate."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Deploy a model dir as a new release on [deploy] host under [deploy] path.

    Checks the model dir (exit 3 if bad) and its gate receipt: MODEL_DIR/verdict.json from
    'tradekit gate REPORT --model MODEL_DIR' must have passed for exactly this model, else
    exit 1 (--force REASON overrides, recorded and announced). Uploads one archive over SSH
    with the host key pinned by [deploy] known_hosts, verifies every file's sha256 on the
    host, switches <path>/current atomically, runs [deploy] restart and waits until the loop
    reports the new model ([deploy] health = "loop"); on a failure it switches back to the
    previous release (exit 4). On the host, [run] model is <path>/current.

    With --candidate NAME the release is installed the same way but <path>/candidates/NAME
    points at it instead of current: the loop paper-trades it beside the live model from its
    next candle ('tradekit candidates' compares them, 'tradekit promote NAME' makes it live).
    """
    from tradekit.cli import output as out
    from tradekit.config import with_overrides
    from tradekit.deploy.candidate import deploy_candidate, remove_candidate
    from tradekit.deploy.guard import announce_forced
    from tradekit.deploy.ship import deploy_model
    from tradekit.deploy.ship import rollback as do_rollback

    config = state(ctx).config
    cfg = with_overrides(
        config.deploy, "deploy", {"host": ("--host", host), "keep": ("--keep", keep)}
    )
    password = config.secret("deploy_sudo_password")
    if remove and candidate is None:
        raise UsageError("--remove needs --candidate NAME")
    if rollback:
        if model_dir is not None or attach or force is not None or candidate is not None:
            raise UsageError("--rollback takes no MODEL_DIR, --attach, --force or --candidate")
        result = do_rollback(cfg, dry_run=dry_run, sudo_password=password)
    elif remove and candidate is not None:
        if model_dir is not None or attach or force is not None:
            raise UsageError("--candidate NAME --remove takes no MODEL_DIR, --attach or --force")
        result = remove_candidate(candidate, cfg, dry_run=dry_run)
    elif candidate is not None:
        if model_dir is None:
            raise UsageError("missing MODEL_DIR for --candidate NAME")
        result = deploy_candidate(
            model_dir, candidate, cfg, attach=attach or [], dry_run=dry_run, force=force
        )
    else:
        if model_dir is None:
            raise UsageError("missing MODEL_DIR (or give --rollback)")
        result = deploy_model(
            model_dir,
            cfg,
            attach=attach or [],
            dry_run=dry_run,
            force=force,
            sudo_password=password,
        )
    where = f"{result.host}:{result.path}"
    if result.dry_run:
        out.say(f"dry run of {result.action} to {where}:")
        for step in result.plan:
            out.say(f"  {step}")
    elif result.candidate is not None:
        out.say(f"{result.message} on {where} in {result.seconds:.1f}s")
    elif result.action == "rollback":
        out.say(
            f"rolled back {where} to {result.release} (model {result.model_version}; "
            f"was {result.previous}) in {result.seconds:.1f}s"
        )
    else:
        pruned = f"; pruned {len(result.pruned)}" if result.pruned else ""
        out.say(
            f"deployed {result.release} (model {result.model_version}) to {where}: "
            f"{result.bytes:,} bytes in {result.seconds:.1f}s; previous "
            f"{result.previous or '(none)'}{pruned}"
        )
    if result.forced and not result.dry_run:
        warning = announce_forced(
            config.notify, result, webhook_token=config.secret("notify_webhook_token")
        )
        if warning:  # a log line: --log-json and --log-level apply, as to every warning
            logging.getLogger("tradekit.deploy").warning("%s", warning)
    if as_json:
        out.emit_json(result.as_json())
