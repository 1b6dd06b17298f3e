"""Bind and run: the listening socket is made here (so a bad address or a port in use is one
clear line, and port 0 tells the port it got), then uvicorn serves the app on it."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Callable

from tradekit.errors import UsageError
from tradekit.serve.site import Site, is_all_interfaces

log = logging.getLogger(__name__)


def check_host(host: str, *, allow_all: bool) -> None:
    """Only loopback unless asked: 0.0.0.0 and :: put the dashboard on every network the
    machine is on, so they need ``--allow-all-interfaces`` too."""
    if is_all_interfaces(host) and not allow_all:
        raise UsageError(
            f"--host {host or '(empty)'} listens on every network interface; add "
            "--allow-all-interfaces to mean it, or give one address (e.g. the Pi's LAN address)"
        )


def bind(host: str, port: int) -> socket.socket:
    name = host.strip("[]")
    try:
        family = (
            socket.AF_INET6
            if ipaddress.ip_address(name or "0.0.0.0").version == 6
            else (socket.AF_INET)
        )
    except ValueError:  # a host name: the first address it resolves to
        try:
            family = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0][0]
        except socket.gaierror as e:
            raise UsageError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: uvicorn writes the head and the body of a response
    # apart, and Nagle would hold the body until the client's delayed ACK (40 ms).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((name, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(
                f"{host}:{port} is in use; pick another with --port or [serve] port (the "
                "default 8642 keeps clear of signal-cli-rest-api's 8080)"
            ) from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--host {host}: not an address of this machine") from None
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run(site: Site, sock: socket.socket, *, announce: Callable[[str], None]) -> None:
    """Serve until SIGTERM or Ctrl-C (uvicorn finishes the requests in flight)."""
    import uvicorn

    from tradekit.serve.app import build_app

    config = uvicorn.Config(
        build_app(site),
        log_config=None,  # tradekit's handler (secrets redacted) prints uvicorn's warnings
        log_level="warning",
        access_log=False,  # requests carry the serve token; none is ever logged
        lifespan="off",
        loop="asyncio",  # uvloop, when installed, costs memory and buys nothing here
        http="h11",
        ws="none",
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    announce(url_of(sock))
    server.run(sockets=[sock])
