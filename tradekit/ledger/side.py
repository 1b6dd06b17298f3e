"""Writes from beside a running loop (stdlib only): control requests (``pause``, ``kill``, the
phone's commands), the phone courier's own key-value state, every message in and out, and the
LLM calls' usage.

It opens an existing ledger at this tradekit's schema version and never creates or migrates
one: racing the loop's migration could make the loop fail. It writes only these tables; the
trading tables are read through :class:`tradekit.ledger.view.LedgerView`.
"""

from __future__ import annotations

import json
from typing import Any

from tradekit.ledger.schema import Writer
from tradekit.ledger.store import now_ms


class SideLedger(Writer):
    MIGRATE = False

    # -- controls for the loop ---------------------------------------------------------------
    def request(self, command: str) -> int:
        """Queue a control; the loop applies it at its next iteration (or its next start)."""
        with self.tx() as db:
            cur = db.execute(
                "INSERT INTO controls (command, requested_ms) VALUES (?, ?)", (command, now_ms())
            )
            return int(cur.lastrowid or 0)

    # -- the courier's state -----------------------------------------------------------------
    def state(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM courier WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_state(self, key: str, value: Any) -> None:
        with self.tx() as db:
            db.execute(
                "INSERT INTO courier (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value, separators=(",", ":"))),
            )

    def drop_state(self, key: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM courier WHERE key = ?", (key,))

    # -- messages and asks -------------------------------------------------------------------
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

    def count_messages(self, *, peer: str, status: str, since_ms: int) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM messages WHERE peer = ? AND status = ? AND ts_ms > ?",
            (peer, status, since_ms),
        ).fetchone()
        return int(row[0])

    def prune_ignored(self, before_ms: int) -> int:
        """Delete ignored messages (strangers') older than ``before_ms``; the only rows of
        ``messages`` a trigger lets go. Returns how many."""
        with self.tx() as db:
            cur = db.execute(
                "DELETE FROM messages WHERE status = 'ignored' AND ts_ms < ?", (before_ms,)
            )
            return int(cur.rowcount or 0)

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
                (now_ms(), provider, model, question, input_tokens, output_tokens, cost_usd,
                 latency_ms, status),
            )  # fmt: skip
