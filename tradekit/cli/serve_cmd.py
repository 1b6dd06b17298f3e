"""``tradekit serve``: the dashboard, the REST API and /metrics over the ledger, read-only
except for the token-guarded pause/resume/kill. Light: no pandas, numpy, ccxt or models."""

from typing import Annotated

import typer

from tradekit.cli.context import state


def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            metavar="ADDR",
            help="Address to listen on [default: [serve] host, 127.0.0.1]; the Pi's LAN "
            "address puts the dashboard on the LAN.",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", metavar="PORT", help="TCP port [default: [serve] port, 8642]; 0 = any free."
        ),
    ] = None,
    state_file: Annotated[
        str | None,
        typer.Option("--state", metavar="FILE", help="SQLite ledger (default: [run] state)."),
    ] = None,
    allow_all_interfaces: Annotated[
        bool,
        typer.Option(
            "--allow-all-interfaces",
            help="Allow --host 0.0.0.0 or :: (every network this machine is on).",
        ),
    ] = False,
) -> None:
    """Web dashboard, /api/v1 JSON and /metrics for Prometheus, over the ledger."""
    from pathlib import Path

    from tradekit.cli import output as out
    from tradekit.config import with_overrides
    from tradekit.serve.server import bind, check_host, run
    from tradekit.serve.site import site_from

    cfg = state(ctx).config
    section = with_overrides(
        cfg.serve, "serve", {"host": ("--host", host), "port": ("--port", port)}
    )
    check_host(section.host, allow_all=allow_all_interfaces)
    site = site_from(cfg, state=state_file, host=section.host)
    sock = bind(section.host, section.port)
    if not Path(site.ledger).exists():
        out.say(f"serve: no ledger at {site.ledger} yet; the pages say so until `run` makes it")
    controls = (
        "pause/resume/kill need the serve token"
        if site.token
        else ("read-only (no TRADEKIT_SERVE_TOKEN)")
    )

    def announce(url: str) -> None:
        out.say(f"serve: {url} (API {url}api/v1/, metrics {url}metrics; {controls})")

    run(site, sock, announce=announce)
