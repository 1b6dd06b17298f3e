"""``tradekit review``: the night's (or week's) evidence in one ``review/1`` document.

What happened (closed trades with their maximum adverse and favourable excursions, halts,
rejected entries by reason, decisions by action, the equity change), the candidates'
evidence (each candidate model against live since it started, :mod:`tradekit.evidence`), the
latest drift report, and the deployed model's age and gate receipt. It reads the ledger through
:class:`~tradekit.ledger.view.LedgerView` and writes nothing but its output; ``ask`` reads it
as context (:mod:`tradekit.ask.review`).

Stdlib only at import (the ledger view, the manifest and the gate receipt are light).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tradekit import evidence
from tradekit.errors import InputError, UsageError
from tradekit.sidecar import DRIFT_SCHEMA, REVIEW_SCHEMA, drift_path, drift_summary, read_report
from tradekit.timeutil import age_days

DAY_MS = 86_400_000
PERIODS = {"day": DAY_MS, "week": 7 * DAY_MS}
TRADE_KEYS = (
    "symbol", "entry_ms", "exit_ms", "entry_price", "exit_price", "qty", "fees", "pnl",
    "pnl_pct", "mae", "mfe", "exit_reason", "entry_reason",
)  # fmt: skip


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _trades(rows: list[dict[str, Any]]) -> dict[str, Any]:
    trades: list[dict[str, Any]] = [{k: r.get(k) for k in TRADE_KEYS} for r in rows]
    mae = [float(t["mae"]) for t in trades if t["mae"] is not None]
    mfe = [float(t["mfe"]) for t in trades if t["mfe"] is not None]
    # How much of the best move each trade kept: pnl_pct over mfe (trades that ever gained).
    kept = [
        float(t["pnl_pct"]) / float(t["mfe"])
        for t in trades
        if t["mfe"] is not None and float(t["mfe"]) > 0
    ]
    return {
        "count": len(trades),
        "wins": sum(1 for t in trades if float(t["pnl"]) > 0),
        "pnl": sum(float(t["pnl"]) for t in trades),
        "fees": sum(float(t["fees"]) for t in trades),
        "mae_mean": _mean(mae),
        "mae_worst": max(mae) if mae else None,
        "mfe_mean": _mean(mfe),
        "mfe_best": max(mfe) if mfe else None,
        "mfe_kept_mean": _mean(kept),
        "list": trades,
    }


def _ledger(path: Path, start: int, end: int) -> dict[str, Any]:
    from tradekit.ledger import LedgerView

    with LedgerView(path) as view, view.snapshot():
        meta = view.meta()
        run = view.last_run()
        before, after = view.equity_at(start), view.equity_at(end)
        halts = []
        for e in view.events(start_ms=start, end_ms=end, kind="halt", newest_first=False):
            try:
                data = json.loads(e.get("data") or "{}")
            except ValueError:
                data = {}
            halts.append(
                {
                    "ts_ms": e["ts_ms"],
                    "level": e["level"],
                    "message": e["message"],
                    "halt": data.get("halt"),
                    "change": data.get("change"),
                    "candle_ms": data.get("candle_ms"),
                }
            )
        rejects = {
            str(r["reason"]): int(r["count"])
            for r in view.decision_counts(start, end, action="skip")
        }
        actions: dict[str, int] = {}
        for r in view.decision_counts(start, end):
            actions[str(r["action"])] = actions.get(str(r["action"]), 0) + int(r["count"])
        trades = _trades(view.trades(start_ms=start, end_ms=end))
    equity = None
    if after is not None:
        first = float(before["equity"]) if before is not None else None
        last = float(after["equity"])
        equity = {
            "start": first,
            "end": last,
            "change": last - first if first is not None else None,
            "change_pct": (last / first - 1.0) if first else None,
        }
    return {
        "ledger": {
            "path": str(path),
            "available": True,
            "mode": meta.get("mode"),
            "symbols": [s for s in meta.get("symbols", "").split(",") if s],
            "running_model_version": run["model_version"] if run is not None else None,
        },
        "equity": equity,
        "trades": trades,
        "halts": halts,
        "rejects": dict(sorted(rejects.items(), key=lambda kv: (-kv[1], kv[0]))),
        "rejects_total": sum(rejects.values()),
        "decisions": dict(sorted(actions.items())),
    }


def _model(model_dir: Path, now: int, notes: list[str]) -> dict[str, Any]:
    from tradekit.gate import RECEIPT, model_identity, receipt_problem
    from tradekit.models import manifest as mf

    try:
        doc = mf.read(model_dir)
    except InputError as e:
        notes.append(f"model not available: {e}")
        return {"dir": str(model_dir), "available": False}
    training = doc.get("training") or {}
    end_ms = training.get("end_ms")
    problem = receipt_problem(model_dir, model_identity(model_dir, doc))
    verdict = read_report(model_dir / RECEIPT, "gate/1")
    return {
        "dir": str(model_dir),
        "available": True,
        "version": mf.files_version(doc["files"]),
        "kind": doc["kind"],
        "members": [m.get("name") for m in doc.get("members") or []] or None,
        "created_at": doc.get("created_at"),
        "age_days": age_days(doc.get("created_at"), now),
        "training_end": training.get("end"),
        "data_age_days": round((now - int(end_ms)) / DAY_MS, 2) if end_ms is not None else None,
        "oos": (doc.get("walk_forward") or {}).get("overall"),
        "receipt": {
            "present": verdict is not None,
            "passed": problem is None,
            "problem": problem,
            "failed": list((verdict or {}).get("failed") or []),
            "judged_at": (verdict or {}).get("created_at"),
        },
    }


def build_review(
    *,
    state: str | Path,
    model_dir: str | Path,
    period: str = "day",
    at_ms: int | None = None,
    now_ms: int | None = None,
    candidates: str | Path | None = None,
) -> dict[str, Any]:
    """The ``review/1`` document of the ``period`` ending at ``at_ms`` (default: the ledger's
    latest candle, else now). ``now_ms`` is when it is made (ages), default now.
    ``candidates``: where candidate models are installed (default: beside ``model_dir``)."""
    from tradekit.timeutil import now_ms as clock

    if period not in PERIODS:
        raise UsageError(f"--period {period!r}: choose day or week")
    now = clock() if now_ms is None else now_ms
    path = Path(state)
    notes: list[str] = []
    end = at_ms
    if end is None and path.is_file():
        from tradekit.ledger import LedgerView

        with LedgerView(path) as view:
            end = view.last_candle_ms()
    end = now if end is None else end
    start = end - PERIODS[period]
    doc: dict[str, Any] = {
        "schema": REVIEW_SCHEMA,
        "generated_at": iso(now),
        "period": {
            "name": period,
            "start_ms": start,
            "end_ms": end,
            "start": iso(start),
            "end": iso(end),
        },
        "ledger": {"path": str(path), "available": False},
        "equity": None,
        "trades": _trades([]),
        "halts": [],
        "rejects": {},
        "rejects_total": 0,
        "decisions": {},
        # Candidate models paper-trading beside the live one: their evidence since each started
        # (tradekit.evidence, as `tradekit candidates` and the dashboard show it).
        "candidates": [],
        "drift": None,
        "model": None,
        "notes": notes,
    }
    if path.is_file():
        doc.update(_ledger(path, start, end))
    else:
        notes.append(f"no ledger at {path}: nothing traded yet")
    report = read_report(drift_path(path), DRIFT_SCHEMA)
    doc["drift"] = drift_summary(report, drift_path(path))
    if report is None:
        notes.append("no drift report beside the ledger (tradekit drift writes it daily)")
    doc["model"] = _model(Path(model_dir), now, notes)
    where = Path(candidates) if candidates else evidence.directory("", str(model_dir))
    doc["candidates"] = evidence.candidates_report(
        state=path if path.is_file() else None, cand_dir=where, end_ms=end
    )
    return doc


def render(doc: dict[str, Any]) -> str:
    """A few lines for a person (stderr, or the phone)."""
    p, t, m = doc["period"], doc["trades"], doc["model"] or {}
    lines = [f"review {p['name']} {p['start'][:16]} .. {p['end'][:16]} UTC"]
    eq = doc["equity"]
    if eq and eq.get("change") is not None:
        lines.append(f"equity {eq['end']:,.2f} ({eq['change']:+,.2f}, {eq['change_pct']:+.2%})")
    mae = f", MAE mean {t['mae_mean']:.2%}" if t["mae_mean"] is not None else ""
    mfe = f", MFE mean {t['mfe_mean']:.2%}" if t["mfe_mean"] is not None else ""
    lines.append(f"trades {t['count']} ({t['wins']} won), P&L {t['pnl']:+,.2f}{mae}{mfe}")
    if doc["halts"]:
        lines.append(f"halts {len(doc['halts'])}: " + "; ".join(h["message"] for h in doc["halts"]))
    if doc["rejects"]:
        lines.append(
            f"rejected entries {doc['rejects_total']}: "
            + ", ".join(f"{k} {v}" for k, v in doc["rejects"].items())
        )
    d = doc["drift"]
    lines.append(
        f"drift {d['status']} (checked {str(d['checked_at'])[:16]})" if d else "drift: no report"
    )
    if m.get("available"):
        rc = m["receipt"]
        gate = "passed" if rc["passed"] else f"NOT passed ({rc['problem']})"
        lines.append(f"model {m['version']} ({m['kind']}), {m['age_days']} days old, gate {gate}")
    lines += [f"note: {n}" for n in doc["notes"]]
    return "\n".join(lines) + "\n"
