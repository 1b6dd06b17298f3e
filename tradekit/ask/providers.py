"""LLM providers for ``ask``, spoken with httpx directly (the anthropic SDK rides on httpx2 and
takes ~2 s to import): the Anthropic Messages API, OpenAI-compatible chat completions
(Ollama's /v1, llama.cpp, OpenAI itself) and Ollama's own ``/api/chat``, the one Ollama API
that takes the context window per request (``options.num_ctx``; /v1 silently keeps the
server's default and cuts longer prompts from the front). Where a request may go and with
which key is :mod:`tradekit.ask.endpoint`'s decision, made before the call.

Retries: connection errors, 5xx, 529 overloaded and a plain 429 rate limit, honouring
``retry-after``, a few tries with exponential backoff and jitter. Not retried: a 429 whose
``error.details.error_code`` is ``enforced_spend_limit_reached`` (a monthly cap: retrying
only burns requests), 401/403 (the key), other 4xx (the request).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tradekit.errors import ExternalError, TradekitError

if TYPE_CHECKING:
    import httpx

    from tradekit.ask.endpoint import Endpoint
    from tradekit.config import Config

log = logging.getLogger("tradekit.ask")

ANTHROPIC_VERSION = "2023-06-01"
TRIES = 4
BACKOFF_S = 1.0
MAX_WAIT_S = 30.0
SPEND_LIMIT = "enforced_spend_limit_reached"
LANGUAGES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "nl": "Dutch",
    "pt": "Portuguese",
}


@dataclass(frozen=True)
class Reply:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    request_id: str


class ProviderFailed(Exception):
    """A provider call that failed; ``error`` is what the user sees, ``status`` goes into the
    ledger's ``asks`` row with ``usage`` (tokens in, out, cost) when the call consumed any."""

    def __init__(
        self, error: TradekitError, status: str, usage: tuple[int, int, float] = (0, 0, 0.0)
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.status = status
        self.usage = usage


def language_rule(setting: str, question: str) -> str:
    """The prompt's language sentence: the configured language, or for ``auto`` the question's
    (named when the detector has evidence; otherwise the model is told to follow the question)."""
    from tradekit.ask import lang as lg

    if (setting.strip().lower() or "auto") != "auto":
        code = lg.answer_language(setting, question)
        return f"Answer in {LANGUAGES.get(code, setting)}."
    de, en = lg.scores(question)
    if de == en:
        return "Answer in the language the question is written in."
    return f"Answer in {LANGUAGES[lg.detect(question)]}, the language of the question."


def system_prompt(language_sentence: str) -> str:
    return (
        "You are the analyst of a small crypto trading bot (tradekit). You only read: you cannot "
        "place, change or cancel orders, and you never claim to. Answer the question from the "
        "context in the user message only. Cite the figures you use with their units and "
        'periods, e.g. "equity 7,995.66 USD (-20.04 % since start)". When the context does '
        "not hold what the question needs, say what you do not know instead of guessing. Keep "
        f"the answer short enough to read on a phone. {language_sentence}"
    )


def user_message(context: str, question: str) -> str:
    return f"Context (read-only state of the bot):\n\n{context}\n\nQuestion: {question}"


def output_tokens(cfg: Config, window: int) -> int:
    """Tokens kept free for the answer: ``[ask] max_tokens``, but at most a quarter of the
    window (a phone-sized answer needs a few hundred)."""
    return max(min(cfg.ask.max_tokens, window // 4), 64)


def complete(
    ep: Endpoint,
    cfg: Config,
    *,
    system: str,
    user: str,
    tries: int = TRIES,
    backoff_s: float = BACKOFF_S,
) -> Reply:
    """One answer from the checked endpoint ``ep`` (anthropic, openai or ollama)."""
    fn = {"anthropic": _anthropic, "openai": _openai, "ollama": _ollama}[ep.provider]
    return fn(ep, cfg, system, user, tries, backoff_s)


def cost(cfg: Config, tokens_in: int, tokens_out: int) -> float:
    """What a call cost in USD at ``[ask] price_in``/``price_out`` (per million tokens)."""
    return (tokens_in * cfg.ask.price_in + tokens_out * cfg.ask.price_out) / 1e6


def _anthropic(
    ep: Endpoint, cfg: Config, system: str, user: str, tries: int, backoff_s: float
) -> Reply:
    body = {
        "model": cfg.ask.model,
        "max_tokens": output_tokens(cfg, ep.window),
        "system": system,
        "messages": [{"role": "user", "content": user}],
        # Haiku 5.5 thinks by default and thinking eats max_tokens; a one-shot summary of
        # given figures does not need it. No temperature/top_p/top_k: Haiku 5.5 rejects them.
        "thinking": {"type": "disabled"},
    }
    headers = {
        "x-api-key": ep.key or "",  # resolve() refused the call without one
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
    }
    resp, rid = _post(
        "anthropic", f"{ep.base}/v1/messages", headers, body, cfg, tries, backoff_s, "ANTHROPIC"
    )
    doc = _json(resp, "anthropic")
    usage = doc.get("usage") or {}
    tokens_in = int(usage.get("input_tokens") or 0)
    tokens_out = int(usage.get("output_tokens") or 0)
    spent = (tokens_in, tokens_out, cost(cfg, tokens_in, tokens_out))
    stop = doc.get("stop_reason")
    if stop == "refusal":
        raise ProviderFailed(
            ExternalError(
                f"anthropic declined to answer (stop_reason refusal, request-id {rid}); "
                "rephrase the question"
            ),
            "refusal",
            spent,
        )
    # Haiku 5.5 may put a thinking block first: pick the text blocks by type.
    text = "".join(
        str(b.get("text", ""))
        for b in doc.get("content") or []
        if isinstance(b, dict) and b.get("type") == "text"
    ).strip()
    if not text:
        why = "cut off at max_tokens; raise [ask] max_tokens" if stop == "max_tokens" else stop
        raise ProviderFailed(
            ExternalError(f"anthropic returned no text ({why}, request-id {rid})"), "empty", spent
        )
    if stop == "max_tokens":
        log.warning("ask: the answer was cut at %d tokens", output_tokens(cfg, ep.window))
    return Reply(text, str(doc.get("model") or cfg.ask.model), tokens_in, tokens_out, rid)


def _openai(
    ep: Endpoint, cfg: Config, system: str, user: str, tries: int, backoff_s: float
) -> Reply:
    body = {
        "model": cfg.ask.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": output_tokens(cfg, ep.window),
        "stream": False,
    }
    headers = {"content-type": "application/json"}
    if ep.key:  # optional: Ollama ignores it
        headers["authorization"] = f"Bearer {ep.key}"
    resp, rid = _post(
        "openai", f"{ep.base}/chat/completions", headers, body, cfg, tries, backoff_s, "OPENAI"
    )
    doc = _json(resp, "openai")
    usage = doc.get("usage") or {}
    tokens_in = int(usage.get("prompt_tokens") or 0)
    tokens_out = int(usage.get("completion_tokens") or 0)
    try:
        text = str(doc["choices"][0]["message"]["content"] or "").strip()
    except (KeyError, IndexError, TypeError):
        text = ""
    if not text:
        raise ProviderFailed(
            ExternalError(f"openai: no answer in the response (request-id {rid or '-'})"),
            "empty",
            (tokens_in, tokens_out, cost(cfg, tokens_in, tokens_out)),
        )
    return Reply(text, str(doc.get("model") or cfg.ask.model), tokens_in, tokens_out, rid)


def _ollama(
    ep: Endpoint, cfg: Config, system: str, user: str, tries: int, backoff_s: float
) -> Reply:
    """Ollama's ``POST /api/chat`` (no key: Ollama has no authentication)."""
    body = {
        "model": cfg.ask.model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "stream": False,
        "options": {"num_ctx": ep.window, "num_predict": output_tokens(cfg, ep.window)},
    }
    headers = {"content-type": "application/json"}
    resp, rid = _post("ollama", f"{ep.base}/api/chat", headers, body, cfg, tries, backoff_s, "")
    doc = _json(resp, "ollama")
    tokens_in = int(doc.get("prompt_eval_count") or 0)
    tokens_out = int(doc.get("eval_count") or 0)
    msg = doc.get("message") if isinstance(doc.get("message"), dict) else {}
    text = str((msg or {}).get("content") or "").strip()
    if not text:
        raise ProviderFailed(
            ExternalError("ollama: no answer in the response"),
            "empty",
            (tokens_in, tokens_out, cost(cfg, tokens_in, tokens_out)),
        )
    if doc.get("done_reason") == "length":
        log.warning("ask: the answer was cut at %d tokens", output_tokens(cfg, ep.window))
    return Reply(text, str(doc.get("model") or cfg.ask.model), tokens_in, tokens_out, rid)


def _json(resp: httpx.Response, provider: str) -> dict[str, Any]:
    try:
        doc = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        raise ProviderFailed(
            ExternalError(f"{provider}: the response is not a JSON object"), "bad response"
        )
    return doc


def _error(resp: httpx.Response) -> tuple[str, str, str]:
    """(type, message, details.error_code) of an error response, as far as it says."""
    try:
        doc = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", resp.text[:200], ""
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):  # Ollama: {"error": "model 'x' not found"}
        return "", str(err or "")[:200], ""
    details = err.get("details") if isinstance(err.get("details"), dict) else {}
    return (
        str(err.get("type") or err.get("code") or ""),
        str(err.get("message") or "")[:300],
        str((details or {}).get("error_code") or ""),
    )


def _wait(resp: httpx.Response | None, attempt: int, backoff_s: float) -> float:
    if resp is not None:
        try:
            after = float(str(resp.headers["retry-after"]))
            return min(max(after, 0.0), MAX_WAIT_S)
        except (KeyError, ValueError):
            pass
    return min(backoff_s * 2.0**attempt * (1.0 + random.random() / 2), MAX_WAIT_S)


def _post(
    provider: str,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    cfg: Config,
    tries: int,
    backoff_s: float,
    env_prefix: str,
) -> tuple[httpx.Response, str]:
    import httpx

    last = ""
    with httpx.Client(timeout=cfg.ask.timeout_s) as client:
        for attempt in range(tries):
            resp: httpx.Response | None = None
            try:
                resp = client.post(url, json=body, headers=headers)
            except httpx.TimeoutException:
                last = f"no answer from {url} within {cfg.ask.timeout_s:g} s"
            except httpx.TransportError as e:
                last = f"cannot reach {url}: {type(e).__name__}"
            else:
                rid = resp.headers.get("request-id") or resp.headers.get("x-request-id") or ""
                log.info("ask: %s HTTP %d, request-id %s", provider, resp.status_code, rid or "-")
                if resp.is_success:
                    return resp, rid
                code = resp.status_code
                kind, message, error_code = _error(resp)
                if code == 429 and error_code == SPEND_LIMIT:
                    raise ProviderFailed(
                        ExternalError(
                            f"{provider}: spend limit reached (429 {SPEND_LIMIT}, request-id "
                            f"{rid or '-'}); not retried: raise the limit in the console or "
                            "wait for the next billing period"
                        ),
                        "spend limit",
                    )
                if code in (401, 403):
                    check = f": check {env_prefix}_API_KEY" if env_prefix else ""
                    raise ProviderFailed(
                        ExternalError(f"{provider}: HTTP {code} {kind or 'unauthorized'}{check}"),
                        f"http {code}",
                    )
                last = f"HTTP {code} {kind}: {message}".strip()
                if code != 429 and code < 500:
                    hint = " (is [ask] model right for this provider?)" if code == 404 else ""
                    raise ProviderFailed(ExternalError(f"{provider}: {last}{hint}"), f"http {code}")
            if attempt + 1 < tries:
                wait = _wait(resp, attempt, backoff_s)
                log.info("ask: %s: %s; retry in %.1f s", provider, last, wait)
                time.sleep(wait)
    raise ProviderFailed(
        ExternalError(f"{provider}: {last} (after {tries} tries)"), "failed after retries"
    )
