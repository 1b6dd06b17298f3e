"""A second sink: each message POSTed as JSON to ``[notify] webhook`` (ntfy, a home server,
a chat bridge), with ``Authorization: Bearer $TRADEKIT_WEBHOOK_TOKEN`` when the token is set."""

from __future__ import annotations

import time
from typing import Any

from tradekit.errors import ExternalError
from tradekit.notify.signal import retried


def post(
    url: str,
    text: str,
    *,
    level: str = "info",
    token: str | None = None,
    timeout_s: float = 10.0,
    tries: int = 3,
    backoff_s: float = 0.5,
    **extra: Any,
) -> int:
    """POST ``{"text", "level", "source": "tradekit", "ts_ms", **extra}``; returns the HTTP
    status (2xx). Retries transport errors and 5xx; raises ExternalError otherwise."""
    import httpx

    body = {"text": text, "level": level, "source": "tradekit", "ts_ms": time.time_ns() // 10**6}
    body.update(extra)
    headers = {"User-Agent": "tradekit"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    resp, last, _ = retried(
        lambda: httpx.post(
            url, json=body, headers=headers, timeout=timeout_s, verify=url.startswith("https:")
        ),
        tries=tries,
        backoff_s=backoff_s,
        timeout_s=timeout_s,
        what=f"webhook {url}",
    )
    if resp is not None:
        if 200 <= resp.status_code < 300:
            return resp.status_code
        # A 4xx: refused (bad token, bad URL); retrying will not help.
        last = f"HTTP {resp.status_code}: {resp.text.strip()[:200]}"
    raise ExternalError(f"[notify] webhook {url}: {last}")
