"""What ``serve`` reads and how it answers, fixed once at start from the config (stdlib only).

The ledger is read through :class:`tradekit.ledger.LedgerView`, opened per request (a
read-only connection is cheap, and each request's thread gets its own); the other sources are
files beside it: the candle store, the deployed model dir with its gate receipt, and the
deploy log.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tradekit.config import Config, RiskConfig

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ALL_INTERFACES = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class Site:
    ledger: Path
    store: Path  # the candle store's root
    exchange: str
    timeframe: str
    tf_ms: int
    model_dir: Path
    deploy_log: Path  # <[deploy] path>/deploys.jsonl on the Pi
    risk: RiskConfig
    refresh_s: float
    hosts: frozenset[str]  # Host header names answered to (IP literals always are)
    token: str | None = field(default=None, repr=False)
    candidates: Path | None = None  # [run] candidates (None: beside model_dir)

    def host_allowed(self, host_header: str) -> bool:
        """Whether a request's ``Host`` names this server. DNS rebinding (a web page whose
        name resolves to 127.0.0.1 reading the dashboard) always sends a name, never an IP
        literal, so IP literals pass and names must be known."""
        name = _strip_port(host_header).lower()
        if "*" in self.hosts or name in self.hosts:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8080
        return host[1:].partition("]")[0]
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def is_all_interfaces(host: str) -> bool:
    return host.strip("[]") in ALL_INTERFACES


def site_from(cfg: Config, *, state: str | None, host: str) -> Site:
    from tradekit.evidence import directory
    from tradekit.timeutil import timeframe_ms

    me = socket.gethostname().lower()
    hosts = {*LOOPBACK_NAMES, host.strip("[]").lower(), me, f"{me}.local"}
    hosts.update(h.lower() for h in cfg.serve.allowed_hosts)
    return Site(
        ledger=Path(state or cfg.run.state),
        store=Path(cfg.data.store),
        exchange=cfg.exchange.id,
        timeframe=cfg.exchange.timeframe,
        tf_ms=timeframe_ms(cfg.exchange.timeframe),
        model_dir=Path(cfg.run.model),
        deploy_log=Path(cfg.deploy.path) / "deploys.jsonl",
        risk=cfg.risk,
        refresh_s=cfg.serve.refresh_s,
        hosts=frozenset(hosts),
        token=cfg.secret("serve_token") or None,
        candidates=directory(cfg.run.candidates, cfg.run.model),
    )
