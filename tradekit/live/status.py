"""``tradekit status``: a read-only snapshot of the ledger (stdlib only: it must start fast
and run beside the loop without disturbing it; WAL lets it read while ``run`` writes)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tradekit.live.ledger import Ledger, now_ms

DAY_MS = 86_400_000
STALE_S = 180.0  # a loop silent this long is reported as not running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def snapshot(
    path: str | Path, *, stale_s: float = STALE_S, drawdown_halt: float = 0.0
) -> dict[str, Any]:
    """The ledger's state; ``drawdown_halt`` is ``[risk] max_drawdown_halt_frac`` (the halt
    that is not latched, so it is judged from the equity and its peak)."""
    with Ledger(path, readonly=True) as ledger:
        db = ledger.db
        meta = ledger.meta()
        doc = ledger.load_engine() or {}
        run = db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        t = now_ms()
        running = False
        if run is not None and run["stopped_ms"] is None:
            fresh = (t - int(run["heartbeat_ms"])) / 1000 < stale_s
            running = fresh and _alive(int(run["pid"]))
        halted = _halt(doc)
        # The engine's own figures are the freshest (a kill or fill after the last close).
        equity = doc.get("equity")
        risk = doc.get("risk") or []
        peak = max(float(risk[3]), float(equity)) if len(risk) > 3 and equity else None
        under = bool(equity and peak and equity <= peak * (1.0 - drawdown_halt))
        if not halted and drawdown_halt > 0 and under:
            halted = "drawdown"
        state = "running" if running else "stopped"
        if doc.get("paused"):
            state += ", paused"
        if halted:
            state += f", halted ({halted})"
        positions = []
        for r in db.execute("SELECT * FROM positions ORDER BY symbol"):
            value = r["qty"] * r["last_price"]
            positions.append(
                {
                    "symbol": r["symbol"],
                    "qty": r["qty"],
                    "entry_price": r["entry_price"],
                    "entry_ms": r["entry_ms"],
                    "last_price": r["last_price"],
                    "value": value,
                    "unrealized_pnl": value - r["cost"],
                    "unrealized_pct": (value - r["cost"]) / r["cost"] if r["cost"] else None,
                    "stop_price": r["stop_price"],
                }
            )
        orders = [
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
            for r in db.execute(
                "SELECT * FROM orders WHERE status IN ('submitting', 'open') ORDER BY id"
            )
        ]
        day0 = t - t % DAY_MS
        total = db.execute("SELECT coalesce(sum(pnl), 0), count(*) FROM trades").fetchone()
        today = db.execute(
            "SELECT coalesce(sum(pnl), 0), count(*) FROM trades WHERE exit_ms >= ?", (day0,)
        ).fetchone()
        last = {}
        for r in db.execute(
            "SELECT d.* FROM decisions d JOIN (SELECT symbol, max(id) AS id FROM decisions "
            "GROUP BY symbol) m ON d.id = m.id ORDER BY d.symbol"
        ):
            last[r["symbol"]] = {
                "candle_ms": r["candle_ms"],
                "phase": r["phase"],
                "action": r["action"],
                "reason": r["reason"],
                "prediction": r["prediction"],
            }
        events = [
            {"ts_ms": r["ts_ms"], "level": r["level"], "kind": r["kind"], "message": r["message"]}
            for r in db.execute("SELECT * FROM events ORDER BY id DESC LIMIT 5")
        ]
        return {
            "schema": "status/1",
            "ledger": str(path),
            "mode": meta.get("mode", "unknown"),
            "state": state,
            "running": running,
            "paused": bool(doc.get("paused")),
            "halted": halted,
            "pid": int(run["pid"]) if run is not None else None,
            "model_version": run["model_version"] if run is not None else None,
            "last_candle_ms": doc.get("last_candle_ms"),
            "heartbeat_ms": int(run["heartbeat_ms"]) if run is not None else None,
            "equity": equity,
            "cash": doc.get("cash"),
            "peak_equity": peak,
            "drawdown": (1.0 - equity / peak) if equity and peak else 0.0,
            "realized_pnl_today": float(today[0]),
            "trades_today": int(today[1]),
            "realized_pnl_total": float(total[0]),
            "trades_total": int(total[1]),
            "fees_paid": doc.get("fees_paid"),
            "positions": positions,
            "open_orders": orders,
            "last_decisions": last,
            "recent_events": events,
        }


def _halt(doc: dict[str, Any]) -> str | None:
    """The halt in force, judged by the saved risk state (the loop's own rule)."""
    risk = doc.get("risk")
    if not risk:
        return None
    # risk state fields: day, day_end_ms, day_start, peak, halted (tradekit.risk.STATE)
    _day, _end, _start, _peak, halted = risk
    if halted:
        return "daily loss"
    return None


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
