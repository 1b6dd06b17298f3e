"""The courier: new ledger rows (events, fills, trades) as short phone messages.

It reads the trading tables and writes only ``courier`` (its own key-value state) and
``messages`` (what went out), in a process of its own (``tradekit listen``), so notifying never
blocks or stops trading. Delivery is at-most-once per row where the service lets us know:

- rows are read after per-table id cursors, all three tables in one read transaction (a candle's
  fills and trades are committed together, so a sell fill's trade is always visible with it);
- a batch is frozen into the ``outbox`` before it is sent, and the same text is retried until
  Signal confirms it (201 without recipient errors); only then, in one transaction, do the
  cursors move past its rows and the outbox empty;
- a 201 naming failed recipients keeps the outbox for those recipients only;
- a 429 is "maybe sent": the cursors move on with a warning (no blind resend);
- a down service is retried with backoff; rows pile up in the ledger meanwhile and go out in
  later batches, limited to ``max_per_hour`` messages.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tradekit.errors import ExternalError
from tradekit.ledger import LedgerView, SideLedger, now_ms
from tradekit.notify import text as tx
from tradekit.notify.signal import MaybeSent, PartialFailure, SignalClient

log = logging.getLogger("tradekit.notify")

TABLES = ("events", "fills", "trades")
_TS = {"events": "ts_ms", "fills": "created_ms", "trades": "created_ms"}
_TIE = {"fills": 0, "trades": 1, "events": 2}  # same millisecond: a candle's fills, then its trades
COLLAPSE = ("exchange",)  # noisy event kinds: one line with a count per batch
HOUR_MS = 3_600_000


@dataclass
class Batch:
    lines: list[str] = field(default_factory=list)
    level: str = "info"
    after: dict[str, int] = field(default_factory=dict)  # cursors once it is delivered
    rows: int = 0
    more: bool = False  # rows were left for the next batch


@dataclass
class StepResult:
    sent: int = 0  # messages confirmed (or maybe-sent) in this step
    lines: int = 0
    failed: bool = False
    waiting: str = ""  # why nothing went out: batching, rate limit, backoff


class Courier:
    """Delivers ledger rows to ``recipients``. ``client`` None with a ``webhook`` makes the
    webhook the (confirming) sink; with both, the webhook is best effort."""

    def __init__(
        self,
        ledger: SideLedger,
        client: SignalClient | None,
        recipients: Sequence[str],
        *,
        events: str = "info",
        batch_s: float = 30.0,
        max_per_hour: int = 20,
        retry_s: float = 5.0,
        max_retry_s: float = 300.0,
        max_lines: int = 40,
        burst: int = 10,
        backfill_s: float = 86_400.0,
        webhook: str = "",
        webhook_token: str | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.view = LedgerView(ledger.path)
        self.client = client
        self.recipients = list(recipients)
        self.floor = tx.level_rank(events)
        self.batch_s = batch_s
        self.max_per_hour = max_per_hour
        self.retry_s = retry_s
        self.max_retry_s = max(max_retry_s, retry_s)
        self.max_lines = max_lines
        self.burst = max(1, burst)
        self.webhook = webhook
        self.webhook_token = webhook_token
        self.timeout_s = timeout_s
        self.clock = clock
        self._first_seen: float | None = None
        self._next_try = 0.0
        self._failures = 0
        self._limited_logged = False
        if self.ledger.state("cursors") is None:
            self.ledger.set_state("cursors", self._start_cursors(backfill_s))

    # -- cursors -----------------------------------------------------------------------------
    def _start_cursors(self, backfill_s: float) -> dict[str, int]:
        """First start: deliver the last ``backfill_s`` of history, not a year of it."""
        return self.view.history_ids_before(now_ms() - int(backfill_s * 1000))

    def close(self) -> None:
        self.view.close()

    def cursors(self) -> dict[str, int]:
        cur = self.ledger.state("cursors") or {}
        return {t: int(cur.get(t, 0)) for t in TABLES}

    def backlog(self) -> int:
        """Rows after the cursors (delivered or not yet)."""
        return self.view.history_backlog(self.cursors())

    # -- reading -----------------------------------------------------------------------------
    def collect(self) -> Batch:
        """The next batch after the cursors (at most ``max_lines`` rows), without sending."""
        cur = self.cursors()
        rows, closing = self.view.history_after(cur, self.max_lines + 1)
        batch = Batch(after=dict(cur))
        # Merge in time order, taking from the heads so each table's part is an id prefix.
        heads = {t: 0 for t in TABLES}
        items: list[tuple[str, dict[str, Any]]] = []
        while len(items) < self.max_lines:
            best = None
            for t in TABLES:
                if heads[t] < len(rows[t]):
                    r = rows[t][heads[t]]
                    key = (int(r[_TS[t]]), _TIE[t])
                    if best is None or key < best[0]:
                        best = (key, t)
            if best is None:
                break
            t = best[1]
            items.append((t, rows[t][heads[t]]))
            heads[t] += 1
        batch.more = any(heads[t] < len(rows[t]) for t in TABLES)
        batch.rows = len(items)
        rank = 0
        collapsed: dict[str, tuple[int, int, str]] = {}  # kind -> (line index, count, last)
        for t, r in items:
            batch.after[t] = int(r["id"])
            line, level = self._line(t, r, closing)
            if line is None or tx.level_rank(level) < self.floor:
                continue
            rank = max(rank, tx.level_rank(level))
            if t == "events" and r["kind"] in COLLAPSE:
                kind = str(r["kind"])
                if kind in collapsed:
                    i, n, _ = collapsed[kind]
                    collapsed[kind] = (i, n + 1, str(r["message"]))
                    batch.lines[i] = tx.repeated(kind, n + 1, str(r["message"]))
                    continue
                collapsed[kind] = (len(batch.lines), 1, str(r["message"]))
            batch.lines.append(line)
        batch.level = {v: k for k, v in tx.LEVELS.items()}.get(rank, "info")
        return batch

    @staticmethod
    def _line(table: str, r: dict[str, Any], closing: set[int]) -> tuple[str | None, str]:
        if table == "events":
            return tx.event(r), str(r["level"])
        if table == "trades":
            return tx.closed(r), "info"
        if r["side"] == "buy":
            return tx.opened(r), "info"
        if int(r["id"]) in closing:
            return None, "info"
        return tx.partial(r), "info"

    # -- delivering --------------------------------------------------------------------------
    def step(self) -> StepResult:
        """Send what is due (a backlog goes out as up to ``burst`` messages in a row, within
        ``max_per_hour``); never raises for a failed delivery (it is retried later)."""
        res = StepResult()
        now = self.clock()
        if now < self._next_try:
            res.waiting = "backoff"
            return res
        try:
            for _ in range(self.burst):
                outbox = self._next_outbox(now, res)
                if outbox is None:
                    break
                if not self._deliver(outbox):
                    res.failed = True
                    self._failures += 1
                    wait = min(self.max_retry_s, self.retry_s * 2 ** (self._failures - 1))
                    self._next_try = now + wait
                    res.waiting = "backoff"
                    break
                res.sent += 1
                res.lines += int(outbox["lines"])
                self._failures = 0
                self._next_try = 0.0
        except sqlite3.OperationalError as e:  # the loop held the write lock too long
            log.warning("courier: ledger busy (%s); trying again next poll", e)
            res.failed = True
        return res

    def _next_outbox(self, now: float, res: StepResult) -> dict[str, Any] | None:
        """The outbox left by a failed try, else the next batch that is due (frozen into the
        outbox before it is sent), else None with ``res.waiting`` saying why."""
        outbox: dict[str, Any] | None = self.ledger.state("outbox")
        while outbox is None:
            batch = self.collect()
            if not batch.rows:
                self._first_seen = None
                return None
            if not batch.lines:  # nothing at the configured level: just move on
                self.ledger.set_state("cursors", batch.after)
                continue
            if self._first_seen is None:
                self._first_seen = now
            if now - self._first_seen < self.batch_s:
                res.waiting = "batching"
                return None
            if self._rate_limited():
                res.waiting = "rate limit"
                return None
            outbox = {
                "text": "\n".join(batch.lines),
                "level": batch.level,
                "lines": len(batch.lines),
                "after": batch.after,
                "recipients": self.recipients,
                "created_ms": now_ms(),
            }
            self.ledger.set_state("outbox", outbox)
            if not batch.more:
                self._first_seen = None
        return outbox

    def _rate_limited(self) -> bool:
        recent = [t for t in self.ledger.state("sent_ms") or [] if t > now_ms() - HOUR_MS]
        if len(recent) < self.max_per_hour:
            self._limited_logged = False
            return False
        if not self._limited_logged:
            log.warning(
                "courier: %d messages in the last hour ([notify] max_per_hour); the next "
                "events wait and go out together",
                len(recent),
            )
            self._limited_logged = True
        return True

    def _deliver(self, outbox: dict[str, Any]) -> bool:
        text, recipients = str(outbox["text"]), list(outbox["recipients"])
        status = "sent"
        info: dict[str, Any] = {}
        if self.client is not None:
            try:
                sent = self.client.send(text, recipients)
                info = {"timestamp": sent.timestamp, "attempts": sent.attempts}
            except MaybeSent as e:
                log.warning("courier: %s", e)
                status = "maybe"
            except PartialFailure as e:
                log.warning("courier: %s; retrying them later", e)
                outbox = {**outbox, "recipients": e.failed}
                with self.ledger.tx():
                    self.ledger.set_state("outbox", outbox)
                    self.ledger.message(
                        "out", ",".join(recipients), text, "partial", kind="events",
                        failed=e.failed,
                    )  # fmt: skip
                return False
            except ExternalError as e:
                log.warning("courier: events not delivered: %s", e)
                return False
            self._webhook(text, str(outbox["level"]), required=False)
        elif not self._webhook(text, str(outbox["level"]), required=True):
            return False
        with self.ledger.tx():
            self.ledger.set_state("cursors", outbox["after"])
            self.ledger.drop_state("outbox")
            keep = [t for t in self.ledger.state("sent_ms") or [] if t > now_ms() - HOUR_MS]
            self.ledger.set_state("sent_ms", [*keep, now_ms()])
            self.ledger.message(
                "out",
                ",".join(recipients),
                text,
                status,
                kind="events",
                after=outbox["after"],
                lines=outbox["lines"],
                **info,
            )
        return True

    def _webhook(self, text: str, level: str, *, required: bool) -> bool:
        if not self.webhook:
            return False
        from tradekit.notify import webhook

        try:
            webhook.post(
                self.webhook,
                text,
                level=level,
                token=self.webhook_token,
                timeout_s=self.timeout_s,
                kind="events",
            )
        except ExternalError as e:
            (log.warning if required else log.info)("courier: %s", e)
            return False
        return True
