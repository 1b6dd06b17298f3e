"""The dashboard's record pages: trades (filtered, with MAE/MFE), decisions with their reason
codes, events, the model in use with its receipt and the candidates, and the deploy history."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from tradekit.ledger import LedgerView
from tradekit.report.snapshot import Snapshot
from tradekit.serve import api, files
from tradekit.serve.html import (
    Cell,
    Page,
    cell_money,
    cell_num,
    cell_pct,
    day_ms,
    dl,
    esc,
    link,
    money,
    pct,
    select,
    table,
    when,
)
from tradekit.serve.site import Site

TRADES_PAGE = 100


def trades(site: Site, view: LedgerView, q: Mapping[str, str]) -> Page:
    start, end = day_ms(q.get("from")), day_ms(q.get("to"), end=True)
    text = q.get("offset") or "0"
    offset = max(0, int(text)) if text.isdigit() else 0  # a hand-edited URL shows page one
    doc = api.trades(
        view,
        limit=TRADES_PAGE,
        offset=offset,
        symbol=q.get("symbol") or None,
        reason=q.get("reason") or None,
        start_ms=start,
        end_ms=end,
    )
    reasons = sorted({r["reason"] for r in view.decision_reasons() if r["action"] == "exit"})
    form = (
        '<form class="filters" method="get">'
        + select("symbol", view.symbols(), q.get("symbol"), blank="every pair")
        + select("reason", reasons, q.get("reason"), blank="every exit reason")
        + f'<label>from <input type="date" name="from" value="{esc(q.get("from", ""))}"></label>'
        + f'<label>to <input type="date" name="to" value="{esc(q.get("to", ""))}"></label>'
        + '<button type="submit">Filter</button></form>'
    )
    rows = [
        [
            t["trade_id"],
            link(f"/chart?{urlencode({'symbol': t['pair']})}", t["pair"]),
            when(t["open_timestamp"]),
            when(t["close_timestamp"]),
            cell_num(t["open_rate"]),
            cell_num(t["close_rate"]),
            cell_num(t["amount"]),
            cell_money(t["fees"]),
            cell_money(t["profit_abs"]),
            cell_pct(t["profit_ratio"]),
            Cell(pct(t["mae"], signed=False), "num"),
            Cell(pct(t["mfe"], signed=False), "num"),
            t["exit_reason"],
            t["partial_exits"],
        ]
        for t in doc["trades"]
    ]
    pnl = sum(t["profit_abs"] for t in doc["trades"])
    nav = []
    base = {k: v for k, v in q.items() if k not in ("offset", "fragment") and v}
    if offset > 0:
        prev = urlencode({**base, "offset": max(0, offset - TRADES_PAGE)})
        nav.append(link(f"/trades?{prev}", "newer"))
    if offset + TRADES_PAGE < doc["total_trades"]:
        nav.append(link(f"/trades?{urlencode({**base, 'offset': offset + TRADES_PAGE})}", "older"))
    live = (
        f'<p class="summary">{doc["total_trades"]} trades match; showing '
        f"{offset + 1 if doc['trades'] else 0}–{offset + len(doc['trades'])}, P&L of these "
        f"{money(pnl)}. MAE/MFE: the worst and best move against the entry price while open."
        f" {' · '.join(nav)}</p>"
        + table(
            [
                "#",
                "pair",
                "entry",
                "exit",
                "entry price",
                "exit price",
                "qty",
                "fees",
                "P&L",
                "P&L %",
                "MAE",
                "MFE",
                "exit reason",
                "partials",
            ],
            rows,
            cls="trades",
            empty="no trades match",
        )
    )
    return Page("Trades", live, form)


# -- decisions, events, models, deploys ------------------------------------------------------


def decisions(site: Site, view: LedgerView, q: Mapping[str, str]) -> Page:
    symbol = q.get("symbol") or None
    doc = api.decisions(
        view,
        symbol=symbol,
        action=q.get("action") or None,
        reason=q.get("reason") or None,
        limit=200,
        before_id=None,
    )
    codes = doc["reasons"]
    form = (
        '<form class="filters" method="get">'
        + select("symbol", view.symbols(), q.get("symbol"), blank="every pair")
        + select(
            "action", sorted({c["action"] for c in codes}), q.get("action"), blank="every action"
        )
        + select(
            "reason", sorted({c["reason"] for c in codes}), q.get("reason"), blank="every reason"
        )
        + '<button type="submit">Filter</button></form>'
    )
    counts = table(
        ["phase", "action", "reason code", "times"],
        [[c["phase"], c["action"], c["reason"], Cell(c["count"], "num")] for c in codes],
        cls="reasons",
    )
    rows = [
        [
            when(d["candle_ms"]),
            d["symbol"],
            d["phase"],
            d["action"],
            d["reason"],
            cell_num(d["prediction"]),
            cell_num(d["price"]),
            cell_num(d["qty"]),
            d["model_version"] or "-",
        ]
        for d in doc["decisions"]
    ]
    live = (
        '<div class="grid"><section class="card"><h2>Why: reason codes</h2>'
        f"{counts}</section></div><h2>Newest decisions</h2>"
        + table(
            [
                "candle",
                "pair",
                "phase",
                "action",
                "reason",
                "prediction",
                "price",
                "qty",
                "model",
            ],
            rows,
            cls="decisions",
            empty="no decisions match",
        )
    )
    return Page("Decisions", live, form)


def events(site: Site, view: LedgerView, q: Mapping[str, str]) -> Page:
    warn = q.get("level") == "warning"
    doc = api.events(view, warnings_only=warn, kind=q.get("kind") or None, limit=300)
    form = (
        '<form class="filters" method="get">'
        + select("kind", sorted(doc["counts"]), q.get("kind"), blank="every kind")
        + select("level", ["warning"], q.get("level"), blank="every level")
        + '<button type="submit">Filter</button></form>'
    )
    rows = [
        [when(e["ts_ms"]), Cell(e["level"], f"level-{e['level']}"), e["kind"], e["message"]]
        for e in doc["events"]
    ]
    return Page(
        "Events",
        table(["time", "level", "kind", "message"], rows, cls="events", empty="no events"),
        form,
    )


def models(site: Site, view: LedgerView, snap: Snapshot) -> Page:
    info = files.model_info(site.model_dir)
    parts = [f'<section class="card wide"><h2>In use: {esc(site.model_dir)}</h2>']
    if not info["available"]:
        parts.append(f'<p class="warn">{esc(info["problem"])}</p>')
    else:
        m, r = info["model"], info["receipt"]
        parts.append(
            dl(
                [
                    ("version", m["version"]),
                    ("the loop runs", snap.model_version or "-"),
                    ("directory", info["resolved"]),
                    ("kind", m["kind"]),
                    (
                        "objective / label",
                        f"{m['objective']} / {m['label']} ({m['label_horizon']} candles)",
                    ),
                    ("features", f"{m['features']} ({m['feature_set']})"),
                    ("symbols", ", ".join(m["symbols"] or [])),
                    ("trained", m["created_at"]),
                    ("gate receipt", "deployable" if r["deployable"] else r["problem"]),
                ]
            )
        )
        if r.get("rules"):
            parts.append(
                table(
                    ["rule", "op", "threshold", "value", "passed"],
                    [
                        [
                            x.get("rule"),
                            x.get("op"),
                            cell_num(x.get("threshold")),
                            cell_num(x.get("value")),
                            Cell(
                                "yes" if x.get("passed") else "no",
                                "pos" if x.get("passed") else "neg",
                            ),
                        ]
                        for x in r["rules"]
                    ],
                    cls="rules",
                )
            )
    parts.append("</section>")
    cands = files.candidates(site.model_dir, site.ledger, site.candidates)
    parts.append(
        '<section class="card wide" id="candidates"><h2>Candidates</h2>'
        + table(
            ["name", "version", "since", "gate", "evidence"],
            [
                [
                    c.get("name"),
                    c.get("version"),
                    when(c.get("since_ms")),
                    (c.get("receipt") or {}).get("problem") or "deployable",
                    c.get("evidence"),
                ]
                for c in cands
            ],
            empty="no candidates: models running beside the live one will be listed here",
        )
        + "</section>"
    )
    return Page("Models and candidates", "".join(parts))


def deploys(site: Site) -> Page:
    doc = files.deploys(site.deploy_log)
    if not doc["available"]:
        live = (
            f"<p>No deploy log at {esc(doc['path'])} (`tradekit deploy` writes it on the host "
            "it deploys to; [deploy] path).</p>"
        )
        return Page("Deploy history", live)
    rows = [
        [
            d.get("ts"),
            d.get("action"),
            Cell("ok" if d.get("ok") else "failed", "pos" if d.get("ok") else "neg"),
            d.get("release"),
            d.get("model_version"),
            d.get("gate"),
            d.get("forced") or "",
            d.get("user"),
            d.get("message") or d.get("unreadable"),
        ]
        for d in doc["deploys"]
    ]
    return Page(
        "Deploy history",
        table(
            ["time", "action", "result", "release", "model", "gate", "forced", "by", "message"],
            rows,
            cls="deploys",
            empty="no deploys logged",
        ),
    )
