"""The reports the Pi's timers keep beside the ledger, and how their readers find them.

For a ledger ``state/tradekit.db``:

- ``state/tradekit.drift.json``: the latest ``drift/1`` report (``tradekit drift``, daily);
- ``state/tradekit.review.json``: the latest ``review/1`` (``tradekit review``, nightly).

``status``, ``review`` and ``ask`` read them from there. Stdlib only: ``status`` starts fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DRIFT_SCHEMA = "drift/1"
REVIEW_SCHEMA = "review/1"


def drift_path(state: str | os.PathLike[str]) -> Path:
    p = Path(state)
    return p.with_name(p.stem + ".drift.json")


def review_path(state: str | os.PathLike[str]) -> Path:
    p = Path(state)
    return p.with_name(p.stem + ".review.json")


def read_report(path: Path, schema: str) -> dict[str, Any] | None:
    """The report at ``path`` when it is a readable JSON document of ``schema``, else None."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("schema") != schema:
        return None
    return doc


def drift_summary(doc: dict[str, Any] | None, path: Path | None = None) -> dict[str, Any] | None:
    """The latest drift check in a few fields (``status``'s ``drift`` key)."""
    if doc is None:
        return None
    model = doc.get("model") or {}
    return {
        "status": doc.get("status"),
        "checked_at": doc.get("checked_at"),
        "model_version": model.get("version"),
        "alerts": list(doc.get("alerts") or []),
        "warnings": list(doc.get("warnings") or []),
        "retrain": bool((doc.get("retrain") or {}).get("recommended")),
        "pause_requested": bool((doc.get("pause") or {}).get("requested")),
        **({"path": str(path)} if path is not None else {}),
    }


def latest_drift(state: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The summary of the latest drift report beside the ledger ``state``, or None."""
    path = drift_path(state)
    return drift_summary(read_report(path, DRIFT_SCHEMA), path)


def drift_line(summary: dict[str, Any]) -> str:
    """``status``'s line for the latest drift check."""
    what = "; ".join([*summary["alerts"], *summary["warnings"]]) or "no shift"
    extra = [
        text
        for on, text in (
            (summary["retrain"], "retraining recommended"),
            (summary["pause_requested"], "entries paused by it"),
        )
        if on
    ]
    when = str(summary.get("checked_at") or "-")[:16].replace("T", " ")
    return f"drift      {summary['status']} ({when} UTC): {what}" + "".join(f"; {e}" for e in extra)
