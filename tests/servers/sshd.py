"""A throwaway OpenSSH server on a free port of 127.0.0.1 for deploy tests (Debian's
openssh-server; recipe in ../shared/reference/interfaces.md §4.3).

Key-only login as the user running the tests (and as any local user through its own
``~/.ssh/authorized_keys``); the host key is pinned in a ``known_hosts`` file the test hands to
tradekit. ``cut()`` kills the server (and every session) to simulate a
connection lost mid-upload.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"  # sshd re-execs itself and so must be started by absolute path


def available() -> bool:
    return Path(SSHD).is_file() and shutil.which("ssh-keygen") is not None


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        found += kids
        todo += kids
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tradekit-test", "-f", str(path)],
        check=True,
    )


@dataclass
class Sshd:
    """A running sshd. ``known_hosts`` pins its host key; ``key`` logs in as ``user``."""

    root: Path
    port: int
    user: str
    key: Path
    known_hosts: Path
    proc: subprocess.Popen[bytes] | None = None

    host = "127.0.0.1"

    @classmethod
    def start(cls, root: Path) -> Sshd:
        root.mkdir(parents=True, exist_ok=True)
        _keygen(root / "host_ed25519")
        _keygen(root / "client_ed25519")
        shutil.copy(root / "client_ed25519.pub", root / "authorized_keys")
        port = _free_port()
        host_pub = (root / "host_ed25519.pub").read_text().split()
        # Non-22 ports are stored as [host]:port, the form paramiko looks up.
        (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        (root / "sshd_config").write_text(
            f"Port {port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {root / 'host_ed25519'}\n"
            f"PidFile {root / 'sshd.pid'}\n"
            # The test's key for the user running the tests; other local users (the Pi's
            # deploy user in test_recipes) use their own ~/.ssh/authorized_keys.
            f"AuthorizedKeysFile {root / 'authorized_keys'} .ssh/authorized_keys\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "LogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        s = cls(
            root=root,
            port=port,
            user=pwd.getpwuid(os.getuid()).pw_name,
            key=root / "client_ed25519",
            known_hosts=root / "known_hosts",
        )
        s.up()
        return s

    def up(self) -> None:
        """Start (or restart) the daemon and wait until it accepts connections."""
        log = open(self.root / "sshd.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sshd exited {self.proc.returncode}: {(self.root / 'sshd.log').read_text()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not accept connections within 10 s")

    def cut(self) -> None:
        """Kill the daemon and every session it forked (a network cut, seen from the client).
        OpenSSH 9 runs each session in a session of its own (setsid), so killing the
        listener's process group misses them: they are found in /proc and killed by pid."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in [*_descendants(self.proc.pid), self.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def env(self) -> dict[str, str]:
        """TRADEKIT_DEPLOY_* overrides pointing ``deploy`` at this server."""
        return {
            "TRADEKIT_DEPLOY__HOST": self.host,
            "TRADEKIT_DEPLOY__PORT": str(self.port),
            "TRADEKIT_DEPLOY__USER": self.user,
            "TRADEKIT_DEPLOY__KEY": str(self.key),
            "TRADEKIT_DEPLOY__KNOWN_HOSTS": str(self.known_hosts),
        }
