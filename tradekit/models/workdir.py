"""A model directory is built in ``MODEL_DIR.partial/`` beside its target and swapped in only
when complete, so a killed ``train`` never leaves half a model where a model was; ``--resume``
continues in the partial directory when it was made for the same run (its ``run.json``)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tradekit.errors import InputError
from tradekit.models import manifest as mf

log = logging.getLogger(__name__)


def work_dir(
    target: Path,
    fingerprint: dict[str, Any],
    resume: bool,
    subdirs: Sequence[str],
    kept: str = "checkpoints",
) -> Path:
    """``MODEL_DIR.partial`` with ``subdirs``: reused with ``resume`` when its ``run.json`` is
    ``fingerprint``, else started afresh (``kept`` names what a mismatch would throw away)."""
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / mf.MANIFEST).exists():
        raise InputError(
            f"{target}: exists and is not a model directory (no {mf.MANIFEST}); "
            "choose another output or remove it"
        )
    work = target.with_name(target.name + ".partial")
    run_file = work / "run.json"
    text = json.dumps(fingerprint, sort_keys=True, indent=2) + "\n"
    if work.exists():
        if not run_file.exists() and any(work.iterdir()):
            raise InputError(f"{work}: exists and is not a tradekit partial model directory")
        if resume and run_file.exists():
            if run_file.read_text(encoding="utf-8") == text:
                log.info("resuming from %s", work)
                return work
            raise InputError(
                f"{work}: its {kept} come from other inputs or parameters; "
                "run without --resume to start over"
            )
        shutil.rmtree(work)
    elif resume:
        log.info("nothing to resume in %s: starting from the beginning", work)
    for sub in subdirs:
        (work / sub).mkdir(parents=True)
    run_file.write_text(text, encoding="utf-8")
    return work


def publish(work: Path, target: Path) -> None:
    """Swap the finished directory in; the old model is removed only after the swap."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(work, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
