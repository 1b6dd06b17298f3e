"""Timeframes and timestamps. UTC everywhere; files hold milliseconds since the epoch."""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from tradekit.errors import UsageError

_TF_RE = re.compile(r"^(\d+)([mhdw])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_REL_RE = re.compile(r"^(\d+)\s*([mhdw])$")


def timeframe_ms(tf: str) -> int:
    """Length of a ccxt-style timeframe ('1m', '4h', '1d', '1w') in milliseconds."""
    m = _TF_RE.match(tf.strip())
    if not m or int(m.group(1)) == 0:
        raise UsageError(
            f"timeframe {tf!r}: expected a number and a unit m/h/d/w, e.g. 5m, 1h, 4h, 1d"
        )
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def pandas_freq(tf: str) -> str:
    """The pandas frequency alias of a timeframe (pandas 3 rejects 'H' and 'T')."""
    ms = timeframe_ms(tf)
    return f"{ms // 60_000}min"


def now_ms() -> int:
    return int(time.time() * 1000)


def parse_time(text: str, *, now: int | None = None, option: str = "time") -> int:
    """Parse an ISO date/datetime, epoch milliseconds/seconds, 'now', or an age like '30d'.

    Naive datetimes are taken as UTC. Returns epoch milliseconds.
    """
    s = text.strip()
    ref = now_ms() if now is None else now
    if s.lower() == "now":
        return ref
    rel = _REL_RE.match(s)
    if rel:
        return ref - int(rel.group(1)) * _UNIT_MS[rel.group(2)]
    if s.isdigit():
        v = int(s)
        # Ten digits or fewer is seconds; milliseconds otherwise (ccxt's unit).
        return v * 1000 if v < 10_000_000_000 else v
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected an ISO date (2024-01-31, 2024-01-31T12:00Z), "
            "epoch seconds/milliseconds, 'now', or an age such as 30d or 12h"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def fmt_ms(ms: int | None) -> str:
    """ISO-8601 UTC text of an epoch-millisecond time, minute resolution where exact."""
    if ms is None:
        return "-"
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))
    if dt.second == 0 and dt.microsecond == 0:
        return dt.strftime("%Y-%m-%d %H:%M")
    return dt.isoformat().replace("+00:00", "Z")


def floor_ms(ms: int, tf_ms: int) -> int:
    return ms - ms % tf_ms


# -- local time, for people (files and the ledger stay UTC) ------------------------------------


def zone(name: str = "", *, environ: Mapping[str, str] | None = None, etc: str = "/etc") -> tzinfo:
    """The time zone ``name`` (an IANA key such as ``Europe/Vienna``, or ``UTC``); empty means
    the system's: ``$TZ`` when it names a zone, else ``/etc/timezone`` (Debian), else the zone
    ``/etc/localtime`` links to, else the rules in that file, else UTC. ValueError when ``name``
    is not a known zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name:
        if name.upper() in ("UTC", "Z"):
            return UTC
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {name!r}: expected an IANA name such as Europe/Vienna or UTC"
            ) from None
    env = os.environ if environ is None else environ
    candidates = [env.get("TZ", "").removeprefix(":")]
    with contextlib.suppress(OSError, UnicodeDecodeError):
        candidates.append(Path(etc, "timezone").read_text(encoding="utf-8").strip())
    local = Path(etc, "localtime")
    with contextlib.suppress(OSError):
        target = str(local.resolve()) if local.is_symlink() else ""
        if "/zoneinfo/" in target:
            candidates.append(target.split("/zoneinfo/", 1)[1])
    for key in candidates:
        if not key:
            continue
        if key.upper() in ("UTC", "ETC/UTC", "UCT", "Z"):
            return UTC
        with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
            return ZoneInfo(key)
    with contextlib.suppress(OSError, ValueError), local.open("rb") as fh:
        return ZoneInfo.from_file(fh, key="localtime")
    return UTC


def zone_name(tz: tzinfo) -> str:
    """The IANA key of a zone, ``UTC``, or ``localtime`` for rules read from /etc/localtime."""
    return str(getattr(tz, "key", None) or ("UTC" if tz is UTC else tz))


def fmt_local(ms: int | None, tz: tzinfo, *, zone_abbr: bool = True) -> str:
    """A time for a person: ``2024-03-10 21:00 CET`` (minutes; seconds only when not zero)."""
    if ms is None:
        return "-"
    dt = datetime.fromtimestamp(int(ms) / 1000, UTC).astimezone(tz)
    text = dt.strftime("%Y-%m-%d %H:%M" if dt.second == 0 else "%Y-%m-%d %H:%M:%S")
    return f"{text} {dt.tzname()}" if zone_abbr else text


def age_days(iso: object, now: int) -> float | None:
    """Days, to the hundredth, from an ISO-8601 time (UTC when it names no zone) to ``now``
    (ms); None for anything that is not such a time."""
    if not isinstance(iso, str) or not iso:
        return None
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round((now - dt.timestamp() * 1000) / 86_400_000, 2)
