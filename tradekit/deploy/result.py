"""What a deploy did (``deploy/1``) and what a host holds: plain records that the deploy steps
(ship, candidate, guard) share without importing each other."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

RESULT_SCHEMA = "deploy/1"


@dataclass
class DeployResult:
    """What a deploy, rollback or dry run did (``--json`` prints :meth:`as_json`)."""

    action: str  # "deploy" or "rollback"
    host: str
    path: str
    ok: bool = True
    dry_run: bool = False
    release: str | None = None
    previous: str | None = None
    model_version: str | None = None
    sha256: str | None = None
    bytes: int = 0
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)
    pruned: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    message: str = ""
    gate: str | None = None  # "passed", or why the model has no passing verdict of its own
    forced: str | None = None  # the --force reason, when it overrode the gate
    candidate: str | None = None  # deploy --candidate NAME, --remove, promote NAME

    def as_json(self) -> dict[str, Any]:
        return {
            "schema": RESULT_SCHEMA,
            "action": self.action,
            "ok": self.ok,
            "dry_run": self.dry_run,
            "host": self.host,
            "path": self.path,
            "release": self.release,
            "previous": self.previous,
            "model_version": self.model_version,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "files": self.files,
            "pruned": self.pruned,
            "cleaned": self.cleaned,
            "plan": self.plan,
            "message": self.message,
            "gate": self.gate,
            "forced": self.forced,
            "candidate": self.candidate,
        }


@dataclass
class HostState:
    current: str | None = None
    releases: list[str] = field(default_factory=list)  # newest first
    history: list[dict[str, Any]] = field(default_factory=list)  # deploys.jsonl, oldest first
    stale: list[str] = field(default_factory=list)  # leftovers removed by prepare

    @classmethod
    def parse(cls, out: str) -> HostState:
        st = cls()
        for line in out.splitlines():
            tag, _, rest = line.partition(" ")
            if tag == "current":
                st.current = rest.strip().removeprefix("releases/").rstrip("/") or None
            elif tag == "release" and rest and not rest.startswith("."):
                st.releases.append(rest)
            elif tag == "stale":
                st.stale.append(rest)
            elif tag == "log":
                with contextlib.suppress(ValueError):
                    doc = json.loads(rest)
                    if isinstance(doc, dict):
                        st.history.append(doc)
        return st
