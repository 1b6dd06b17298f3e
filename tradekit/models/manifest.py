"""The model directory's ``manifest.json`` (schema ``model/1``): what was trained on what, how
well it did out of sample, and the hash of every file needed to predict.

Everything in it is a function of the inputs and the seed except ``created_at``.
"""

from __future__ import annotations

import hashlib
import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from tradekit import __version__
from tradekit.contracts import MODEL_SCHEMA, file_hash, read_json
from tradekit.errors import InputError

MANIFEST = "manifest.json"
OOS_FILE = "oos_predictions.parquet"
GLOBAL = "*"  # the key of the one model shared by all symbols in ``models``
REQUIRED = (
    "kind",
    "objective",
    "params",
    "features",
    "label",
    "label_horizon",
    "timeframe",
    "feature_set",
    "models",
    "files",
    "lookback",
)


def iso_ms(ms: int) -> str:
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))
    return dt.isoformat().replace("+00:00", "Z")


def span(start_ms: int, end_ms: int, rows: int) -> dict[str, Any]:
    """A time span, both ends inclusive candle open times."""
    return {
        "start": iso_ms(start_ms),
        "end": iso_ms(end_ms),
        "start_ms": int(start_ms),
        "end_ms": int(end_ms),
        "rows": int(rows),
    }


def library_versions(kind: str) -> dict[str, str]:
    names = ["numpy", "pandas", "pyarrow", "lightgbm" if kind == "lightgbm" else "torch"]
    out = {"python": platform.python_version(), "tradekit": __version__}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def files_version(files: Mapping[str, str]) -> str:
    """A short id of the model files (for the ledger): same files, same version."""
    text = "\n".join(f"{name} {h}" for name, h in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def hash_files(directory: Path, names: Sequence[str]) -> dict[str, str]:
    return {name: file_hash(directory / name) for name in sorted(names)}


def build(
    *,
    params: Mapping[str, Any],
    features: Sequence[str],
    label: str,
    meta: Mapping[str, Any],
    features_file: Path,
    features_hash: str,
    symbols: Sequence[str],
    per_symbol: bool,
    models: Mapping[str, str],
    lookback: int,
    training: Mapping[str, Any],
    walk_forward: Mapping[str, Any] | None,
    files: Mapping[str, str],
    oos: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": MODEL_SCHEMA,
        "kind": params["kind"],
        "objective": params["objective"],
        "params": dict(params),
        "seed": params["seed"],
        "features": list(features),
        "label": label,
        "label_horizon": int(meta["label_horizon"]),
        "timeframe": meta["timeframe"],
        "symbols": list(symbols),
        "per_symbol": per_symbol,
        "models": dict(models),
        "lookback": lookback,
        # The spec lets the live loop build exactly these features (absent for feature files
        # made outside `featurize`).
        "feature_set": {
            "name": meta["feature_set"],
            "hash": meta["feature_set_hash"],
            **({"spec": meta["feature_spec"]} if meta.get("feature_spec") else {}),
        },
        "data": {
            "features_file": features_file.name,
            "features_hash": features_hash,
            "source": meta.get("source"),
            "exchange": meta.get("exchange"),
        },
        "training": dict(training),
        "walk_forward": dict(walk_forward) if walk_forward is not None else None,
        "oos_predictions": dict(oos) if oos is not None else None,
        "files": dict(files),
        "version": files_version(files),
        "versions": library_versions(params["kind"]),
        "tradekit_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if extra:
        doc.update(extra)
    return doc


def read(directory: Path) -> dict[str, Any]:
    """The manifest of a model directory, checked: schema, required keys, file hashes."""
    if not directory.exists():
        raise InputError(f"{directory}: no such model directory")
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory (expected a model dir from 'train')")
    path = directory / MANIFEST
    if not path.exists():
        raise InputError(
            f"{directory}: no {MANIFEST}, so not a model directory (make one with tradekit train)"
        )
    doc = read_json(path, MODEL_SCHEMA)
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise InputError(f"{path}: missing key(s) {', '.join(missing)}")
    if not isinstance(doc["features"], list) or not doc["features"]:
        raise InputError(f"{path}: features must be a non-empty list")
    if not isinstance(doc["files"], dict) or not isinstance(doc["models"], dict):
        raise InputError(f"{path}: files and models must be objects")
    for name, want in sorted(doc["files"].items()):
        f = directory / name
        if not f.is_file():
            parts = Path(name).parts
            whose = (
                f" (ensemble member {parts[1]!r}: copy or deploy the whole ensemble directory)"
                if len(parts) > 2 and parts[0] == "members"
                else ""
            )
            raise InputError(f"{f}: listed in {MANIFEST} but missing{whose}")
        got = file_hash(f)
        if got != want:
            raise InputError(
                f"{f}: sha256 differs from {MANIFEST} (file changed or corrupt): {got} != {want}"
            )
    return doc
