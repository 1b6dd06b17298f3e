"""Local servers on 127.0.0.1 speaking the LLM APIs that ``ask`` uses.

``AnthropicServer``: ``POST /v1/messages`` as the Messages API answers it for Haiku 5.5: a
thinking block first, then the text; ``usage``; a ``request-id`` header; errors as
``{"type": "error", "error": {...}, "request_id": ...}``. It accepts ``x-api-key`` or
``Authorization: Bearer`` (the official SDK sends the latter) and refuses anything else with
401, and refuses temperature/top_p/top_k and assistant prefill with 400 as Haiku 5.5 does.
``OpenAIServer``: ``POST /v1/chat/completions`` shaped as Ollama answers it, and Ollama's own
``POST /api/chat`` (``options.num_ctx`` sets the window of that request). With a ``window``
(tokens), it does what Ollama does to a prompt longer than its window: it silently keeps the
system message and cuts the user message from the front. The tokens are counted like a BPE
tokenizer would (a word, up to 3 digits or one other symbol each); ``seen`` keeps, per
request, the prompt as the model saw it.

``hold()`` makes a server slow: each request waits until ``release()`` (``arrived`` is set as
a request comes in), as an LLM that takes minutes would.

Faults are queued per server and consumed one per request: ``"529"`` (overloaded),
``"500"``, ``"429"`` (rate limit) (these three carry ``retry-after: 0``), ``"spend"`` (429
``enforced_spend_limit_reached``, no retry-after), ``"401"``, ``"refusal"`` (200 with
``stop_reason: refusal``). Every request is kept (headers lower-cased, parsed body).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "Equity is 7,995.66 USD (-20.04 % since start)."


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class _State:
    key: str
    answer: str
    window: int | None = None
    faults: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)  # the prompt as the model saw it
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)


_BPE = re.compile(r" ?[A-Za-z]+| ?\d{1,3}|\n|[^\sA-Za-z\d]")


def tokens(text: str) -> list[str]:
    """Roughly how a BPE tokenizer splits text (spaces ride on the next word)."""
    return _BPE.findall(text)


def window_cut(messages: list[dict[str, Any]], window: int | None) -> str:
    """What a model with ``window`` tokens sees of a chat: system messages whole, the rest cut
    from the front (Ollama's silent truncation)."""
    system = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    rest = "\n".join(str(m.get("content", "")) for m in messages if m.get("role") != "system")
    if window is None:
        return f"{system}\n{rest}"
    room = max(window - len(tokens(system)), 0)
    toks = tokens(rest)
    return f"{system}\n{''.join(toks[-room:] if room else [])}"


class _Base:
    kind = ""

    def __init__(
        self, key: str = "test-key", answer: str = ANSWER, window: int | None = None
    ) -> None:
        self.state = _State(key, answer, window)
        self.state.gate.set()
        handler = type("Handler", (_Handler,), {"state": self.state, "kind": self.kind})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[Request]:
        return list(self.state.requests)

    @property
    def seen(self) -> list[str]:
        return list(self.state.seen)

    @property
    def arrived(self) -> threading.Event:
        return self.state.arrived

    def fail(self, *faults: str) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def hold(self) -> None:
        """Requests wait (up to a minute) until :meth:`release`."""
        self.state.arrived.clear()
        self.state.gate.clear()

    def release(self) -> None:
        self.state.gate.set()

    def __enter__(self) -> _Base:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.gate.set()
        self.server.shutdown()
        self.server.server_close()


class AnthropicServer(_Base):
    kind = "anthropic"


class OpenAIServer(_Base):
    kind = "openai"


class _Handler(BaseHTTPRequestHandler):
    state: _State
    kind: str
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        with self.state.lock:
            k = len(self.state.requests)
            self.state.requests.append(
                Request(self.path, {h.lower(): v for h, v in self.headers.items()}, body)
            )
            fault = self.state.faults.pop(0) if self.state.faults else ""
        self.state.arrived.set()
        self.state.gate.wait(60)
        rid = f"req_{k:04d}"
        if self.kind == "anthropic":
            self._anthropic(body, fault, rid)
        else:
            self._openai(body, fault, rid)

    # -- Anthropic Messages API ------------------------------------------------------------
    def _error(self, code: int, kind: str, message: str, rid: str, **extra: Any) -> None:
        err: dict[str, Any] = {"type": kind, "message": message, **extra}
        headers = {"request-id": rid}
        if code in (429, 500, 529) and "details" not in extra:
            headers["retry-after"] = "0"
        self._send(code, {"type": "error", "error": err, "request_id": rid}, headers)

    def _anthropic(self, body: dict[str, Any], fault: str, rid: str) -> None:
        if self.path != "/v1/messages":
            return self._error(404, "not_found_error", f"no route {self.path}", rid)
        key = self.headers.get("x-api-key") or ""
        auth = self.headers.get("authorization") or ""
        if auth.lower().startswith("bearer "):
            key = key or auth[7:]
        if fault == "401" or key != self.state.key:
            return self._error(401, "authentication_error", "invalid x-api-key", rid)
        if not self.headers.get("anthropic-version"):
            return self._error(400, "invalid_request_error", "anthropic-version missing", rid)
        for p in ("temperature", "top_p", "top_k"):
            if p in body:
                return self._error(400, "invalid_request_error", f"{p} is not supported", rid)
        msgs = body.get("messages") or []
        if not msgs or msgs[-1].get("role") != "user":
            return self._error(400, "invalid_request_error", "prefill is not supported", rid)
        if fault == "529":
            return self._error(529, "overloaded_error", "Overloaded", rid)
        if fault == "500":
            return self._error(500, "api_error", "Internal server error", rid)
        if fault == "429":
            return self._error(429, "rate_limit_error", "Rate limited", rid)
        if fault == "spend":
            return self._error(
                429,
                "rate_limit_error",
                "You have reached your specified workspace API usage limits.",
                rid,
                details={"error_code": "enforced_spend_limit_reached"},
            )
        refusal = fault == "refusal"
        content: list[dict[str, Any]] = [{"type": "thinking", "thinking": "", "signature": "s1"}]
        if not refusal:
            content.append({"type": "text", "text": self.state.answer})
        self._send(
            200,
            {
                "id": f"msg_{rid}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": content,
                "stop_reason": "refusal" if refusal else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 1234, "output_tokens": 56},
            },
            {"request-id": rid},
        )

    # -- OpenAI-compatible chat completions (Ollama) ---------------------------------------
    def _openai(self, body: dict[str, Any], fault: str, rid: str) -> None:
        if self.path == "/api/chat":
            return self._ollama(body, fault, rid)
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": "404 page not found"})
        if fault in ("500", "529"):
            return self._send(500, {"error": {"message": "boom", "type": "api_error"}})
        if fault == "401":
            return self._send(401, {"error": {"message": "bad key", "type": "auth"}})
        with self.state.lock:
            self.state.seen.append(window_cut(body.get("messages") or [], self.state.window))
        self._send(
            200,
            {
                "id": f"chatcmpl-{rid}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model"),
                "system_fingerprint": "fp_ollama",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.state.answer},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940},
            },
            {"x-request-id": rid},
        )

    # -- Ollama's own API ------------------------------------------------------------------
    def _ollama(self, body: dict[str, Any], fault: str, rid: str) -> None:
        if fault in ("500", "529"):
            return self._send(500, {"error": "boom"})
        if body.get("stream") is not False:
            return self._send(400, {"error": "this test server answers stream: false only"})
        options = body.get("options") or {}
        window = int(options.get("num_ctx") or self.state.window or 4096)
        with self.state.lock:
            self.state.seen.append(window_cut(body.get("messages") or [], window))
        self._send(
            200,
            {
                "model": body.get("model"),
                "created_at": "2024-03-10T20:00:00Z",
                "message": {"role": "assistant", "content": self.state.answer},
                "done": True,
                "done_reason": "stop",
                "prompt_eval_count": 700,
                "eval_count": 30,
                "total_duration": 1_000_000,
            },
        )
