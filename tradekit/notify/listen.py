"""``tradekit listen``: the courier and the phone's commands, as one long-running process.

Each ``poll_s``: deliver pending ledger events, then read incoming messages: a ``GET
/v1/receive/{sender}`` poll in normal/native mode, or the receive WebSocket in json-rpc mode
(one JSON object per frame, reconnected when it drops). ``[notify] receive = "auto"`` asks
``/v1/about`` which mode the service runs in. SIGTERM and SIGINT stop it between steps.

A phone ``ask`` runs in a worker thread (:mod:`tradekit.notify.commands`): the loop goes on
reading, so ``pause``, ``resume`` and ``kill`` are answered within a poll while the LLM thinks,
and the answer is sent as soon as it is ready. Once an hour old ignored messages are pruned.
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import ConfigError, ExternalError, InputError
from tradekit.ledger import SideLedger
from tradekit.live import sdnotify
from tradekit.notify.commands import Commander, allow_list
from tradekit.notify.courier import Courier
from tradekit.notify.signal import SignalClient, SignalError
from tradekit.timeutil import zone

if TYPE_CHECKING:
    from tradekit.config import Config

log = logging.getLogger("tradekit.notify")
MAINTAIN_S = 3600.0  # prune ignored messages and log the counted ones this often


class _Either:
    """Set when either event is: a stop, or an answer that waits to be sent."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)

    def wait(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not self.is_set() and (left := end - time.monotonic()) > 0:
            self.events[0].wait(min(left, 0.05))


@dataclass
class ListenSummary:
    iterations: int = 0
    sent: int = 0  # event messages delivered
    commands: int = 0  # envelopes handled (answered or ignored)
    receive: str = ""  # poll or websocket
    exit: str = "once"
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": "listen/1",
            "iterations": self.iterations,
            "sent": self.sent,
            "commands": self.commands,
            "receive": self.receive,
            "exit": self.exit,
        }


class PollReceiver:
    """Normal/native mode: ``GET /v1/receive/{sender}`` (the server waits up to ``wait_s``
    for messages, then forgets the ones it returned)."""

    mode = "poll"

    def __init__(self, client: SignalClient) -> None:
        self.client = client

    def get(self, wait_s: float, stop: _Either) -> list[dict[str, Any]]:
        return self.client.receive(wait_s=1)  # the API's timeout is whole seconds

    def close(self) -> None:
        pass


class WsReceiver:
    """json-rpc mode: the receive WebSocket. The service keeps nothing for a client that is
    not connected, so the socket stays open between steps and is reopened when it drops."""

    mode = "websocket"

    def __init__(self, client: SignalClient) -> None:
        self.client = client
        self.conn: Any = None

    def _connect(self) -> Any:
        from websockets.sync.client import connect

        try:
            # Entered as a context (websockets 17 warns otherwise); close() exits it.
            self.conn = connect(
                self.client.ws_url(),
                open_timeout=self.client.timeout_s,
                close_timeout=1.0,
                max_size=2**24,
            ).__enter__()
        except (OSError, TimeoutError) as e:
            raise SignalError(f"receive WebSocket {self.client.ws_url()}: {e!r}") from None
        except Exception as e:  # websockets' handshake errors (InvalidStatus, InvalidURI, ...)
            raise SignalError(f"receive WebSocket {self.client.ws_url()}: {e}") from None
        log.info("listening on %s", self.client.ws_url())
        return self.conn

    def get(self, wait_s: float, stop: _Either) -> list[dict[str, Any]]:
        from websockets.exceptions import ConnectionClosed

        conn = self.conn or self._connect()
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while not stop.is_set():
            # Short slices so a stop signal is noticed quickly; frames arrive at once.
            left = min(deadline - time.monotonic(), 0.25)
            if left <= 0 and out:
                break  # frames in hand: answer them now
            try:
                frame = conn.recv(timeout=max(left, 0.0))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    break
                continue
            except (ConnectionClosed, OSError) as e:
                self.close()
                if out:
                    break
                raise SignalError(f"receive WebSocket dropped ({e}); reconnecting") from None
            try:
                doc = json.loads(frame)
            except (TypeError, ValueError):
                log.debug("receive WebSocket: not JSON: %.100r", frame)
                continue
            if isinstance(doc, dict):
                out.append(doc)
                deadline = time.monotonic()  # answer now; later frames wait for the next call
        return out

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.__exit__(None, None, None)
            except Exception:  # a dead socket: nothing left to close politely
                log.debug("closing the receive WebSocket failed", exc_info=True)
            self.conn = None


@contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set ``stop`` (the step in progress finishes: no half-sent batch)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        got.append(signum)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def listen(
    cfg: Config,
    state: str | Path,
    *,
    once: bool = False,
    stop: threading.Event | None = None,
    receive: str | None = None,
) -> ListenSummary:
    """Run the courier and the command reader until ``stop`` is set (or a signal), or one
    round with ``once``. ``receive`` overrides ``[notify] receive``."""
    n = cfg.notify
    if not n.sender:
        raise ConfigError("[notify] sender is empty: set the Signal number that sends and reads")
    if not n.recipients:
        raise ConfigError("[notify] recipients is empty: set who receives the events")
    stop = stop or threading.Event()
    path = Path(state)
    summary = ListenSummary()
    client = SignalClient(n.url, n.sender, timeout_s=n.timeout_s, text_mode=n.text_mode)
    ledger: SideLedger | None = None
    receiver: PollReceiver | WsReceiver | None = None
    mode = receive or n.receive
    warned: set[str] = set()
    tz = zone(n.timezone)
    wake = _Either(stop)
    maintained = -MAINTAIN_S

    def problem(key: str, msg: str) -> None:
        # The first failure of a kind is a warning; repeats stay at debug until it heals.
        (log.debug if key in warned else log.warning)("%s", msg)
        warned.add(key)
        if once:  # a long run would only grow the list
            summary.errors.append(msg.removeprefix("listen: "))

    with _signals(stop), client:
        try:
            while True:
                t0 = time.monotonic()
                waited = False
                summary.iterations += 1
                if ledger is None:
                    try:
                        # Never creates or migrates one: racing the loop's migration could
                        # make the loop fail.
                        ledger = SideLedger(path)
                    except InputError as e:
                        if once:
                            raise
                        problem("ledger", f"listen: {e}; waiting")
                    else:
                        warned.discard("ledger")
                        courier = Courier(
                            ledger,
                            client,
                            n.recipients,
                            events=n.events,
                            batch_s=n.batch_s,
                            max_per_hour=n.max_per_hour,
                            retry_s=n.poll_s,
                            max_retry_s=max(60.0, n.poll_s),
                            webhook=n.webhook,
                            webhook_token=cfg.secret("notify_webhook_token"),
                            timeout_s=n.timeout_s,
                        )
                        commander = Commander(
                            cfg,
                            ledger,
                            client,
                            state_path=str(path),
                            allow=allow_list(n.allow, n.recipients),
                            enabled=n.commands,
                            tz=tz,
                            ignored_per_hour=n.ignored_per_hour,
                            ignored_keep_days=n.ignored_keep_days,
                        )
                        wake = _Either(stop, commander.answered)
                if ledger is not None:
                    res = courier.step()
                    summary.sent += res.sent
                    if res.failed and once:
                        summary.errors.append("events not delivered (see the warning above)")
                    if receiver is None:
                        receiver = _receiver(client, mode, problem)
                        if receiver is not None:
                            summary.receive = receiver.mode
                            log.info("listen: receiving by %s", receiver.mode)
                    if receiver is not None:
                        left = max(n.poll_s - (time.monotonic() - t0), 0.0)
                        try:
                            docs = receiver.get(min(left, 1.0) if once else left, wake)
                        except ExternalError as e:
                            problem("receive", f"listen: receive failed: {e}")
                            docs = []
                        else:
                            warned.discard("receive")
                            # The WebSocket waited for frames itself: no sleep after it.
                            waited = receiver.mode == "websocket"
                        for doc in docs:
                            commander.handle(doc)
                            summary.commands += 1
                    if once:
                        commander.wait()  # a cron round sends its answers before it exits
                    commander.deliver()
                    if time.monotonic() - maintained >= MAINTAIN_S:
                        maintained = time.monotonic()
                        try:
                            commander.maintain()
                        except sqlite3.OperationalError as e:  # the loop held the lock
                            log.warning("listen: pruning ignored messages failed: %s", e)
                if once:
                    break
                if summary.iterations == 1:
                    sdnotify.notify("READY=1\nSTATUS=listening")
                if not waited:
                    wake.wait(max(n.poll_s - (time.monotonic() - t0), 0.0))
                if stop.is_set():
                    summary.exit = "stopped"
                    break
        finally:
            if receiver is not None:
                receiver.close()
            if ledger is not None:
                if not commander.wait(1.0):
                    log.warning("listen: stopping while an ask still runs; its answer is dropped")
                courier.close()
                ledger.close()
            if not once:
                sdnotify.notify("STOPPING=1")
    if once and summary.errors:
        # A cron or timer run should see that the round did not get through.
        raise ExternalError(f"listen --once: {summary.errors[0]}")
    return summary


def _receiver(client: SignalClient, mode: str, problem: Any) -> PollReceiver | WsReceiver | None:
    if mode == "poll":
        return PollReceiver(client)
    if mode == "websocket":
        return WsReceiver(client)
    try:
        about = client.about()
    except ExternalError as e:
        problem("about", f"listen: cannot ask {client.url}/v1/about for the mode: {e}")
        return None
    served = str(about.get("mode", "normal"))
    return WsReceiver(client) if served.startswith("json-rpc") else PollReceiver(client)
