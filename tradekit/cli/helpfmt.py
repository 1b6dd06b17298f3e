"""Help text that reads like a Unix tool's: ``FEATURES`` and ``[SYMBOL]...`` in the usage line,
``--seed SEED`` and ``--train-window N`` for options, no ``<str>``, ``<int range>``,
``<list[str]>`` or ``{FEATURES}`` (typer 0.29's own notation), and descriptions as wide as the
terminal allows (up to :data:`MAX_WIDTH`) instead of click's 80 columns.

typer offers no hook for these, so :func:`install` replaces three small methods of its
parameter classes; ``tests/test_newcomer.py`` reads every command's help, so a typer release
that changes them fails a test rather than the help.
"""

from __future__ import annotations

import re
from typing import Any

from typer import core

MAX_WIDTH = 120  # columns of help text on a wide terminal (click's default stops at 80)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": MAX_WIDTH}


def _argument_type(self: Any, ctx: Any) -> str | None:
    """An argument's help row is its name (or metavar) and its help, without a type."""
    return None


def _argument_usage(self: Any) -> str:
    """``NAME`` when required, ``[NAME]`` when not, ``...`` once when it repeats."""
    name = str(self.display_name_raw).removesuffix("...")
    name = name if self.required else f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def _option_metavar(self: Any, ctx: Any) -> str | None:
    """An option's value is shown by its metavar, else its name in capitals (``--seed SEED``),
    as argparse does; a count or a range is ``N``."""
    if self.metavar is not None:
        return str(self.metavar)
    desc = self.type_descriptor
    if desc.is_ranged or desc.annotation is int:
        return "N"
    name = str(self.name or "value").upper()
    return name + ("..." if self.nargs != 1 else "")


def _short_help(self: Any, limit: int = 45) -> str:
    """A command's line in its group's list: its first sentence, whole (wrapped, not cut)."""
    if self.short_help:
        return " ".join(str(self.short_help).split())
    text = " ".join(str(self.help or "").split("\n\n")[0].split())
    m = re.search(r"[.?!](?=\s)", text)
    return text[: m.end()] if m else text


def install() -> None:
    core.TyperCommand.get_short_help_str = _short_help  # type: ignore[method-assign]
    core.TyperGroup.get_short_help_str = _short_help  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = _argument_type  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    core.TyperOption.display_type_rich = _option_metavar  # type: ignore[method-assign]
