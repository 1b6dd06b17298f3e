"""The local half of a deploy: check a model directory and pack it into one release archive.

The archive (tar.gz) holds ``manifest.json``, the files the manifest lists, any attached files
(report, verdict) at the release root, and ``SHA256SUMS`` for ``sha256sum -c`` on the host. It
is deterministic: sorted members, fixed mtimes, uid/gid 0, no gzip timestamp, so the same model
gives the same archive hash. ``release.json`` (who, when, what) travels beside it because it
carries a timestamp.
"""

from __future__ import annotations

import getpass
import gzip
import hashlib
import io
import json
import socket
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from tradekit import __version__
from tradekit.errors import InputError, UsageError

RELEASE_SCHEMA = "release/1"
SUMS = "SHA256SUMS"
RELEASE_JSON = "release.json"
RESERVED = (SUMS, RELEASE_JSON)
# 2000-01-01: a fixed member mtime (tar's own epoch 0 trips some extractors' sanity checks).
FIXED_MTIME = 946_684_800
CHUNK = 1 << 20


@dataclass(frozen=True)
class Release:
    """A packed release, ready to ship."""

    id: str
    archive: Path
    sha256: str  # "sha256:<hex>" of the archive bytes
    size: int  # archive bytes
    model_version: str
    files: dict[str, str]  # release-relative name -> "sha256:<hex>" (SHA256SUMS included)
    doc: dict[str, Any] = field(repr=False)  # release.json

    def json_bytes(self) -> bytes:
        return (json.dumps(self.doc, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _safe_name(name: str, where: str) -> str:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name or "\n" in name:
        raise InputError(f"{where}: unsafe file name {name!r} (expected a relative path)")
    return str(p)


def check_model_dir(model_dir: Path) -> tuple[dict[str, Any], str]:
    """The checked manifest of ``model_dir`` (every listed file present, hashes matching) and
    the model version the live loop will report. Loads no ML library."""
    from tradekit.models import manifest as mf

    doc = mf.read(model_dir)
    for name in doc["files"]:
        _safe_name(name, str(model_dir / mf.MANIFEST))
    return doc, mf.files_version(doc["files"])


def release_id(now: datetime, archive_sha256: str) -> str:
    """``20261121T101500Z-1a2b3c4d``: UTC time of the deploy + the archive's short hash."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + archive_sha256[:8]


def members(model_dir: Path, manifest: dict[str, Any], attach: Sequence[Path]) -> dict[str, Path]:
    """Release-relative name -> local file: the manifest, its files, the model dir's gate
    receipt (verdict.json) when it has one, then attachments."""
    from tradekit.gate import RECEIPT
    from tradekit.models import manifest as mf

    doc = manifest
    out: dict[str, Path] = {mf.MANIFEST: model_dir / mf.MANIFEST}
    for name in sorted(doc["files"]):
        out[name] = model_dir / name
    receipt = model_dir / RECEIPT
    if receipt.is_file() and RECEIPT not in out:
        out[RECEIPT] = receipt
    for f in attach:
        if not f.is_file():
            raise InputError(f"{f}: --attach file not found (or not a regular file)")
        name = f.name
        if name == RECEIPT and out.get(RECEIPT) == receipt and _same_bytes(f, receipt):
            continue  # the receipt itself, attached the old way: it travels anyway
        if name in out or name in RESERVED:
            raise UsageError(f"--attach {f}: {name} clashes with a file of the release")
        out[name] = f
    return out


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and _sha256(a) == _sha256(b)


def _tar_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = FIXED_MTIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(files: dict[str, Path], out: Path) -> dict[str, str]:
    """Write the deterministic tar.gz of ``files`` (+ SHA256SUMS) to ``out``; return the
    hash of every member."""
    hashes = {name: _sha256(path) for name, path in sorted(files.items())}
    sums = "".join(f"{h}  {name}\n" for name, h in sorted(hashes.items())).encode()
    with (
        open(out, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(hashes):
            path = files[name]
            with open(path, "rb") as fh:
                size = path.stat().st_size
                tar.addfile(_tar_info(name, size), fh)
        tar.addfile(_tar_info(SUMS, len(sums)), io.BytesIO(sums))
    hashes[SUMS] = hashlib.sha256(sums).hexdigest()
    return {name: "sha256:" + h for name, h in sorted(hashes.items())}


def build_release(
    model_dir: Path,
    workdir: Path,
    *,
    attach: Sequence[Path] = (),
    now: datetime | None = None,
    checked: tuple[dict[str, Any], str] | None = None,
) -> Release:
    """Check ``model_dir`` and pack it (with ``attach``) into ``workdir/release.tar.gz``.
    ``checked``: the result of :func:`check_model_dir` when the caller already has it."""
    now = now or datetime.now(UTC)
    manifest, version = checked if checked is not None else check_model_dir(model_dir)
    files = members(model_dir, manifest, attach)
    archive = workdir / "release.tar.gz"
    hashes = pack(files, archive)
    digest = _sha256(archive)
    rid = release_id(now, digest)
    doc: dict[str, Any] = {
        "schema": RELEASE_SCHEMA,
        "id": rid,
        "model_version": version,
        "model_dir": str(model_dir),
        "archive_sha256": "sha256:" + digest,
        "files": hashes,
        "attached": sorted(n for n in files if n not in manifest["files"] and n != "manifest.json"),
        "created_at": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "source_host": socket.gethostname(),
        "source_user": _user(),
        "tradekit_version": __version__,
    }
    return Release(
        id=rid,
        archive=archive,
        sha256="sha256:" + digest,
        size=archive.stat().st_size,
        model_version=version,
        files=hashes,
        doc=doc,
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def who() -> str:
    """``user@host`` of the machine running the deploy, for the host's deploy log."""
    return f"{_user()}@{socket.gethostname()}"
