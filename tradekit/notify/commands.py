"""Commands from the phone: ``status``, ``pause``, ``resume``, ``kill`` (with a confirmation
code), ``ask <question>``, ``help``.

Only allow-listed senders are heard, keyed on the envelope's ``sourceNumber`` (or
``sourceUuid`` when the allow list holds UUIDs). Two shapes carry text
(reference/interfaces.md §1.5): ``dataMessage`` (someone wrote to the bot's number) and
``syncMessage.sentMessage`` (the owner typed on their own phone while tradekit is linked as a
second device of that number). A sync message is heard only when it is a note to self:
otherwise everything the owner texts to friends would be read as a command. Group messages
are never commands. Every incoming text (heard or ignored) and every answer is logged in the
ledger's ``messages`` table; ignored senders get no reply.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    ) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self.client = client
        self.state_path = state_path
        self.allow = allow
        self.enabled = enabled
        self.clock = clock

    def handle(self, doc: dict[str, Any]) -> str | None:
        """Act on one received envelope; returns the answer sent, or None."""
        msg = parse(doc, self.client.sender)
        if msg is None:
            return None
        why = self._refuse(msg)
        base = {"shape": msg.shape, "uuid": msg.uuid}
        if why:
            self.ledger.message("in", msg.peer or "?", msg.text, "ignored", reason=why, **base)
            log.warning("ignored a message from %s: %s", msg.peer or "an unknown sender", why)
            return None
        self.ledger.message("in", msg.peer, msg.text, "accepted", **base)
        answer = self.answer(msg.text, msg.peer)
        self.reply(msg.peer, answer)
        return answer

    def _refuse(self, msg: Incoming) -> str:
        if not ((msg.number and msg.number in self.allow) or (msg.uuid and msg.uuid in self.allow)):
            return "sender not in [notify] allow"
        if msg.group:
            return "group message"
        if msg.shape == "sync" and not msg.to_self:
            return "the owner's message to someone else"
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
    def answer(self, text: str, peer: str) -> str:
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
            return self._ask(rest)
        if cmd in ("help", "start", "?"):
            return tx.HELP
        return f"unknown command {cmd!r}.\n{tx.HELP}"

    def _status(self) -> str:
        from tradekit.live.status import snapshot

        try:
            snap = snapshot(self.state_path)
        except TradekitError as e:
            return f"status unavailable: {e}"
        return tx.status(snap)

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
            return (
                f"kill closes every position at market and stops the loop. To confirm, send "
                f"`kill {new}` within {KILL_TTL_MS // 1000} s."
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

    def _ask(self, question: str) -> str:
        if not question:
            return "ask what? e.g. `ask how did today go`"
        try:
            from tradekit.ask import answer
        except ImportError:
            return "ask is not available in this tradekit"
        try:
            text = answer(self.cfg, question, state=self.state_path).text
        except TradekitError as e:
            return f"ask failed: {e}"
        return text if len(text) <= MAX_ANSWER else text[: MAX_ANSWER - 1] + "…"
