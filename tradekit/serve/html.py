"""Small HTML building blocks for the dashboard's server-rendered pages (stdlib only).

Every value goes through :func:`esc`; only the blocks built here are trusted markup. A page is
a shell (charts, forms, the control panel) around one ``<div id="live">`` that the page's
script reloads every ``[serve] refresh_s`` seconds from ``?fragment=live``.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tradekit import __version__
from tradekit.report.fmt import EN
from tradekit.timeutil import fmt_ms

NAV = (
    ("/", "Overview"),
    ("/positions", "Positions"),
    ("/trades", "Trades"),
    ("/chart", "Charts"),
    ("/decisions", "Decisions"),
    ("/events", "Events"),
    ("/models", "Models"),
    ("/deploys", "Deploys"),
)


class Markup(str):
    """Text that is already HTML (built here); everything else is escaped."""


def esc(v: object) -> Markup:
    if isinstance(v, Markup):
        return v
    return Markup(html.escape("" if v is None else str(v), quote=True))


def money(v: object) -> str:
    return EN.money(v)


def pct(v: object, *, signed: bool = True) -> str:
    return EN.pct(v, signed=signed)


def num(v: object) -> str:
    return EN.qty(v)


def when(ms: object) -> str:
    return fmt_ms(int(ms)) if isinstance(ms, int | float) else "-"


def signed_cls(v: object) -> str:
    if not isinstance(v, int | float) or v == 0:
        return ""
    return "pos" if v > 0 else "neg"


@dataclass(frozen=True)
class Cell:
    """A table cell with a CSS class (numbers right-aligned, gains green, losses red)."""

    value: object
    cls: str = ""


def table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], *, cls: str = "", empty: str = "none"
) -> Markup:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for c in row:
            if isinstance(c, Cell):
                cells.append(f'<td class="{esc(c.cls)}">{esc(c.value)}</td>')
            else:
                cells.append(f"<td>{esc(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td class="empty" colspan="{len(headers)}">{esc(empty)}</td></tr>')
    return Markup(
        f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def dl(items: Iterable[tuple[str, object]]) -> Markup:
    """A definition list of label/value pairs."""
    return Markup(
        "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items) + "</dl>"
    )


def link(href: str, text: object, *, cls: str = "") -> Markup:
    c = f' class="{esc(cls)}"' if cls else ""
    return Markup(f'<a href="{esc(href)}"{c}>{esc(text)}</a>')


def select(name: str, options: Iterable[str], current: str | None, *, blank: str) -> Markup:
    opts = [f'<option value="">{esc(blank)}</option>']
    for o in options:
        sel = " selected" if o == current else ""
        opts.append(f'<option value="{esc(o)}"{sel}>{esc(o)}</option>')
    return Markup(f'<select name="{esc(name)}">{"".join(opts)}</select>')


def document(
    *, title: str, path: str, shell: str, live: str, refresh_s: float, charts: bool
) -> str:
    """A whole page: header with navigation, the shell around the live part, the footer with
    the charting library's notice, and the scripts."""
    here = ' class="here"'
    nav = "".join(
        f'<a href="{href}"{here if _here(path, href) else ""}>{esc(text)}</a>' for href, text in NAV
    )
    vendor = (
        '<script src="/static/vendor/lightweight-charts.standalone.production.js"></script>'
        if charts
        else ""
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · tradekit</title>"
        '<link rel="icon" href="data:,"><link rel="stylesheet" href="/static/style.css"></head>'
        f'<body data-refresh-ms="{int(refresh_s * 1000)}">'
        f'<header><a class="brand" href="/">tradekit</a><nav>{nav}</nav></header>'
        f"<main><h1>{esc(title)}</h1>{shell}"
        f'<div id="live" aria-live="polite">{live}</div></main>'
        "<footer>tradekit "
        f"{esc(__version__)} · read-only unless unlocked with the serve token · "
        "Charts: TradingView Lightweight Charts™, Copyright (c) 2023 TradingView, Inc., "
        '<a href="https://www.tradingview.com/">tradingview.com</a></footer>'
        f'{vendor}<script src="/static/app.js"></script></body></html>\n'
    )


def _here(path: str, href: str) -> bool:
    return path == href if href == "/" else path.startswith(href)


@dataclass(frozen=True)
class Page:
    title: str
    live: str
    shell: str = ""
    charts: bool = False


def cell_money(v: object) -> Cell:
    return Cell(money(v), f"num {signed_cls(v)}")


def cell_pct(v: object) -> Cell:
    return Cell(pct(v), f"num {signed_cls(v)}")


def cell_num(v: object) -> Cell:
    return Cell(num(v), "num")


def day_ms(text: str | None, *, end: bool = False) -> int | None:
    """A YYYY-MM-DD form value as the UTC day's start (``end``: the day's last ms)."""
    if not text:
        return None
    try:
        d = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    ms = int(d.timestamp() * 1000)
    return ms + 86_400_000 - 1 if end else ms - 1  # trades_page keeps start < exit_ms
