"""Candidates on the host, and promoting one to live.

``deploy MODEL_DIR --candidate NAME`` ships the model as a release exactly as a deploy does (the
same archive, hash checks and gate receipt) but, instead of switching ``current``, points
``<path>/candidates/NAME`` at it (a relative symlink replaced by rename(2), as ``current``
is); the loop finds it at its next candle and paper-trades it beside the live model. At most
:data:`~tradekit.evidence.MAX_CANDIDATES`. ``--remove`` removes the link (the release stays
until pruned; pruning never removes a release a candidate points at).

``promote NAME`` makes a candidate live with deploy's own steps: ``current`` switches to the
candidate's release (rename(2): a reader sees the old release or the new one, each complete),
the loop restarts, the health check waits for the loop to run the candidate's model, and a
failure switches back and restarts the old one. Only then is the candidate's link removed.
A promote killed at any point leaves ``current`` on the old release or the new one; the loop
runs whichever it names (a restart, or its own reload when the manifest behind ``current``
changes), and ``promote NAME`` again finishes the job. Nothing promotes itself.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tradekit.deploy.result import DeployResult
from tradekit.deploy.ship import Host, connect_host, log_entry, staged, upload
from tradekit.deploy.transport import CONNECT_TIMEOUT_S
from tradekit.errors import ExternalError, UsageError
from tradekit.evidence import MAX_CANDIDATES, check_name

if TYPE_CHECKING:
    from tradekit.config import DeployConfig

log = logging.getLogger(__name__)
DIR = "candidates"


@dataclass(frozen=True)
class HostCandidates:
    current: str | None
    releases: list[str]
    links: dict[str, str | None]  # name -> release id (None: a dangling or foreign link)


def _read(host: Host) -> HostCandidates:
    """``current``, the releases and each candidate link, in one command."""
    script = (
        f"cd {host.q()} 2>/dev/null || exit 0\n"
        'echo "current $(readlink current 2>/dev/null)"\n'
        "ls -1 releases 2>/dev/null | sed 's/^/release /'\n"
        f'for c in {DIR}/*; do [ -L "$c" ] || continue; '
        'echo "candidate ${c#*/} $(readlink "$c")"; done\n'
    )
    out = host.must(script, "reading the candidates of " + host.root)
    current, releases, links = None, [], {}
    for line in out.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "current":
            current = rest.strip().removeprefix("releases/").rstrip("/") or None
        elif tag == "release" and rest and not rest.startswith("."):
            releases.append(rest)
        elif tag == "candidate":
            name, _, target = rest.partition(" ")
            rid = target.removeprefix("../releases/")
            links[name] = rid if rid != target and "/" not in rid else None
    return HostCandidates(current, releases, links)


def _link(host: Host, name: str, rid: str) -> None:
    """``candidates/NAME -> ../releases/<rid>``, replaced atomically (a fresh link renamed
    over it; ``.NAME.tmp`` is no candidate name, so the loop never sees it)."""
    q = shlex.quote
    host.must(
        f"cd {host.q()} && mkdir -p {DIR} && rm -f {q(f'{DIR}/.{name}.tmp')} && "
        f"ln -s {q('../releases/' + rid)} {q(f'{DIR}/.{name}.tmp')} && "
        f"mv -T {q(f'{DIR}/.{name}.tmp')} {q(f'{DIR}/{name}')}",
        f"pointing {DIR}/{name} at {rid}",
    )


def _unlink(host: Host, name: str) -> None:
    host.must(f"rm -f {host.q(f'{DIR}/{name}')}", f"removing {DIR}/{name}")


def _names(hc: HostCandidates) -> str:
    return ", ".join(sorted(hc.links)) or "none"


def deploy_candidate(
    model_dir: Path,
    name: str,
    cfg: DeployConfig,
    *,
    attach: Sequence[Path] = (),
    dry_run: bool = False,
    force: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> DeployResult:
    """Ship ``model_dir`` as a release and point ``candidates/NAME`` at it. UsageError (exit
    2) for a bad name or a candidate beyond the limit; otherwise as :func:`deploy_model`."""
    started = time.monotonic()
    check_name(name)
    with staged(
        model_dir, cfg, attach=attach, force=force, connect_timeout=connect_timeout
    ) as staging:
        rel, release_json, gate, forced, t, root = staging
        host = Host(t, root, cfg, None)
        hc = _read(host)
        res = DeployResult(
            action="candidate", host=t.where, path=root, dry_run=dry_run, release=rel.id,
            previous=hc.links.get(name), model_version=rel.model_version, sha256=rel.sha256,
            bytes=rel.size, files=rel.files, gate=gate, forced=forced, candidate=name,
        )  # fmt: skip
        if name not in hc.links and len(hc.links) >= MAX_CANDIDATES:
            raise UsageError(
                f"{t.where}:{root}: already {len(hc.links)} candidates ({_names(hc)}), at "
                f"most {MAX_CANDIDATES}: remove one first (tradekit deploy --candidate NAME "
                "--remove), or replace one by deploying under its name"
            )
        verb = "replace" if name in hc.links else "add"
        if dry_run:
            res.plan = [
                f"model {model_dir}: version {rel.model_version}, archive {rel.size} bytes, "
                f"release {rel.id}",
                f"gate: {gate}" + (f" (--force: {forced})" if forced else ""),
                f"host {t.where}: candidates {_names(hc)}; current {hc.current or '(none)'}"
                " (untouched)",
                f"upload, verify and unpack into {root}/releases/{rel.id}",
                f"{verb} {root}/{DIR}/{name} -> ../releases/{rel.id} (ln -s + mv -T); the "
                "loop paper-trades it from its next candle (no restart)",
            ]
            res.message = "dry run: nothing changed"
        else:
            if rel.id not in hc.releases:  # else: this very archive, installed this second
                upload(host, rel, release_json, res, started)
            try:
                _link(host, name, rel.id)
            except ExternalError as e:
                res.ok = False
                res.message = f"{e}; {DIR}/{name} is {rel.id} or still {res.previous}"
                host.append_log(log_entry("candidate", res, False, res.message, started))
                raise ExternalError(res.message) from None
            res.message = f"candidate {name}: {rel.id} (model {rel.model_version})"
            protect = [rel.id, *[r for r in (hc.current, *hc.links.values()) if r]]
            res.pruned = host.append_log(
                log_entry("candidate", res, True, res.message, started),
                prune=cfg.keep, protect=protect,
            )  # fmt: skip
    res.seconds = time.monotonic() - started
    return res


def remove_candidate(
    name: str,
    cfg: DeployConfig,
    *,
    dry_run: bool = False,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> DeployResult:
    """Remove ``candidates/NAME`` (the loop retires its paper ledger at its next candle)."""
    started = time.monotonic()
    check_name(name)
    with connect_host(cfg, connect_timeout) as (t, root):
        host = Host(t, root, cfg, None)
        hc = _read(host)
        if name not in hc.links:
            raise UsageError(f"{t.where}:{root}: no candidate {name!r} (candidates: {_names(hc)})")
        res = DeployResult(
            action="candidate-remove", host=t.where, path=root, dry_run=dry_run,
            release=hc.links[name], candidate=name,
        )  # fmt: skip
        if dry_run:
            res.plan = [f"remove {root}/{DIR}/{name} (-> {hc.links[name]}); the release stays"]
            res.message = "dry run: nothing changed"
        else:
            _unlink(host, name)
            res.message = f"candidate {name} removed (its release {hc.links[name]} stays)"
            host.append_log(log_entry("candidate-remove", res, True, res.message, started))
    res.seconds = time.monotonic() - started
    return res


def promote(
    name: str,
    cfg: DeployConfig,
    *,
    dry_run: bool = False,
    sudo_password: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> DeployResult:
    """Make candidate ``name`` live: switch ``current`` to its release, restart, wait for the
    loop to run it; on a failure switch back and restart the old release (exit 4)."""
    started = time.monotonic()
    check_name(name)
    with connect_host(cfg, connect_timeout) as (t, root):
        host = Host(t, root, cfg, sudo_password)
        hc = _read(host)
        rid = hc.links.get(name, "")
        if name not in hc.links:
            raise UsageError(f"{t.where}:{root}: no candidate {name!r} (candidates: {_names(hc)})")
        if rid is None or rid not in hc.releases:
            raise UsageError(
                f"{t.where}:{root}/{DIR}/{name} points at no release here: remove it "
                f"(tradekit deploy --candidate {name} --remove)"
            )
        res = DeployResult(
            action="promote", host=t.where, path=root, dry_run=dry_run, release=rid,
            previous=hc.current, model_version=host.version_of(rid), candidate=name,
        )  # fmt: skip
        prev = hc.current
        log.debug("promote: %s -> %s, current %s", name, rid, prev)
        if dry_run:
            res.plan = [
                f"host {t.where}: current {prev or '(none)'}; candidate {name} -> {rid} "
                f"(model {res.model_version})",
                f"switch {root}/current -> releases/{rid} (ln -sfn + mv -T)",
                "restart and health check as deploy; switch back to "
                f"{prev or '(none)'} and restart it on failure",
                f"then remove {root}/{DIR}/{name}",
            ]
            res.message = "dry run: nothing changed"
        elif prev == rid:
            # A promote killed after its switch: finish it.
            _unlink(host, name)
            res.message = f"candidate {name} ({rid}) was live already; its link is removed"
            host.append_log(log_entry("promote", res, True, res.message, started))
        else:
            _switch_live(host, name, rid, prev, res, started)
    res.seconds = time.monotonic() - started
    return res


def _switch_live(
    host: Host, name: str, rid: str, prev: str | None, res: DeployResult, started: float
) -> None:
    version = res.model_version or "unknown"
    log.debug("promote: switching current to %s", rid)
    try:
        host.switch(rid)
    except ExternalError as e:
        res.ok = False
        res.message = f"{e}; current is {rid} or still {prev or 'none'} (see promote --dry-run)"
        host.append_log(log_entry("promote", res, False, res.message, started))
        raise ExternalError(res.message) from None
    log.info("current -> releases/%s (was %s), candidate %s", rid, prev or "none", name)
    log.debug("promote: restart and health check")
    try:
        failure = host.activate(version)
    except ExternalError as e:
        failure = str(e)
    if failure is not None:
        # Back to the release that was live; the candidate's release and link stay.
        try:
            host.switch(prev)
            if prev is not None:
                again = host.activate(host.version_of(prev))
                back = f"switched back to {prev}"
                back += f" (which also fails: {again})" if again else ""
            else:
                back = "no previous release: current removed"
        except ExternalError as e:
            back = f"switching back to {prev or 'none'} failed too: {e}"
        res.ok = False
        res.message = f"promote {name}: {failure}; {back}; candidate {name} kept"
        host.append_log(log_entry("promote", res, False, res.message, started))
        raise ExternalError(res.message)
    log.debug("promote: healthy; removing %s/%s", DIR, name)
    with contextlib.suppress(ExternalError):  # live now; a stale link only shadows it
        _unlink(host, name)
    log.debug("promote: logging")
    res.message = f"promoted candidate {name}: {rid} (model {version}) is live; was {prev}"
    host.append_log(log_entry("promote", res, True, res.message, started))
