"""Commands from the phone: ``status``, ``profit``, ``daily [N]``, ``balance``, ``trades [N]``,
``performance``, ``positions``, ``model`` (read-only, :mod:`tradekit.report.phone`), ``pause``,
``resume``, ``kill``, ``forceexit SYMBOL`` and ``promote NAME`` (with a confirmation code), ``ask
<question>``, ``help``. Numbers follow ``[ask] language`` (``auto``: the message's language).

``forceexit`` is the person's own command: it queues the control ``forceexit:SYMBOL`` that
the loop applies (a market sell with reason ``forceexit``); ``ask`` has no path to it.

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
    from tradekit.report.snapshot import Snapshot

log = logging.getLogger("tradekit.notify")

CODE_TTL_MS = 120_000  # a kill or forceexit confirmation code lives this long
FORCEEXIT = "forceexit:"  # the loop's control (tradekit.live.controls.FORCEEXIT)
READS = ("status", "profit", "daily", "balance", "trades", "performance", "positions", "model")
DEFAULTS = {"daily": 7, "trades": 10}
LIMITS = {"daily": 31, "trades": 30}
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
        if cmd in READS:
            return self._read(cmd, rest, text)
        if cmd in ("pause", "resume"):
            return self._control(cmd)
        if cmd == "kill":
            return self._kill(rest, peer)
        if cmd == "forceexit":
            return self._forceexit(rest, peer)
        if cmd == "promote":
            return self._promote(rest, peer)
        if cmd == "ask":
            return self._ask(rest, peer)
        if cmd in ("help", "start", "?"):
            return tx.HELP
        return f"unknown command {cmd!r}.\n{tx.HELP}"

    def _read(self, cmd: str, rest: str, text: str) -> str:
        """A read-only command, drawn from one read of the ledger."""
        from tradekit.ask.lang import answer_language
        from tradekit.ledger import LedgerView
        from tradekit.report import phone
        from tradekit.report import text as rt
        from tradekit.report.fmt import Fmt
        from tradekit.report.snapshot import build

        n = _count(rest, DEFAULTS.get(cmd, 0), LIMITS.get(cmd, 0))
        if n is None:
            return f"{cmd}: expected a number from 1 to {LIMITS[cmd]}, e.g. `{cmd} 5`"
        lang = answer_language(self.cfg.ask.language, text)
        try:
            with LedgerView(self.state_path) as view, view.snapshot():
                snap = build(view, ledger=self.state_path)
                f = Fmt(lang, snap.currency, self.tz)
                if cmd == "status":
                    return rt.phone(snap, f)
                if cmd == "profit":
                    return phone.profit(view, snap, f)
                if cmd == "daily":
                    return phone.daily(view, f, days=n, until_ms=self.clock())
                if cmd == "balance":
                    return phone.balance(view, snap, f)
                if cmd == "trades":
                    return phone.trades(view, f, limit=n)
                if cmd == "performance":
                    return phone.performance(view, f)
                if cmd == "positions":
                    return phone.positions(snap, f)
                return phone.model(self.cfg.run.model, snap, f)
        except TradekitError as e:
            return f"{cmd} unavailable: {e}"

    def _snapshot(self) -> Snapshot | None:
        from tradekit.report.snapshot import load

        try:
            return load(self.state_path)
        except TradekitError:
            return None

    def _running(self) -> bool:
        snap = self._snapshot()
        return snap is not None and snap.running

    def _control(self, cmd: str) -> str:
        from tradekit.report.text import requested

        self.ledger.request(cmd)
        return requested(cmd, self._running())

    def _code(self, what: str, peer: str, **extra: Any) -> str:
        """A new one-time confirmation code for ``what`` (kill, forceexit)."""
        new = f"{secrets.randbelow(10**6):06d}"
        now = self.clock()
        self.ledger.set_state(
            what, {"code": new, "expires_ms": now + CODE_TTL_MS, "peer": peer, **extra}
        )
        return new

    def _confirmed(self, what: str, code: str, peer: str) -> tuple[dict[str, Any] | None, str]:
        """(the pending request, "") when ``code`` confirms it, else (None, why). One try per
        code: a wrong guess spends it."""
        pending = self.ledger.state(what)
        now = self.clock()
        self.ledger.drop_state(what)
        ok = (
            isinstance(pending, dict)
            and secrets.compare_digest(str(pending.get("code")), code)
            and int(pending.get("expires_ms", 0)) >= now
            and pending.get("peer") == peer
        )
        if ok:
            assert isinstance(pending, dict)
            return pending, ""
        why = "expired" if isinstance(pending, dict) else f"no {what} pending"
        if isinstance(pending, dict) and int(pending.get("expires_ms", 0)) >= now:
            why = "wrong code"
        return None, why

    def _until(self) -> str:
        return tx.clock(self.clock() + CODE_TTL_MS, self.tz)

    def _kill(self, code: str, peer: str) -> str:
        if not code:
            new = self._code("kill", peer)
            return (
                f"kill closes every position at market and stops the loop. To confirm, send "
                f"`kill {new}` within {CODE_TTL_MS // 1000} s (by {self._until()})."
            )
        pending, why = self._confirmed("kill", code, peer)
        if pending is None:
            return f"kill: {why}; nothing done. Send `kill` for a new code."
        self.ledger.request("kill")
        if self._running():
            return "kill: requested; the loop cancels orders, closes positions and stops"
        return (
            "kill: queued, not applied: no loop is running; the next `tradekit run` applies "
            "it first"
        )

    def _forceexit(self, rest: str, peer: str) -> str:
        """``forceexit SYMBOL`` asks for a code; ``forceexit SYMBOL CODE`` queues the sell."""
        words = rest.split()
        snap = self._snapshot()
        held = [p.symbol for p in snap.positions] if snap is not None else []
        open_txt = ", ".join(held) or "none"
        if not words or len(words) > 2:
            return f"forceexit which position? Send `forceexit SYMBOL` (open: {open_txt})."
        symbol = match_symbol(words[0], held)
        if symbol is None:
            return f"forceexit: no open position in {words[0]} (open: {open_txt}); nothing done."
        if len(words) == 1:
            new = self._code("forceexit", peer, symbol=symbol)
            return (
                f"forceexit sells all of {symbol} at market (its exchange stop is canceled "
                f"first); entries go on. To confirm, send `forceexit {symbol} {new}` within "
                f"{CODE_TTL_MS // 1000} s (by {self._until()})."
            )
        pending, why = self._confirmed("forceexit", words[1], peer)
        if pending is not None and pending.get("symbol") != symbol:
            why = f"the code was for {pending.get('symbol')}"
            pending = None
        if pending is None:
            return f"forceexit: {why}; nothing done. Send `forceexit {symbol}` for a new code."
        from tradekit.report.text import requested

        self.ledger.request(f"{FORCEEXIT}{symbol}")
        return requested(f"forceexit {symbol}", snap is not None and snap.running)

    def _promote(self, rest: str, peer: str) -> str:
        """``promote`` lists the candidates with their evidence; ``promote NAME`` asks for a
        code; ``promote NAME CODE`` asks the deploy user's promote helper through
        ``[notify] promote_socket`` (``tradekit.deploy.request``); its answer follows."""
        from tradekit.deploy import request as rq

        words = rest.split()
        names, listing = rq.candidates(self.cfg)
        if not words or len(words) > 2 or words[0] not in names:
            what = f"no candidate {words[0]!r}." if words else "promote which candidate?"
            return f"{what} Send `promote NAME`.\n{listing}"
        name = words[0]
        if len(words) == 1:
            new = self._code("promote", peer, name=name)
            return (
                f"promote {name} makes it the live model (the loop restarts on it; a failed "
                f"health check switches back). To confirm, send `promote {name} {new}` within "
                f"{CODE_TTL_MS // 1000} s (by {self._until()})."
            )
        pending, why = self._confirmed("promote", words[1], peer)
        if pending is not None and pending.get("name") != name:
            why, pending = f"the code was for {pending.get('name')}", None
        if pending is None:
            return f"promote: {why}; nothing done. Send `promote {name}` for a new code."

        def work() -> None:  # minutes: the listener goes on meanwhile
            self._done.put((peer, rq.request_promote(self.cfg.notify.promote_socket, name)))
            self.answered.set()

        threading.Thread(target=work, name="tradekit-promote", daemon=True).start()
        return f"promote {name}: asked; the switch, restart and health check take a minute or two."

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


def _count(text: str, default: int, high: int) -> int | None:
    """``daily 5``'s number: ``default`` when absent, None when not 1..high."""
    if not text:
        return default
    if not high or not text.isdigit() or not 1 <= int(text) <= high:
        return None
    return int(text)


def match_symbol(given: str, held: list[str]) -> str | None:
    """The held symbol ``given`` names: ``BTC/USD``, ``btc/usd``, ``BTCUSD`` or its base
    ``BTC`` when only one held symbol has it."""
    key = given.upper().replace("-", "/")
    for sym in held:
        if key in (sym.upper(), sym.upper().replace("/", "")):
            return sym
    bases = [sym for sym in held if sym.upper().split("/")[0] == key]
    return bases[0] if len(bases) == 1 else None
