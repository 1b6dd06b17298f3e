"""Secrets: read from the environment or a ``.env`` file, never from TOML; held in
:class:`Secret`, which never shows its value; masked in what the config prints."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from tradekit.errors import ConfigError

# Secret name -> environment variable. Never read from TOML, never printed.
SECRET_ENV = {
    "exchange_api_key": "TRADEKIT_EXCHANGE_API_KEY",
    "exchange_secret": "TRADEKIT_EXCHANGE_SECRET",
    "exchange_password": "TRADEKIT_EXCHANGE_PASSWORD",
    "anthropic_api_key": "ANTHROPIC_API_KEY",
    "openai_api_key": "OPENAI_API_KEY",
    "deploy_sudo_password": "TRADEKIT_DEPLOY_SUDO_PASSWORD",
    "notify_webhook_token": "TRADEKIT_WEBHOOK_TOKEN",
    "serve_token": "TRADEKIT_SERVE_TOKEN",
}
SECRET_WORDS = ("key", "secret", "password", "token", "passphrase")
SECRET_EXEMPT = {("deploy", "key"), ("deploy", "known_hosts")}  # paths, not secrets


class Secret:
    """A secret value that never shows itself in repr, str, logs or f-strings."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments, optional 'export ', single or double quotes."""
    values: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        s = s.removeprefix("export ").strip()
        key, sep, value = s.partition("=")
        key = key.strip()
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ConfigError(f"{path}:{n}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load_secrets(environ: Mapping[str, str], config_path: Path | None) -> dict[str, Secret]:
    dotenv: dict[str, str] = {}
    dirs = [Path.cwd()] + ([config_path.parent] if config_path else [])
    for d in dict.fromkeys(p.resolve() for p in dirs):  # cwd first, then beside the config
        f = d / ".env"
        if f.is_file():
            for k, v in read_dotenv(f).items():
                dotenv.setdefault(k, v)
    secrets: dict[str, Secret] = {}
    for name, var in SECRET_ENV.items():
        if environ.get(var):
            secrets[name] = Secret(environ[var], "environment")
        elif dotenv.get(var):
            secrets[name] = Secret(dotenv[var], ".env")
    return secrets
