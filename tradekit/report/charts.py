"""What every tradekit chart shares (matplotlib, imported by the caller that draws)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any


def date_axis(ax: Any, tz: tzinfo | None = None) -> None:
    """Date ticks that name the year (``Jul 2018``; days as ``03 Mar 2024``, hours as
    ``21:00``), in ``tz`` (default UTC), about 4 to 9 of them."""
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=9, tz=tz)  # type: ignore[no-untyped-call]
    fmt = mdates.ConciseDateFormatter(locator, tz=tz, show_offset=False)  # type: ignore[no-untyped-call]
    fmt.formats = ["%Y", "%b %Y", "%d %b %Y", "%H:%M", "%H:%M", "%S.%f"]
    fmt.zero_formats = ["", "%Y", "%b %Y", "%d %b", "%H:%M", "%H:%M"]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(fmt)
