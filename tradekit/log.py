"""Logging to stderr: plain one-liners for people, JSON lines with ``--log-json``.

Known secret values are masked in every record, whatever logged them.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_SECRETS: list[str] = []
state = {"debug": False}


class _Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            msg = record.getMessage()
            for s in _SECRETS:
                msg = msg.replace(s, "***")
            record.msg, record.args = msg, None
        return True


class _Plain(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"tradekit: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and state["debug"]:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and state["debug"]:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, sort_keys=True)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time: while a progress bar is drawn, rich
    redirects it and prints each log line above the bar instead of into it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass  # always the current sys.stderr


def setup(level: str = "info", as_json: bool = False) -> None:
    lvl = getattr(logging, level.upper(), None)
    if not isinstance(lvl, int):
        lvl = logging.INFO
    state["debug"] = lvl <= logging.DEBUG
    handler = _Stderr()
    handler.setFormatter(_Json() if as_json else _Plain())
    handler.addFilter(_Redact())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # third-party libraries: warnings only
    logging.getLogger("tradekit").setLevel(lvl)


def add_secrets(values: list[str]) -> None:
    """Mask these values in all later log records (only values long enough to be secrets)."""
    _SECRETS.extend(v for v in values if len(v) >= 4 and v not in _SECRETS)
