"""The read-only context for ``ask``: what the bot knows about itself, as facts (for the offline
answer) and as size-capped text (for an LLM).

Sources: the ledger opened read-only (status snapshot, equity windows, recent closed trades,
warning/error events), the model manifest and any report.json / verdict.json in the model dir,
and the ``--context`` files. Secret values (every configured secret and API key) are replaced
by ``***`` wherever they might appear, and a TOML file given as context loses its [exchange]
and [deploy] tables. Stdlib only.

Over ``[ask] max_context_chars`` the least important sections lose their oldest lines first
(trades, then events, then context files, ...), whole sections go when empty, and the text
starts with a ``[context truncated ...]`` line saying what was dropped.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError
from tradekit.ledger import LedgerView
from tradekit.timeutil import fmt_ms, now_ms

if TYPE_CHECKING:
    from tradekit.config import Config

DAY_MS = 86_400_000
RECENT_TRADES = 20
RECENT_EVENTS = 20
NOTABLE_LEVELS = ("warning", "error", "critical")
_SECRETISH = re.compile(
    r"(?im)^(\s*[\w.-]*(?:api[_-]?key|secret|password|passphrase|token)[\w.-]*\s*[=:]\s*)(.+)$"
)


@dataclass
class Section:
    """A block of context. ``items`` are droppable lines, oldest first; ``priority`` orders
    what goes first when the text is over the cap (lowest first)."""

    name: str
    priority: int
    lines: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    dropped: int = 0

    def size(self) -> int:
        if not self.lines and not self.items:
            return 0
        return len(self.render()) + 1

    def render(self) -> str:
        head = f"## {self.name}"
        if self.dropped:
            head += f" ({self.dropped} oldest dropped)"
        return "\n".join([head, *self.lines, *self.items]) + "\n"


@dataclass(frozen=True)
class Context:
    text: str
    facts: dict[str, Any]
    truncated: bool


# -- the ledger, read-only -------------------------------------------------------------------


def quote_currency(symbols: Sequence[str]) -> str:
    """The quote all symbols share (``USD`` for BTC/USD, ETH/USD), else ``""``."""
    quotes = {s.split("/", 1)[1].split(":")[0] for s in symbols if "/" in s}
    return quotes.pop() if len(quotes) == 1 else ""


def equity_window(view: LedgerView, start_ms: int, end_ms: int) -> dict[str, Any] | None:
    """Equity over (start, end]: the value at the start (the last candle at or before it, else
    the first inside), at the end, the peak inside, the deepest drawdown inside (from the
    running peak, starting at the start value) and the change."""
    before = view.equity_at(start_ms)
    rows = view.equity(start_ms, end_ms)
    points = ([(int(before["candle_ms"]), float(before["equity"]))] if before else []) + rows
    if not points:
        return None
    peak = points[0][1]
    max_dd = 0.0
    for _t, eq in points:
        peak = max(peak, eq)
        if peak > 0:
            max_dd = max(max_dd, 1.0 - eq / peak)
    first, last = points[0][1], points[-1][1]
    return {
        "from_ms": points[0][0],
        "to_ms": points[-1][0],
        "start": first,
        "end": last,
        "peak": max(e for _t, e in points),
        "low": min(e for _t, e in points),
        "change": last - first,
        "change_pct": (last / first - 1.0) if first else None,
        "max_drawdown": max_dd,
        "candles": len(rows),
    }


def killed(view: LedgerView) -> bool:
    """The last applied control was a kill (a killed bot stays paused until ``resume``)."""
    return view.last_control(("pause", "resume", "kill")) == "kill"


def risk_state(snap: dict[str, Any], was_killed: bool) -> dict[str, Any]:
    """Paused / halted / killed and why, in one place for summary and ask."""
    reasons = []
    if was_killed and snap.get("paused"):
        reasons.append("killed (positions closed, paused until resume)")
    elif snap.get("paused"):
        reasons.append("paused (no new entries until resume)")
    if snap.get("halted"):
        reasons.append(f"halted: {snap['halted']}")
    return {
        "paused": bool(snap.get("paused")),
        "halted": snap.get("halted"),
        "killed": was_killed and bool(snap.get("paused")),
        "ok": not reasons,
        "text": "; ".join(reasons) if reasons else "ok",
    }


def _trade(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "symbol": r["symbol"],
        "entry_ms": int(r["entry_ms"]),
        "exit_ms": int(r["exit_ms"]),
        "entry_price": float(r["entry_price"]),
        "exit_price": float(r["exit_price"]),
        "qty": float(r["qty"]),
        "fees": float(r["fees"]),
        "pnl": float(r["pnl"]),
        "pnl_pct": float(r["pnl_pct"]),
        "exit_reason": r["exit_reason"],
    }


def _ledger_facts(path: Path, at_ms: int | None) -> dict[str, Any]:
    from tradekit.live.status import snapshot

    snap = snapshot(path)
    with LedgerView(path) as view, view.snapshot():
        symbols = view.symbols()
        last = view.last_candle_ms()
        # Anchored at the latest candle: a replay (or the demo) lives in the past, and for a
        # live loop the latest candle is minutes old.
        anchor = at_ms if at_ms is not None else (last if last is not None else now_ms())
        windows = {}
        for label, days in (("7d", 7), ("30d", 30)):
            windows[label] = equity_window(view, anchor - days * DAY_MS, anchor)
        windows["all"] = equity_window(view, -1, anchor)
        first = view.first_equity()
        stats = view.trade_stats()
        recent = [_trade(r) for r in view.trades(limit=RECENT_TRADES, newest_first=True)][::-1]
        events = [
            {k: e[k] for k in ("ts_ms", "level", "kind", "message")}
            for e in view.events(warnings_only=True, limit=RECENT_EVENTS)
        ][::-1]
        was_killed = killed(view)
    return {
        "available": True,
        "path": str(path),
        "status": snap,
        "currency": quote_currency(symbols or [p["symbol"] for p in snap["positions"]]),
        "symbols": symbols,
        "as_of_ms": anchor,
        "last_candle_ms": last,
        "first_equity": first,
        "equity_windows": windows,
        "trades": {
            "count": int(stats["count"]),
            "pnl": float(stats["pnl"]),
            "wins": int(stats["wins"]),
            "losses": int(stats["count"]) - int(stats["wins"]),
            "fees": float(stats["fees"]),
            "recent": recent,
        },
        "events": events,
        "risk": risk_state(snap, was_killed),
    }


# -- model dir, reports, extra files ---------------------------------------------------------


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def manifest_facts(doc: dict[str, Any]) -> dict[str, Any]:
    wf = doc.get("walk_forward") or {}
    training = doc.get("training") or {}
    return {
        "version": doc.get("version"),
        "kind": doc.get("kind"),
        "objective": doc.get("objective"),
        "label": doc.get("label"),
        "label_horizon": doc.get("label_horizon"),
        "timeframe": doc.get("timeframe"),
        "symbols": doc.get("symbols"),
        "features": len(doc.get("features") or []),
        "created_at": doc.get("created_at"),
        "training_start": training.get("start"),
        "training_end": training.get("end"),
        "oos": wf.get("overall"),
        "folds": len(wf.get("folds") or []),
    }


def report_facts(doc: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "total_return",
        "cagr",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "win_rate",
        "profit_factor",
        "expectancy",
        "trades",
        "exposure",
        "fees_paid",
        "final_equity",
        "starting_balance",
        "buy_and_hold_return",
    )
    metrics = doc.get("metrics") or {}
    return {"span": doc.get("span"), "metrics": {k: metrics[k] for k in keep if k in metrics}}


def verdict_facts(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "passed": bool(doc.get("passed")),
        "failed": list(doc.get("failed") or []),
        "rules": [
            {k: r.get(k) for k in ("rule", "label", "metric", "op", "threshold", "value", "passed")}
            for r in doc.get("rules") or []
        ],
    }


def _model_facts(model_dir: Path, facts: dict[str, Any]) -> None:
    manifest = _load_json(model_dir / "manifest.json")
    if isinstance(manifest, dict) and manifest.get("schema", "").startswith("model/"):
        facts["model"] = manifest_facts(manifest)
    else:
        why = "unreadable" if (model_dir / "manifest.json").exists() else "not available"
        facts["notes"].append(f"model manifest {why} ({model_dir})")
    for name, key, schema, fn in (
        ("report.json", "report", "backtest/", report_facts),
        ("verdict.json", "verdict", "gate/", verdict_facts),
    ):
        doc = _load_json(model_dir / name)
        if isinstance(doc, dict) and str(doc.get("schema", "")).startswith(schema):
            facts[key] = fn(doc)


def _read_context_file(path: str) -> tuple[str, Any]:
    """(text, parsed JSON or None). Unreadable or not text: InputError naming the file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read context file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: context file is not UTF-8 text") from None
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            return text, None
        return json.dumps(doc, sort_keys=True, indent=1), doc
    if p.suffix.lower() == ".toml":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return text, None
        # Credentials and hosts live here; the analyst needs neither.
        for table in ("exchange", "deploy"):
            doc.pop(table, None)
        return json.dumps(doc, sort_keys=True, indent=1, default=str), None
    return text, None


def secret_values(cfg: Config) -> list[str]:
    """Every secret the config knows plus the raw env values of the secret variables."""
    from tradekit.config import SECRET_ENV
    from tradekit.config import secret_values as configured

    values = set(configured(cfg))
    values.update(v for k in SECRET_ENV.values() if (v := os.environ.get(k)))
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def redact(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return _SECRETISH.sub(lambda m: m.group(1) + "***", text)


# -- rendering -------------------------------------------------------------------------------


def money(v: Any, currency: str = "") -> str:
    if not isinstance(v, int | float):
        return "-"
    return f"{v:,.2f}" + (f" {currency}" if currency else "")


def pct(v: Any, *, signed: bool = True) -> str:
    if not isinstance(v, int | float):
        return "-"
    return f"{v * 100:+.2f} %" if signed else f"{v * 100:.2f} %"


def _status_section(f: dict[str, Any]) -> Section:
    s = f["status"]
    cur = f["currency"]
    sec = Section("status (ledger snapshot)", 100)
    sec.lines += [
        f"ledger: {f['path']}",
        f"mode: {s['mode']}; state: {s['state']}",
        f"risk: {f['risk']['text']}",
        f"model version running: {s.get('model_version') or 'unknown'}",
        f"last candle: {fmt_ms(f['last_candle_ms'])} UTC",
        f"equity: {money(s.get('equity'), cur)}; cash: {money(s.get('cash'), cur)}",
        f"peak equity: {money(s.get('peak_equity'), cur)}; "
        f"drawdown from peak: {pct(s.get('drawdown'), signed=False)}",
        f"realized P&L total: {money(s.get('realized_pnl_total'), cur)} "
        f"over {s.get('trades_total')} closed trades "
        f"({f['trades']['wins']} wins, {f['trades']['losses']} losses); "
        f"fees paid: {money(s.get('fees_paid'), cur)}",
        f"open positions: {len(s['positions']) or 'none'}",
    ]
    for p in s["positions"]:
        sec.lines.append(
            f"  {p['symbol']} qty {p['qty']:.8g} entry {p['entry_price']:.8g} "
            f"({fmt_ms(p['entry_ms'])}) last {p['last_price']:.8g} "
            f"unrealized {money(p['unrealized_pnl'], cur)} ({pct(p['unrealized_pct'])})"
            + (f" stop {p['stop_price']:.8g}" if p.get("stop_price") else "")
        )
    sec.lines.append(f"open orders: {len(s['open_orders']) or 'none'}")
    for sym, d in (s.get("last_decisions") or {}).items():
        pred = d.get("prediction")
        ptxt = f" prediction {pred:+.4f}" if isinstance(pred, float) else ""
        sec.lines.append(
            f"last decision {sym}: {fmt_ms(d['candle_ms'])} {d['action']} ({d['reason']}){ptxt}"
        )
    return sec


def _equity_section(f: dict[str, Any]) -> Section:
    cur = f["currency"]
    sec = Section("equity", 90)
    sec.lines.append(f"starting equity (first candle): {money(f['first_equity'], cur)}")
    for label, w in f["equity_windows"].items():
        name = "since start" if label == "all" else f"last {label}"
        if w is None:
            sec.lines.append(f"{name}: no equity recorded")
            continue
        sec.lines.append(
            f"{name} ({fmt_ms(w['from_ms'])} to {fmt_ms(w['to_ms'])}): start "
            f"{money(w['start'], cur)}, end {money(w['end'], cur)}, change "
            f"{money(w['change'], cur)} ({pct(w['change_pct'])}), peak {money(w['peak'], cur)}, "
            f"max drawdown {pct(w['max_drawdown'], signed=False)}"
        )
    return sec


def _trades_section(f: dict[str, Any]) -> Section:
    cur = f["currency"]
    sec = Section(f"recent closed trades (last {RECENT_TRADES}, oldest first)", 40)
    for t in f["trades"]["recent"]:
        sec.items.append(
            f"{fmt_ms(t['exit_ms'])} {t['symbol']} entry {t['entry_price']:.8g} "
            f"({fmt_ms(t['entry_ms'])}) exit {t['exit_price']:.8g} qty {t['qty']:.8g} "
            f"P&L {money(t['pnl'], cur)} ({pct(t['pnl_pct'])}) fees {t['fees']:.2f} "
            f"exit {t['exit_reason']}"
        )
    if not sec.items:
        sec.lines.append("none")
    return sec


def _events_section(f: dict[str, Any]) -> Section:
    sec = Section("recent warning/error events (oldest first)", 50)
    for e in f["events"]:
        sec.items.append(f"{fmt_ms(e['ts_ms'])} {e['level']} {e['kind']}: {e['message']}")
    if not sec.items:
        sec.lines.append("none")
    return sec


def _model_section(m: dict[str, Any]) -> Section:
    sec = Section("model (manifest)", 80)
    sec.lines += [
        f"version: {m['version']}; kind: {m['kind']} ({m['objective']}); label: {m['label']} "
        f"horizon {m['label_horizon']} candles; timeframe {m['timeframe']}",
        f"symbols: {', '.join(m['symbols'] or [])}; features: {m['features']}",
        f"created: {m['created_at']}; training span: {m['training_start']} to {m['training_end']}",
    ]
    oos = m.get("oos") or {}
    if oos:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(oos.items()))
        sec.lines.append(f"out-of-sample ({m['folds']} walk-forward folds): {metrics}")
    return sec


def _report_section(r: dict[str, Any]) -> Section:
    sec = Section("backtest report", 70)
    span = r.get("span") or {}
    if span:
        sec.lines.append(
            f"span: {span.get('start')} to {span.get('end')} ({span.get('timeframe')}, "
            f"{', '.join(span.get('symbols') or [])})"
        )
    for k, v in r["metrics"].items():
        sec.lines.append(f"{k}: {v:.6g}" if isinstance(v, float) else f"{k}: {v}")
    return sec


def _verdict_section(v: dict[str, Any]) -> Section:
    sec = Section("gate verdict", 85)
    sec.lines.append("PASSED" if v["passed"] else f"FAILED: {', '.join(v['failed'])}")
    for r in v["rules"]:
        val = r["value"]
        vtxt = f"{val:.4g}" if isinstance(val, float) else str(val)
        sec.lines.append(
            f"{r['rule']}: {r['label']} {vtxt} (must be {r['op']} {r['threshold']}) "
            f"{'pass' if r['passed'] else 'FAIL'}"
        )
    return sec


def fit(sections: list[Section], cap: int) -> tuple[str, bool]:
    """Render within ``cap`` characters, dropping the least important parts first."""
    body = [s for s in sections if s.size()]
    total = sum(s.size() for s in body)
    if total <= cap:
        return "\n".join(s.render() for s in body), False
    reserve = 160  # room for the truncation line
    gone: list[str] = []
    for s in sorted(body, key=lambda s: s.priority):
        while s.items and total > cap - reserve:
            before = s.size()
            s.items.pop(0)
            s.dropped += 1
            total += s.size() - before
        if total > cap - reserve:
            total -= s.size()
            s.lines, s.items = [], []
            gone.append(s.name.split(" (")[0])
        elif s.dropped:
            gone.append(f"{s.dropped} oldest of {s.name.split(' (')[0]}")
        if total <= cap - reserve:
            break
    marker = f"[context truncated to {cap} chars; dropped: {', '.join(gone) or 'the end'}]\n"
    text = marker + "\n".join(s.render() for s in body if s.size())
    return text[:cap], True


def build_context(
    cfg: Config,
    *,
    state: str,
    model: str,
    context_files: Sequence[str] = (),
    at_ms: int | None = None,
) -> Context:
    """Facts and capped text for ``ask``; ``at_ms`` pins the equity windows' end (default: the
    ledger's latest candle). A missing ledger or model is noted, an unreadable context file is
    an InputError."""
    facts: dict[str, Any] = {
        "notes": [],
        "ledger": {"available": False},
        "currency": "",
        "drawdown_halt": cfg.risk.max_drawdown_halt_frac,
    }
    files = [(path, *_read_context_file(path)) for path in context_files]
    path = Path(state)
    if path.is_file():
        facts["ledger"] = _ledger_facts(path, at_ms)
        facts["currency"] = facts["ledger"]["currency"]
    else:
        facts["notes"].append(f"ledger not available ({state}): no trading state yet")
    _model_facts(Path(model), facts)
    extra: list[Section] = []
    for name, text, doc in files:
        schema = str(doc.get("schema", "")) if isinstance(doc, dict) else ""
        if schema.startswith("gate/"):
            facts["verdict"] = verdict_facts(doc)
        elif schema.startswith("backtest/"):
            facts["report"] = report_facts(doc)
        elif schema.startswith("model/"):
            facts["model"] = manifest_facts(doc)
            facts["notes"] = [n for n in facts["notes"] if not n.startswith("model manifest")]
        else:
            sec = Section(f"context file {Path(name).name}", 60)
            sec.items = text.splitlines()
            extra.append(sec)
    facts["files"] = [name for name, _t, _d in files]
    facts["now_ms"] = now_ms()

    sections: list[Section] = []
    led = facts["ledger"]
    if led["available"]:
        sections += [_status_section(led), _equity_section(led)]
    if "verdict" in facts:
        sections.append(_verdict_section(facts["verdict"]))
    if "model" in facts:
        sections.append(_model_section(facts["model"]))
    if "report" in facts:
        sections.append(_report_section(facts["report"]))
    if led["available"]:
        sections += [_events_section(led), _trades_section(led)]
    sections += extra
    if facts["notes"]:
        sections.insert(0, Section("not available", 95, lines=list(facts["notes"])))
    secrets = secret_values(cfg)
    for sec in sections:
        sec.lines = [redact(x, secrets) for x in sec.lines]
        sec.items = [redact(x, secrets) for x in sec.items]
    text, truncated = fit(sections, cfg.ask.max_context_chars)
    return Context(text=text, facts=facts, truncated=truncated)


def iso_age_days(iso: str | None, now: int) -> int | None:
    """Whole days from an ISO-8601 UTC time to ``now`` (ms)."""
    if not iso:
        return None
    try:
        dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int((now - dt.timestamp() * 1000) // DAY_MS)
