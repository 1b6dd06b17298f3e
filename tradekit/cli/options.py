"""Option bundles shared by several commands."""

from typing import Annotated

import typer

OutputOpt = Annotated[
    str | None,
    typer.Option("--output", "-o", metavar="FILE", help="Output file; - writes to stdout."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
