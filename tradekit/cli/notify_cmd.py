"""``tradekit notify`` (one message to the phone) and ``tradekit listen`` (ledger events to the
phone, commands from it)."""

import sys
from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt
from tradekit.errors import InputError, UsageError


def _message(message: str | None, file: str | None) -> str:
    if message is not None and file is not None:
        raise UsageError("give MESSAGE or --file, not both")
    if file is not None:
        try:
            with open(file, encoding="utf-8") as fh:
                return fh.read()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"{file}: cannot read the message ({e})") from None
    if message == "-" or (message is None and not sys.stdin.isatty()):
        return sys.stdin.read()
    if message is None:
        raise UsageError("nothing to send: give MESSAGE, - (stdin) or --file FILE")
    return message


def notify(
    ctx: typer.Context,
    message: Annotated[
        str | None,
        typer.Argument(
            metavar="[MESSAGE|-]",
            help="The text; - or a pipe reads it from stdin.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        str | None, typer.Option("--file", "-f", metavar="FILE", help="Read the text from FILE.")
    ] = None,
    attach: Annotated[
        list[str] | None,
        typer.Option(
            "--attach", "-a", metavar="IMG", help="Attach an image (repeatable), e.g. a plot."
        ),
    ] = None,
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to", metavar="NUMBER", help="Recipient instead of [notify] recipients (repeatable)."
        ),
    ] = None,
    level: Annotated[
        str, typer.Option("--level", help="info, warning or error (for the webhook).")
    ] = "info",
    check: Annotated[
        bool,
        typer.Option("--check", help="Only ask the Signal service whether it is up; send nothing."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Send a message (and images) to Signal, and to [notify] webhook when set."""
    from tradekit.cli import output as out

    cfg = state(ctx).config
    if check:
        from tradekit.notify import check as run_check

        doc = run_check(cfg.notify)
        if as_json:
            out.emit_json(doc)
        else:
            reg = {True: "registered", False: "NOT among its accounts", None: "not checked"}
            out.say(
                f"signal-cli-rest-api {doc['version']} at {doc['url']}: up, mode {doc['mode']} "
                f"(receive by {doc['receive']}); sender {doc['sender'] or '-'} "
                f"{reg[doc['sender_registered']]}"
            )
        return
    if level not in ("info", "warning", "error"):
        raise UsageError(f"--level {level!r}: expected info, warning or error")
    text = _message(message, file)
    if not text.strip() and not attach:
        raise UsageError("the message is empty")
    from tradekit.notify import send

    res = send(
        cfg.notify,
        text.rstrip("\n"),
        attachments=attach or [],
        recipients=to or [],
        level=level,
        webhook_token=cfg.secret("notify_webhook_token"),
    )
    if as_json:
        out.emit_json(res.as_json())
    else:
        where = [f"{len(res.recipients)} recipient(s)"] if res.recipients else []
        if res.webhook_status is not None:
            where.append("the webhook")
        out.say(f"sent to {' and '.join(where)} in {res.seconds * 1000:.0f} ms")


def listen(
    ctx: typer.Context,
    state_file: Annotated[
        str | None,
        typer.Option("--state", metavar="FILE", help="SQLite ledger (default: [run] state)."),
    ] = None,
    once: Annotated[
        bool,
        typer.Option("--once", help="Deliver pending events, read messages once, then exit."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Send the ledger's events to Signal and answer commands from allowed numbers."""
    from tradekit.cli import output as out
    from tradekit.notify.listen import listen as run_listen

    cfg = state(ctx).config
    summary = run_listen(cfg, state_file or cfg.run.state, once=once)
    if as_json:
        out.emit_json(summary.as_json())
    else:
        out.say(
            f"listen: {summary.sent} event message(s) sent, {summary.commands} message(s) "
            f"read by {summary.receive or '-'}; {summary.exit}"
        )
