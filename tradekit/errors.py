"""Error hierarchy. Each class carries the exit code that DESIGN.md gives it.

Library code raises these; only ``tradekit.cli.main`` turns them into exit codes and one-line
messages. "Needs a human" (usage, input, config) is kept apart from "retry later" (external).
"""

from __future__ import annotations


class TradekitError(Exception):
    """Base class: a known failure with a one-line message and an exit code."""

    exit_code = 70

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class CheckFailed(TradekitError):
    """A check said no: gate failed, data check found problems."""

    exit_code = 1


class UsageError(TradekitError):
    """The command line asks for something that cannot be: unknown symbol, bad option value."""

    exit_code = 2


class InputError(TradekitError):
    """A bad input file: unreadable, wrong schema, malformed rows."""

    exit_code = 3


class ConfigError(InputError):
    """A bad config file, key or value."""


class ExternalError(TradekitError):
    """An external service (exchange, SSH host, Signal, LLM) failed after retries."""

    exit_code = 4


class MissingDependency(TradekitError):
    """An optional package is needed for this command and is not installed."""

    exit_code = 3


class StdoutClosed(TradekitError):
    """The reader of stdout went away (broken pipe)."""

    exit_code = 141
