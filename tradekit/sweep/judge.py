"""The gate's view of a sweep: ``gate REPORT --sweep SWEEP_DIR --min-dsr X --max-pbo Y``.

The report must be the sweep's chosen trial re-run through ``backtest`` (the same inputs and
the config of ``best.toml``): its Sharpe ratio is then the one the sweep deflated by the number
of trials it ran. That number comes from the sweep's record, never from the user. Stdlib only,
like the gate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tradekit.errors import InputError

SWEEP_FILE = "sweep.json"


def config_digest(sections: Mapping[str, Any]) -> str:
    """sha256 of the [policy], [risk] and [backtest] a backtest ran with (as its report's
    ``config`` holds them, and as best.toml writes them)."""
    keep = {k: sections[k] for k in ("policy", "risk", "backtest")}
    text = json.dumps(keep, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _rule(name: str, label: str, op: str, threshold: float, value: Any) -> dict[str, Any]:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    passed = ok and (value >= threshold if op == ">=" else value <= threshold)
    out = {
        "rule": name,
        "metric": name[4:],
        "label": label,
        "op": op,
        "threshold": threshold,
        "value": value if ok else None,
        "passed": bool(passed),
    }
    if not ok:
        out["note"] = "undefined in the sweep record"
    return out


def judge(
    report: Mapping[str, Any],
    sweep_dir: Path,
    min_dsr: float,
    max_pbo: float,
    *,
    label: str = "report",
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the sweep's rules, the verdict's ``sweep`` block) for ``report``."""
    from tradekit.contracts import SWEEP_SCHEMA, file_hash, read_json

    path = sweep_dir / SWEEP_FILE
    doc = read_json(path, SWEEP_SCHEMA)
    best = doc.get("best")
    sel = doc.get("selection")
    if not isinstance(best, dict) or not isinstance(sel, dict):
        raise InputError(f"{path}: the sweep chose no trial (none was feasible)")
    config = report.get("config")
    if not isinstance(config, dict) or not all(k in config for k in ("policy", "risk", "backtest")):
        raise InputError(f"{label}: no config block; the gate cannot tie it to the sweep")
    if config_digest(config) != best.get("config_sha256"):
        raise InputError(
            f"{label}: its config is not that of the sweep's best trial {best.get('trial')}; "
            f"backtest with --config {sweep_dir}/best.toml, then gate that report"
        )
    inputs = report.get("inputs") if isinstance(report.get("inputs"), dict) else {}
    assert isinstance(inputs, dict)
    want = {
        "ohlcv": doc.get("inputs", {}).get("ohlcv", {}).get("sha256"),
        "predictions": best.get("predictions_sha256"),
    }
    for name, sha in want.items():
        got = inputs.get(name, {}).get("sha256") if isinstance(inputs.get(name), dict) else None
        if got != sha:
            raise InputError(
                f"{label}: its {name} ({got or 'not named'}) are not the sweep's ({sha})"
            )
    n = sel.get("trials")
    rules = [
        _rule("min_dsr", f"deflated Sharpe ({n} trials)", ">=", min_dsr, sel.get("dsr")),
        _rule("max_pbo", "probability of overfitting", "<=", max_pbo, sel.get("pbo")),
    ]
    block = {
        "path": str(sweep_dir),
        "sha256": file_hash(path),
        "trials": n,
        "best_trial": best.get("trial"),
        "objective": doc.get("objective"),
        "dsr": sel.get("dsr"),
        "psr": sel.get("psr"),
        "pbo": sel.get("pbo"),
        "expected_max_sharpe": sel.get("expected_max_sharpe"),
        "sharpe_variance": sel.get("sharpe_variance"),
        "space_sha256": doc.get("space_sha256"),
        "inputs": {k: v.get("sha256") for k, v in doc.get("inputs", {}).items()},
    }
    return rules, block
