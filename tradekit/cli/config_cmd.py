"""``tradekit config``: write a commented config, show the effective one, set a key."""

from typing import Annotated

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt

app = typer.Typer(
    help="Create, show and edit tradekit.toml.", no_args_is_help=True, rich_markup_mode=None
)


@app.command("init")
def init(
    path: Annotated[str, typer.Argument(help="Where to write it.")] = "tradekit.toml",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config holding every key with its default."""
    from pathlib import Path

    from tradekit.cli.output import emit_text, say
    from tradekit.config import template
    from tradekit.errors import UsageError
    from tradekit.fsutil import atomic_write_text

    if path == "-":
        emit_text(template())
        return
    p = Path(path)
    if p.exists() and not force:
        raise UsageError(f"{p}: exists; use --force to overwrite it")
    atomic_write_text(p, template())
    say(f"wrote {p}; secrets go in the environment or .env, never in this file")


@app.command("show")
def show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the effective config (file + environment), secrets redacted."""
    from tradekit.cli.output import emit_json, emit_text
    from tradekit.config import redacted

    cfg = state(ctx).config
    doc = redacted(cfg)
    if as_json:
        emit_json({"schema": "config/1", "path": str(cfg.path) if cfg.path else None, **doc})
        return
    import tomlkit

    header = f"# effective config from {cfg.path or 'built-in defaults'} and the environment\n"
    emit_text(header + tomlkit.dumps(doc))


@app.command("set", context_settings={"ignore_unknown_options": True})  # VALUE may be -0.5
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(metavar="SECTION.KEY", help="e.g. risk.max_open_positions")],
    value: Annotated[
        str,
        typer.Argument(metavar="VALUE", help="Read as the key's type; lists as a,b or TOML [..]."),
    ],
) -> None:
    """Set one key in the config file, keeping its comments; the result is validated first."""
    import os
    from pathlib import Path

    from tradekit.cli.output import say
    from tradekit.config import CONFIG_ENV, DEFAULT_FILE, set_value

    st = state(ctx)
    path = Path(st.config_path or os.environ.get(CONFIG_ENV) or DEFAULT_FILE)
    created = not path.exists()
    value_set = set_value(path, key, value)
    say(f"{path}: {key} = {value_set!r}" + (" (new file from the template)" if created else ""))
