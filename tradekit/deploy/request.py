"""The phone's ``promote NAME``: what the listener (the service user) may do about it.

The listener cannot switch releases: they belong to the deploy user, and its sandbox
(``NoNewPrivileges=yes``) rules out sudo. It writes the candidate's name to the promote socket
(``[notify] promote_socket``, ``tradekit-promote.socket``); systemd starts pi-setup's helper
as the deploy user for the connection, which runs ``tradekit promote NAME --host local`` and
answers with the result's last line (deploy/1 JSON, or the error). Stdlib only.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING

from tradekit import evidence

if TYPE_CHECKING:
    from tradekit.config import Config

TIMEOUT_S = 600.0  # a restart (up to 2 min) and the health check ([deploy] health_timeout_s)


def candidates(cfg: Config) -> tuple[list[str], str]:
    """The installed candidates' names, and a line each with its evidence against live."""
    from tradekit.errors import TradekitError

    where = evidence.directory(cfg.run.candidates, cfg.run.model)
    try:
        found = evidence.candidates_report(state=cfg.run.state, cand_dir=where)
    except TradekitError as e:
        return [], f"candidates unavailable: {e}"
    lines = [f"{c['name']} (model {c['version']}): {c['evidence']}" for c in found]
    return [c["name"] for c in found], "\n".join(lines) or f"no candidates in {where}"


def request_promote(path: str, name: str, *, timeout_s: float = TIMEOUT_S) -> str:
    """Ask the promote helper behind the socket ``path`` to promote ``name``; its answer, in
    one line for the phone."""
    evidence.check_name(name)
    chunks: list[bytes] = []
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(path)
            s.sendall(name.encode() + b"\n")
            s.shutdown(socket.SHUT_WR)
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except FileNotFoundError:
        return (
            f"promote {name}: no promote helper at {path} (recipes/pi-setup.sh installs "
            "tradekit-promote.socket); nothing done"
        )
    except PermissionError:
        return f"promote {name}: {path} refused this user (it is the service group's); nothing done"
    except TimeoutError:
        return (
            f"promote {name}: no answer within {timeout_s:g}s; see `tradekit status` and "
            "journalctl -u 'tradekit-promote@*'"
        )
    except OSError as e:
        return f"promote {name}: {path}: {e.strerror or e}"
    text = b"".join(chunks).decode("utf-8", "replace").strip()
    last = text.splitlines()[-1] if text else ""
    try:
        doc = json.loads(last)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("schema") == "deploy/1":
        return str(doc.get("message") or f"promote {name}: done")
    return last.removeprefix("tradekit: error: ") or f"promote {name}: the helper said nothing"
