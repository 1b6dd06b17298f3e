"""How deploy reaches the host: one small protocol, two implementations.

``SshTransport`` speaks SSH through fabric with pinned host keys (never trust on first use);
``LocalTransport`` runs the same shell commands on this machine (``--host local``), so the
deploy steps are one code path. fabric, paramiko and invoke are imported inside functions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from tradekit import log as tklog
from tradekit.errors import ConfigError, ExternalError

CONNECT_TIMEOUT_S = 10.0
LOCAL = "local"


class Transport(Protocol):
    """A place to run POSIX shell commands and copy files to."""

    where: str  # for messages: "user@host:port" or "local"

    def run(self, cmd: str, *, timeout: float | None = None) -> tuple[int, str, str]:
        """Run ``cmd`` with ``sh``; (exit code, stdout, stderr). A timeout gives 124."""
        ...

    def sudo(
        self, cmd: str, password: str, *, timeout: float | None = None
    ) -> tuple[int, str, str]:
        """Run ``cmd`` as root through sudo, answering its password prompt."""
        ...

    def put(self, local: Path, remote: str) -> None:
        """Copy the local file to the absolute path ``remote``."""
        ...

    def close(self) -> None: ...


class LocalTransport:
    """This machine, through subprocesses: the same commands as over SSH."""

    where = LOCAL

    def run(self, cmd: str, *, timeout: float | None = None) -> tuple[int, str, str]:
        return self._sh(["/bin/sh", "-c", cmd], None, timeout)

    def sudo(
        self, cmd: str, password: str, *, timeout: float | None = None
    ) -> tuple[int, str, str]:
        argv = ["sudo", "-S", "-p", "", "--", "/bin/sh", "-c", cmd]
        return self._sh(argv, password + "\n", timeout)

    def _sh(
        self, argv: list[str], stdin: str | None, timeout: float | None
    ) -> tuple[int, str, str]:
        try:
            p = subprocess.run(
                argv,
                input=stdin,
                stdin=None if stdin is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            return 124, _text(e.stdout), _text(e.stderr) or f"timed out after {timeout:g}s"
        except OSError as e:
            return 127, "", f"{argv[0]}: {e.strerror or e}"
        return p.returncode, p.stdout, p.stderr

    def put(self, local: Path, remote: str) -> None:
        try:
            shutil.copyfile(local, remote)
        except OSError as e:
            raise ExternalError(f"local: cannot copy to {remote}: {e.strerror or e}") from None

    def close(self) -> None:
        pass


def _text(v: str | bytes | None) -> str:
    if v is None:
        return ""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


class SshTransport:
    """A fabric ``Connection`` whose host key must already be in ``known_hosts``."""

    def __init__(self, conn: Any, where: str) -> None:
        self._c = conn
        self.where = where
        self._lost_reason: str | None = None

    @classmethod
    def connect(
        cls,
        host: str,
        *,
        user: str,
        port: int,
        key: str = "",
        known_hosts: str = "~/.ssh/known_hosts",
        timeout: float = CONNECT_TIMEOUT_S,
    ) -> SshTransport:
        """Connect and authenticate, or raise ExternalError (one line) for an unknown or
        changed host key, a failed login, a refused or timed-out connection."""
        import paramiko  # type: ignore[import-untyped]
        from fabric import Connection  # type: ignore[import-untyped]

        where = f"{user}@{host}:{port}" if user else f"{host}:{port}"
        # paramiko logs socket errors itself; ours name the step (its own only when debugging).
        if not tklog.state["debug"]:
            logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout}
        if key:
            key_path = Path(key).expanduser()
            if not key_path.is_file():
                raise ConfigError(f"[deploy] key: {key_path}: no such file")
            # Only this key: no agent, no ~/.ssh/id_* guessing.
            kwargs.update(key_filename=[str(key_path)], look_for_keys=False, allow_agent=False)
        else:
            kwargs.update(allow_agent=True)
        conn = Connection(
            host,
            user=user or None,
            port=port,
            connect_timeout=timeout,
            connect_kwargs=kwargs,
        )
        # Pin host keys: fabric installs AutoAddPolicy, which would trust any host.
        kh = Path(known_hosts).expanduser()
        if kh.is_file():
            try:
                conn.client.get_host_keys().load(str(kh))
            except (OSError, paramiko.SSHException) as e:
                raise ConfigError(f"[deploy] known_hosts: {kh}: unreadable: {e}") from None
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        keyscan = f"ssh-keyscan -p {port} {host} >> {kh}" if port != 22 else ""
        keyscan = keyscan or f"ssh-keyscan {host} >> {kh}"
        try:
            conn.open()
        except paramiko.BadHostKeyException as e:
            conn.close()
            raise ExternalError(
                f"{where}: host key does not match {kh} (got {e.key.get_name()} "
                f"{e.key.fingerprint}); refusing to connect",
                hint=f"if the host was reinstalled, check the new fingerprint, then "
                f"ssh-keygen -f {kh} -R {_kh_name(host, port)} and re-add it",
            ) from None
        except paramiko.AuthenticationException as e:
            conn.close()
            how = f"key {key}" if key else "agent/default keys"
            raise ExternalError(f"{where}: authentication failed ({how}): {e}") from None
        except paramiko.SSHException as e:
            conn.close()
            if "not found in known_hosts" in str(e):
                raise ExternalError(
                    f"{where}: unknown host key, refused (not in {kh})",
                    hint=f"check the host's fingerprint, then add it: {keyscan}",
                ) from None
            raise ExternalError(f"{where}: ssh failed: {e}") from None
        except TimeoutError:
            conn.close()
            raise ExternalError(f"{where}: connection timed out after {timeout:g}s") from None
        except (OSError, EOFError) as e:
            conn.close()
            raise ExternalError(f"{where}: cannot connect: {_oserror(e)}") from None
        return cls(conn, where)

    @contextlib.contextmanager
    def _lost(self, what: str) -> Iterator[None]:
        """A dropped connection (or any SSH-level failure) mid-step -> ExternalError."""
        import invoke  # type: ignore[import-untyped]
        import paramiko

        # Once lost, stay lost: fabric would silently reconnect (and maybe hang for the connect
        # timeout) for every cleanup step after a network cut.
        if self._lost_reason is not None:
            raise ExternalError(f"{self.where}: connection lost earlier ({self._lost_reason})")
        try:
            yield
        except invoke.exceptions.AuthFailure:
            raise ExternalError(f"{self.where}: sudo rejected the password ({what})") from None
        except (
            OSError,
            EOFError,
            paramiko.SSHException,
            invoke.exceptions.ThreadException,
            invoke.exceptions.Failure,
        ) as e:
            self._lost_reason = _oserror(e)
            raise ExternalError(
                f"{self.where}: connection lost during {what}: {self._lost_reason}"
            ) from None

    def _invoke(self, method: str, cmd: str, timeout: float | None, **kw: Any) -> Any:
        import invoke

        short = cmd if len(cmd) <= 60 else cmd[:57] + "..."
        with self._lost(f"`{short}`" if method == "run" else "sudo"):
            try:
                return getattr(self._c, method)(
                    cmd, hide=True, warn=True, in_stream=False, timeout=timeout, **kw
                )
            except invoke.exceptions.CommandTimedOut as e:
                r = e.result
                return _Timed(r.stdout, r.stderr or f"timed out after {timeout:g}s")

    def run(self, cmd: str, *, timeout: float | None = None) -> tuple[int, str, str]:
        r = self._invoke("run", cmd, timeout)
        return int(r.exited), str(r.stdout), str(r.stderr)

    def sudo(
        self, cmd: str, password: str, *, timeout: float | None = None
    ) -> tuple[int, str, str]:
        # in_stream=False: without it, a closed local stdin (CI, cron) kills sudo's prompt.
        r = self._invoke("sudo", f"/bin/sh -c {shlex.quote(cmd)}", timeout, password=password)
        return int(r.exited), str(r.stdout), str(r.stderr)

    def put(self, local: Path, remote: str) -> None:
        with self._lost(f"upload of {local.name}"):
            self._c.put(str(local), remote=remote, preserve_mode=False)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection may raise anything
            self._c.close()


class _Timed:
    exited = 124

    def __init__(self, stdout: str, stderr: str) -> None:
        self.stdout, self.stderr = stdout, stderr


def _kh_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def _oserror(e: BaseException) -> str:
    if isinstance(e, EOFError):
        return "connection closed by the host"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).strip().splitlines()
    return text[-1] if text else type(e).__name__


@contextlib.contextmanager
def open_transport(
    host: str,
    *,
    user: str,
    port: int,
    key: str = "",
    known_hosts: str = "~/.ssh/known_hosts",
    timeout: float = CONNECT_TIMEOUT_S,
) -> Iterator[Transport]:
    """``host == "local"``: this machine; otherwise SSH with pinned host keys."""
    t: Transport
    if host == LOCAL:
        t = LocalTransport()
    else:
        t = SshTransport.connect(
            host, user=user, port=port, key=key, known_hosts=known_hosts, timeout=timeout
        )
    try:
        yield t
    finally:
        t.close()


def home_of(t: Transport) -> str:
    """$HOME on the host (for a ``~/...`` deploy path)."""
    if isinstance(t, LocalTransport):
        return os.path.expanduser("~")
    rc, out, err = t.run('printf %s "$HOME"')
    if rc != 0 or not out.startswith("/"):
        raise ExternalError(f"{t.where}: cannot read $HOME: {err.strip() or out.strip()}")
    return out
