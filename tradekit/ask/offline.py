"""The ``none`` provider: a deterministic answer from the context's facts, no network.

It tells how things stand (equity, P&L, drawdown, trades, open positions, risk state, gate
verdict, model) and answers the common question types it recognises by keyword (performance,
risk, gate/deployment, positions, model), in English or German ([ask] language; other
languages fall back to English; ``auto`` is decided by :mod:`tradekit.ask.lang`). Every
sentence cites the figures it rests on; times are in the person's zone.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Any

from tradekit.ask import review as ask_review
from tradekit.ask.sections import iso_local
from tradekit.report.fmt import Fmt
from tradekit.report.snapshot import Snapshot
from tradekit.timeutil import age_days

TOPICS: dict[str, tuple[str, ...]] = {
    "performance": (
        "p&l", "pnl", "profit", "loss", "lose", "lost", "perform", "return", "earn", "made",
        "money", "doing",
        "gewinn", "verlust", "rendite", "ertrag", "verdien", "läuft", "lauft", "performance",
    ),
    "risk": (
        "risk", "drawdown", "halt", "pause", "kill", "safe", "danger",
        "risiko", "rückgang", "ruckgang", "gestoppt", "sicher", "gefahr",
    ),
    "gate": (
        "gate", "deploy", "verdict", "approved", "release", "go live", "why not", "pass",
        "freigabe", "freigegeben", "warum nicht", "bereitgestellt", "prüfung", "bestanden",
    ),
    "positions": (
        "position", "open", "holding", "exposure", "hold",
        "offen", "bestand", "halte", "engagement",
    ),
    "model": (
        "model", "version", "train", "feature", "predict", "modell", "trainiert", "vorhersage",
    ),
    "review": ask_review.WORDS,
}  # fmt: skip

T: dict[str, dict[str, str]] = {
    "en": {
        "head": "Offline answer (provider none), figures from the ledger and reports.",
        "equity": "Equity {eq} ({chg} since start, first candle {start}); peak {peak}, "
        "drawdown {dd} from the peak.",
        "no_ledger": "No trading state: {note}.",
        "realized": "Realized P&L {pnl} over {n} closed trades ({w} wins, {l} losses, "
        "win rate {wr}); fees {fees}.",
        "window": "Last {label}: equity {start} -> {end} ({chg}, {pct}), max drawdown {dd}.",
        "last_trade": "Latest closed trade: {sym} {pnl} ({pct}) on {t}, exit {why}.",
        "positions_none": "Open positions: none.",
        "positions": "Open positions: {n}.",
        "position": "  {sym}: qty {qty} entry {entry}, last {last}, unrealized {pnl} ({pct}).",
        "risk": "Risk state: {state} (mode {mode}, {run}).",
        "halt_at": "Drawdown halt at {limit}: {dd} from the peak is {rel} it.",
        "above": "above",
        "below": "below",
        "events": "Warnings/errors recently: {n} ({kinds}).",
        "events_none": "No warning or error events recorded.",
        "gate_pass": "Gate: passed (all {n} rules).",
        "gate_fail": "Gate: FAILED on {n} of {total} rules, so the model is not fit to deploy:",
        "rule": "  {label} {value}, needs {op} {threshold}.",
        "gate_none": "Gate: no verdict in the context (give it with --context verdict.json "
        "or keep verdict.json in the model dir).",
        "report": "Backtest: total return {ret}, Sortino {sortino}, max drawdown {dd}, "
        "{trades} trades.",
        "model": "Model {version} ({kind}), created {created} ({age} days ago), trained on "
        "{start} to {end}.",
        "model_oos": "Out of sample: IC {ic}, hit rate {hit} over {folds} folds.",
        "model_none": "Model: not available ({note}).",
        "model_running": "The loop last ran model {version}.",
        "overview": "How things stand:",
        "fallback": "This is the offline summary; for free-form answers set [ask] provider = "
        '"anthropic" (with ANTHROPIC_API_KEY) or "openai" (e.g. Ollama at '
        "http://127.0.0.1:11434/v1).",
        "state_ok": "ok",
    },
    "de": {
        "head": "Offline-Antwort (Provider none), Zahlen aus Ledger und Berichten.",
        "equity": "Kapital {eq} ({chg} seit Start, erste Kerze {start}); Höchststand {peak}, "
        "Drawdown {dd} vom Höchststand.",
        "no_ledger": "Kein Handelszustand: {note}.",
        "realized": "Realisierter G&V {pnl} aus {n} geschlossenen Trades ({w} Gewinner, "
        "{l} Verlierer, Trefferquote {wr}); Gebühren {fees}.",
        "window": "Letzte {label}: Kapital {start} -> {end} ({chg}, {pct}), maximaler "
        "Drawdown {dd}.",
        "last_trade": "Letzter geschlossener Trade: {sym} {pnl} ({pct}) am {t}, Ausstieg {why}.",
        "positions_none": "Offene Positionen: keine.",
        "positions": "Offene Positionen: {n}.",
        "position": "  {sym}: Menge {qty} Einstieg {entry}, zuletzt {last}, unrealisiert "
        "{pnl} ({pct}).",
        "risk": "Risikostatus: {state} (Modus {mode}, {run}).",
        "halt_at": "Drawdown-Stopp bei {limit}: {dd} vom Höchststand liegt {rel}.",
        "above": "darüber",
        "below": "darunter",
        "events": "Warnungen/Fehler zuletzt: {n} ({kinds}).",
        "events_none": "Keine Warnungen oder Fehler verzeichnet.",
        "gate_pass": "Gate: bestanden (alle {n} Regeln).",
        "gate_fail": "Gate: NICHT bestanden bei {n} von {total} Regeln, daher nicht für den "
        "Einsatz freigegeben:",
        "rule": "  {label} {value}, verlangt {op} {threshold}.",
        "gate_none": "Gate: kein Urteil im Kontext (mit --context verdict.json angeben oder "
        "verdict.json im Modellordner ablegen).",
        "report": "Backtest: Gesamtrendite {ret}, Sortino {sortino}, maximaler Drawdown {dd}, "
        "{trades} Trades.",
        "model": "Modell {version} ({kind}), erstellt {created} (vor {age} Tagen), trainiert "
        "auf {start} bis {end}.",
        "model_oos": "Out-of-Sample: IC {ic}, Trefferquote {hit} über {folds} Folds.",
        "model_none": "Modell: nicht verfügbar ({note}).",
        "model_running": "Die Schleife lief zuletzt mit Modell {version}.",
        "overview": "Der Stand:",
        "fallback": "Dies ist die Offline-Zusammenfassung; für frei formulierte Antworten "
        '[ask] provider = "anthropic" (mit ANTHROPIC_API_KEY) oder "openai" (z. B. Ollama '
        "unter http://127.0.0.1:11434/v1) setzen.",
        "state_ok": "in Ordnung",
    },
}
WINDOW_LABEL = {"en": {"7d": "7 days", "30d": "30 days"}, "de": {"7d": "7 Tage", "30d": "30 Tage"}}


class _Fmt(Fmt):
    """:class:`~tradekit.report.fmt.Fmt` in the answer's language; money with its currency."""

    def money(self, v: Any, *, signed: bool = False, cur: bool = True) -> str:
        return super().money(v, signed=signed, cur=cur)

    def date(self, iso: Any) -> str:
        return iso_local(iso, self.tz)[:10]


def topics(question: str) -> list[str]:
    q = question.lower()
    return [name for name, words in TOPICS.items() if any(w in q for w in words)]


def offline_answer(facts: dict[str, Any], question: str, language: str, tz: tzinfo = UTC) -> str:
    """The answer in ``language`` (``de`` or ``en``; others get English), times in ``tz``."""
    lang = language.lower().split("-")[0]
    if lang not in T:
        lang = "en"
    t = T[lang]
    f = _Fmt(lang, facts.get("currency", ""), tz)
    found = topics(question)
    parts = [t["head"]]
    for topic in found:
        parts.append("\n".join(_TOPIC[topic](facts, t, f, lang)))
    overview = _overview(facts, t, f, lang, skip=set(found))
    if found:
        if overview:
            parts.append("\n".join([t["overview"], *overview]))
    else:
        parts.append("\n".join([t["overview"], *overview]))
        parts.append(t["fallback"])
    return "\n\n".join(parts) + "\n"


def _overview(
    facts: dict[str, Any], t: dict[str, str], f: _Fmt, lang: str, skip: set[str]
) -> list[str]:
    lines: list[str] = []
    if "performance" not in skip:
        lines += _equity(facts, t, f)
    if "positions" not in skip:
        lines += _positions(facts, t, f, lang)[:1]
    if "risk" not in skip:
        lines += _risk(facts, t, f, lang)[:1]
    if "gate" not in skip:
        # The verdict with its failing rules (a header ending in ":" alone says nothing).
        lines += _gate(facts, t, f, lang, with_report=False)
    if "model" not in skip:
        lines += _model(facts, t, f, lang)[:1]
    return lines


def _equity(facts: dict[str, Any], t: dict[str, str], f: _Fmt) -> list[str]:
    led = facts["ledger"]
    if not led.get("available"):
        return [t["no_ledger"].format(note=_note(facts, "ledger"))]
    s: Snapshot = led["status"]
    first = led.get("first_equity")
    eq = s.equity
    chg = (eq / first - 1.0) if isinstance(eq, int | float) and first else None
    tr = led["trades"]
    return [
        t["equity"].format(
            eq=f.money(eq),
            chg=f.pct(chg),
            start=f.money(first),
            peak=f.money(s.peak_equity),
            dd=f.pct(s.drawdown, signed=False),
        ),
        t["realized"].format(
            pnl=f.money(tr["pnl"], signed=True),
            n=tr["count"],
            w=tr["wins"],
            l=tr["losses"],
            wr=f.pct(tr["wins"] / tr["count"] if tr["count"] else None, signed=False),
            fees=f.money(tr["fees"]),
        ),
    ]


def _performance(facts: dict[str, Any], t: dict[str, str], f: _Fmt, lang: str) -> list[str]:
    lines = _equity(facts, t, f)
    led = facts["ledger"]
    if not led.get("available"):
        return lines
    for label in ("7d", "30d"):
        w = led["equity_windows"].get(label)
        if w:
            lines.append(
                t["window"].format(
                    label=WINDOW_LABEL[lang][label],
                    start=f.money(w["start"]),
                    end=f.money(w["end"]),
                    chg=f.money(w["change"], signed=True),
                    pct=f.pct(w["change_pct"]),
                    dd=f.pct(w["max_drawdown"], signed=False),
                )
            )
    recent = led["trades"]["recent"]
    if recent:
        last = recent[-1]
        lines.append(
            t["last_trade"].format(
                sym=last["symbol"],
                pnl=f.money(last["pnl"], signed=True),
                pct=f.pct(last["pnl_pct"]),
                t=f.time(last["exit_ms"]),
                why=last["exit_reason"],
            )
        )
    return lines


def _positions(facts: dict[str, Any], t: dict[str, str], f: _Fmt, lang: str) -> list[str]:
    led = facts["ledger"]
    if not led.get("available"):
        return [t["no_ledger"].format(note=_note(facts, "ledger"))]
    pos = led["status"].positions
    if not pos:
        return [t["positions_none"]]
    lines = [t["positions"].format(n=len(pos))]
    for p in pos:
        lines.append(
            t["position"].format(
                sym=p.symbol,
                qty=f.qty(p.qty),
                entry=f.qty(p.entry_price),
                last=f.qty(p.last_price),
                pnl=f.money(p.unrealized_pnl, signed=True),
                pct=f.pct(p.unrealized_pct),
            )
        )
    return lines


def _risk(facts: dict[str, Any], t: dict[str, str], f: _Fmt, lang: str) -> list[str]:
    led = facts["ledger"]
    if not led.get("available"):
        return [t["no_ledger"].format(note=_note(facts, "ledger"))]
    s: Snapshot = led["status"]
    risk = led["risk"]
    lines = [
        t["risk"].format(
            state=t["state_ok"] if risk["ok"] else risk["text"],
            mode=s.mode,
            run=s.state.split(",")[0],
        )
    ]
    limit = facts.get("drawdown_halt") or 0.0
    dd = s.drawdown
    if limit > 0:
        lines.append(
            t["halt_at"].format(
                limit=f.pct(limit, signed=False),
                dd=f.pct(dd, signed=False),
                rel=t["above"] if dd >= limit else t["below"],
            )
        )
    events = led["events"]
    if events:
        kinds: dict[str, int] = {}
        for e in events:
            key = f"{e['level']} {e['kind']}"
            kinds[key] = kinds.get(key, 0) + 1
        lines.append(
            t["events"].format(
                n=len(events), kinds=", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
            )
        )
    else:
        lines.append(t["events_none"])
    return lines


def _gate(
    facts: dict[str, Any], t: dict[str, str], f: _Fmt, lang: str, *, with_report: bool = True
) -> list[str]:
    lines: list[str] = []
    v = facts.get("verdict")
    if v is None:
        lines.append(t["gate_none"])
    elif v["passed"]:
        lines.append(t["gate_pass"].format(n=len(v["rules"])))
    else:
        failed = [r for r in v["rules"] if not r["passed"]]
        lines.append(t["gate_fail"].format(n=len(failed), total=len(v["rules"])))
        for r in failed:
            lines.append(
                t["rule"].format(
                    label=f"{r['label']} ({r['rule']})",
                    value=_metric(f, r["metric"], r["value"]),
                    op=r["op"],
                    threshold=_metric(f, r["metric"], r["threshold"]),
                )
            )
    rep = facts.get("report")
    if rep and with_report:
        m = rep["metrics"]
        lines.append(
            t["report"].format(
                ret=f.pct(m.get("total_return")),
                sortino=f.num(m.get("sortino")),
                dd=f.pct(m.get("max_drawdown"), signed=False),
                trades=m.get("trades", "-"),
            )
        )
    return lines


def _metric(f: _Fmt, metric: Any, v: Any) -> str:
    if isinstance(v, float) and metric in ("max_drawdown", "total_return", "cagr", "win_rate"):
        return f.pct(v, signed=metric != "max_drawdown")
    if isinstance(v, float):
        return f.num(v)
    return str(v)


def _model(facts: dict[str, Any], t: dict[str, str], f: _Fmt, lang: str) -> list[str]:
    m = facts.get("model")
    lines: list[str] = []
    if m is None:
        lines.append(t["model_none"].format(note=_note(facts, "model")))
    else:
        lines.append(
            t["model"].format(
                version=m["version"],
                kind=m["kind"],
                created=f.date(m["created_at"]),
                age=_or_dash(_whole_days(age_days(m["created_at"], facts["now_ms"]))),
                start=f.date(m["training_start"]),
                end=f.date(m["training_end"]),
            )
        )
        oos = m.get("oos") or {}
        if oos:
            lines.append(
                t["model_oos"].format(
                    ic=f.num(oos.get("ic"), 4),
                    hit=f.pct(oos.get("hit_rate"), signed=False),
                    folds=m["folds"],
                )
            )
    led = facts["ledger"]
    running = led["status"].model_version if led.get("available") else None
    if running and (m is None or running != m["version"]):
        lines.append(t["model_running"].format(version=running))
    return lines


def _or_dash(v: int | None) -> str:
    return "-" if v is None else str(v)


def _note(facts: dict[str, Any], word: str) -> str:
    for n in facts.get("notes", []):
        if word in n:
            return str(n)
    return "-"


def _review(facts: dict[str, Any], t: dict[str, str], f: _Fmt, lang: str) -> list[str]:
    return ask_review.offline(facts, lang, f.pct, f.money, f.date)


_TOPIC = {
    "review": _review,
    "performance": _performance,
    "risk": _risk,
    "gate": _gate,
    "positions": _positions,
    "model": _model,
}


def _whole_days(days: float | None) -> int | None:
    return None if days is None else int(days // 1)
