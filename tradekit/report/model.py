"""The deployed model, summarized, with its gate receipt judged as ``deploy`` judges it: what
the dashboard's model card, ``/api/v1/model``, ``/metrics`` and the phone's ``model`` show.

Stdlib only at import; the manifest and the receipt are read through
:mod:`tradekit.models.manifest` and :mod:`tradekit.gate` (both light).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tradekit.errors import InputError

# Keyed by the model dir as asked and as resolved: the live model and its candidates (at most
# 3) are asked for in turn, so one entry would be a miss every time.
MODEL_CACHE = 8
_model_cache: dict[tuple[str, str], tuple[tuple[int, int], dict[str, Any]]] = {}
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
    key = (str(model_dir), str(resolved))
    stamp = (_mtime(resolved / "manifest.json"), _mtime(resolved / RECEIPT))
    with _model_lock:
        hit = _model_cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    doc = _read_model(model_dir, resolved)
    with _model_lock:
        _model_cache.pop(key, None)
        if len(_model_cache) >= MODEL_CACHE:
            _model_cache.pop(next(iter(_model_cache)))  # the oldest
        _model_cache[key] = (stamp, doc)
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
