"""Reading the config: the file's lookup order, TOML, ``TRADEKIT_<SECTION>__<KEY>`` overrides,
typed coercion with one-line errors naming the key, and flags laid over a section."""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tradekit.config.secrets import SECRET_ENV, SECRET_EXEMPT, SECRET_WORDS, load_secrets
from tradekit.config.sections import SECTIONS, Config
from tradekit.errors import ConfigError

ENV_PREFIX = "TRADEKIT_"
CONFIG_ENV = "TRADEKIT_CONFIG"
DEFAULT_FILE = "tradekit.toml"


# -- parsing ---------------------------------------------------------------------------------


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(value: Any, tp: Any, where: str, *, text: bool = True) -> Any:
    """Check a value against a field type. With ``text`` the value is text from an env var or
    the command line and is read as the field's type; a TOML value (``text=False``) must
    already have it: ``fee = "0.1"`` in the file is a type error, not a number."""
    origin = typing.get_origin(tp)
    if tp is Any:  # a free-form table's values ([model.ensemble]): its section's check reads them
        return value
    if text and isinstance(value, str) and tp is not str:
        value = _parse_text(value, tp, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, list | tuple):
            return [coerce(v, item_tp, f"{where}[{i}]", text=False) for i, v in enumerate(value)]
    elif origin is dict:
        _, val_tp = typing.get_args(tp)
        if isinstance(value, dict):
            return {str(k): coerce(v, val_tp, f"{where}.{k}", text=False) for k, v in value.items()}
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {_show(value)}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        item = typing.get_args(tp)[0]
        plural = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(item, str(item))}"
    if typing.get_origin(tp) is dict:
        return "a table"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_text(text: str, tp: Any, where: str) -> Any:
    """Text from an env var or the command line, read as the field's type."""
    t = text.strip()
    if tp is bool:
        low = t.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {text!r}")
    if tp in (int, float):
        try:
            return int(t) if tp is int else float(t)
        except ValueError:
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {text!r}") from None
    origin = typing.get_origin(tp)
    if origin in (list, dict):
        if origin is list and not t.startswith("["):
            # Comma-separated shorthand: BTC/USD,ETH/USD
            item_tp = typing.get_args(tp)[0]
            parts = [p.strip() for p in t.split(",") if p.strip()]
            return [p if item_tp is str else _parse_text(p, item_tp, where) for p in parts]
        try:
            return tomllib.loads(f"v = {t}")["v"]
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{where}: cannot read {text!r} as TOML: {e}") from None
    return text


def _build_section(
    name: str, raw: Mapping[str, Any], where: str, origins: Mapping[str, str] | None = None
) -> Any:
    """Build and check one section. ``origins`` names where a key's value came from when that
    is not the file (an environment variable), so an error points at the right place."""
    cls = SECTIONS[name]
    types_ = _field_types(cls)
    origins = origins or {}

    def loc(key: str) -> str:
        return origins.get(key) or f"{where}[{name}] {key}"

    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in types_:
            if (name, key) not in SECRET_EXEMPT and any(w in key for w in SECRET_WORDS):
                raise ConfigError(
                    f"{where}[{name}] {key}: secrets never live in the TOML; set it in the "
                    f"environment or .env ({', '.join(SECRET_ENV.values())})"
                )
            close = difflib.get_close_matches(key, list(types_), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{where}[{name}] {key}: unknown key{hint}")
        kwargs[key] = coerce(value, types_[key], loc(key), text=key in origins)
    section = cls(**kwargs)
    for f in dataclasses.fields(cls):
        check = f.metadata.get("check")
        problem = check(getattr(section, f.name)) if check else None
        if problem:
            raise ConfigError(f"{loc(f.name)}: {problem}")
    return section


def with_overrides(section: Any, name: str, flags: Mapping[str, tuple[str, Any]]) -> Any:
    """``section`` with command-line values laid over it and checked like the file's.

    ``flags`` maps a key to (flag name, value); None values are left out. A bad value is a
    usage error naming the flag, e.g. ``--max-drawdown: must be a fraction ...`` (exit 2)."""
    from tradekit.errors import UsageError

    given = {k: v for k, (_, v) in flags.items() if v is not None}
    if not given:
        return section
    raw = {**dataclasses.asdict(section), **given}
    try:
        # Values from typer are already typed: coerce them as TOML values, not text.
        return _build_section(name, raw, "", {})
    except ConfigError as e:
        msg = str(e)
        for key, (flag, _) in flags.items():
            prefix = f"[{name}] {key}:"
            if msg.startswith(prefix) and key in given:
                raise UsageError(f"{flag}:{msg[len(prefix) :]}") from None
        raise UsageError(msg) from None


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use: --config, $TRADEKIT_CONFIG, ./tradekit.toml, or None."""
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        return p
    env = os.environ.get(CONFIG_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found (from ${CONFIG_ENV})")
        return p
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """TRADEKIT_<SECTION>__<KEY>=value, grouped by section; unknown names are errors."""
    out: dict[str, dict[str, str]] = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or "__" not in var:
            continue
        section, _, key = var[len(ENV_PREFIX) :].partition("__")
        section, key = section.lower(), key.lower()
        if section not in SECTIONS:
            close = difflib.get_close_matches(section, list(SECTIONS), n=1)
            hint = f"; did you mean TRADEKIT_{close[0].upper()}__{key.upper()}?" if close else ""
            raise ConfigError(f"environment {var}: unknown section {section!r}{hint}")
        out.setdefault(section, {})[key] = value
    return out


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, merge and validate the configuration. Raises ConfigError naming the key."""
    env = os.environ if environ is None else environ
    file = find_config(path)
    raw: dict[str, Any] = read_toml(file) if file else {}
    where = f"{file}: " if file else ""
    for name, value in raw.items():
        if name not in SECTIONS:
            close = difflib.get_close_matches(name, list(SECTIONS), n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise ConfigError(f"{where}[{name}]: unknown section{hint}")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}{name}: expected a [{name}] table, got {_show(value)}")
    sections: dict[str, Any] = {}
    overrides = env_overrides(env)
    for name in SECTIONS:
        merged = dict(raw.get(name, {}))
        origins: dict[str, str] = {}
        for key, text in overrides.get(name, {}).items():
            var = f"{ENV_PREFIX}{name.upper()}__{key.upper()}"
            if key not in _field_types(SECTIONS[name]):
                close = difflib.get_close_matches(key, list(_field_types(SECTIONS[name])), n=1)
                hint = (
                    f"; did you mean {ENV_PREFIX}{name.upper()}__{close[0].upper()}?"
                    if close
                    else ""
                )
                raise ConfigError(f"environment {var}: unknown key{hint}")
            merged[key] = text
            origins[key] = f"environment {var} ([{name}] {key})"
        sections[name] = _build_section(name, merged, where, origins)
    # As find_config decides: no --config and no $TRADEKIT_CONFIG, so ./tradekit.toml.
    implicit = file is not None and not path and not os.environ.get(CONFIG_ENV)
    from_cwd = frozenset(
        f"{name}.{key}"
        for name in SECTIONS
        for key in raw.get(name, {})
        if implicit and key not in overrides.get(name, {})
    )
    return Config(**sections, path=file, secrets=load_secrets(env, file), from_cwd=from_cwd)


def redacted(config: Config) -> dict[str, Any]:
    """Effective config plus which secrets are set (values masked) and where from."""
    out: dict[str, Any] = config.as_dict()
    out["secrets"] = {
        name: (f"*** (from {config.secrets[name].source})" if name in config.secrets else "unset")
        for name in SECRET_ENV
    }
    return out


def secret_values(config: Config) -> list[str]:
    return [s.reveal() for s in config.secrets.values() if s.reveal()]
