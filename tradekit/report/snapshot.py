"""The bot now: one typed :class:`Snapshot` of the ledger, built once per reading and drawn by
every view (``status`` and its JSON, the phone, ``ask``'s context and offline answer,
``summary``, the dashboard, its API and ``/metrics``).

Stdlib only: ``status`` must start fast and read beside the loop without disturbing it (WAL
lets it read while ``run`` writes). :func:`build` reads an open :class:`LedgerView` inside
the caller's read transaction, so a page's numbers agree with each other; :func:`load` opens
the file itself.

JSON: ``status/1``. Added since its first release, all additive (readers of the first shape
are unaffected): ``pending_controls`` (requested, not yet applied by a loop), ``killed``,
``risk`` (paused / halted / killed in words), ``currency``, each position's ``cost`` and
``entry_reason``, and ``drift`` (the latest ``tradekit drift`` check kept beside the ledger;
the key is there only when such a report is).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradekit.ledger import LedgerView, now_ms
from tradekit.sidecar import latest_drift

SCHEMA = "status/1"
DAY_MS = 86_400_000
STALE_S = 180.0  # a loop silent this long is reported as not running
HALT_TEXT = {
    "daily_loss": "daily loss (until the next UTC day, or resume)",
    "drawdown": "drawdown (until equity recovers, its candles pass, or resume)",
    "reconcile": "the exchange differs from the ledger (until `reconcile --adopt`)",
}


@dataclass(frozen=True)
class Position:
    symbol: str
    qty: float
    entry_price: float
    entry_ms: int
    last_price: float
    cost: float
    stop_price: float | None
    entry_reason: str

    @property
    def value(self) -> float:
        return self.qty * self.last_price

    @property
    def unrealized_pnl(self) -> float:
        return self.value - self.cost

    @property
    def unrealized_pct(self) -> float | None:
        return self.unrealized_pnl / self.cost if self.cost else None


@dataclass(frozen=True)
class Order:
    key: str
    symbol: str
    side: str
    kind: str
    qty: float
    stop_price: float | None
    status: str
    exchange_id: str | None


@dataclass(frozen=True)
class Halt:
    kind: str  # daily_loss, drawdown or reconcile
    since_ms: int | None
    differences: tuple[dict[str, Any], ...] = ()

    @property
    def text(self) -> str:
        return HALT_TEXT.get(self.kind, self.kind)


@dataclass(frozen=True)
class Decision:
    symbol: str
    candle_ms: int
    phase: str
    action: str
    reason: str
    prediction: float | None


@dataclass(frozen=True)
class Event:
    ts_ms: int
    level: str
    kind: str
    message: str


@dataclass(frozen=True)
class Control:
    """A control requested (``pause``, ``kill``, ``forceexit:BTC/USD`` ...) and not yet
    applied: no loop has read it since."""

    id: int
    command: str
    requested_ms: int


@dataclass(frozen=True)
class Snapshot:
    ledger: str
    mode: str
    running: bool
    paused: bool
    killed: bool  # the last applied control was a kill, and it still holds (paused)
    halts: tuple[Halt, ...]
    pending: tuple[Control, ...]
    pid: int | None
    model_version: str | None
    last_candle_ms: int | None
    heartbeat_ms: int | None
    equity: float | None
    cash: float | None
    peak_equity: float | None
    fees_paid: float | None
    realized_pnl_today: float
    trades_today: int
    realized_pnl_total: float
    trades_total: int
    wins_total: int
    positions: tuple[Position, ...]
    open_orders: tuple[Order, ...]
    last_decisions: tuple[Decision, ...]
    missed_candles: Any
    recent_events: tuple[Event, ...]
    symbols: tuple[str, ...]
    currency: str  # the quote every symbol shares ("" when they differ)
    drift: dict[str, Any] | None = None  # sidecar.drift_summary of the latest drift check

    # -- derived figures (one definition for every view) ------------------------------------
    @property
    def drawdown(self) -> float:
        e, p = self.equity, self.peak_equity
        return (1.0 - e / p) if e and p else 0.0

    @property
    def exposure(self) -> float:
        return sum(p.value for p in self.positions)

    @property
    def unrealized_pnl(self) -> float:
        return sum(p.unrealized_pnl for p in self.positions)

    @property
    def halted(self) -> str | None:
        return ", ".join(h.text for h in self.halts) or None

    @property
    def state(self) -> str:
        """``running``/``stopped``, then paused, halted, and controls still waiting."""
        text = "running" if self.running else "stopped"
        if self.paused:
            text += ", paused"
        if self.halts:
            text += f", halted ({', '.join(h.kind for h in self.halts)})"
        if self.pending:
            text += f", {', '.join(c.command for c in self.pending)} pending"
        return text

    @property
    def risk(self) -> dict[str, Any]:
        """Paused / halted / killed and why, in words (summary, ask, the phone)."""
        reasons = []
        if self.killed:
            reasons.append("killed (positions closed, paused until resume)")
        elif self.paused:
            reasons.append("paused (no new entries until resume)")
        if self.halted:
            reasons.append(f"halted: {self.halted}")
        return {
            "paused": self.paused,
            "halted": self.halted,
            "killed": self.killed,
            "ok": not reasons,
            "text": "; ".join(reasons) if reasons else "ok",
        }

    def position(self, symbol: str) -> Position | None:
        return next((p for p in self.positions if p.symbol == symbol), None)

    def pending_text(self) -> str | None:
        """What waits for a loop, honestly: nothing of it is in force yet."""
        if not self.pending:
            return None
        what = ", ".join(c.command for c in self.pending)
        if self.running:
            return f"{what}: requested, the running loop applies it within one poll"
        return (
            f"{what}: requested, not applied yet: no loop is running (the next "
            "`tradekit run` applies it first)"
        )

    def as_json(self) -> dict[str, Any]:
        """The ``status/1`` document."""
        return {
            "schema": SCHEMA,
            "ledger": self.ledger,
            "mode": self.mode,
            "state": self.state,
            "running": self.running,
            "paused": self.paused,
            "killed": self.killed,
            "halted": self.halted,
            "halts": [
                {"kind": h.kind, "since_ms": h.since_ms}
                | ({"differences": list(h.differences)} if h.kind == "reconcile" else {})
                for h in self.halts
            ],
            "risk": self.risk,
            "pending_controls": [
                {"id": c.id, "command": c.command, "requested_ms": c.requested_ms}
                for c in self.pending
            ],
            "pid": self.pid,
            "model_version": self.model_version,
            "last_candle_ms": self.last_candle_ms,
            "heartbeat_ms": self.heartbeat_ms,
            "currency": self.currency,
            "equity": self.equity,
            "cash": self.cash,
            "peak_equity": self.peak_equity,
            "drawdown": self.drawdown,
            "realized_pnl_today": self.realized_pnl_today,
            "trades_today": self.trades_today,
            "realized_pnl_total": self.realized_pnl_total,
            "trades_total": self.trades_total,
            "fees_paid": self.fees_paid,
            "positions": [
                {
                    "symbol": p.symbol,
                    "qty": p.qty,
                    "entry_price": p.entry_price,
                    "entry_ms": p.entry_ms,
                    "entry_reason": p.entry_reason,
                    "last_price": p.last_price,
                    "cost": p.cost,
                    "value": p.value,
                    "unrealized_pnl": p.unrealized_pnl,
                    "unrealized_pct": p.unrealized_pct,
                    "stop_price": p.stop_price,
                }
                for p in self.positions
            ],
            "open_orders": [
                {
                    "key": o.key,
                    "symbol": o.symbol,
                    "side": o.side,
                    "kind": o.kind,
                    "qty": o.qty,
                    "stop_price": o.stop_price,
                    "status": o.status,
                    "exchange_id": o.exchange_id,
                }
                for o in self.open_orders
            ],
            "last_decisions": {
                d.symbol: {
                    "candle_ms": d.candle_ms,
                    "phase": d.phase,
                    "action": d.action,
                    "reason": d.reason,
                    "prediction": d.prediction,
                }
                for d in self.last_decisions
            },
            "missed_candles": self.missed_candles,
            "recent_events": [
                {"ts_ms": e.ts_ms, "level": e.level, "kind": e.kind, "message": e.message}
                for e in self.recent_events
            ],
        } | ({"drift": self.drift} if self.drift is not None else {})


# -- building it -------------------------------------------------------------------------------


def quote_currency(symbols: Any) -> str:
    """The quote all symbols share (``USD`` for BTC/USD, ETH/USD), else ``""``."""
    quotes = {s.split("/", 1)[1].split(":")[0] for s in symbols if "/" in s}
    return quotes.pop() if len(quotes) == 1 else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def halts(doc: dict[str, Any]) -> list[Halt]:
    """The halts in force, judged by the saved risk state (the loop's own rule), each with
    the candle (or time) it began at."""
    risk = doc.get("risk") or {}
    if isinstance(risk, list):  # an engine document of an older tradekit
        return [Halt("daily_loss", None)] if risk and risk[-1] else []
    out = []
    if risk.get("halted"):
        out.append(Halt("daily_loss", risk.get("daily_since")))
    if risk.get("dd_count"):
        out.append(Halt("drawdown", risk.get("dd_since")))
    rec = doc.get("reconcile_halt")
    if rec:
        out.append(Halt("reconcile", rec.get("since_ms"), tuple(rec["differences"])))
    return out


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def build(
    view: LedgerView,
    *,
    ledger: str | None = None,
    at_ms: int | None = None,
    stale_s: float = STALE_S,
) -> Snapshot:
    """The ledger's state now, read from ``view`` (call it inside ``view.snapshot()`` when
    other reads must agree with it). ``at_ms`` is the clock (tests pin it)."""
    meta = view.meta()
    doc = view.engine()
    run = view.last_run()
    t = now_ms() if at_ms is None else at_ms
    running = False
    if run is not None and run["stopped_ms"] is None:
        fresh = (t - int(run["heartbeat_ms"])) / 1000 < stale_s
        running = fresh and _alive(int(run["pid"]))
    wallet = doc.get("wallet") or {}
    risk = doc.get("risk") or {}
    peak = _float(risk.get("peak")) if isinstance(risk, dict) else None
    # The engine's own figure is the freshest: cash and positions at their last close, after
    # every fill (a kill or a stop after the last close included).
    equity = _float(wallet.get("equity", doc.get("equity")))
    if peak is not None and equity is not None:
        peak = max(peak, equity)
    positions = tuple(
        Position(
            symbol=r["symbol"],
            qty=float(r["qty"]),
            entry_price=float(r["entry_price"]),
            entry_ms=int(r["entry_ms"]),
            last_price=float(r["last_price"]),
            cost=float(r["cost"]),
            stop_price=_float(r["stop_price"]),
            entry_reason=str(r["entry_reason"] or ""),
        )
        for r in view.positions()
    )
    today = view.trade_stats(since_ms=t - t % DAY_MS)
    total = view.trade_stats()
    gaps = view.events(kind="gap", limit=1)
    paused = bool(doc.get("paused"))
    symbols = tuple(view.symbols())
    return Snapshot(
        ledger=str(ledger if ledger is not None else view.path),
        mode=meta.get("mode", "unknown"),
        running=running,
        paused=paused,
        killed=paused and view.last_control(("pause", "resume", "kill")) == "kill",
        halts=tuple(halts(doc)),
        pending=tuple(
            Control(int(c["id"]), str(c["command"]), int(c["requested_ms"]))
            for c in view.pending_controls()
        ),
        pid=int(run["pid"]) if run is not None else None,
        model_version=run["model_version"] if run is not None else None,
        last_candle_ms=doc.get("last_candle_ms"),
        heartbeat_ms=int(run["heartbeat_ms"]) if run is not None else None,
        equity=equity,
        cash=_float(wallet.get("cash", doc.get("cash"))),
        peak_equity=peak,
        fees_paid=_float(wallet.get("fees", doc.get("fees_paid"))),
        realized_pnl_today=float(today["pnl"]),
        trades_today=int(today["count"]),
        realized_pnl_total=float(total["pnl"]),
        trades_total=int(total["count"]),
        wins_total=int(total["wins"]),
        positions=positions,
        open_orders=tuple(
            Order(
                key=r["key"],
                symbol=r["symbol"],
                side=r["side"],
                kind=r["kind"],
                qty=float(r["qty"]),
                stop_price=_float(r["stop_price"]) or None,
                status=r["status"],
                exchange_id=r["exchange_id"],
            )
            for r in view.open_orders()
        ),
        last_decisions=tuple(
            Decision(
                symbol=sym,
                candle_ms=int(d["candle_ms"]),
                phase=d["phase"],
                action=d["action"],
                reason=d["reason"],
                prediction=_float(d["prediction"]),
            )
            for sym, d in view.last_decisions().items()
        ),
        missed_candles=json.loads(gaps[0]["data"]) if gaps else None,
        recent_events=tuple(
            Event(int(e["ts_ms"]), e["level"], e["kind"], e["message"])
            for e in view.events(limit=5)
        ),
        symbols=symbols,
        currency=quote_currency(symbols or [p.symbol for p in positions]),
        drift=latest_drift(view.path),
    )


def load(path: str | Path, *, at_ms: int | None = None, stale_s: float = STALE_S) -> Snapshot:
    """Open the ledger at ``path`` read-only and build its snapshot in one read transaction
    (an InputError naming the file when it is missing or not a ledger)."""
    with LedgerView(path) as view, view.snapshot():
        return build(view, ledger=str(path), at_ms=at_ms, stale_s=stale_s)


def dumps(snap: Snapshot) -> str:
    """``status --json``: indented, sorted keys, non-finite numbers as null."""
    from tradekit.contracts import finite

    return json.dumps(finite(snap.as_json()), sort_keys=True, indent=2)
