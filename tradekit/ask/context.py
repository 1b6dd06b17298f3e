"""The read-only context for ``ask``: what the bot knows about itself, as facts (for the offline
answer) and as text fitted to the model's window (for an LLM).

Sources: the ledger opened read-only (the status :class:`~tradekit.report.snapshot.Snapshot`
every view draws, equity windows, recent closed trades, warning/error events), the risk
limits of the config, the model manifest and any report.json / verdict.json in the model dir,
and the ``--context`` files. Everything is masked on the way
(:mod:`tradekit.ask.mask`: secret-named keys in JSON/TOML/INI/env/YAML, key formats, PEM
blocks, phone numbers, every configured secret), and a TOML file given as context loses its
[exchange] and [deploy] tables whole. Times are the person's (``[notify] timezone``).

The text is fitted (:mod:`tradekit.ask.budget`) to the token budget the caller gives (the
provider's window less the prompt and the answer) and to ``[ask] max_context_chars``: status,
equity and the gate verdict come first and stay; the rest is cut by priority (trades, then
events, then context files, ...), and the text starts with a line saying what was dropped.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.ask import review as ask_review
from tradekit.ask import sections as sx
from tradekit.ask.budget import Section, fit
from tradekit.ask.mask import Masker
from tradekit.errors import InputError
from tradekit.ledger import LedgerView
from tradekit.report.account import equity_window
from tradekit.report.snapshot import build as build_snapshot
from tradekit.timeutil import now_ms

if TYPE_CHECKING:
    from tradekit.config import Config

DAY_MS = 86_400_000
RECENT_TRADES = sx.RECENT_TRADES
RECENT_EVENTS = 20


@dataclass(frozen=True)
class Context:
    text: str
    facts: dict[str, Any]
    dropped: list[str] = field(default_factory=list)  # what the fit cut, in words
    tokens: int = 0  # the estimate of ``text``

    @property
    def truncated(self) -> bool:
        return bool(self.dropped)


# -- the ledger, read-only -------------------------------------------------------------------


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
    with LedgerView(path) as view, view.snapshot():
        snap = build_snapshot(view, ledger=str(path))
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
    return {
        "available": True,
        "path": str(path),
        "status": snap,
        "currency": snap.currency,
        "symbols": list(snap.symbols),
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
        "risk": snap.risk,
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


def _read_context_file(path: str, masker: Masker) -> tuple[str, Any]:
    """(masked text, parsed JSON or None). JSON and TOML are masked by structure before they
    are rendered (then as text, too); anything else (INI, env, YAML, notes, logs) as text.
    Unreadable or not text: InputError naming the file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read context file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: context file is not UTF-8 text") from None
    doc: Any = None
    if p.suffix.lower() == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            return masker.text(text), None
        shown = json.dumps(masker.tree(doc), sort_keys=True, indent=1, ensure_ascii=False)
        return masker.text(shown), doc
    if p.suffix.lower() == ".toml":
        try:
            parsed = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return masker.text(text), None
        # Credentials and hosts live here; the analyst needs neither.
        for table in ("exchange", "deploy"):
            parsed.pop(table, None)
        shown = json.dumps(masker.tree(parsed), sort_keys=True, indent=1, default=str)
        return masker.text(shown), None
    return masker.text(text), None


def build_context(
    cfg: Config,
    *,
    state: str,
    model: str,
    context_files: Sequence[str] = (),
    at_ms: int | None = None,
    tz: tzinfo = UTC,
    max_tokens: int = 10**9,
    masker: Masker | None = None,
) -> Context:
    """Facts and fitted text for ``ask``; ``at_ms`` pins the equity windows' end (default: the
    ledger's latest candle), ``tz`` is the zone times are shown in, ``max_tokens`` the budget
    of the text (the provider's window less the prompt and the answer). A missing ledger or
    model is noted, an unreadable context file is an InputError."""
    masker = masker or Masker.for_config(cfg)
    facts: dict[str, Any] = {
        "notes": [],
        "ledger": {"available": False},
        "currency": "",
        "drawdown_halt": cfg.risk.max_drawdown_halt_frac,
    }
    files = [(path, *_read_context_file(path, masker)) for path in context_files]
    path = Path(state)
    if path.is_file():
        facts["ledger"] = _ledger_facts(path, at_ms)
        facts["currency"] = facts["ledger"]["currency"]
    else:
        facts["notes"].append(f"ledger not available ({state}): no trading state yet")
    _model_facts(Path(model), facts)
    review = ask_review.load_beside(state)  # the nightly review, where `review` keeps it
    if review is not None:
        facts["review"] = ask_review.facts(review)
    extra: list[Section] = []
    for name, text, doc in files:
        schema = str(doc.get("schema", "")) if isinstance(doc, dict) else ""
        if schema.startswith("gate/"):
            facts["verdict"] = verdict_facts(doc)
        elif schema.startswith("backtest/"):
            facts["report"] = report_facts(doc)
        elif schema.startswith("review/"):
            facts["review"] = ask_review.facts(doc)
        elif schema.startswith("model/"):
            facts["model"] = manifest_facts(doc)
            facts["notes"] = [n for n in facts["notes"] if not n.startswith("model manifest")]
        else:
            sec = Section(f"context file {Path(name).name}", 60)
            sec.items = text.splitlines()
            extra.append(sec)
    facts["files"] = [name for name, _t, _d in files]
    facts["now_ms"] = now_ms()

    t = sx.clock(tz)
    led = facts["ledger"]
    # Status, equity and the verdict first (and never dropped), then by importance.
    sections: list[Section] = []
    if led["available"]:
        sections += [sx.status(led, t), sx.equity(led, t)]
    if "verdict" in facts:
        sections.append(sx.verdict(facts["verdict"]))
    if facts["notes"]:
        sections.append(Section("not available", 95, lines=list(facts["notes"])))
    sections.append(sx.limits(cfg))
    if "model" in facts:
        sections.append(sx.model(facts["model"], tz))
    if "report" in facts:
        sections.append(sx.report(facts["report"], tz))
    if "review" in facts:
        sections.append(ask_review.section(facts["review"], tz))
    if led["available"]:
        sections += [sx.events(led, t), sx.trades(led, t)]
    sections += extra
    for sec in sections:
        sec.lines = [masker.text(x) for x in sec.lines]
        sec.items = [masker.text(x) for x in sec.items]
    fitted = fit(sections, max_tokens=max_tokens, max_chars=cfg.ask.max_context_chars)
    return Context(text=fitted.text, facts=facts, dropped=fitted.dropped, tokens=fitted.tokens)
