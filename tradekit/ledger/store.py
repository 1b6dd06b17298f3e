"""The trading loop's ledger: every write of ``run`` (and of a replay), stdlib only.

Orders change status as the exchange answers; ``engine`` holds the loop's own state (policy and
risk records, accounts, the last candle) as one JSON document written in the same transaction
as the history it explains, so a crash leaves either the whole step or none of it. Readers use
:class:`tradekit.ledger.view.LedgerView` instead, read-only.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from tradekit.errors import InputError
from tradekit.ledger.schema import Writer


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Ledger(Writer):
    """An open ledger, created or migrated on open. ``with ledger.tx():`` groups writes into
    one atomic transaction (nested calls join the outer one)."""

    MIGRATE = True

    def durable(self, on: bool) -> None:
        """A replay's ledger is its only output and is simply resumed after a crash: per-step
        syncs cost more than the replay itself, so it runs with ``durable(False)``."""
        self.db.execute(f"PRAGMA synchronous={'NORMAL' if on else 'OFF'}")

    # -- meta and engine state -------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values: str) -> None:
        with self.tx() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def init(self, doc: dict[str, Any], **meta: str) -> None:
        """A fresh ledger's first state: meta, the starting capital and the engine document in
        one transaction (an empty ``meta`` is how a fresh ledger is recognised)."""
        with self.tx():
            self.set_meta(**meta)
            self.save_engine(doc, None)

    def load_engine(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT doc FROM engine WHERE id = 1").fetchone()
        if row is None:
            return None
        try:
            doc: dict[str, Any] = json.loads(row["doc"])
        except json.JSONDecodeError as e:
            raise InputError(f"{self.path}: engine state is corrupt ({e})") from None
        return doc

    def save_engine(self, doc: dict[str, Any], candle_ms: int | None) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO engine (id, doc, candle_ms, updated_ms) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, "
                "candle_ms = excluded.candle_ms, updated_ms = excluded.updated_ms",
                (json.dumps(doc, separators=(",", ":")), candle_ms, now_ms()),
            )

    # -- history ---------------------------------------------------------------------------
    def event(self, level: str, kind: str, message: str, **data: Any) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO events (ts_ms, level, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                (now_ms(), level, kind, message, json.dumps(data, default=str)),
            )

    def decisions(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows of (candle_ms, symbol, phase, action, reason, prediction, price, qty,
        model_version, input_hash); a step repeated after a crash keeps its first rows."""
        if not rows:
            return
        t = now_ms()
        with self.tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO decisions (candle_ms, symbol, phase, action, reason, "
                "prediction, price, qty, model_version, input_hash, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*r, t) for r in rows],
            )

    def add_fill(
        self,
        order_key: str,
        symbol: str,
        side: str,
        qty: float,
        price: float,
        value: float,
        fee: float,
        reason: str,
        candle_ms: int,
    ) -> None:
        """One booked fill of an order (its n-th booking gets seq n)."""
        with self.tx() as db:
            seq = db.execute(
                "SELECT count(*) FROM fills WHERE order_key = ?", (order_key,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO fills (order_key, seq, symbol, side, qty, price, value, fee, reason, "
                "candle_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (order_key, seq + 1, symbol, side, qty, price, value, fee, reason, candle_ms,
                 now_ms()),
            )  # fmt: skip

    def add_trade(self, row: dict[str, Any]) -> None:
        """A closed trade: symbol, entry_ms, exit_ms, entry_price, exit_price, qty, fees, pnl,
        pnl_pct, exit_reason, entry_reason, mae, mfe, partial_exits."""
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.tx() as db:
            db.execute(
                f"INSERT OR IGNORE INTO trades ({cols}, created_ms) VALUES ({marks}, ?)",
                (*row.values(), now_ms()),
            )

    def add_equity(
        self, candle_ms: int, equity: float, cash: float, exposure: float, peak: float
    ) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO equity (candle_ms, equity, cash, exposure, peak, "
                "created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (candle_ms, equity, cash, exposure, peak, now_ms()),
            )

    def set_positions(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """The open positions now: (symbol, qty, entry_price, entry_ms, cost, last_price,
        stop_price, entry_reason)."""
        t = now_ms()
        with self.tx() as db:
            db.execute("DELETE FROM positions")
            db.executemany(
                "INSERT INTO positions (symbol, qty, entry_price, entry_ms, cost, last_price, "
                "stop_price, entry_reason, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*r, t) for r in rows],
            )

    def add_adjustment(
        self,
        asset: str,
        symbol: str | None,
        ledger_qty: float,
        exchange_qty: float,
        price: float | None,
        reason: str,
        **data: Any,
    ) -> None:
        """A balance taken from the exchange (``reconcile --adopt``), never a fill."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO adjustments (ts_ms, asset, symbol, ledger_qty, exchange_qty, price, "
                "reason, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (now_ms(), asset, symbol, ledger_qty, exchange_qty, price, reason,
                 json.dumps(data, default=str)),
            )  # fmt: skip

    def count(self, table: str) -> int:
        if table not in ("trades", "fills", "orders", "decisions", "equity", "events"):
            raise ValueError(table)
        return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    # -- orders ----------------------------------------------------------------------------
    def order(self, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM orders WHERE key = ?", (key,)
        ).fetchone()
        return row

    def unsettled_orders(self) -> list[sqlite3.Row]:
        """Orders whose fate the exchange may still change: being sent, or resting."""
        return list(
            self.db.execute(
                "SELECT * FROM orders WHERE status IN ('submitting', 'open') ORDER BY id"
            )
        )

    def add_order(
        self,
        key: str,
        userref: int,
        symbol: str,
        side: str,
        kind: str,
        qty: float,
        stop_price: float,
        candle_ms: int,
        reason: str,
        *,
        ref_price: float | None = None,
        sig_ms: int | None = None,
        steps: int = 0,
        deadline_ms: int | None = None,
    ) -> None:
        """Written before the order is sent (in the transaction that records the decision): a
        crash after this leaves a 'submitting' order that recovery looks up on the exchange."""
        t = now_ms()
        with self.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO orders (key, userref, symbol, side, kind, qty, stop_price, "
                "candle_ms, reason, status, ref_price, sig_ms, steps, deadline_ms, created_ms, "
                "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'submitting', ?, ?, ?, ?, ?, ?)",
                (key, userref, symbol, side, kind, qty, stop_price, candle_ms, reason, ref_price,
                 sig_ms, steps, deadline_ms, t, t),
            )  # fmt: skip

    def update_order(
        self,
        key: str,
        *,
        status: str,
        exchange_id: str,
        filled: float,
        avg_price: float | None,
        fee: float,
        cost: float,
        message: str = "",
    ) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE orders SET status = ?, exchange_id = ?, filled = ?, avg_price = ?, "
                "fee = ?, cost = ?, message = ?, updated_ms = ? WHERE key = ?",
                (status, exchange_id, filled, avg_price, fee, cost, message, now_ms(), key),
            )

    def set_deadline(self, key: str, deadline_ms: int | None) -> None:
        """The deadline of the request about to leave (each attempt gets a fresh one)."""
        with self.tx() as db:
            db.execute("UPDATE orders SET deadline_ms = ? WHERE key = ?", (deadline_ms, key))

    def set_booked(self, key: str, qty: float, cost: float, fee: float) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE orders SET booked_qty = ?, booked_cost = ?, booked_fee = ?, "
                "updated_ms = ? WHERE key = ?",
                (qty, cost, fee, now_ms(), key),
            )

    # -- controls --------------------------------------------------------------------------
    def pending_controls(self) -> list[sqlite3.Row]:
        return list(self.db.execute("SELECT * FROM controls WHERE done_ms IS NULL ORDER BY id"))

    def control_done(self, cid: int, result: str) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE controls SET done_ms = ?, result = ? WHERE id = ?", (now_ms(), result, cid)
            )

    # -- runs ------------------------------------------------------------------------------
    def start_run(self, mode: str, model_version: str) -> int:
        t = now_ms()
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO runs (pid, mode, started_ms, heartbeat_ms, model_version) "
                "VALUES (?, ?, ?, ?, ?)",
                (os.getpid(), mode, t, t, model_version),
            )
            return int(cur.lastrowid or 0)

    def last_run(self) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM runs ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return row

    def heartbeat(self, run_id: int, model_version: str | None = None) -> None:
        with self.tx() as db:
            if model_version is None:
                db.execute("UPDATE runs SET heartbeat_ms = ? WHERE id = ?", (now_ms(), run_id))
            else:
                db.execute(
                    "UPDATE runs SET heartbeat_ms = ?, model_version = ? WHERE id = ?",
                    (now_ms(), model_version, run_id),
                )

    def stop_run(self, run_id: int, exit: str) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE runs SET stopped_ms = ?, exit = ? WHERE id = ?", (now_ms(), exit, run_id)
            )
