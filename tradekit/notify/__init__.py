"""Notifications: Signal (signal-cli-rest-api) and an optional JSON webhook.

``send`` is ``tradekit notify``; ``check`` is ``notify --check``; ``listen`` (in
:mod:`tradekit.notify.listen`) delivers the ledger's events and answers the phone. Stdlib at
import time: httpx and websockets load inside the calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tradekit.errors import ConfigError, ExternalError

if TYPE_CHECKING:
    from tradekit.config import NotifyConfig

SEND_SCHEMA = "notify/1"
CHECK_SCHEMA = "notify-check/1"


@dataclass(frozen=True)
class Delivery:
    """What ``send`` did: Signal's timestamp, recipients, tries, seconds; the webhook's
    HTTP status (None when off)."""

    timestamp: str | None
    recipients: list[str]
    attempts: int
    seconds: float
    webhook_status: int | None = None
    attachments: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": SEND_SCHEMA,
            "timestamp": self.timestamp,
            "recipients": self.recipients,
            "attempts": self.attempts,
            "latency_ms": round(self.seconds * 1000, 1),
            "webhook_status": self.webhook_status,
            "attachments": self.attachments,
        }


def send(
    cfg: NotifyConfig,
    message: str,
    *,
    attachments: Sequence[str] = (),
    recipients: Sequence[str] = (),
    level: str = "info",
    webhook_token: str | None = None,
) -> Delivery:
    """One message to Signal (exactly one ``POST /v2/send`` per try) and, when ``[notify]
    webhook`` is set, to the webhook. ``attachments`` are file paths, checked before anything
    is sent; ``recipients`` replaces ``[notify] recipients``. Raises ConfigError (no sender
    or recipients), InputError (unreadable attachment), ExternalError (a service failed;
    :class:`~tradekit.notify.signal.MaybeSent` when Signal answered 429)."""
    from pathlib import Path

    from tradekit.notify.signal import SignalClient, attachment

    to = list(recipients) or list(cfg.recipients)
    use_signal = bool(cfg.sender) or not cfg.webhook
    if use_signal and not cfg.sender:
        raise ConfigError("[notify] sender is empty: set the registered Signal number that sends")
    if use_signal and not to:
        raise ConfigError("[notify] recipients is empty: set at least one number, or use --to")
    uris = [attachment(p) for p in attachments]  # unreadable files fail before any send
    names = [Path(p).name for p in attachments]
    stamp: str | None = None
    attempts, seconds = 0, 0.0
    if use_signal:
        with SignalClient(
            cfg.url, cfg.sender, timeout_s=cfg.timeout_s, text_mode=cfg.text_mode
        ) as client:
            sent = client.send(message, to, attachments=uris)
        stamp, attempts, seconds = sent.timestamp, sent.attempts, sent.seconds
    hook = None
    if cfg.webhook:
        from tradekit.notify import webhook

        try:
            hook = webhook.post(
                cfg.webhook,
                message,
                level=level,
                token=webhook_token,
                timeout_s=cfg.timeout_s,
                kind="message",
                attachments=names,
            )
        except ExternalError as e:
            done = "Signal got the message, but " if use_signal else ""
            raise ExternalError(f"{done}{e}") from None
    return Delivery(stamp, to if use_signal else [], attempts, seconds, hook, names)


def check(cfg: NotifyConfig) -> dict[str, Any]:
    """``GET /v1/about`` and ``/v1/health``: the service's mode and version, and whether the
    sender is one of its accounts. ExternalError when it does not answer."""
    from tradekit.notify.signal import SignalClient, SignalError

    with SignalClient(cfg.url, cfg.sender, timeout_s=cfg.timeout_s, tries=2) as client:
        about = client.about()
        healthy = client.health()
        if not healthy:
            raise ExternalError(f"{cfg.url}/v1/health did not answer 204: the service is not up")
        registered: bool | None = None
        if cfg.sender:
            try:
                registered = cfg.sender in client.accounts()
            except SignalError:
                registered = None  # older services lack /v1/accounts: unknown, not an error
    mode = str(about.get("mode", "unknown"))
    return {
        "schema": CHECK_SCHEMA,
        "url": cfg.url,
        "mode": mode,
        "version": str(about.get("version", "unknown")),
        "versions": about.get("versions", []),
        "healthy": healthy,
        "receive": "websocket" if mode.startswith("json-rpc") else "poll",
        "sender": cfg.sender or None,
        "sender_registered": registered,
    }


__all__ = ["CHECK_SCHEMA", "SEND_SCHEMA", "Delivery", "check", "send"]
