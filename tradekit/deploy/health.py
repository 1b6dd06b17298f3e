"""After the switch: is the host running the new model?

``[deploy] health = "loop"`` (the default) asks the loop itself: ``[deploy] status`` runs on the
host and prints the loop's ``status --json`` (status/1), whose ``model_version`` is the model the
loop actually loaded (from the ledger's runs table). The check passes only when the loop is
running that model: a loop that refused the new model and kept the old one, or that is not
running at all, fails it, and deploy rolls back. Any other ``health`` is a shell command run
until it exits 0.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradekit.config import DeployConfig
    from tradekit.deploy.transport import Transport

LOOP = "loop"
STATUS_SCHEMA = "status/1"


def fill(template: str, *, service: str, version: str, path: str) -> str:
    """A restart/health template with {service}, {version}, {path} replaced (plain replace:
    other braces, e.g. a shell's ${VAR}, stay as they are)."""
    return (
        template.replace("{service}", service).replace("{version}", version).replace("{path}", path)
    )


def tail(text: str) -> str:
    """The last non-empty line (for one-line messages)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def describe(cfg: DeployConfig, root: str, version: str) -> str:
    """The health check in words, for a dry run's plan ('' when there is none)."""
    health = fill(cfg.health, service=cfg.service, version=version, path=root).strip()
    if health != LOOP:
        return health
    status = fill(cfg.status, service=cfg.service, version=version, path=root)
    return f"the loop reports model {version} running (`{status}`)"


def loop_problem(
    t: Transport, cfg: DeployConfig, root: str, version: str, timeout: float
) -> str | None:
    """One look at the loop: None when it runs model ``version``, else what it does instead."""
    cmd = fill(cfg.status, service=cfg.service, version=version, path=root)
    rc, out, err = t.run(cmd, timeout=timeout)
    if rc != 0:
        return f"`{cmd}` exited {rc}: {tail(err) or tail(out) or 'no output'}"
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("schema") != STATUS_SCHEMA:
        return f"`{cmd}` printed no {STATUS_SCHEMA} JSON: {tail(out) or 'nothing'}"
    have = doc.get("model_version")
    running = doc.get("running") is True
    if have != version:
        doing = "runs" if running else "is not running; it last ran"
        return f"the loop {doing} model {have or '(none)'}, not {version}"
    if not running:
        return f"the loop is not running (state: {doc.get('state') or 'unknown'})"
    return None


def wait_healthy(t: Transport, cfg: DeployConfig, root: str, version: str) -> str | None:
    """Poll the health check until it passes (None) or ``health_timeout_s`` runs out (the
    last failure, as one line)."""
    health = fill(cfg.health, service=cfg.service, version=version, path=root)
    if not health.strip():
        return None
    timeout = cfg.health_timeout_s
    interval = min(1.0, max(0.1, timeout / 20))
    deadline = time.monotonic() + timeout
    while True:
        left = max(deadline - time.monotonic(), 0.5)
        if health.strip() == LOOP:
            problem = loop_problem(t, cfg, root, version, left)
        else:
            rc, out, err = t.run(health, timeout=left)
            detail = tail(err) or tail(out)
            problem = (
                None if rc == 0 else f"`{health}` exited {rc}" + (f": {detail}" if detail else "")
            )
        if problem is None:
            return None
        if time.monotonic() + interval >= deadline:
            return f"health check failed for {timeout:g}s: {problem}"
        time.sleep(interval)
