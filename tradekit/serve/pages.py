"""The dashboard's pages of the bot now: the overview (state, money, caps, model, controls),
positions and open orders, and the chart per asset. Each is a shell (charts, the control panel)
and a live part rebuilt from the ledger on every refresh, from the same documents the API
serves (:mod:`tradekit.serve.api`); :mod:`tradekit.serve.records` has the record pages."""

from __future__ import annotations

from urllib.parse import urlencode

from tradekit.ledger import LedgerView
from tradekit.report.snapshot import Snapshot
from tradekit.serve import api, files
from tradekit.serve.html import (
    Cell,
    Markup,
    Page,
    cell_money,
    cell_num,
    cell_pct,
    dl,
    esc,
    link,
    money,
    num,
    pct,
    table,
    when,
)
from tradekit.serve.site import Site

# -- overview --------------------------------------------------------------------------------


def state_block(snap: Snapshot, view: LedgerView) -> Markup:
    """Running, paused or halted, with each halt's reason and since when, and the controls
    still waiting for the loop."""
    run = "running" if snap.running else "stopped"
    badges = [f'<span class="badge {run}">{run}</span>']
    if snap.paused:
        badges.append('<span class="badge paused">paused</span>')
    for h in snap.halts:
        badges.append(f'<span class="badge halted">halted: {esc(h.kind)}</span>')
    items: list[tuple[str, object]] = [
        ("mode", snap.mode),
        ("last candle", when(snap.last_candle_ms)),
        ("heartbeat", when(snap.heartbeat_ms)),
    ]
    for h in snap.halts:
        items.append((f"halted ({h.kind})", f"{h.text}; since {when(h.since_ms)}"))
    for pend in snap.pending:
        items.append(("requested", f"{pend.command} at {when(pend.requested_ms)} (pending)"))
    last = view.recent_controls(1)
    if last and last[0]["done_ms"] is not None:
        c = last[0]
        items.append(("last control", f"{c['command']}: {c['result']} ({when(c['done_ms'])})"))
    return Markup(
        f'<section class="card" id="state"><h2>State {"".join(badges)}</h2>{dl(items)}</section>'
    )


def overview(site: Site, view: LedgerView, snap: Snapshot) -> Page:
    risk = site.risk
    equity = snap.equity or 0.0
    exposure = snap.exposure
    unrealized = snap.unrealized_pnl
    money_card = dl(
        [
            ("equity", money(snap.equity)),
            ("cash", money(snap.cash)),
            ("drawdown", pct(snap.drawdown, signed=False)),
            ("P&L today", f"{money(snap.realized_pnl_today)} ({snap.trades_today} trades)"),
            ("P&L total", f"{money(snap.realized_pnl_total)} ({snap.trades_total} trades)"),
            ("unrealized", money(unrealized)),
            ("fees paid", money(snap.fees_paid)),
        ]
    )
    caps = table(
        ["limit", "now", "cap"],
        [
            ["open positions", len(snap.positions), risk.max_open_positions],
            [
                "exposure",
                pct(exposure / equity if equity else 0.0, signed=False),
                pct(risk.max_exposure_frac, signed=False),
            ],
            *[
                [
                    f"position {p.symbol}",
                    pct(p.value / equity if equity else 0.0, signed=False),
                    pct(risk.max_position_frac, signed=False),
                ]
                for p in snap.positions
            ],
            [
                "daily loss halt",
                pct(max(0.0, -snap.realized_pnl_today / equity) if equity else 0.0, signed=False),
                cap(risk.daily_loss_halt_frac),
            ],
            [
                "drawdown halt",
                pct(snap.drawdown, signed=False),
                cap(risk.max_drawdown_halt_frac),
            ],
        ],
        cls="caps",
    )
    live = (
        '<div class="grid">'
        + state_block(snap, view)
        + f'<section class="card" id="money"><h2>Money</h2>{money_card}</section>'
        + f'<section class="card" id="caps"><h2>Exposure against the caps</h2>{caps}</section>'
        + model_block(site, snap)
        + "</div>"
    )
    shell = (
        '<section class="card wide"><h2>Equity and drawdown</h2>'
        '<div class="chart" data-chart="equity" id="equity-chart"></div></section>'
        + control_panel(site)
    )
    return Page("Overview", live, shell, charts=True)


def cap(frac: float) -> str:
    """A halt's threshold; 0 turns that halt off."""
    return pct(frac, signed=False) if frac > 0 else "off"


def model_block(site: Site, snap: Snapshot) -> Markup:
    info = files.model_info(site.model_dir)
    if not info["available"]:
        body = f'<p class="warn">{esc(info["problem"])}</p>'
    else:
        m, r = info["model"], info["receipt"]
        gate = "passed" if r["deployable"] else f"not deployable: {r['problem']}"
        body = dl(
            [
                ("version", m["version"]),
                ("the loop runs", snap.model_version or "-"),
                ("kind", f"{m['kind']} ({m['objective']}, label {m['label']})"),
                ("trained", m["created_at"]),
                ("gate receipt", gate),
            ]
        )
    return Markup(
        f'<section class="card" id="model"><h2>Model {link("/models", "details")}</h2>'
        f"{body}</section>"
    )


def control_panel(site: Site) -> str:
    if not site.token:
        return (
            '<section class="card wide" id="controls"><h2>Controls</h2><p>Read-only: set '
            "TRADEKIT_SERVE_TOKEN in the environment or .env and restart <code>tradekit serve"
            "</code> to pause, resume or kill from here.</p></section>"
        )
    return (
        '<section class="card wide" id="controls"><h2>Controls</h2>'
        '<form id="unlock"><label>Serve token <input type="password" id="token" '
        'autocomplete="off" required></label> <button type="submit">Unlock</button></form>'
        '<div id="control-buttons" hidden><button data-control="pause">Pause</button> '
        '<button data-control="resume">Resume</button> '
        '<button data-control="kill" class="danger">Kill…</button> '
        '<button id="lock" type="button">Lock</button></div>'
        '<p id="control-msg" role="status"></p>'
        '<dialog id="kill-dialog"><form method="dialog"><p>Kill cancels open orders, closes '
        "every position at market and stops the loop. Type <b>kill</b> to confirm.</p>"
        '<input id="kill-confirm" autocomplete="off"> <button value="ok">Kill</button> '
        '<button value="cancel" formnovalidate>Cancel</button></form></dialog></section>'
    )


# -- positions, trades -----------------------------------------------------------------------


def positions(site: Site, view: LedgerView, snap: Snapshot) -> Page:
    doc = api.positions(view, snap)
    rows = []
    for p in doc["positions"]:
        ex = p["stop_on_exchange"]
        rows.append(
            [
                link(f"/chart?{urlencode({'symbol': p['pair']})}", p["pair"]),
                cell_num(p["amount"]),
                cell_num(p["open_rate"]),
                when(p["open_timestamp"]),
                cell_num(p["current_rate"]),
                Cell(money(p["value"]), "num"),
                cell_money(p["profit_abs"]),
                cell_pct(p["profit_ratio"]),
                cell_num(p["stop_loss_abs"]),
                f"{num(ex['stop_price'])} ({ex['status']}, {ex['exchange_id'] or 'no id'})"
                if ex
                else "none",
                p["enter_tag"],
            ]
        )
    orders = api.orders(view, open_only=True, limit=100)["orders"]
    order_rows = [
        [
            o["pair"],
            o["ft_order_side"],
            o["order_type"],
            cell_num(o["amount"]),
            cell_num(o["filled"]),
            cell_num(o["stop_price"]),
            o["status"],
            o["exchange_id"] or "-",
            o["reason"],
            when(o["order_timestamp"]),
        ]
        for o in orders
    ]
    live = (
        '<section class="card wide"><h2>Positions</h2>'
        + table(
            [
                "pair",
                "qty",
                "entry",
                "since",
                "last",
                "value",
                "P&L",
                "P&L %",
                "stop",
                "stop on the exchange",
                "entry reason",
            ],
            rows,
            cls="positions",
            empty="no open positions",
        )
        + '</section><section class="card wide"><h2>Open orders</h2>'
        + table(
            [
                "pair",
                "side",
                "kind",
                "qty",
                "filled",
                "stop price",
                "status",
                "exchange id",
                "reason",
                "placed",
            ],
            order_rows,
            cls="orders",
            empty="no open orders",
        )
        + "</section>"
    )
    return Page("Positions and orders", live)


# -- charts ----------------------------------------------------------------------------------


def chart(site: Site, view: LedgerView, snap: Snapshot, symbol: str | None) -> Page:
    symbols = view.symbols()
    symbol = symbol if symbol in symbols else (symbols[0] if symbols else None)
    tabs = " ".join(
        link(f"/chart?{urlencode({'symbol': s})}", s, cls="here" if s == symbol else "")
        for s in symbols
    )
    if symbol is None:
        return Page("Charts", "<p>No symbols in the ledger yet.</p>")
    shell = (
        f'<p class="tabs">{tabs}</p><section class="card wide"><h2>{esc(symbol)}</h2>'
        f'<div class="chart tall" data-chart="asset" data-symbol="{esc(symbol)}" '
        'id="asset-chart"></div><p class="legend">Candles from the candle store; ▲ entries '
        "and ▼ exits (fills); dashed lines: the position's entry and stop (engine and "
        "exchange); lower pane: the model's prediction at each close.</p></section>"
    )
    last = view.last_decisions().get(symbol)
    pos = snap.position(symbol)
    stops = [o for o in snap.open_orders if o.symbol == symbol and o.kind == "stop"]
    items: list[tuple[str, object]] = [
        (
            "last decision",
            f"{when(last['candle_ms'])}: {last['action']} ({last['reason']}), "
            f"prediction {num(last['prediction'])}"
            if last
            else "-",
        ),
        (
            "position",
            f"{num(pos.qty)} @ {num(pos.entry_price)}, stop {num(pos.stop_price)}"
            if pos
            else "none",
        ),
        (
            "stop on the exchange",
            ", ".join(f"{num(o.stop_price)} ({o.status})" for o in stops) or "none",
        ),
    ]
    return Page("Charts", f'<section class="card">{dl(items)}</section>', shell, charts=True)
