"""Money, percent, quantities, prices and times for people, in one place and one style.

English (the default, and the CLI's): ``1,234.56``, ``+1.23 %``. German (``de``): decimal
commas and thousands points, ``1.234,56``, ``+1,23 %``. Any other language code gets English
numbers. A percent is written with a space before the sign (ISO 80000, and German usage); a
value that is not a number (None, missing) is ``-``. Times are the person's
(``[notify] timezone``) with the zone's abbreviation; files and JSON stay UTC milliseconds.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo
from typing import Any

from tradekit.timeutil import fmt_local

LANGUAGES = ("en", "de")
DASH = "-"


def language(code: str) -> str:
    """The number style of a language code: ``de`` for ``de``/``de-AT``, else ``en``."""
    lang = (code or "en").strip().lower().replace("_", "-").split("-")[0]
    return lang if lang in LANGUAGES else "en"


def _real(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


class Fmt:
    """Formatting for one reader: a language, the quote currency, a time zone."""

    def __init__(self, lang: str = "en", currency: str = "", tz: tzinfo = UTC) -> None:
        self.lang = language(lang)
        self.currency = currency
        self.tz = tz

    def _loc(self, text: str) -> str:
        if self.lang != "de":
            return text
        return text.replace(",", "\0").replace(".", ",").replace("\0", ".")

    def num(self, v: Any, digits: int = 2, *, signed: bool = False) -> str:
        """A plain number with thousands separators: ``1,234.56``."""
        if not _real(v):
            return DASH
        return self._loc(f"{v:{'+' if signed else ''},.{digits}f}")

    def money(self, v: Any, *, signed: bool = False, cur: bool = False) -> str:
        """An amount of the quote currency, two decimals (``+12.50``; ``12.50 USD`` with
        ``cur`` when the currency is known)."""
        text = self.num(v, 2, signed=signed)
        return f"{text} {self.currency}" if cur and self.currency and text != DASH else text

    def pct(self, v: Any, *, signed: bool = True, digits: int = 2) -> str:
        """A fraction as a percent: 0.0123 -> ``+1.23 %``."""
        if not _real(v):
            return DASH
        return self._loc(f"{v * 100:{'+' if signed else ''}.{digits}f}") + " %"

    def qty(self, v: Any, digits: int = 8) -> str:
        """A quantity or a raw price, ``digits`` significant digits: ``0.0123``."""
        return self._loc(f"{v:.{digits}g}") if _real(v) else DASH

    def price(self, v: Any) -> str:
        """A price for a small screen: two decimals from 100 up, else six significant digits."""
        if not _real(v):
            return DASH
        return self.num(v, 2) if abs(v) >= 100 else self.qty(v, 6)

    def time(self, ms: Any) -> str:
        """``2024-03-10 21:00 CET`` in the reader's zone."""
        return fmt_local(int(ms), self.tz) if _real(ms) else DASH

    def clock(self, ms: int) -> str:
        """A time of day: ``21:02:30 CET``."""
        dt = datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.tz)
        return f"{dt:%H:%M:%S} {dt.tzname()}"


EN = Fmt()
