"""Writing config files that keep their comments: ``config init``'s template and
``config set``. ``tomlkit`` is imported only here, inside the functions."""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from pathlib import Path
from typing import Any

from tradekit.config.load import _build_section, _field_types, coerce
from tradekit.config.secrets import SECRET_ENV, SECRET_EXEMPT, SECRET_WORDS
from tradekit.config.sections import SECTION_HELP, SECTIONS
from tradekit.errors import ConfigError

# -- writing ---------------------------------------------------------------------------------


def _default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc,operator]


def template() -> str:
    """The commented config that ``config init`` writes and tradekit.toml.example holds."""
    import tomlkit

    doc = tomlkit.document()
    doc.add(tomlkit.comment("tradekit configuration: every key with its default."))
    doc.add(tomlkit.comment("Override any key from the environment: TRADEKIT_<SECTION>__<KEY>,"))
    doc.add(tomlkit.comment("e.g. TRADEKIT_RISK__MAX_OPEN_POSITIONS=2."))
    doc.add(tomlkit.comment("Secrets never live here. Put them in the environment or in .env:"))
    for var in SECRET_ENV.values():
        doc.add(tomlkit.comment(f"  {var}"))
    for name, cls in SECTIONS.items():
        doc.add(tomlkit.nl())
        table = tomlkit.table()
        table.add(tomlkit.comment(SECTION_HELP[name]))
        for f in dataclasses.fields(cls):
            table.add(tomlkit.comment(f.metadata["help"]))
            value = _default_of(f)
            item = tomlkit.inline_table() if isinstance(value, dict) else tomlkit.item(value)
            if isinstance(value, dict):
                item.update(value)
            table.add(f.name, item)
        doc.add(name, table)
    return tomlkit.dumps(doc)


def set_value(path: Path, dotted: str, text: str) -> Any:
    """Set ``section.key`` in the file to ``text`` read as the key's type; keeps comments.

    The whole file is validated before it is replaced, atomically.
    """
    import tomlkit

    from tradekit.fsutil import atomic_write_text

    section, _, key = dotted.partition(".")
    if section not in SECTIONS or not key:
        close = difflib.get_close_matches(section, list(SECTIONS), n=1)
        hint = f"; did you mean {close[0]}.{key or 'KEY'}?" if close else ""
        raise ConfigError(
            f"{dotted!r}: expected SECTION.KEY with a section of {', '.join(SECTIONS)}{hint}"
        )
    types_ = _field_types(SECTIONS[section])
    if key not in types_:
        if (section, key) not in SECRET_EXEMPT and any(w in key for w in SECRET_WORDS):
            raise ConfigError(
                f"[{section}] {key}: secrets never live in the TOML; set it in the "
                f"environment or .env ({', '.join(SECRET_ENV.values())})"
            )
        close = difflib.get_close_matches(key, list(types_), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"[{section}] {key}: unknown key{hint}")
    value = coerce(text, types_[key], f"[{section}] {key}")
    source = path.read_text(encoding="utf-8") if path.exists() else template()
    try:
        doc = tomlkit.parse(source)
    except Exception as e:  # tomlkit's ParseError carries line and column
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    if section not in doc:
        doc.add(section, tomlkit.table())
    if isinstance(value, dict):  # stay on its line as `key = {...}`, beside its comment
        inline = tomlkit.inline_table()
        inline.update(value)
        doc[section][key] = inline  # type: ignore[index]
    else:
        doc[section][key] = value  # type: ignore[index]
    new = tomlkit.dumps(doc)
    # Validate the result as a whole before anything touches the disk.
    raw = tomllib.loads(new)
    for name, body in raw.items():
        if name in SECTIONS and isinstance(body, dict):
            _build_section(name, body, f"{path}: ")
    atomic_write_text(path, new)
    return value
