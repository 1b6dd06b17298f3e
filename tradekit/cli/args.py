"""Which subcommand an argument list names, before typer parses it (stdlib only: the entry
point asks before anything heavy is imported)."""

from __future__ import annotations

GLOBAL_VALUES = {"--config", "-c", "--log-level"}  # global options that take a value


def command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (after the global options), if any."""
    it = iter(argv)
    for tok in it:
        if tok in GLOBAL_VALUES:
            next(it, None)
        elif not tok.startswith("-"):
            return tok
    return None
