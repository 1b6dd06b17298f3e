"""``tradekit status``: a read-only snapshot of the ledger (stdlib only: it must start fast and
run beside the loop without disturbing it; WAL lets it read while ``run`` writes)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tradekit.ledger import LedgerView, now_ms

DAY_MS = 86_400_000
STALE_S = 180.0  # a loop silent this long is reported as not running
HALT_TEXT = {
    "daily_loss": "daily loss (until the next UTC day, or resume)",
    "drawdown": "drawdown (until equity recovers, its candles pass, or resume)",
    "reconcile": "the exchange differs from the ledger (until `reconcile --adopt`)",
}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def halts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The halts in force, judged by the saved risk state (the loop's own rule), each with
    the candle (or time) it began at."""
    risk = doc.get("risk") or {}
    if isinstance(risk, list):  # an engine document of an older tradekit
        return [{"kind": "daily_loss", "since_ms": None}] if risk and risk[-1] else []
    out = []
    if risk.get("halted"):
        out.append({"kind": "daily_loss", "since_ms": risk.get("daily_since")})
    if risk.get("dd_count"):
        out.append({"kind": "drawdown", "since_ms": risk.get("dd_since")})
    rec = doc.get("reconcile_halt")
    if rec:
        out.append(
            {
                "kind": "reconcile",
                "since_ms": rec.get("since_ms"),
                "differences": rec["differences"],
            }
        )
    return out


def snapshot(path: str | Path, *, stale_s: float = STALE_S) -> dict[str, Any]:
    """The ledger's state now (schema ``status/1``)."""
    with LedgerView(path) as view, view.snapshot():
        meta = view.meta()
        doc = view.engine()
        run = view.last_run()
        t = now_ms()
        running = False
        if run is not None and run["stopped_ms"] is None:
            fresh = (t - int(run["heartbeat_ms"])) / 1000 < stale_s
            running = fresh and _alive(int(run["pid"]))
        wallet = doc.get("wallet") or {}
        cash = wallet.get("cash", doc.get("cash"))
        fees = wallet.get("fees", doc.get("fees_paid"))
        risk = doc.get("risk") or {}
        peak = risk.get("peak") if isinstance(risk, dict) else None
        positions = []
        for r in view.positions():
            v = r["qty"] * r["last_price"]
            positions.append(
                {
                    "symbol": r["symbol"],
                    "qty": r["qty"],
                    "entry_price": r["entry_price"],
                    "entry_ms": r["entry_ms"],
                    "last_price": r["last_price"],
                    "value": v,
                    "unrealized_pnl": v - r["cost"],
                    "unrealized_pct": (v - r["cost"]) / r["cost"] if r["cost"] else None,
                    "stop_price": r["stop_price"],
                }
            )
        # The engine's own figure is the freshest: cash and positions at their last close,
        # after every fill (a kill or a stop after the last close included).
        equity = wallet.get("equity", doc.get("equity"))
        if peak is not None and equity is not None:
            peak = max(float(peak), equity)
        in_force = halts(doc)
        state = "running" if running else "stopped"
        if doc.get("paused"):
            state += ", paused"
        if in_force:
            state += f", halted ({', '.join(h['kind'] for h in in_force)})"
        today = view.trade_stats(since_ms=t - t % DAY_MS)
        total = view.trade_stats()
        gaps = view.events(kind="gap", limit=1)
        return {
            "schema": "status/1",
            "ledger": str(path),
            "mode": meta.get("mode", "unknown"),
            "state": state,
            "running": running,
            "paused": bool(doc.get("paused")),
            "halted": ", ".join(HALT_TEXT[h["kind"]] for h in in_force) or None,
            "halts": in_force,
            "pid": int(run["pid"]) if run is not None else None,
            "model_version": run["model_version"] if run is not None else None,
            "last_candle_ms": doc.get("last_candle_ms"),
            "heartbeat_ms": int(run["heartbeat_ms"]) if run is not None else None,
            "equity": equity,
            "cash": cash,
            "peak_equity": peak,
            "drawdown": (1.0 - equity / peak) if equity and peak else 0.0,
            "realized_pnl_today": today["pnl"],
            "trades_today": int(today["count"]),
            "realized_pnl_total": total["pnl"],
            "trades_total": int(total["count"]),
            "fees_paid": fees,
            "positions": positions,
            "open_orders": [
                {
                    "key": r["key"],
                    "symbol": r["symbol"],
                    "side": r["side"],
                    "kind": r["kind"],
                    "qty": r["qty"],
                    "stop_price": r["stop_price"] or None,
                    "status": r["status"],
                    "exchange_id": r["exchange_id"],
                }
                for r in view.open_orders()
            ],
            "last_decisions": {
                sym: {k: d[k] for k in ("candle_ms", "phase", "action", "reason", "prediction")}
                for sym, d in view.last_decisions().items()
            },
            "missed_candles": json.loads(gaps[0]["data"]) if gaps else None,
            "recent_events": [
                {k: e[k] for k in ("ts_ms", "level", "kind", "message")}
                for e in view.events(limit=5)
            ],
        }


def dumps(doc: dict[str, Any]) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(doc), sort_keys=True, indent=2)
