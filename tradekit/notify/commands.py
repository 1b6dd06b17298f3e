"""Commands from the phone: ``status``, ``pause``, ``resume``, ``kill`` (with a confirmation
code), ``ask <question>``, ``help``.

Only allow-listed senders are heard, keyed on the envelope's ``sourceNumber`` (or
``sourceUuid`` when the allow list holds UUIDs). Two shapes carry text
(reference/interfaces.md §1.5): ``dataMessage`` (someone wrote to the bot's number) and
``syncMessage.sentMessage`` (the owner typed on their own phone while tradekit is linked as a
second device of that number). A sync message is heard only when it is a note to self:
otherwise everything the owner texts to friends would be read as a command. Group messages
are never commands. Every heard text and every answer is logged in the ledger's ``messages``
table. Ignored senders get no reply; their messages are logged at most ``[notify]
ignored_per_hour`` per sender and hour (the rest only counted, the count logged hourly),
deleted after ``ignored_keep_days``, and the owner's own chats with others are logged without
their text.

``ask`` runs in a worker thread: the LLM call may take minutes, and ``pause``, ``resume`` and
``kill`` must not wait behind it. The answer is handed back to the listening thread, which
sends it (one SQLite connection and one Signal client per thread). One ask at a time; another
meanwhile is told to wait.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import TYPE_CHECKING, Any

from tradekit.errors import ExternalError, TradekitError
from tradekit.ledger import SideLedger, now_ms
from tradekit.notify import text as tx
from tradekit.notify.signal import MaybeSent, PartialFailure, SignalClient

if TYPE_CHECKING:
    from tradekit.config import Config

log = logging.getLogger("tradekit.notify")

KILL_TTL_MS = 120_000
MAX_ANSWER = 1800  # characters: Signal turns longer texts into an attachment
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
OWNERS_CHAT = "the owner's message to someone else"
BUSY = "ask: still answering the previous question; ask again when its answer has arrived"


@dataclass(frozen=True)
class Incoming:
    """One text message: who sent it, what it says, which envelope shape carried it."""

    number: str
    uuid: str
    text: str
    shape: str  # "data" or "sync"
    group: bool
    to_self: bool  # sync only: written to the account's own number (note to self)

    @property
    def peer(self) -> str:
        return self.number or self.uuid


def parse(doc: dict[str, Any], account: str) -> Incoming | None:
    """The text message in one received ``{"envelope": ..., "account": ...}``, or None for
    receipts, typing notices, reactions and the like."""
    env = doc.get("envelope") if isinstance(doc.get("envelope"), dict) else doc
    if not isinstance(env, dict):
        return None
    number = str(env.get("sourceNumber") or "")
    if not number and str(env.get("source") or "").startswith("+"):
        number = str(env["source"])
    uuid = str(env.get("sourceUuid") or "")
    data = env.get("dataMessage")
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return Incoming(number, uuid, data["message"], "data", bool(data.get("groupInfo")), False)
    sync = env.get("syncMessage")
    sent = sync.get("sentMessage") if isinstance(sync, dict) else None
    if isinstance(sent, dict) and isinstance(sent.get("message"), str):
        dest = str(sent.get("destinationNumber") or sent.get("destination") or "")
        me = {account, number}
        to_self = bool(dest) and dest in me
        group = bool(sent.get("groupInfo"))
        return Incoming(number, uuid, sent["message"], "sync", group, to_self)
    return None


def allow_list(allow: Iterable[str], recipients: Iterable[str]) -> set[str]:
    """``[notify] allow``, or when empty the recipients that are phone numbers."""
    given = [a.strip() for a in allow if a.strip()]
    if given:
        return set(given)
    return {r.strip() for r in recipients if r.strip().startswith("+")}


class Commander:
    """Hears allowed senders and answers them through ``client``."""

    def __init__(
        self,
        cfg: Config,
        ledger: SideLedger,
        client: SignalClient,
        *,
        state_path: str,
        allow: set[str],
        enabled: bool = True,
        clock: Callable[[], int] = now_ms,
        tz: tzinfo = UTC,
        ignored_per_hour: int = 5,
        ignored_keep_days: float = 7.0,
    ) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.client = client
        self.state_path = state_path
        self.allow = allow
        self.enabled = enabled
        self.clock = clock
        self.tz = tz
        self.ignored_per_hour = ignored_per_hour
        self.ignored_keep_ms = int(ignored_keep_days * DAY_MS)
        self.counted: dict[str, int] = {}  # ignored, over the hourly limit: not kept
        self._worker: threading.Thread | None = None
        self._done: queue.Queue[tuple[str, str]] = queue.Queue()
        self.answered = threading.Event()  # set when a background answer waits to be sent

    def handle(self, doc: dict[str, Any]) -> str | None:
        """Act on one received envelope; returns the answer sent now, or None (ignored, or an
        ``ask`` whose answer :meth:`deliver` sends when it is ready)."""
        msg = parse(doc, self.client.sender)
        if msg is None:
            return None
        why = self._refuse(msg)
        base = {"shape": msg.shape, "uuid": msg.uuid}
        if why:
            self._ignore(msg, why, base)
            return None
        self.ledger.message("in", msg.peer, msg.text, "accepted", **base)
        answer = self.answer(msg.text, msg.peer)
        if answer is not None:
            self.reply(msg.peer, answer)
        return answer

    def _ignore(self, msg: Incoming, why: str, base: dict[str, Any]) -> None:
        """Log an ignored message, at most ``ignored_per_hour`` per sender and hour."""
        peer = msg.peer or "?"
        since = now_ms() - HOUR_MS
        if self.ledger.count_messages(peer=peer, status="ignored", since_ms=since) >= (
            self.ignored_per_hour
        ):
            self.counted[peer] = self.counted.get(peer, 0) + 1
            if self.counted[peer] == 1:
                log.warning(
                    "ignored messages from %s: over %d this hour; the next are counted, not kept",
                    peer,
                    self.ignored_per_hour,
                )
            return
        # The owner's chats with friends are none of the ledger's business: no text.
        text = "" if why == OWNERS_CHAT else msg.text
        self.ledger.message("in", peer, text, "ignored", reason=why, **base)
        log.warning("ignored a message from %s: %s", msg.peer or "an unknown sender", why)

    def maintain(self) -> int:
        """Hourly: delete ignored messages older than ``ignored_keep_days`` and log the counts
        of those not kept. Returns how many rows were deleted."""
        gone = self.ledger.prune_ignored(now_ms() - self.ignored_keep_ms)
        if gone:
            log.info("deleted %d ignored message(s) older than the keep period", gone)
        for peer, n in sorted(self.counted.items()):
            log.warning("ignored %d more message(s) from %s (counted, not kept)", n, peer)
        self.counted.clear()
        return gone

    def _refuse(self, msg: Incoming) -> str:
        if not ((msg.number and msg.number in self.allow) or (msg.uuid and msg.uuid in self.allow)):
            return "sender not in [notify] allow"
        if msg.group:
            return "group message"
        if msg.shape == "sync" and not msg.to_self:
            return OWNERS_CHAT
        if not self.enabled:
            return "[notify] commands = false"
        return ""

    def reply(self, peer: str, text: str) -> None:
        status = "sent"
        try:
            self.client.send(text, [peer])
        except MaybeSent as e:
            status = "maybe"
            log.warning("answer to %s: %s", peer, e)
        except (PartialFailure, ExternalError) as e:
            status = "failed"
            log.warning("answer to %s not delivered: %s", peer, e)
        self.ledger.message("out", peer, text, status, kind="answer")

    # -- the commands ------------------------------------------------------------------------
    def answer(self, text: str, peer: str) -> str | None:
        """The reply to a command; None when an ``ask`` went to the background."""
        words = text.strip().removeprefix("/").split(None, 1)
        if not words:
            return tx.HELP
        cmd, rest = words[0].lower(), (words[1].strip() if len(words) > 1 else "")
        if cmd == "status":
            return self._status()
        if cmd in ("pause", "resume"):
            return self._control(cmd)
        if cmd == "kill":
            return self._kill(rest, peer)
        if cmd == "ask":
            return self._ask(rest, peer)
        if cmd in ("help", "start", "?"):
            return tx.HELP
        return f"unknown command {cmd!r}.\n{tx.HELP}"

    def _status(self) -> str:
        from tradekit.live.status import snapshot

        try:
            snap = snapshot(self.state_path)
        except TradekitError as e:
            return f"status unavailable: {e}"
        return tx.status(snap, self.tz)

    def _running(self) -> bool:
        from tradekit.live.status import snapshot

        try:
            return bool(snapshot(self.state_path)["running"])
        except TradekitError:
            return False

    def _control(self, cmd: str) -> str:
        self.ledger.request(cmd)
        if self._running():
            return f"{cmd}: requested; the running loop applies it within one poll"
        return f"{cmd}: requested; no loop is running: the next `tradekit run` applies it first"

    def _kill(self, code: str, peer: str) -> str:
        pending = self.ledger.state("kill")
        now = self.clock()
        if not code:
            new = f"{secrets.randbelow(10**6):06d}"
            self.ledger.set_state(
                "kill", {"code": new, "expires_ms": now + KILL_TTL_MS, "peer": peer}
            )
            until = tx.clock(now + KILL_TTL_MS, self.tz)
            return (
                f"kill closes every position at market and stops the loop. To confirm, send "
                f"`kill {new}` within {KILL_TTL_MS // 1000} s (by {until})."
            )
        # One try per code: a wrong guess spends it.
        self.ledger.drop_state("kill")
        ok = (
            isinstance(pending, dict)
            and secrets.compare_digest(str(pending.get("code")), code)
            and int(pending.get("expires_ms", 0)) >= now
            and pending.get("peer") == peer
        )
        if not ok:
            why = "expired" if isinstance(pending, dict) else "no kill pending"
            if isinstance(pending, dict) and int(pending.get("expires_ms", 0)) >= now:
                why = "wrong code"
            return f"kill: {why}; nothing done. Send `kill` for a new code."
        self.ledger.request("kill")
        if self._running():
            return "kill: requested; the loop cancels orders, closes positions and stops"
        return "kill: requested; no loop is running: the next `tradekit run` applies it first"

    def _ask(self, question: str, peer: str) -> str | None:
        if not question:
            return "ask what? e.g. `ask how did today go`"
        if self.busy:
            return BUSY
        self._worker = threading.Thread(
            target=self._ask_worker, args=(question, peer), name="tradekit-ask", daemon=True
        )
        self._worker.start()
        return None

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def _ask_worker(self, question: str, peer: str) -> None:
        """The worker thread: the answer (or why there is none) goes to the queue."""
        try:
            from tradekit.ask import answer

            text = answer(self.cfg, question, state=self.state_path).text
        except ImportError:
            text = "ask is not available in this tradekit"
        except TradekitError as e:
            text = f"ask failed: {e}"
        except Exception:  # a bug in ask must not silence the phone
            log.exception("ask from the phone failed")
            text = "ask failed: an internal error (see the listen log)"
        if len(text) > MAX_ANSWER:
            text = text[: MAX_ANSWER - 1] + "…"
        self._done.put((peer, text))
        self.answered.set()

    def deliver(self) -> int:
        """Send the answers finished in the background (from the thread that owns the ledger
        handle and the Signal client). Returns how many."""
        self.answered.clear()
        n = 0
        while True:
            try:
                peer, text = self._done.get_nowait()
            except queue.Empty:
                return n
            self.reply(peer, text)
            n += 1

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for a running ask to finish; False when it still runs after ``timeout_s``."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout_s)
        return not self.busy
