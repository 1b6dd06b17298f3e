"""The ledger: one SQLite file (WAL) holding everything ``run`` did and why (stdlib only, so
``status`` and ``notify`` read it without the trading stack).

History tables (decisions, fills, trades, equity, events) are append-only: triggers refuse
UPDATE and DELETE. Orders change status as the exchange answers; ``engine`` holds the loop's
own state (policy and risk records, accounts, the last candle) as one JSON document written in
the same transaction as the candle's history, so a crash leaves either the whole candle or none
of it. The schema version is ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a file from
version ``i`` to ``i + 1``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tradekit.errors import InputError

_APPEND_ONLY = ("decisions", "fills", "trades", "equity", "events")  # v1

_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE engine (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL,
    candle_ms INTEGER, updated_ms INTEGER NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, mode TEXT NOT NULL,
    started_ms INTEGER NOT NULL, heartbeat_ms INTEGER NOT NULL, stopped_ms INTEGER,
    model_version TEXT, exit TEXT);
CREATE TABLE controls (id INTEGER PRIMARY KEY, command TEXT NOT NULL,
    requested_ms INTEGER NOT NULL, done_ms INTEGER, result TEXT);
CREATE TABLE decisions (id INTEGER PRIMARY KEY, candle_ms INTEGER NOT NULL,
    symbol TEXT NOT NULL, phase TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL,
    prediction REAL, price REAL, qty REAL, model_version TEXT, input_hash TEXT,
    created_ms INTEGER NOT NULL, UNIQUE (candle_ms, symbol, phase));
CREATE TABLE orders (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, userref INTEGER NOT NULL,
    symbol TEXT NOT NULL, side TEXT NOT NULL, kind TEXT NOT NULL, qty REAL NOT NULL,
    stop_price REAL NOT NULL DEFAULT 0, candle_ms INTEGER NOT NULL, reason TEXT NOT NULL,
    status TEXT NOT NULL, exchange_id TEXT NOT NULL DEFAULT '', filled REAL NOT NULL DEFAULT 0,
    avg_price REAL, fee REAL NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE INDEX orders_status ON orders (status);
CREATE TABLE fills (id INTEGER PRIMARY KEY, order_key TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL,
    fee REAL NOT NULL, reason TEXT NOT NULL, candle_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL);
CREATE TABLE positions (symbol TEXT PRIMARY KEY, qty REAL NOT NULL, entry_price REAL NOT NULL,
    entry_ms INTEGER NOT NULL, cost REAL NOT NULL, last_price REAL NOT NULL,
    stop_price REAL, entry_reason TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE trades (id INTEGER PRIMARY KEY, symbol TEXT NOT NULL, entry_ms INTEGER NOT NULL,
    exit_ms INTEGER NOT NULL, entry_price REAL NOT NULL, exit_price REAL NOT NULL,
    qty REAL NOT NULL, fees REAL NOT NULL, pnl REAL NOT NULL, pnl_pct REAL NOT NULL,
    exit_reason TEXT NOT NULL, entry_reason TEXT NOT NULL, mae REAL NOT NULL,
    partial_exits INTEGER NOT NULL, created_ms INTEGER NOT NULL,
    UNIQUE (symbol, entry_ms, exit_ms));
CREATE TABLE equity (candle_ms INTEGER PRIMARY KEY, equity REAL NOT NULL, cash REAL NOT NULL,
    exposure REAL NOT NULL, peak REAL NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, level TEXT NOT NULL,
    kind TEXT NOT NULL, message TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}');
"""


def _append_only(table: str) -> str:
    return (
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;\n"
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END;\n"
    )


# v2: the phone. ``messages`` logs every command that came in (allowed or not) and every answer
# that went out; ``asks`` records each LLM call's token use and cost; ``courier`` is the
# notifier's own key-value state (delivery cursors, pending kill codes), kept out of ``meta``
# because an empty ``meta`` is how ``run`` knows a ledger is fresh.
_V2 = """
CREATE TABLE messages (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, direction TEXT NOT NULL,
    peer TEXT NOT NULL, text TEXT NOT NULL, status TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}');
CREATE TABLE asks (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, provider TEXT NOT NULL,
    model TEXT NOT NULL, question TEXT NOT NULL, input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL);
CREATE TABLE courier (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

MIGRATIONS: list[str] = [
    _V1 + "".join(_append_only(t) for t in _APPEND_ONLY),
    _V2 + _append_only("messages") + _append_only("asks"),
]
VERSION = len(MIGRATIONS)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Ledger:
    """An open ledger. ``with ledger.tx():`` groups writes into one atomic transaction."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.exists():
                raise InputError(f"{self.path}: no ledger here (has `tradekit run` started?)")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self.db = self._connect(uri, uri=True)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = self._connect(str(self.path))
        self._depth = 0
        try:
            version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
            if not readonly:
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self._migrate(version)
            elif version != VERSION:
                raise InputError(
                    f"{self.path}: ledger schema version {version}, this tradekit reads "
                    f"{VERSION} (start `tradekit run` once to migrate it)"
                )
        except sqlite3.DatabaseError as e:
            self.db.close()
            raise InputError(f"{self.path}: not a readable tradekit ledger ({e})") from None

    @staticmethod
    def _connect(target: str, *, uri: bool = False) -> sqlite3.Connection:
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in tx()).
        db = sqlite3.connect(target, uri=uri, isolation_level=None, timeout=10.0)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout=10000")
        return db

    def _migrate(self, version: int) -> None:
        if version > VERSION:
            raise InputError(
                f"{self.path}: ledger schema version {version} is newer than this tradekit "
                f"({VERSION}); upgrade tradekit"
            )
        if version == 0:
            tables = self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise InputError(f"{self.path}: an SQLite file that is not a tradekit ledger")
        for v in range(version, VERSION):
            with self.tx():
                for stmt in MIGRATIONS[v].split(";\n"):
                    if stmt.strip():
                        self.db.execute(stmt)
                self.db.execute(f"PRAGMA user_version={v + 1}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (nested calls join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._depth = 0

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

    def message(self, direction: str, peer: str, text: str, status: str, **data: Any) -> int:
        """Log one phone message: direction ``in`` or ``out``; status e.g. ``accepted``,
        ``ignored``, ``sent``, ``failed``. Returns its id."""
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO messages (ts_ms, direction, peer, text, status, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now_ms(), direction, peer, text, status, json.dumps(data, default=str)),
            )
            return int(cur.lastrowid or 0)

    def ask_usage(
        self,
        provider: str,
        model: str,
        question: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        latency_ms: int,
        status: str,
    ) -> None:
        """Record one LLM call (token use and cost); the question is kept, never the context."""
        with self.tx() as db:
            db.execute(
                "INSERT INTO asks (ts_ms, provider, model, question, input_tokens, "
                "output_tokens, cost_usd, latency_ms, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now_ms(),
                    provider,
                    model,
                    question,
                    input_tokens,
                    output_tokens,
                    cost_usd,
                    latency_ms,
                    status,
                ),
            )

    def decisions(self, rows: list[tuple[Any, ...]]) -> None:
        """Rows of (candle_ms, symbol, phase, action, reason, prediction, price, qty,
        model_version, input_hash); a candle replayed after a crash keeps its first rows."""
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

    # -- orders ----------------------------------------------------------------------------
    def order(self, key: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(
            "SELECT * FROM orders WHERE key = ?", (key,)
        ).fetchone()
        return row

    def open_orders(self) -> list[sqlite3.Row]:
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
    ) -> None:
        """Written (and committed) before the order is sent: a crash after this line leaves
        a 'submitting' order that the restart looks up on the exchange before anything else."""
        t = now_ms()
        with self.tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO orders (key, userref, symbol, side, kind, qty, stop_price, "
                "candle_ms, reason, status, created_ms, updated_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'submitting', ?, ?)",
                (key, userref, symbol, side, kind, qty, stop_price, candle_ms, reason, t, t),
            )

    def update_order(
        self,
        key: str,
        *,
        status: str,
        exchange_id: str,
        filled: float,
        avg_price: float | None,
        fee: float,
        message: str = "",
    ) -> None:
        with self.tx() as db:
            db.execute(
                "UPDATE orders SET status = ?, exchange_id = ?, filled = ?, avg_price = ?, "
                "fee = ?, message = ?, updated_ms = ? WHERE key = ?",
                (status, exchange_id, filled, avg_price, fee, message, now_ms(), key),
            )

    # -- controls --------------------------------------------------------------------------
    def request(self, command: str) -> int:
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO controls (command, requested_ms) VALUES (?, ?)", (command, now_ms())
            )
            return int(cur.lastrowid or 0)

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
