"""systemd's notify protocol without a package: one datagram of ``KEY=VALUE`` lines to the
socket in ``$NOTIFY_SOCKET`` (a leading ``@`` is Linux's abstract namespace). A no-op when the
variable is unset (not under ``Type=notify``)."""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(state.encode())
    except OSError:
        return False  # systemd gone (shutdown): nothing to tell
    return True


def watchdog_interval_s() -> float | None:
    """Half of systemd's ``WatchdogSec`` (the recommended ping interval), when it is for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 2e6, 0.05)
    except ValueError:
        return None
