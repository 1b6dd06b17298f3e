"""The host half of a deploy: upload, verify, switch ``current`` atomically, restart, check
health, roll back on failure, prune, and log every attempt to ``<path>/deploys.jsonl``.

Layout on the host (``<path>`` is ``[deploy] path``)::

    <path>/releases/<id>/      one immutable release (manifest.json, model files, SHA256SUMS,
                               release.json, attachments)
    <path>/current -> releases/<id>   (relative symlink, swapped with ln -sfn + mv -T)
    <path>/deploys.jsonl       one JSON line per deploy, rollback or failure

``current`` changes only by rename(2) of a fresh symlink, so a reader (the run loop) sees the
old release or the new one, never neither. Anything that fails before the switch leaves
``current`` alone; the next deploy removes stale ``.part``/``.tmp`` leftovers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from tradekit.deploy.guard import require_receipt
from tradekit.deploy.health import describe, fill, tail, wait_healthy
from tradekit.deploy.release import RELEASE_JSON, Release, build_release, check_model_dir, who
from tradekit.deploy.result import DeployResult, HostState
from tradekit.deploy.transport import CONNECT_TIMEOUT_S, Transport, home_of, open_transport
from tradekit.errors import CheckFailed, ExternalError, UsageError

if TYPE_CHECKING:
    from tradekit.config import DeployConfig

log = logging.getLogger(__name__)

LOG_FILE = "deploys.jsonl"
RESTART_TIMEOUT_S = 120.0
HISTORY_LINES = 2000


class Host:
    """The deploy directory on one host, reached through a transport."""

    def __init__(self, t: Transport, root: str, cfg: DeployConfig, password: str | None) -> None:
        self.t = t
        self.root = root
        self.cfg = cfg
        self._password = password

    def q(self, rel: str = "") -> str:
        return shlex.quote(f"{self.root}/{rel}" if rel else self.root)

    def must(self, cmd: str, step: str) -> str:
        rc, out, err = self.t.run(cmd)
        if rc != 0:
            raise ExternalError(
                f"{self.t.where}: {step} failed (exit {rc}): {tail(err) or tail(out)}"
            )
        return out

    # ---- reading ---------------------------------------------------------------------------
    # Each SSH command costs a session on the host (~0.15 s here), so one script gathers what
    # a step needs; lines are tagged ("current ...", "release ...") for parsing.
    _LIST = (
        'echo "current $(readlink current 2>/dev/null)"\n'
        "ls -1t releases 2>/dev/null | sed 's/^/release /'\n"
    )

    def state(self, *, history: bool = False) -> HostState:
        """Read-only: where ``current`` points, the releases (newest first), optionally the
        tail of deploys.jsonl."""
        script = f"cd {self.q()} 2>/dev/null || exit 0\n" + self._LIST
        if history:
            script += f"tail -n {HISTORY_LINES} {LOG_FILE} 2>/dev/null | sed 's/^/log /'\n"
        return HostState.parse(self.must(script, "reading " + self.root))

    def version_of(self, rid: str) -> str:
        rc, out, _ = self.t.run(f"cat {self.q(f'releases/{rid}/{RELEASE_JSON}')}")
        with contextlib.suppress(ValueError, AttributeError):
            if rc == 0:
                return str(json.loads(out).get("model_version") or "unknown")
        return "unknown"

    # ---- changing --------------------------------------------------------------------------
    def prepare(self) -> HostState:
        """mkdir releases/, refuse a ``current`` that is not a symlink, check the tools, remove
        leftovers of interrupted deploys; then the state."""
        script = (
            "set -e\n"
            f"mkdir -p {self.q('releases')}\n"
            f"cd {self.q()}\n"
            'if [ -e current ] && [ ! -L current ]; then echo "$PWD/current is not a symlink; '
            'move it away" >&2; exit 3; fi\n'
            "for t in tar sha256sum readlink; do command -v $t >/dev/null || "
            '{ echo "$t not found on the host" >&2; exit 127; }; done\n'
            "for f in releases/.*.part releases/.*.tmp current.tmp; do\n"
            '  if [ -e "$f" ] || [ -L "$f" ]; then echo "stale $f"; rm -rf -- "$f"; fi\n'
            "done\n" + self._LIST
        )
        return HostState.parse(self.must(script, "preparing " + self.root))

    def install(self, rel: Release) -> None:
        """Check the uploaded archive, unpack it beside the releases, check every file, add
        release.json, and rename the result to ``releases/<id>``. ``current`` is untouched."""
        rid = rel.id
        q = shlex.quote
        tmp, part, meta = f".{rid}.tmp", f".{rid}.tar.gz.part", f".{rid}.json.part"
        want = rel.sha256.removeprefix("sha256:")
        script = (
            "set -e\n"
            f"cd {self.q('releases')}\n"
            f'got=$(sha256sum {q(part)} | cut -d" " -f1)\n'
            f'if [ "$got" != {want} ]; then echo "uploaded archive differs: sha256:$got != '
            f'{rel.sha256}" >&2; exit 65; fi\n'
            f"rm -rf {q(tmp)}\nmkdir {q(tmp)}\n"
            # -m: files get the time of unpacking, so the run loop's manifest stat changes.
            f"tar -xzmf {q(part)} --no-same-owner -C {q(tmp)}\n"
            f"if ! bad=$(cd {q(tmp)} && sha256sum --quiet --strict -c SHA256SUMS 2>&1); then "
            'echo "file hashes differ after unpacking: $(echo "$bad" | head -n 1)" >&2; '
            "exit 65; fi\n"
            f"mv {q(meta)} {q(tmp + '/' + RELEASE_JSON)}\n"
            f'if [ -e {q(rid)} ]; then echo "releases/{rid} already exists" >&2; exit 66; fi\n'
            f"mv -T {q(tmp)} {q(rid)}\n"
            f"rm -f {q(part)}\n"
        )
        self.must(script, "verifying and unpacking the release")

    def switch(self, rid: str | None) -> None:
        """Point ``current`` at ``releases/<rid>`` atomically (rename of a fresh link); None
        removes it (a failed first deploy has nothing to go back to)."""
        if rid is None:
            self.must(f"rm -f {self.q('current')}", "removing current")
            return
        self.must(
            f"cd {self.q()} && ln -sfn {shlex.quote('releases/' + rid)} current.tmp "
            "&& mv -T current.tmp current",
            f"switching current to {rid}",
        )

    def activate(self, version: str) -> str | None:
        """Restart the service and wait for the health command; the failure, or None."""
        cfg = self.cfg
        restart = fill(cfg.restart, service=cfg.service, version=version, path=self.root)
        if restart.strip():
            if self._password:
                cmd = restart.strip()
                for prefix in ("sudo -n ", "sudo "):
                    cmd = cmd.removeprefix(prefix)
                rc, out, err = self.t.sudo(cmd, self._password, timeout=RESTART_TIMEOUT_S)
                err = err.replace(self._password, "***")
            else:
                rc, out, err = self.t.run(restart, timeout=RESTART_TIMEOUT_S)
            if rc != 0:
                return f"restart failed: `{restart}` exited {rc}: {tail(err) or tail(out)}"
        return wait_healthy(self.t, cfg, self.root, version)

    def append_log(
        self, entry: dict[str, Any], *, prune: int = 0, protect: Sequence[str] = ()
    ) -> list[str]:
        """One JSON line in deploys.jsonl, best effort (the deploy's outcome stands); with
        ``prune``, also remove releases beyond the newest ``prune`` except ``protect``."""
        line = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        script = f"printf '%s\\n' {shlex.quote(line)} >> {self.q(LOG_FILE)}\n"
        if prune:
            keep = "|".join(shlex.quote(r) for r in protect)
            # A release a candidate points at (candidates/NAME -> ../releases/ID) stays too.
            script += (
                f"cd {self.q('releases')} && ls -1t | tail -n +{prune + 1} | while read -r r; "
                f'do case "$r" in {keep}) continue;; esac; for c in ../candidates/*; do '
                '[ "$(readlink "$c" 2>/dev/null)" = "../releases/$r" ] && continue 2; done; '
                'rm -rf -- "$r" && echo "pruned $r"; done\n'
            )
        try:
            rc, out, err = self.t.run(script)
        except ExternalError as e:  # the connection is gone; the caller reports that
            log.debug("could not append to %s/%s: %s", self.root, LOG_FILE, e)
            return []
        if rc != 0:
            log.warning("could not log to or prune %s: %s", self.root, tail(err))
        return [ln[7:] for ln in out.splitlines() if ln.startswith("pruned ")]


def log_entry(
    action: str, res: DeployResult, ok: bool, message: str, started: float
) -> dict[str, Any]:
    return {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "action": action,
        "release": res.release,
        "previous": res.previous,
        "model_version": res.model_version,
        "sha256": res.sha256,
        "bytes": res.bytes,
        "seconds": round(time.monotonic() - started, 3),
        "user": who(),
        "ok": ok,
        "message": message,
        "gate": res.gate,
        "forced": res.forced,
        "candidate": res.candidate,
    }


@contextlib.contextmanager
def connect_host(cfg: DeployConfig, timeout: float) -> Any:
    if not cfg.host:
        raise UsageError("no host: give --host HOST (or 'local') or set [deploy] host")
    with open_transport(
        cfg.host,
        user=cfg.user,
        port=cfg.port,
        key=cfg.key,
        known_hosts=cfg.known_hosts,
        timeout=timeout,
    ) as t:
        path = cfg.path.rstrip("/") or "/"
        if path == "~" or path.startswith("~/"):
            path = home_of(t) + path[1:]
        if not path.startswith("/"):
            raise UsageError(f"[deploy] path: {cfg.path!r} must be absolute (or start with ~/)")
        yield t, path


class Staged(NamedTuple):
    rel: Release
    release_json: Path  # release.json beside the archive, uploaded with it
    gate: str  # "passed", or the receipt's problem (with ``forced``)
    forced: str | None  # the --force reason
    t: Transport
    root: str  # the absolute [deploy] path on the host


@contextlib.contextmanager
def staged(
    model_dir: Path,
    cfg: DeployConfig,
    *,
    attach: Sequence[Path],
    force: str | None,
    connect_timeout: float,
) -> Iterator[Staged]:
    """What every deploy (live or candidate) starts with, in this order: the model dir checked,
    its gate receipt required (the one place a model without a passing verdict is refused),
    the release built in a temporary dir, the host connected."""
    checked = check_model_dir(model_dir)
    gate, forced = require_receipt(model_dir, checked[0], force)
    with tempfile.TemporaryDirectory(prefix="tradekit-deploy-") as work:
        rel = build_release(model_dir, Path(work), attach=attach, checked=checked)
        release_json = Path(work) / RELEASE_JSON
        release_json.write_bytes(rel.json_bytes())
        with connect_host(cfg, connect_timeout) as (t, root):
            yield Staged(rel, release_json, gate, forced, t, root)


def deploy_model(
    model_dir: Path,
    cfg: DeployConfig,
    *,
    attach: Sequence[Path] = (),
    dry_run: bool = False,
    force: str | None = None,
    sudo_password: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> DeployResult:
    """Ship ``model_dir`` (+ ``attach``) to ``cfg.host`` as a new release and switch to it.

    Raises InputError (exit 3) for a bad model dir, CheckFailed (exit 1) for a model without
    a passing gate verdict of its own (unless ``force`` gives a reason), ExternalError (exit 4)
    for an unreachable or refusing host, a failed verification, or a failed restart/health
    check (after rolling back to the previous release)."""
    started = time.monotonic()
    model_dir = Path(model_dir)
    with staged(
        model_dir, cfg, attach=attach, force=force, connect_timeout=connect_timeout
    ) as staging:
        rel, release_json, gate, forced, t, root = staging
        host = Host(t, root, cfg, sudo_password)
        res = DeployResult(
            action="deploy",
            host=t.where,
            path=root,
            dry_run=dry_run,
            release=rel.id,
            model_version=rel.model_version,
            sha256=rel.sha256,
            bytes=rel.size,
            files=rel.files,
            gate=gate,
            forced=forced,
        )
        if dry_run:
            st = host.state()
            res.previous = st.current
            res.plan = _plan(host, rel, st, res)
            res.message = "dry run: nothing changed"
        else:
            _ship(host, rel, release_json, res, started)
    res.seconds = time.monotonic() - started
    return res


def _plan(host: Host, rel: Release, st: HostState, res: DeployResult) -> list[str]:
    cfg, rid, current = host.cfg, rel.id, st.current
    after = [rid, *st.releases]
    would_prune = [r for r in after[cfg.keep :] if r not in (rid, current)]
    restart = fill(cfg.restart, service=cfg.service, version=rel.model_version, path=host.root)
    health = describe(cfg, host.root, rel.model_version)
    attached = list(rel.doc["attached"])
    n_model = len(rel.files) - 2 - len(attached)  # less manifest.json and SHA256SUMS
    gate = (
        "gate: a passing verdict for this very model"
        if res.gate == "passed"
        else f"gate: {res.gate}; deployed anyway (--force: {res.forced})"
    )
    return [
        f"model {rel.doc['model_dir']}: manifest and {n_model} file hash(es) ok, version "
        f"{rel.model_version}" + (f"; attached {', '.join(attached)}" if attached else ""),
        gate,
        f"archive {rel.size} bytes, {rel.sha256}, release {rid}",
        f"host {host.t.where}: current release {current or '(none)'}",
        f"upload to {host.root}/releases/.{rid}.tar.gz.part and verify its sha256",
        f"unpack into releases/.{rid}.tmp, sha256sum -c every file, rename to releases/{rid}",
        f"switch {host.root}/current -> releases/{rid} (ln -sfn + mv -T)",
        f"restart: {restart}" if restart.strip() else "restart: (none)",
        f"health: {health} (within {cfg.health_timeout_s:g}s; roll back to "
        f"{current or '(none)'} on failure)"
        if health.strip()
        else "health: (none)",
        f"prune (keep {cfg.keep}): {', '.join(would_prune) or 'nothing'}",
    ]


def upload(
    host: Host, rel: Release, release_json: Path, res: DeployResult, started: float
) -> HostState:
    """Prepare the host, upload the archive, verify and unpack it into releases/<id>
    (``current`` untouched); the host's state before. A failure is logged and raised."""
    t, rid = host.t, rel.id
    part, meta, tmp = (
        f"releases/.{rid}.tar.gz.part",
        f"releases/.{rid}.json.part",
        f"releases/.{rid}.tmp",
    )
    st = host.prepare()
    res.cleaned = st.stale
    if rid in st.releases:
        raise UsageError(
            f"{host.root}/releases/{rid} already exists: this very archive was deployed "
            "this second; nothing to do"
        )
    log.info("upload %s (%d bytes) to %s:%s", rid, rel.size, t.where, host.root)
    try:
        t.put(rel.archive, f"{host.root}/{part}")
        t.put(release_json, f"{host.root}/{meta}")
        host.install(rel)
    except ExternalError as e:
        # current was not touched; clean up if the host still answers (else the next deploy).
        with contextlib.suppress(ExternalError):
            t.run(
                f"cd {host.q()} && rm -rf -- {' '.join(shlex.quote(p) for p in (part, meta, tmp))}"
            )
        msg = f"{e}; current unchanged ({st.current or 'none'})"
        host.append_log(log_entry(res.action, res, False, msg, started))
        raise ExternalError(msg) from None
    return st


def _ship(host: Host, rel: Release, release_json: Path, res: DeployResult, started: float) -> None:
    # previous: what current pointed at (a candidate's is its own link, set by its caller).
    res.previous = upload(host, rel, release_json, res, started).current
    rid = rel.id
    try:
        host.switch(rid)
    except ExternalError as e:
        # rename(2) either happened or not; a lost connection cannot tell us which.
        msg = f"{e}; current is {rid} or still {res.previous or 'none'} (see deploy --dry-run)"
        host.append_log(log_entry("deploy", res, False, msg, started))
        raise ExternalError(msg) from None
    log.info("current -> releases/%s (was %s)", rid, res.previous or "none")
    try:
        failure = host.activate(rel.model_version)
    except ExternalError as e:
        failure = str(e)
    if failure is not None:
        _undo(host, rid, res, failure, started)
    res.message = f"deployed {rid} (model {rel.model_version})"
    protect = [rid] + ([res.previous] if res.previous else [])
    res.pruned = host.append_log(
        log_entry("deploy", res, True, res.message, started), prune=host.cfg.keep, protect=protect
    )


def _undo(host: Host, rid: str, res: DeployResult, failure: str, started: float) -> None:
    """The new release failed after the switch: go back, restart the old one, drop the new."""
    prev = res.previous
    try:
        host.switch(prev)
        if prev is not None:
            again = host.activate(host.version_of(prev))
            back = f"rolled back to {prev}" + (f" (which also fails: {again})" if again else "")
        else:
            back = "no previous release: current removed"
        host.t.run(f"rm -rf -- {host.q('releases/' + rid)}")
    except ExternalError as e:
        back = f"rollback to {prev or 'none'} failed too: {e}"
    msg = f"{failure}; {back}"
    res.ok = False
    res.message = msg
    host.append_log(log_entry("deploy", res, False, msg, started))
    raise ExternalError(msg)


def rollback_target(st: HostState) -> str | None:
    """The release before the current one: what the deploy that made it current replaced, else
    the newest older release on the host."""
    current, existing = st.current, st.releases
    for row in reversed(st.history):
        if (
            row.get("action") in ("deploy", "promote")
            and row.get("ok")
            and row.get("release") == current
        ):
            prev = row.get("previous")
            if isinstance(prev, str) and prev in existing:
                return prev
            break
    if current in existing:
        older = existing[existing.index(current) + 1 :]
        return older[0] if older else None
    return existing[0] if existing else None


def rollback(
    cfg: DeployConfig,
    *,
    dry_run: bool = False,
    sudo_password: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> DeployResult:
    """Switch ``current`` back to the release before it, restart and check health."""
    started = time.monotonic()
    with connect_host(cfg, connect_timeout) as (t, root):
        host = Host(t, root, cfg, sudo_password)
        st = host.state(history=True)
        current = st.current
        # Nothing to go back to is the host's state, not a wrong command line: exit 1.
        if current is None:
            raise CheckFailed(f"{t.where}:{root}/current does not exist: nothing to roll back")
        target = rollback_target(st)
        if target is None:
            raise CheckFailed(
                f"{t.where}:{root}: no release before {current} to roll back to "
                "(pruned or never deployed)"
            )
        res = DeployResult(
            action="rollback",
            host=t.where,
            path=root,
            dry_run=dry_run,
            release=target,
            previous=current,
            model_version=host.version_of(target),
        )
        if dry_run:
            res.plan = [
                f"host {t.where}: current release {current}",
                f"switch {root}/current -> releases/{target} (model {res.model_version})",
                f"restart and health check; switch back to {current} on failure",
            ]
            res.message = "dry run: nothing changed"
        else:
            host.switch(target)
            try:
                failure = host.activate(res.model_version or "unknown")
            except ExternalError as e:
                failure = str(e)
            if failure is not None:
                try:
                    host.switch(current)
                    host.activate(host.version_of(current))
                    back = f"switched back to {current}"
                except ExternalError as e:
                    back = f"switching back to {current} failed too: {e}"
                res.ok = False
                res.message = f"rollback to {target}: {failure}; {back}"
                host.append_log(log_entry("rollback", res, False, res.message, started))
                raise ExternalError(res.message)
            res.message = f"rolled back to {target} (model {res.model_version})"
            host.append_log(log_entry("rollback", res, True, res.message, started))
    res.seconds = time.monotonic() - started
    return res
