"""The ledger's schema and how a file is opened (stdlib only).

The schema version is ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a file from version
``i`` to ``i + 1``, in one transaction. History tables are append-only: triggers refuse UPDATE
and DELETE. Only :class:`tradekit.ledger.Ledger` (the trading loop) creates or migrates a
file; every reader opens it read-only through :func:`connect_readonly`.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

from tradekit.errors import InputError

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

# v3: exchange-authoritative recovery.
# - An order row is written before the request leaves and carries what booking its fills
#   needs whenever they are found (the reference price, the signal candle, partial steps, the
#   exchange's deadline for the request) and how much of it is booked already: a fill is booked
#   once, as the difference between what the exchange reports and ``booked_*``.
# - ``fills`` holds one row per booking (an order may fill in parts), with the exchange's cost.
# - ``adjustments``: balances taken from the exchange by ``reconcile --adopt``, with a reason.
# - ``trades`` gets the maximum favourable excursion.
# - Phone messages from strangers (status ``ignored``) may be pruned; the rest stay.
_V3 = """
ALTER TABLE orders ADD COLUMN ref_price REAL;
ALTER TABLE orders ADD COLUMN sig_ms INTEGER;
ALTER TABLE orders ADD COLUMN steps INTEGER NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN deadline_ms INTEGER;
ALTER TABLE orders ADD COLUMN cost REAL NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN booked_qty REAL NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN booked_cost REAL NOT NULL DEFAULT 0;
ALTER TABLE orders ADD COLUMN booked_fee REAL NOT NULL DEFAULT 0;
UPDATE orders SET booked_qty = filled, cost = filled * coalesce(avg_price, 0),
    booked_cost = filled * coalesce(avg_price, 0), booked_fee = fee;
DROP TRIGGER fills_no_update;
DROP TRIGGER fills_no_delete;
CREATE TABLE fills3 (id INTEGER PRIMARY KEY, order_key TEXT NOT NULL, seq INTEGER NOT NULL,
    symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL,
    value REAL NOT NULL, fee REAL NOT NULL, reason TEXT NOT NULL, candle_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, UNIQUE (order_key, seq));
INSERT INTO fills3 (id, order_key, seq, symbol, side, qty, price, value, fee, reason, candle_ms,
    created_ms) SELECT id, order_key, 1, symbol, side, qty, price, qty * price, fee, reason,
    candle_ms, created_ms FROM fills;
DROP TABLE fills;
ALTER TABLE fills3 RENAME TO fills;
ALTER TABLE trades ADD COLUMN mfe REAL;
CREATE TABLE adjustments (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, asset TEXT NOT NULL,
    symbol TEXT, ledger_qty REAL NOT NULL, exchange_qty REAL NOT NULL, price REAL,
    reason TEXT NOT NULL, data TEXT NOT NULL DEFAULT '{}');
DROP TRIGGER messages_no_delete;
CREATE TRIGGER messages_no_delete BEFORE DELETE ON messages WHEN old.status != 'ignored'
    BEGIN SELECT RAISE(ABORT, 'messages is append-only'); END;
"""

MIGRATIONS: list[str] = [
    _V1 + "".join(_append_only(t) for t in ("decisions", "fills", "trades", "equity", "events")),
    _V2 + _append_only("messages") + _append_only("asks"),
    _V3 + _append_only("fills") + _append_only("adjustments"),
]
VERSION = len(MIGRATIONS)


def _connect(target: str, *, uri: bool = False, timeout_s: float = 10.0) -> sqlite3.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in Ledger.tx()).
    db = sqlite3.connect(target, uri=uri, isolation_level=None, timeout=timeout_s)
    db.row_factory = sqlite3.Row
    db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
    return db


def readonly_uri(path: Path) -> str:
    """An escaped ``file:`` URI with ``mode=ro``: ``#``, ``?`` and ``%`` in a path are data,
    not URI syntax (a raw ``file:{path}`` opens the wrong file for ``/srv/bot#2/l.db``)."""
    return path.resolve().as_uri() + "?mode=ro"


def connect_readonly(path: Path, *, timeout_s: float = 10.0) -> sqlite3.Connection:
    """A read-only connection to an existing ledger at this tradekit's schema version; it
    never creates, migrates or writes anything."""
    if not path.exists():
        raise InputError(f"{path}: no ledger here (has `tradekit run` started?)")
    try:
        db = _connect(readonly_uri(path), uri=True, timeout_s=timeout_s)
    except sqlite3.Error as e:
        raise InputError(f"{path}: not a readable tradekit ledger ({e})") from None
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as e:
        db.close()
        raise InputError(f"{path}: not a readable tradekit ledger ({e})") from None
    if version != VERSION:
        db.close()
        newer = "is newer than this tradekit; upgrade tradekit" if version > VERSION else ""
        raise InputError(
            f"{path}: ledger schema version {version} "
            + (newer or f"(this tradekit reads {VERSION}; start `tradekit run` once to migrate it)")
        )
    return db


def connect_writable(path: Path, *, migrate: bool) -> sqlite3.Connection:
    """A writable connection (WAL); with ``migrate`` the file is created or brought to
    ``VERSION``, else it must already be at it (the phone courier writes its own tables beside
    a running loop and must never race the loop's migration)."""
    if not migrate and not path.exists():
        raise InputError(f"{path}: no ledger here (has `tradekit run` started?)")
    if migrate:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = _connect(str(path))
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if migrate:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            _migrate(db, path, version)
        elif version != VERSION:
            raise InputError(
                f"{path}: ledger schema version {version}, this tradekit reads {VERSION} "
                "(start `tradekit run` once to create or migrate it)"
            )
    except sqlite3.DatabaseError as e:
        db.close()
        raise InputError(f"{path}: not a readable tradekit ledger ({e})") from None
    except InputError:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, path: Path, version: int) -> None:
    if version > VERSION:
        raise InputError(
            f"{path}: ledger schema version {version} is newer than this tradekit "
            f"({VERSION}); upgrade tradekit"
        )
    if version == 0:
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise InputError(f"{path}: an SQLite file that is not a tradekit ledger")
    for v in range(version, VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in MIGRATIONS[v].split(";\n"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute(f"PRAGMA user_version={v + 1}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class Writer:
    """A writable connection to a ledger, for the loop (:class:`~tradekit.ledger.store.Ledger`,
    which creates and migrates) and for writers beside it (``SideLedger``, which never does).
    ``with writer.tx():`` groups writes into one atomic transaction; nested calls join the
    outer one."""

    MIGRATE = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.db = connect_writable(self.path, migrate=self.MIGRATE)
        self._depth = 0

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        # IMMEDIATE: take the write lock now, so a busy ledger waits here (busy_timeout) and
        # never fails halfway through the transaction.
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
