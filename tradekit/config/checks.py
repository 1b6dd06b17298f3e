"""The checks a config key may carry, and :func:`_opt`, which declares a key with its default,
help line and check. Stdlib only."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import field
from typing import Any

Check = Callable[[Any], str | None]  # returns a problem description, or None when fine


def _opt(default: Any, help: str, check: Check | None = None) -> Any:
    """A config key: default, one-line help (written into ``config init``), optional check."""
    meta = {"help": help, "check": check}
    if isinstance(default, list | dict):

        def factory(d: Any = default) -> Any:
            return type(d)(d)  # a fresh copy per instance

        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# -- checks ----------------------------------------------------------------------------------


def _positive(v: float) -> str | None:
    return None if v > 0 else f"must be > 0, got {v}"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v}"


def _fraction(v: float) -> str | None:
    return None if 0 <= v <= 1 else f"must be a fraction between 0 and 1 (0.2 = 20%), got {v}"


def _stop(v: float) -> str | None:
    """A stop's distance: positive, unlike Freqtrade's stoploss = -0.05."""
    if 0 <= v <= 1:
        return None
    hint = f": for a stop {-v:.0%} below the price, write {-v:g}" if -1 <= v < 0 else ""
    return (
        "must be a positive fraction, the distance below the price (0.05 = 5% below; "
        f"Freqtrade writes it negative), got {v}{hint}"
    )


def _between(low: float, high: float) -> Check:
    def check(v: float) -> str | None:
        return None if low <= v <= high else f"must be between {low:g} and {high:g}, got {v}"

    return check


def _one_of(*choices: str) -> Check:
    def check(v: str) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}; got {v!r}"

    return check


def _timeframe(v: str) -> str | None:
    from tradekit.timeutil import timeframe_ms

    try:
        timeframe_ms(v)
    except Exception as e:  # UsageError carries the wording
        return str(e)
    return None


def _timeframes(v: list[str]) -> str | None:
    return next((p for p in map(_timeframe, v) if p), None)


_SYMBOL_RE = re.compile(r"^[A-Za-z0-9.\-]+/[A-Za-z0-9.\-]+(:[A-Za-z0-9.\-]+)?$")


def _symbols(v: list[str]) -> str | None:
    bad = [s for s in v if not _SYMBOL_RE.match(s)]
    return f"symbols must look like BASE/QUOTE (e.g. BTC/USD); got {bad}" if bad else None


def _url(v: str) -> str | None:
    ok = v == "" or v.startswith(("http://", "https://"))
    return None if ok else f"must be an http(s) URL or empty, got {v!r}"


def _timezone(v: str) -> str | None:
    from tradekit.timeutil import zone

    try:
        zone(v)
    except ValueError as e:
        return str(e)
    return None


def _periods(v: list[int]) -> str | None:
    return None if all(p >= 1 for p in v) else f"periods must be >= 1, got {v}"


def _ensemble(v: dict[str, Any]) -> str | None:
    from tradekit.models.members import check_section

    return check_section(v)


def _clusters(v: dict[str, Any]) -> str | None:
    for name, members in v.items():
        if not isinstance(members, list) or not all(isinstance(s, str) for s in members):
            return f"cluster {name!r} must be a list of symbols"
    return None


def _port(v: int) -> str | None:
    return None if 0 <= v <= 65535 else f"must be a TCP port 0-65535 (0: any free one), got {v}"
