"""The dashboard's sources beside the ledger: the deployed model with its gate receipt, the
deploy log, the candle store and the candidate models beside the live one.

Nothing here imports pandas or pyarrow: the candle store is read by a short child process
(:mod:`tradekit.serve.candles`) when a chart asks for candles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tradekit.errors import InputError
from tradekit.report.model import model_info

__all__ = ["candidates", "candles", "deploys", "model_info"]


def deploys(path: Path, *, limit: int = 200) -> dict[str, Any]:
    """The newest ``limit`` lines of ``deploys.jsonl``, newest first (each a deploy, rollback
    or failure as ``tradekit deploy`` logs it on the host); a line that is not JSON is shown
    as ``{"unreadable": LINE}`` rather than hiding the rest."""
    if not path.is_file():
        return {"path": str(path), "available": False, "deploys": []}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from None
    rows: list[dict[str, Any]] = []
    for line in reversed(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = {"unreadable": line[:200]}
        rows.append(entry if isinstance(entry, dict) else {"unreadable": line[:200]})
        if len(rows) >= limit:
            break
    return {"path": str(path), "available": True, "deploys": rows}


_candle_cache: dict[tuple[str, int, int, int], dict[str, Any]] = {}
_candle_lock = threading.Lock()
CANDLE_CACHE = 32  # entries: a few symbols at a few chart lengths


def candles(store: Path, exchange: str, timeframe: str, symbol: str, limit: int) -> dict[str, Any]:
    """The newest ``limit`` candles of ``symbol`` in the store as [ms, open, high, low, close]
    rows; ``available`` False (with the path looked at) when the store has none.

    pyarrow would double the server's memory for good (about 60 MB measured here), so a short
    child process reads the file, and its answer is kept until the file changes (the loop
    appends once a candle)."""
    from tradekit.data.store import symbol_file

    path = store / exchange / timeframe / symbol_file(symbol)
    try:
        st = path.stat()
    except OSError:
        return {"path": str(path), "available": False, "rows": []}
    key = (str(path), st.st_mtime_ns, st.st_size, limit)
    with _candle_lock:
        hit = _candle_cache.get(key)
    if hit is not None:
        return hit
    r = subprocess.run(
        [sys.executable, "-m", "tradekit.serve.candles", str(path), exchange, timeframe,
         str(limit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines() or [f"exit {r.returncode}"]
        raise InputError(lines[-1].removeprefix("tradekit: error: "))
    doc: dict[str, Any] = {"path": str(path), "available": True, "rows": json.loads(r.stdout)}
    with _candle_lock:
        if len(_candle_cache) >= CANDLE_CACHE:
            _candle_cache.pop(next(iter(_candle_cache)))
        _candle_cache[key] = doc
    return doc


def candidates(
    model_dir: Path, ledger: Path | None = None, directory: Path | None = None
) -> list[dict[str, Any]]:
    """Candidate models paper-trading beside the live one (``deploy --candidate``), each:
    ``name``, ``path``, ``release``, ``version`` (as ``model``'s), ``since_ms`` (its first
    paper candle), ``receipt`` (as ``model_info``'s), ``evidence`` (one line) and
    ``comparison`` (both accounts over the candles both traded, and the paired tests on their
    daily returns): :func:`tradekit.evidence.candidates_report`, as ``tradekit candidates``
    and ``review.json`` show them. ``directory`` defaults to ``candidates/`` beside
    ``model_dir``'s link; without ``ledger`` there is no evidence yet."""
    from tradekit import evidence

    where = directory or evidence.directory("", str(model_dir))
    return evidence.candidates_report(state=ledger, cand_dir=where)
