"""The ledger, read-only: every query of the ledger's readers (status, summary, ask, the phone
courier, doctor, and the dashboard), stdlib only.

A view opens the file through an escaped ``file:`` URI with ``mode=ro``: it never creates,
migrates or writes it, and WAL lets it read while ``run`` writes. Rows come back as plain
dicts, so no reader holds a cursor into the database.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tradekit.errors import InputError
from tradekit.ledger.schema import connect_readonly, readonly_uri

HISTORY = ("events", "fills", "trades")  # the tables the phone courier follows
_TS = {"events": "ts_ms", "fills": "created_ms", "trades": "created_ms"}
_LEVELS_WARN = ("warning", "error", "critical")


def _dicts(rows: Iterator[sqlite3.Row] | list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [dict(r) for r in rows]


def _where(*conds: tuple[str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a AND b`` of the conditions whose value is not None, and their values."""
    used = [(c, v) for c, v in conds if v is not None]
    return (" WHERE " + " AND ".join(c for c, _ in used) if used else ""), [v for _, v in used]


class LedgerView:
    """Read-only queries over one ledger file; use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self.db = connect_readonly(self.path, timeout_s=timeout_s)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> LedgerView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside one read transaction see one consistent state of every table."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.db.execute(sql, args).fetchone()
        return row

    # -- state -----------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.db.execute("SELECT key, value FROM meta")}

    def symbols(self) -> list[str]:
        return [s for s in self.meta().get("symbols", "").split(",") if s]

    def engine(self) -> dict[str, Any]:
        """The loop's engine document ({} before the first start)."""
        row = self._one("SELECT doc FROM engine WHERE id = 1")
        if row is None:
            return {}
        try:
            doc: dict[str, Any] = json.loads(row["doc"])
        except json.JSONDecodeError as e:
            raise InputError(f"{self.path}: engine state is corrupt ({e})") from None
        return doc

    def last_run(self) -> dict[str, Any] | None:
        row = self._one("SELECT * FROM runs ORDER BY id DESC LIMIT 1")
        return dict(row) if row is not None else None

    def positions(self) -> list[dict[str, Any]]:
        return _dicts(self.db.execute("SELECT * FROM positions ORDER BY symbol"))

    def open_orders(self) -> list[dict[str, Any]]:
        return _dicts(
            self.db.execute(
                "SELECT * FROM orders WHERE status IN ('submitting', 'open') ORDER BY id"
            )
        )

    def orders(self, *, limit: int = 100) -> list[dict[str, Any]]:
        return _dicts(self.db.execute("SELECT * FROM orders ORDER BY id DESC LIMIT ?", (limit,)))

    def last_decisions(self) -> dict[str, dict[str, Any]]:
        """Each symbol's newest decision."""
        return {
            r["symbol"]: dict(r)
            for r in self.db.execute(
                "SELECT d.* FROM decisions d JOIN (SELECT symbol, max(id) AS id FROM decisions "
                "GROUP BY symbol) m ON d.id = m.id ORDER BY d.symbol"
            )
        }

    def last_control(self, commands: Sequence[str]) -> str | None:
        """The newest applied control among ``commands``."""
        marks = ", ".join("?" for _ in commands)
        row = self._one(
            f"SELECT command FROM controls WHERE done_ms IS NOT NULL AND command IN ({marks}) "
            "ORDER BY id DESC LIMIT 1",
            *commands,
        )
        return str(row[0]) if row is not None else None

    def pending_controls(self) -> list[dict[str, Any]]:
        return _dicts(self.db.execute("SELECT * FROM controls WHERE done_ms IS NULL ORDER BY id"))

    # -- equity ----------------------------------------------------------------------------
    def last_candle_ms(self) -> int | None:
        row = self._one("SELECT max(candle_ms) FROM equity")
        return int(row[0]) if row is not None and row[0] is not None else None

    def first_candle_ms(self) -> int | None:
        row = self._one("SELECT min(candle_ms) FROM equity")
        return int(row[0]) if row is not None and row[0] is not None else None

    def first_equity(self) -> float | None:
        row = self._one("SELECT equity FROM equity ORDER BY candle_ms LIMIT 1")
        return float(row[0]) if row is not None else None

    def equity_at(self, ms: int) -> dict[str, Any] | None:
        """The newest equity row at or before ``ms``."""
        row = self._one(
            "SELECT * FROM equity WHERE candle_ms <= ? ORDER BY candle_ms DESC LIMIT 1", ms
        )
        return dict(row) if row is not None else None

    def equity(self, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """(candle_ms, equity) with start < candle_ms <= end, in time order."""
        return [
            (int(r[0]), float(r[1]))
            for r in self.db.execute(
                "SELECT candle_ms, equity FROM equity WHERE candle_ms > ? AND candle_ms <= ? "
                "ORDER BY candle_ms",
                (start_ms, end_ms),
            )
        ]

    def equity_rows(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Whole equity rows (equity, cash, exposure, peak) with start <= candle_ms <= end."""
        return _dicts(
            self.db.execute(
                "SELECT * FROM equity WHERE candle_ms >= ? AND candle_ms <= ? ORDER BY candle_ms",
                (start_ms, end_ms),
            )
        )

    # -- trades ----------------------------------------------------------------------------
    def trades(
        self,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        symbol: str | None = None,
        reason: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Closed trades with start < exit_ms <= end, filtered by symbol and exit reason."""
        sql = "SELECT * FROM trades WHERE 1=1"
        args: list[Any] = []
        for cond, value in (
            ("exit_ms > ?", start_ms),
            ("exit_ms <= ?", end_ms),
            ("symbol = ?", symbol),
            ("exit_reason = ?", reason),
        ):
            if value is not None:
                sql += f" AND {cond}"
                args.append(value)
        sql += " ORDER BY exit_ms DESC, id DESC" if newest_first else " ORDER BY exit_ms, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return _dicts(self.db.execute(sql, args))

    def trade_stats(self, *, since_ms: int | None = None) -> dict[str, float]:
        """count, pnl, wins, fees of the trades closed after ``since_ms`` (all without)."""
        row = self._one(
            "SELECT count(*), coalesce(sum(pnl), 0), coalesce(sum(pnl > 0), 0), "
            "coalesce(sum(fees), 0) FROM trades WHERE exit_ms > ?",
            since_ms if since_ms is not None else -(2**62),
        )
        assert row is not None
        return {
            "count": int(row[0]),
            "pnl": float(row[1]),
            "wins": int(row[2]),
            "fees": float(row[3]),
        }

    def fills(self, *, order_key: str | None = None) -> list[dict[str, Any]]:
        if order_key is None:
            return _dicts(self.db.execute("SELECT * FROM fills ORDER BY id"))
        return _dicts(
            self.db.execute("SELECT * FROM fills WHERE order_key = ? ORDER BY seq", (order_key,))
        )

    # -- events ----------------------------------------------------------------------------
    def events(
        self,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        warnings_only: bool = False,
        kind: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM events WHERE 1=1"
        args: list[Any] = []
        if start_ms is not None:
            sql += " AND ts_ms > ?"
            args.append(start_ms)
        if end_ms is not None:
            sql += " AND ts_ms <= ?"
            args.append(end_ms)
        if kind is not None:
            sql += " AND kind = ?"
            args.append(kind)
        if warnings_only:
            sql += f" AND level IN ({', '.join('?' for _ in _LEVELS_WARN)})"
            args.extend(_LEVELS_WARN)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY ts_ms, id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return _dicts(self.db.execute(sql, args))

    # -- the phone courier's reading -------------------------------------------------------
    def history_ids_before(self, cut_ms: int) -> dict[str, int]:
        """The newest id of each followed table written before ``cut_ms``."""
        out = {}
        for t in HISTORY:
            row = self._one(f"SELECT coalesce(max(id), 0) FROM {t} WHERE {_TS[t]} < ?", cut_ms)
            out[t] = int(row[0]) if row is not None else 0
        return out

    def history_backlog(self, cursors: dict[str, int]) -> int:
        return sum(
            int(self.db.execute(f"SELECT count(*) FROM {t} WHERE id > ?", (cursors[t],))
                .fetchone()[0])
            for t in HISTORY
        )  # fmt: skip

    def history_after(
        self, cursors: dict[str, int], limit: int
    ) -> tuple[dict[str, list[dict[str, Any]]], set[int]]:
        """Up to ``limit`` rows of each followed table after its cursor, read in one snapshot
        (a candle's fills and trades are committed together), and the ids of the sell fills
        that closed their trade (the trade's own line reports those)."""
        with self.snapshot():
            rows = {
                t: _dicts(
                    self.db.execute(
                        f"SELECT * FROM {t} WHERE id > ? ORDER BY id LIMIT ?", (cursors[t], limit)
                    )
                )
                for t in HISTORY
            }
            closing = set()
            for f in rows["fills"]:
                if f["side"] != "sell":
                    continue
                last = self._one(
                    "SELECT max(id) FROM fills WHERE symbol = ? AND candle_ms = ? "
                    "AND side = 'sell'",
                    f["symbol"],
                    f["candle_ms"],
                )
                if last is None or last[0] != f["id"]:
                    continue
                if self._one(
                    "SELECT 1 FROM trades WHERE symbol = ? AND exit_ms = ? LIMIT 1",
                    f["symbol"],
                    f["candle_ms"],
                ):
                    closing.add(int(f["id"]))
        return rows, closing

    def messages(
        self, *, direction: str | None = None, status: str | None = None, since_ms: int = 0
    ) -> list[dict[str, Any]]:
        sql = "SELECT * FROM messages WHERE ts_ms > ?"
        args: list[Any] = [since_ms]
        if direction is not None:
            sql += " AND direction = ?"
            args.append(direction)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        return _dicts(self.db.execute(sql + " ORDER BY id", args))

    def asks(self) -> list[dict[str, Any]]:
        return _dicts(self.db.execute("SELECT * FROM asks ORDER BY id"))

    # -- the dashboard's reading (serve) ---------------------------------------------------
    def trades_page(
        self,
        *,
        symbol: str | None = None,
        reason: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Closed trades with start < exit_ms <= end, newest first, one page of them, and how
        many match in all."""
        where, args = _where(
            ("symbol = ?", symbol),
            ("exit_reason = ?", reason),
            ("exit_ms > ?", start_ms),
            ("exit_ms <= ?", end_ms),
        )
        total = int(self.db.execute(f"SELECT count(*) FROM trades{where}", args).fetchone()[0])
        rows = _dicts(
            self.db.execute(
                f"SELECT * FROM trades{where} ORDER BY exit_ms DESC, id DESC LIMIT ? OFFSET ?",
                (*args, limit, offset),
            )
        )
        return rows, total

    def trade_summary(self) -> dict[str, Any]:
        """Counts and sums over every closed trade (zeros and None when there is none)."""
        row = self._one(
            "SELECT count(*) AS count, coalesce(sum(pnl > 0), 0) AS wins, "
            "coalesce(sum(pnl < 0), 0) AS losses, coalesce(sum(pnl), 0) AS pnl, "
            "coalesce(sum(CASE WHEN pnl > 0 THEN pnl ELSE 0 END), 0) AS gross_profit, "
            "coalesce(-sum(CASE WHEN pnl < 0 THEN pnl ELSE 0 END), 0) AS gross_loss, "
            "avg(pnl_pct) AS pnl_pct_mean, coalesce(sum(pnl_pct), 0) AS pnl_pct_sum, "
            "coalesce(sum(fees), 0) AS fees, min(entry_ms) AS first_entry_ms, "
            "max(exit_ms) AS last_exit_ms, avg(exit_ms - entry_ms) AS duration_ms_mean "
            "FROM trades"
        )
        assert row is not None
        return dict(row)

    def performance(self) -> list[dict[str, Any]]:
        """Closed trades per symbol: count, P&L, mean and summed P&L fraction; best first."""
        return _dicts(
            self.db.execute(
                "SELECT symbol, count(*) AS count, sum(pnl) AS pnl, avg(pnl_pct) AS pnl_pct_mean, "
                "sum(pnl_pct) AS pnl_pct_sum, sum(pnl > 0) AS wins FROM trades "
                "GROUP BY symbol ORDER BY sum(pnl) DESC, symbol"
            )
        )

    def daily_pnl(self, since_ms: int) -> list[dict[str, Any]]:
        """Realized P&L and trade count per UTC day (``day_ms``) of the trades closed at or
        after ``since_ms``; days without a trade are absent."""
        return _dicts(
            self.db.execute(
                "SELECT exit_ms - exit_ms % 86400000 AS day_ms, count(*) AS count, "
                "sum(pnl) AS pnl FROM trades WHERE exit_ms >= ? GROUP BY day_ms ORDER BY day_ms",
                (since_ms,),
            )
        )

    def order_counts(self) -> dict[str, int]:
        """How many orders are in each status."""
        return {
            str(r[0]): int(r[1])
            for r in self.db.execute("SELECT status, count(*) FROM orders GROUP BY status")
        }

    def event_counts(self) -> dict[str, int]:
        """How many events of each kind (``exchange`` errors, ``halt`` changes, ...)."""
        return {
            str(r[0]): int(r[1])
            for r in self.db.execute("SELECT kind, count(*) FROM events GROUP BY kind")
        }

    def decisions_where(
        self,
        *,
        symbol: str | None = None,
        action: str | None = None,
        reason: str | None = None,
        limit: int = 200,
        before_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Decisions newest first, filtered by symbol, action and reason code."""
        where, args = _where(
            ("symbol = ?", symbol),
            ("action = ?", action),
            ("reason = ?", reason),
            ("id < ?", before_id),
        )
        return _dicts(
            self.db.execute(
                f"SELECT * FROM decisions{where} ORDER BY id DESC LIMIT ?", (*args, limit)
            )
        )

    def decision_reasons(self, *, symbol: str | None = None) -> list[dict[str, Any]]:
        """How often each (phase, action, reason) was decided: why nothing was bought too."""
        where, args = _where(("symbol = ?", symbol))
        return _dicts(
            self.db.execute(
                f"SELECT phase, action, reason, count(*) AS count FROM decisions{where} "
                "GROUP BY phase, action, reason ORDER BY count(*) DESC, phase, action, reason",
                args,
            )
        )

    def newest_decision(self) -> dict[str, Any] | None:
        """The newest decided candle and when its first decision was written."""
        row = self._one(
            "SELECT candle_ms, min(created_ms) AS created_ms FROM decisions "
            "WHERE candle_ms = (SELECT max(candle_ms) FROM decisions)"
        )
        return dict(row) if row is not None and row["candle_ms"] is not None else None

    def predictions(self, symbol: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """(candle_ms, prediction) of the model for ``symbol``, start <= candle_ms <= end."""
        return [
            (int(r[0]), float(r[1]))
            for r in self.db.execute(
                "SELECT candle_ms, prediction FROM decisions WHERE symbol = ? AND phase = 'close' "
                "AND prediction IS NOT NULL AND candle_ms >= ? AND candle_ms <= ? "
                "ORDER BY candle_ms",
                (symbol, start_ms, end_ms),
            )
        ]

    def symbol_fills(self, symbol: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """The fills of ``symbol`` booked at candles start <= candle_ms <= end, in order."""
        return _dicts(
            self.db.execute(
                "SELECT * FROM fills WHERE symbol = ? AND candle_ms >= ? AND candle_ms <= ? "
                "ORDER BY candle_ms, id",
                (symbol, start_ms, end_ms),
            )
        )

    # -- drift and the nightly review ------------------------------------------------------
    def close_predictions(self, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """The close-phase decisions with start <= candle_ms <= end (symbol, candle_ms,
        prediction, model_version, action, reason): what the live model said, by candle."""
        return _dicts(
            self.db.execute(
                "SELECT symbol, candle_ms, prediction, model_version, action, reason "
                "FROM decisions WHERE phase = 'close' AND candle_ms >= ? AND candle_ms <= ? "
                "ORDER BY candle_ms, symbol",
                (start_ms, end_ms),
            )
        )

    def decision_counts(
        self, start_ms: int, end_ms: int, *, action: str | None = None
    ) -> list[dict[str, Any]]:
        """How often each (phase, action, reason) was decided at candles start < candle_ms <=
        end, most frequent first (``action="skip"``: the rejected entries by reason)."""
        where, args = _where(
            ("candle_ms > ?", start_ms), ("candle_ms <= ?", end_ms), ("action = ?", action)
        )
        return _dicts(
            self.db.execute(
                f"SELECT phase, action, reason, count(*) AS count FROM decisions{where} "
                "GROUP BY phase, action, reason ORDER BY count(*) DESC, phase, action, reason",
                args,
            )
        )

    def recent_controls(self, limit: int = 20) -> list[dict[str, Any]]:
        """Control requests newest first, applied or still pending."""
        return _dicts(self.db.execute("SELECT * FROM controls ORDER BY id DESC LIMIT ?", (limit,)))


def inspect(path: Path) -> tuple[int, str, int]:
    """(schema version, ``PRAGMA quick_check``, runs) of any SQLite file, read-only, whatever
    its version (``doctor`` reports an old one as "migrated at the next run")."""
    try:
        db = sqlite3.connect(readonly_uri(path), uri=True, timeout=5.0)
    except sqlite3.Error as e:
        raise InputError(f"{path}: not a readable tradekit ledger ({e})") from None
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        result = str(db.execute("PRAGMA quick_check").fetchone()[0])
        runs = int(db.execute("SELECT count(*) FROM runs").fetchone()[0]) if version else 0
    except sqlite3.DatabaseError as e:
        raise InputError(f"{path}: not a readable tradekit ledger ({e})") from None
    finally:
        db.close()
    return version, result, runs
