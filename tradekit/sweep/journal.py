"""Optuna's journal in SWEEP_DIR: the sweep's memory, and its repair after a kill.

The driver is the journal's only writer (one process asks, tells and records), and holds
``SWEEP_DIR/.lock`` (``flock``: released by the kernel however the process dies) while it runs.
A SIGKILL can leave (1) a torn last line, (2) Optuna's own lock file, (3) a trial whose
parameters were only partly written. ``repair`` undoes all three, so that resuming asks that
trial again from the same history and seed and gets the same parameters: the resumed sweep is
the sweep that was never killed.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tradekit.errors import InputError, UsageError

JOURNAL = "journal.log"
_CREATE_TRIAL = 4  # optuna.storages.journal JournalOperation codes
_SET_TRIAL_PARAM = 5
_SET_TRIAL_STATE = 6


@contextlib.contextmanager
def exclusive(directory: Path) -> Iterator[None]:
    """Hold ``directory/.lock`` for the sweep's lifetime; another sweep there is refused."""
    import fcntl

    fh = open(directory / ".lock", "a+")  # noqa: SIM115 - held until the sweep ends
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{directory}: another sweep is running there") from None
        yield
    finally:
        fh.close()


def repair(path: Path, n_params: int) -> None:
    """Make a killed run's journal resumable (see module doc)."""
    Path(str(path) + ".lock").unlink(missing_ok=True)  # ours is the only writer: stale
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    # The last trial created, its byte offset, and how far it got.
    last_offset = -1
    last_id = -1
    params = 0
    finished = False
    offset = 0
    trial_id = -1
    for line in data[:end].splitlines(keepends=True):
        try:
            op: dict[str, Any] = json.loads(line)
        except ValueError:
            raise InputError(f"{path}: line at byte {offset} is not JSON; cannot resume") from None
        code = op.get("op_code")
        if code == _CREATE_TRIAL:
            trial_id += 1
            last_offset, last_id, params, finished = offset, trial_id, 0, False
        elif code == _SET_TRIAL_PARAM and op.get("trial_id") == last_id:
            params += 1
        elif code == _SET_TRIAL_STATE and op.get("trial_id") == last_id and op.get("state") != 0:
            finished = True
        offset += len(line)
    if last_id >= 0 and params < n_params and not finished:
        end = last_offset  # the trial being drawn when the run died: draw it again
    if end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)
            fh.flush()
            os.fsync(fh.fileno())


def open_study(directory: Path, sampler: Any) -> tuple[Any, Any]:
    """(the study, its backend: ``sync()`` it after each told batch)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    class Backend(JournalFileBackend):
        """Optuna's file backend without a lock file and an fsync per operation (a trial
        takes a dozen): ``exclusive`` already makes this process the only writer, a killed
        process loses nothing the kernel has (``repair`` handles a torn tail), and ``sync()``
        after each told batch bounds what a power cut could take."""

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "\n".join(json.dumps(x, separators=(",", ":")) for x in logs) + "\n"
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))

        def sync(self) -> None:
            with open(self._file_path, "rb+") as f:
                os.fsync(f.fileno())

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = str(directory / JOURNAL)
    backend = Backend(path)
    study = optuna.create_study(
        storage=JournalStorage(backend),
        study_name="sweep",
        direction="maximize",
        sampler=sampler,
        load_if_exists=True,
    )
    return study, backend
