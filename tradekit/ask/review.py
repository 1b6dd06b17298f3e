"""The nightly review (``review/1``) as a source of ``ask``'s context: its facts, its section
of the LLM's text, and the offline provider's paragraph, in English and German.

The review is read from beside the ledger (``state/NAME.review.json``, written by the
nightly ``tradekit review``) or given with ``--context review.json``. The LLM only reads it.
"""

from __future__ import annotations

from datetime import tzinfo
from pathlib import Path
from typing import Any

from tradekit.ask.budget import Section
from tradekit.ask.sections import iso_local
from tradekit.sidecar import REVIEW_SCHEMA, read_report, review_path

WORDS = (
    "review", "night", "yesterday", "last day", "drift", "mae", "mfe", "excursion", "reject",
    "candidate", "receipt", "rückblick", "ruckblick", "nacht", "gestern", "abgelehnt",
    "kandidat",
)  # fmt: skip

T = {
    "en": {
        "head": "Review of the {name} to {end}:",
        "trades": "{n} trades closed ({w} won), P&L {pnl}; mean MAE {mae}, mean MFE {mfe}, "
        "of which {kept} kept on average.",
        "halts": "Halts: {n} ({what}).",
        "rejects": "Rejected entries: {n} ({what}).",
        "drift": "Drift: {status}, checked {at}{why}.",
        "drift_none": "Drift: no report.",
        "model": "Model {version}: {age} days old, gate {gate}.",
        "candidates": "Candidates: {n}.",
        "none": "No review yet (tradekit review writes it nightly).",
    },
    "de": {
        "head": "Rückblick auf den Zeitraum {name} bis {end}:",
        "trades": "{n} Trades geschlossen ({w} Gewinner), G&V {pnl}; mittlerer MAE {mae}, "
        "mittlerer MFE {mfe}, davon im Mittel {kept} behalten.",
        "halts": "Stopps: {n} ({what}).",
        "rejects": "Abgelehnte Einstiege: {n} ({what}).",
        "drift": "Drift: {status}, geprüft {at}{why}.",
        "drift_none": "Drift: kein Bericht.",
        "model": "Modell {version}: {age} Tage alt, Gate {gate}.",
        "candidates": "Kandidaten: {n}.",
        "none": "Noch kein Rückblick (tradekit review schreibt ihn jede Nacht).",
    },
}


def load_beside(state: str | Path) -> dict[str, Any] | None:
    """The review kept beside the ledger, or None."""
    return read_report(review_path(state), REVIEW_SCHEMA)


def facts(doc: dict[str, Any]) -> dict[str, Any]:
    """What ask keeps of a review (the trade list shortened to the worst and best five)."""
    t = doc.get("trades") or {}
    trades = sorted(t.get("list") or [], key=lambda x: float(x.get("pnl") or 0.0))
    return {
        "period": doc.get("period") or {},
        "equity": doc.get("equity"),
        "trades": {k: v for k, v in t.items() if k != "list"},
        "extreme_trades": trades[:5] + trades[5:][-5:],
        "halts": doc.get("halts") or [],
        # Most frequent first (the file's keys are sorted by name).
        "rejects": dict(sorted((doc.get("rejects") or {}).items(), key=lambda kv: (-kv[1], kv[0]))),
        "rejects_total": doc.get("rejects_total") or 0,
        "candidates": doc.get("candidates") or [],
        "drift": doc.get("drift"),
        "model": doc.get("model") or {},
        "notes": doc.get("notes") or [],
    }


def _pct(v: Any) -> str:
    return f"{v * 100:.2f} %" if isinstance(v, int | float) else "-"


def section(r: dict[str, Any], tz: tzinfo) -> Section:
    sec = Section("nightly review (review/1)", 85)
    p, t = r["period"], r["trades"]
    sec.lines.append(
        f"period: {p.get('name')} {iso_local(p.get('start'), tz)} to {iso_local(p.get('end'), tz)}"
    )
    sec.lines.append(
        f"trades closed {t.get('count', 0)}, won {t.get('wins', 0)}, pnl {t.get('pnl', 0):.2f}, "
        f"MAE mean {_pct(t.get('mae_mean'))} worst {_pct(t.get('mae_worst'))}, MFE mean "
        f"{_pct(t.get('mfe_mean'))} best {_pct(t.get('mfe_best'))}, share of MFE kept "
        f"{_pct(t.get('mfe_kept_mean'))}"
    )
    for h in r["halts"]:
        sec.lines.append(f"halt: {h.get('message')}")
    if r["rejects"]:
        sec.lines.append(
            "rejected entries by reason: " + ", ".join(f"{k} {v}" for k, v in r["rejects"].items())
        )
    d = r["drift"]
    if d:
        sec.lines.append(
            f"drift: {d.get('status')} (checked {iso_local(d.get('checked_at'), tz)}); "
            + "; ".join([*d.get("alerts", []), *d.get("warnings", [])])
        )
    m = r["model"]
    if m.get("available"):
        rc = m.get("receipt") or {}
        sec.lines.append(
            f"model {m.get('version')} ({m.get('kind')}): {m.get('age_days')} days old, "
            f"training data ends {iso_local(m.get('training_end'), tz)}, gate receipt "
            f"{'passed' if rc.get('passed') else 'not passed: ' + str(rc.get('problem'))}"
        )
    sec.lines.append(f"candidates: {len(r['candidates'])}")
    for x in r["extreme_trades"]:
        sec.items.append(
            f"trade {x.get('symbol')} pnl {float(x.get('pnl') or 0):.2f} "
            f"({_pct(x.get('pnl_pct'))}) MAE {_pct(x.get('mae'))} MFE {_pct(x.get('mfe'))} "
            f"exit {x.get('exit_reason')}"
        )
    return sec


def offline(all_facts: dict[str, Any], lang: str, pct: Any, money: Any, date: Any) -> list[str]:
    """The offline provider's paragraph; ``pct``, ``money``, ``date`` format in ``lang``."""
    t = T.get(lang, T["en"])
    r = all_facts.get("review")
    if r is None:
        return [t["none"]]
    p, tr = r["period"], r["trades"]
    lines = [t["head"].format(name=p.get("name"), end=date(p.get("end")))]
    text = t["trades"].format(
        n=tr.get("count", 0),
        w=tr.get("wins", 0),
        pnl=money(tr.get("pnl"), signed=True),
        mae=pct(tr.get("mae_mean"), signed=False),
        mfe=pct(tr.get("mfe_mean"), signed=False),
        kept=pct(tr.get("mfe_kept_mean"), signed=False),
    )
    lines.append(text)
    if r["halts"]:
        what = "; ".join(str(h.get("message")) for h in r["halts"])
        lines.append(t["halts"].format(n=len(r["halts"]), what=what))
    if r["rejects"]:
        what = ", ".join(f"{k} {v}" for k, v in r["rejects"].items())
        lines.append(t["rejects"].format(n=r["rejects_total"], what=what))
    d = r["drift"]
    if d:
        why = ": " + "; ".join(d.get("alerts") or []) if d.get("alerts") else ""
        at = date(d.get("checked_at"))
        lines.append(t["drift"].format(status=d.get("status"), at=at, why=why))
    else:
        lines.append(t["drift_none"])
    m = r["model"]
    if m.get("available"):
        rc = m.get("receipt") or {}
        gate = "ok" if rc.get("passed") else f"!= ok ({rc.get('problem')})"
        lines.append(t["model"].format(version=m.get("version"), age=m.get("age_days"), gate=gate))
    lines.append(t["candidates"].format(n=len(r["candidates"])))
    return lines
