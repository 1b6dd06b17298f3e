"""The dashboard's sources beside the ledger: the deployed model with its gate receipt, the
deploy log, the candle store and (later) the candidates.

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

_model_cache: dict[tuple[str, int, int], dict[str, Any]] = {}
_model_lock = threading.Lock()


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return 0


def model_info(model_dir: Path) -> dict[str, Any]:
    """The deployed model (its manifest, summarized) and its gate receipt, judged as deploy
    judges it. ``available`` is False, with ``problem``, when there is no readable model.

    Checking a model hashes its files, so the answer is kept until the manifest or the
    receipt changes (``current`` switching to another release changes the resolved path)."""
    from tradekit.gate import RECEIPT

    resolved = model_dir.resolve()
    key = (str(resolved), _mtime(resolved / "manifest.json"), _mtime(resolved / RECEIPT))
    with _model_lock:
        hit = _model_cache.get(key)
    if hit is not None:
        return hit
    doc = _read_model(model_dir, resolved)
    with _model_lock:
        _model_cache.clear()
        _model_cache[key] = doc
    return doc


def _read_model(model_dir: Path, resolved: Path) -> dict[str, Any]:
    from tradekit.contracts import read_json
    from tradekit.gate import GATE_SCHEMA, RECEIPT, model_identity, receipt_problem
    from tradekit.models import manifest as mf

    out: dict[str, Any] = {"path": str(model_dir), "resolved": str(resolved)}
    try:
        doc = mf.read(model_dir)
        identity = model_identity(model_dir, doc)
    except InputError as e:
        return {**out, "available": False, "problem": str(e), "model": None, "receipt": None}
    training = doc.get("training") or {}
    model = {
        "version": identity["version"],
        "kind": doc.get("kind"),
        "objective": doc.get("objective"),
        "label": doc.get("label"),
        "label_horizon": doc.get("label_horizon"),
        "timeframe": doc.get("timeframe"),
        "symbols": doc.get("symbols"),
        "features": len(doc.get("features") or []),
        "feature_set": (doc.get("feature_set") or {}).get("name"),
        "training": {k: training[k] for k in sorted(training) if not isinstance(training[k], dict)},
        "created_at": doc.get("created_at"),
        "tradekit_version": doc.get("tradekit_version"),
    }
    receipt: dict[str, Any] = {"file": RECEIPT, "present": (model_dir / RECEIPT).is_file()}
    receipt["problem"] = receipt_problem(model_dir, identity)
    receipt["deployable"] = receipt["problem"] is None
    if receipt["present"]:
        try:
            verdict = read_json(model_dir / RECEIPT, GATE_SCHEMA)
        except InputError:
            verdict = {}
        receipt.update(
            passed=verdict.get("passed"),
            failed=verdict.get("failed"),
            rules=verdict.get("rules"),
            span=verdict.get("span"),
            sweep=verdict.get("sweep"),
        )
    return {**out, "available": True, "problem": None, "model": model, "receipt": receipt}


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


def candidates(model_dir: Path) -> list[dict[str, Any]]:
    """Models running beside the live one to gather evidence (issue 16); none exist yet.

    Each will be one object with at least: ``name``, ``path``, ``version`` (as ``model``'s),
    ``since_ms`` (when it started), ``receipt`` (as ``model_info``'s) and ``evidence`` (its
    shadow trades and metrics against the live model's over the same candles), so the page
    and ``/api/v1/candidates`` show them without another change of shape."""
    del model_dir  # where candidates live is decided with issue 16
    return []
