"""A thin client for bbernhard/signal-cli-rest-api (reference/dependencies.md §2: one
``POST /v2/send`` per message, a timeout on every request, errors as our own exceptions).

What the server's answers mean (reference/interfaces.md §1.4):

- 201 ``{"timestamp": ...}``: sent. A 201 may still list ``errors.recipients``: those numbers
  did not get it (:class:`PartialFailure`).
- 429: rate limited, and yet the message is sometimes delivered: "maybe sent"
  (:class:`MaybeSent`); it is never resent, since a duplicate on the phone is worse.
- 400 ``{"error": ...}``: the request or the account is wrong; retrying will not help.
- 5xx, refused connections and timeouts are retried a few times with backoff.

httpx is imported inside the functions (``tradekit --help`` must not load it).
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from tradekit.errors import ExternalError, InputError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("tradekit.notify")


class SignalError(ExternalError):
    """The message was not sent (service down after retries, or refused with 400/4xx)."""


class MaybeSent(ExternalError):
    """Signal answered 429: rate limited, but the message may have been delivered."""


class PartialFailure(ExternalError):
    """A 201 that lists recipients the message did not reach."""

    def __init__(self, message: str, failed: list[str], timestamp: str | None) -> None:
        super().__init__(message)
        self.failed = failed
        self.timestamp = timestamp


@dataclass(frozen=True)
class Sent:
    """A confirmed send: Signal's timestamp (ms, as the server's string), tries, seconds."""

    timestamp: str
    recipients: list[str]
    attempts: int
    seconds: float


@dataclass
class SignalClient:
    """One signal-cli REST API endpoint and the account (``sender``) that sends."""

    url: str
    sender: str
    timeout_s: float = 10.0
    tries: int = 3
    backoff_s: float = 0.5
    text_mode: str = "styled"
    _http: httpx.Client | None = field(default=None, init=False, repr=False)

    # -- plumbing ----------------------------------------------------------------------------
    def _client(self) -> httpx.Client:
        if self._http is None:
            import httpx

            self._http = httpx.Client(
                base_url=self.url.rstrip("/"),
                timeout=httpx.Timeout(self.timeout_s),
                headers={"User-Agent": "tradekit"},
                # Loading the CA bundle costs ~20 ms per client; plain http (the usual
                # loopback service) never uses it. https is verified as usual.
                verify=self.url.startswith("https:"),
            )
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> SignalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(
        self, method: str, path: str, *, retry: bool = True, **kw: Any
    ) -> tuple[httpx.Response, int]:
        """One request, retried on transport errors and 5xx; returns the last response and
        the number of attempts. Raises SignalError when no answer came back."""
        tries = max(1, self.tries) if retry else 1
        resp, last, attempts = retried(
            lambda: self._client().request(method, path, **kw),
            tries=tries,
            backoff_s=self.backoff_s,
            timeout_s=self.timeout_s,
            what=f"signal {method} {path}",
        )
        if resp is None:
            raise SignalError(
                f"signal-cli REST API at {self.url} {path}: {last} after {tries} tries"
            )
        return resp, attempts

    # -- API ---------------------------------------------------------------------------------
    def send(
        self,
        message: str,
        recipients: Sequence[str],
        *,
        attachments: Sequence[str] = (),
        text_mode: str | None = None,
    ) -> Sent:
        """``POST /v2/send``; ``attachments`` are data URIs (see :func:`attachment`)."""
        if not self.sender:
            raise InputError("[notify] sender is empty: set the Signal number that sends")
        if not recipients:
            raise InputError("[notify] recipients is empty: give at least one number or --to")
        body: dict[str, Any] = {
            "number": self.sender,
            "recipients": list(recipients),
            "message": message,
            "text_mode": text_mode or self.text_mode,
        }
        if attachments:
            body["base64_attachments"] = list(attachments)
        t0 = time.perf_counter()
        resp, attempts = self._request("POST", "/v2/send", json=body)
        seconds = time.perf_counter() - t0
        doc = _json(resp)
        if resp.status_code == 429:
            raise MaybeSent(
                "Signal rate-limited the send (HTTP 429): the message may have been delivered "
                f"anyway, so it was not resent ({_error_text(resp)})"
            )
        if resp.status_code not in (200, 201):
            raise SignalError(
                f"Signal refused the message (HTTP {resp.status_code}): {_error_text(resp)}"
            )
        stamp = str(doc.get("timestamp", "")) if isinstance(doc, dict) else ""
        errors = doc.get("errors") if isinstance(doc, dict) else None
        failed = _failed_recipients(errors)
        if failed:
            raise PartialFailure(
                f"Signal did not deliver to {', '.join(failed)} "
                f"({_reasons(errors)}); the other recipients got it",
                failed,
                stamp or None,
            )
        return Sent(stamp, list(recipients), attempts, seconds)

    def about(self) -> dict[str, Any]:
        """``GET /v1/about``: ``mode``, ``version``, ``versions``, ``build``."""
        resp, _ = self._request("GET", "/v1/about")
        doc = _json(resp)
        if resp.status_code != 200 or not isinstance(doc, dict):
            raise SignalError(f"{self.url}/v1/about: HTTP {resp.status_code}: {_error_text(resp)}")
        return doc

    def health(self) -> bool:
        """``GET /v1/health`` answers 204 when the HTTP server is up."""
        resp, _ = self._request("GET", "/v1/health")
        return resp.status_code == 204

    def accounts(self) -> list[str]:
        resp, _ = self._request("GET", "/v1/accounts")
        doc = _json(resp)
        if resp.status_code != 200 or not isinstance(doc, list):
            raise SignalError(f"{self.url}/v1/accounts: HTTP {resp.status_code}")
        return [str(x) for x in doc]

    def receive(self, wait_s: int = 1) -> list[dict[str, Any]]:
        """``GET /v1/receive/{sender}`` (normal/native mode): the envelopes waiting, each
        ``{"envelope": {...}, "account": ...}``; the server forgets them once fetched, so this
        is not retried (a retry after a lost answer could not get them back anyway)."""
        import httpx

        path = self.receive_path()
        try:
            resp = self._client().get(
                path,
                params={"timeout": str(max(0, int(wait_s)))},
                timeout=httpx.Timeout(self.timeout_s + wait_s),
            )
        except httpx.TransportError as e:
            raise SignalError(f"signal-cli REST API at {self.url}{path}: {e!r}") from None
        doc = _json(resp)
        if resp.status_code != 200 or not isinstance(doc, list):
            raise SignalError(f"{self.url}{path}: HTTP {resp.status_code}: {_error_text(resp)}")
        return [d for d in doc if isinstance(d, dict)]

    def receive_path(self) -> str:
        return f"/v1/receive/{quote(self.sender, safe='+')}"

    def ws_url(self) -> str:
        """The json-rpc mode receive WebSocket."""
        base = self.url.rstrip("/")
        scheme, _, rest = base.partition("://")
        return ("wss" if scheme == "https" else "ws") + "://" + rest + self.receive_path()


def attachment(path: str | Path) -> str:
    """A file as the data URI ``base64_attachments`` takes:
    ``data:<mime>;filename=<name>;base64,<data>``. InputError names an unreadable file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: cannot read the attachment ({e.strerror or e})") from None
    mime = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
    name = quote(p.name, safe="._-")
    return f"data:{mime};filename={name};base64,{base64.b64encode(data).decode()}"


def retried(
    send: Callable[[], httpx.Response],
    *,
    tries: int,
    backoff_s: float,
    timeout_s: float,
    what: str,
) -> tuple[httpx.Response | None, str, int]:
    """``send()`` retried with exponential backoff on timeouts, transport errors and 5xx (the
    Signal client and the webhook share this). Returns the first answer below 500 (None when
    none came), the last problem in words, and the attempts made."""
    import httpx

    tries = max(1, tries)
    last = ""
    for attempt in range(1, tries + 1):
        try:
            resp = send()
        except httpx.TimeoutException:
            last = f"no answer within {timeout_s:g}s"
        except httpx.TransportError as e:
            last = f"cannot connect ({type(e).__name__}: {e})"
        else:
            if resp.status_code < 500:
                return resp, last, attempt
            last = f"HTTP {resp.status_code}: {_error_text(resp)}"
        if attempt < tries:
            wait = backoff_s * 2 ** (attempt - 1)
            log.debug("%s: %s; retry in %.2fs", what, last, wait)
            time.sleep(wait)
    return None, last, tries


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json() if resp.content else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _error_text(resp: httpx.Response) -> str:
    doc = _json(resp)
    if isinstance(doc, dict) and doc.get("error"):
        return str(doc["error"])
    text = resp.text.strip().replace("\n", " ")
    return text[:200] or "(empty body)"


def _failed_recipients(errors: Any) -> list[str]:
    if not isinstance(errors, dict):
        return []
    out = []
    for r in errors.get("recipients") or []:
        if isinstance(r, dict):
            out.append(str(r.get("number") or r.get("uuid") or "?"))
        else:
            out.append(str(r))
    return out


def _reasons(errors: Any) -> str:
    reasons = sorted(
        {
            str(r.get("reason", "?"))
            for r in (errors or {}).get("recipients") or []
            if isinstance(r, dict)
        }
    )
    return ", ".join(reasons) or "no reason given"
