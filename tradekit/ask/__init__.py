"""``tradekit ask``: a one-shot analyst over the bot's read-only state.

The LLM is an analyst, never a trader: this package reads the ledger (read-only), the model
manifest and reports, builds a masked context fitted to the model's window, and asks a
provider (``anthropic``, ``openai``-compatible, Ollama's own ``ollama``, or the offline
``none`` answer). Nothing here can reach a broker or place, change or cancel an order (a test
walks the source to keep it so). This module stays import-light: the context builder and
providers load on call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from tradekit.config import Config

log = logging.getLogger("tradekit.ask")

PROVIDERS = ("none", "anthropic", "openai", "ollama")
ANSWER_SCHEMA = "ask/1"


@dataclass(frozen=True)
class Answer:
    """One answer and what it cost. ``model`` is ``offline`` for the ``none`` provider.
    ``context_tokens`` is the estimate of the context sent, ``window_tokens`` the model's
    window it was fitted to (0 for ``none``), ``dropped`` what the fit cut."""

    text: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: int
    context_chars: int
    truncated: bool
    context_tokens: int = 0
    window_tokens: int = 0
    dropped: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {"schema": ANSWER_SCHEMA, **asdict(self), "dropped": list(self.dropped)}


PROMPT_MARGIN = 64  # tokens: the chat template's own wrapping of system and user messages


def answer(
    cfg: Config,
    question: str,
    *,
    state: str | None = None,
    model: str | None = None,
    context_files: Sequence[str] = (),
    provider: str | None = None,
) -> Answer:
    """Answer ``question`` from the bot's state: ``state`` is the ledger ([run] state),
    ``model`` the model dir ([run] model), ``context_files`` extra JSON/text files, ``provider``
    overrides [ask] provider. The endpoint is checked before anything is read
    (:mod:`tradekit.ask.endpoint`); the context and the question are masked; the context is
    fitted to the provider's window. Records token use in the ledger's ``asks`` table when the
    ledger exists. Raises ConfigError (endpoint, key), InputError (unreadable context file),
    ExternalError (provider failed after retries or refused)."""
    from tradekit.ask.budget import estimate_tokens
    from tradekit.ask.context import Context, build_context
    from tradekit.ask.lang import answer_language
    from tradekit.ask.mask import Masker
    from tradekit.timeutil import zone

    name = (provider or cfg.ask.provider).strip().lower()
    if name not in PROVIDERS:
        raise UsageError(f"--provider {name!r}: expected one of {', '.join(PROVIDERS)}")
    question = question.strip()
    if not question:
        raise UsageError("ask: the question is empty")
    ledger_path = state or cfg.run.state
    masker = Masker.for_config(cfg)
    asked = masker.text(question)
    tz = zone(cfg.notify.timezone)

    def context(max_tokens: int = 10**9) -> Context:
        return build_context(
            cfg,
            state=ledger_path,
            model=model or cfg.run.model,
            context_files=context_files,
            tz=tz,
            max_tokens=max_tokens,
            masker=masker,
        )

    t0 = time.perf_counter()
    if name == "none":
        from tradekit.ask.offline import offline_answer

        ctx = context()
        lang = answer_language(cfg.ask.language, question)
        result = Answer(
            text=offline_answer(ctx.facts, question, lang, tz),
            provider="none",
            model="offline",
            input_tokens=0,
            output_tokens=0,
            cost_usd=0.0,
            latency_ms=_ms_since(t0),
            context_chars=len(ctx.text),
            truncated=ctx.truncated,
            context_tokens=ctx.tokens,
            dropped=tuple(ctx.dropped),
        )
    else:
        from tradekit.ask import endpoint, providers

        ep = endpoint.resolve(name, cfg)  # before anything is read or sent
        system = providers.system_prompt(providers.language_rule(cfg.ask.language, question))
        budget = (
            ep.window
            - providers.output_tokens(cfg, ep.window)
            - estimate_tokens(system)
            - estimate_tokens(providers.user_message("", asked))
            - PROMPT_MARGIN
        )
        if budget < 256:
            raise ConfigError(
                f"ask: a {ep.window}-token window leaves no room for the context "
                "([ask] context_tokens, max_tokens)"
            )
        ctx = context(budget)
        if ctx.truncated:
            log.warning(
                "ask: the context was cut to fit the model's window (%d of %d tokens for the "
                "context; [ask] context_tokens): dropped %s",
                budget,
                ep.window,
                ", ".join(ctx.dropped),
            )
        t0 = time.perf_counter()
        try:
            reply = providers.complete(
                ep, cfg, system=system, user=providers.user_message(ctx.text, asked)
            )
        except providers.ProviderFailed as e:
            _record(ledger_path, name, cfg.ask.model, asked, e.usage, _ms_since(t0), e.status)
            raise e.error from None
        cost = providers.cost(cfg, reply.input_tokens, reply.output_tokens)
        result = Answer(
            text=reply.text,
            provider=name,
            model=reply.model or cfg.ask.model,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=cost,
            latency_ms=_ms_since(t0),
            context_chars=len(ctx.text),
            truncated=ctx.truncated,
            context_tokens=ctx.tokens,
            window_tokens=ep.window,
            dropped=tuple(ctx.dropped),
        )
    _record(
        ledger_path,
        result.provider,
        result.model,
        asked,
        (result.input_tokens, result.output_tokens, result.cost_usd),
        result.latency_ms,
        "ok",
    )
    log.info(
        "ask: %s %s, %d in / %d out tokens, $%.6f, %d ms, context %d chars%s",
        result.provider,
        result.model,
        result.input_tokens,
        result.output_tokens,
        result.cost_usd,
        result.latency_ms,
        result.context_chars,
        " (truncated)" if result.truncated else "",
    )
    return result


def _ms_since(t0: float) -> int:
    return round((time.perf_counter() - t0) * 1000)


def _record(
    path: str,
    provider: str,
    model: str,
    question: str,
    usage: tuple[int, int, float],
    latency_ms: int,
    status: str,
) -> None:
    """One row in the ledger's ``asks`` table, through the side writer (it never creates or
    migrates a ledger; the context was read through a read-only view). No ledger, or one of
    another schema version: log the usage instead."""
    import sqlite3

    from tradekit.errors import InputError
    from tradekit.ledger import SideLedger

    tokens_in, tokens_out, cost = usage
    if not Path(path).is_file():
        log.info(
            "ask: no ledger at %s, usage not recorded (%s %s, %d in / %d out tokens, $%.6f)",
            path,
            provider,
            model,
            tokens_in,
            tokens_out,
            cost,
        )
        return
    try:
        with SideLedger(path) as ledger:
            ledger.ask_usage(
                provider,
                model,
                question,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=cost,
                latency_ms=latency_ms,
                status=status,
            )
    except (InputError, sqlite3.Error) as e:
        # The answer matters more than its bookkeeping: say so and go on.
        log.warning("ask: usage not recorded in %s: %s", path, e)


__all__ = ["PROVIDERS", "Answer", "answer"]
