"""Where ``ask`` may send the bot's state, with which key, and how big the model's window is.

The rules, checked before anything is read or sent (a ConfigError, exit 3, names the fix):

- **https** unless the host is loopback (``127.0.0.0/8``, ``::1``, ``localhost``) or
  ``[ask] allow_http = true``. No user or password inside ``base_url``.
- **A key goes only to its own provider**: ``ANTHROPIC_API_KEY`` only with provider
  ``anthropic``, ``OPENAI_API_KEY`` only with ``openai``, ``ollama`` never gets a key; and only
  to that provider's own host (``api.anthropic.com``, ``api.openai.com``), loopback, or a host
  listed in ``[ask] key_hosts``. Elsewhere the Anthropic key is refused (the call would need
  it); an OpenAI-compatible server elsewhere is asked without the key, with a warning.
  Redirects are never followed (httpx's default), so a key cannot be bounced on.
- **A folder's tradekit.toml is not trusted with the endpoint.** ``./tradekit.toml`` is read
  from the working directory when neither ``--config`` nor ``$TRADEKIT_CONFIG`` names a file,
  so a cloned repository or a shared folder could point ``ask`` anywhere (owner and mode checks
  do not help: a clone is owned by whoever cloned it). Such a file may set ``base_url`` only to
  the provider's own host or loopback, and its ``allow_http`` and ``key_hosts`` are ignored;
  any other endpoint must come from a config named with ``--config``/``$TRADEKIT_CONFIG`` (the
  Pi's units set it) or from ``TRADEKIT_ASK__BASE_URL``.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from tradekit.errors import ConfigError

if TYPE_CHECKING:
    from tradekit.config import Config

log = logging.getLogger("tradekit.ask")

DEFAULT_URL = {
    "anthropic": "https://api.anthropic.com",
    "openai": "http://127.0.0.1:11434/v1",  # Ollama's OpenAI-compatible endpoint
    "ollama": "http://127.0.0.1:11434",  # Ollama's own API
}
OWN_HOST = {"anthropic": "api.anthropic.com", "openai": "api.openai.com", "ollama": ""}
KEY = {
    "anthropic": ("anthropic_api_key", "ANTHROPIC_API_KEY"),
    "openai": ("openai_api_key", "OPENAI_API_KEY"),
}
WINDOW = {"anthropic": 200_000, "ollama": 8192}
OPENAI_WINDOW = 128_000  # api.openai.com's models
COMPATIBLE_WINDOW = 4096  # Ollama's default behind /v1, which cannot be changed per request


@dataclass(frozen=True)
class Endpoint:
    provider: str
    base: str  # base URL without a trailing slash
    host: str
    loopback: bool
    key: str | None  # the key to send, or None
    window: int  # the model's context window in tokens


def is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_window(provider: str, host: str) -> int:
    if provider == "openai":
        return OPENAI_WINDOW if host == OWN_HOST["openai"] else COMPATIBLE_WINDOW
    return WINDOW[provider]


def resolve(provider: str, cfg: Config) -> Endpoint:
    """The checked endpoint for ``provider`` (see the module doc); ConfigError otherwise."""
    a = cfg.ask
    base = (a.base_url or DEFAULT_URL[provider]).rstrip("/")
    parts = urlsplit(base)
    host = (parts.hostname or "").lower().rstrip(".")
    where = "[ask] base_url"
    if "ask.base_url" in cfg.from_cwd:
        where = f"{cfg.path}: [ask] base_url"
    if not host or parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where} {base!r}: expected an http(s) URL with a host")
    if parts.username or parts.password:
        raise ConfigError(f"{where}: no user or password in the URL (it would travel as-is)")
    loopback = is_loopback(host)
    own = OWN_HOST[provider]
    if "ask.base_url" in cfg.from_cwd and not (loopback or host == own):
        raise ConfigError(
            f"{where} {base!r} comes from the tradekit.toml found in the working directory, "
            f"which may send the bot's state only to {own or 'loopback'}"
            f"{' or loopback' if own else ''}: name the config with --config or "
            "$TRADEKIT_CONFIG, or set TRADEKIT_ASK__BASE_URL"
        )
    trusted = {h.strip().lower().rstrip(".") for h in a.key_hosts if h.strip()}
    allow_http = a.allow_http
    if "ask.key_hosts" in cfg.from_cwd:
        trusted = set()
    if "ask.allow_http" in cfg.from_cwd:
        allow_http = False
    if parts.scheme == "http" and not loopback and not allow_http:
        raise ConfigError(
            f"{where} {base!r}: https is required beyond loopback (the context and any key "
            "would cross the network in clear text); set [ask] allow_http = true to accept that"
        )
    key = None
    if provider in KEY:
        name, var = KEY[provider]
        key = cfg.secret(name)
        if key and not (loopback or host == own or host in trusted):
            if provider == "anthropic":
                raise ConfigError(
                    f"{var} is sent only to {own}, loopback or a host in [ask] key_hosts, not "
                    f"to {host} ({where}); add {host} to [ask] key_hosts if it is yours"
                )
            log.warning(
                "ask: %s not sent to %s (only to %s, loopback or [ask] key_hosts)", var, host, own
            )
            key = None
        if provider == "anthropic" and not key:
            raise ConfigError(
                "ANTHROPIC_API_KEY is not set: export it or put it in .env "
                "([ask] provider = anthropic needs it)"
            )
    window = a.context_tokens or default_window(provider, host)
    return Endpoint(provider, base, host, loopback, key, window)
