"""The quality gate: a backtest/1 report against thresholds -> a gate/1 verdict.

Light (stdlib only): the verdict is a function of the report's metrics and the rules. With
``gate REPORT --model DIR`` it is also the model dir's receipt (``DIR/verdict.json``), naming the
exact model it judged (its version, manifest hash and out-of-sample predictions hash, which the
report must have been made from); ``deploy`` refuses a model without a passing receipt of its own.

A rule whose metric is missing from the report is a bad report (exit 3), not a failed model.
A metric that is present but null (undefined, e.g. a Sortino ratio with no losing candle or a
profit factor with no losing trade) fails its rule unless the rule says how to read it: a null
profit factor with at least one trade means "no losses" and passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradekit.config import GateConfig
from tradekit.errors import InputError

GATE_SCHEMA = "gate/1"
RECEIPT = "verdict.json"  # the verdict a model dir carries (``gate --model``)


@dataclass(frozen=True)
class Rule:
    name: str  # the [gate] key
    metric: str  # the key in the report's "metrics"
    op: str  # ">=", "<=" or ">"
    threshold: float
    label: str  # for people


def rules_from(cfg: GateConfig) -> list[Rule]:
    """The rules a config asks for; 0 means "not checked" for the optional ones."""
    rules = [
        Rule("min_sortino", "sortino", ">=", cfg.min_sortino, "Sortino ratio"),
        Rule("max_drawdown", "max_drawdown", "<=", cfg.max_drawdown, "max drawdown"),
        Rule("min_trades", "trades", ">=", cfg.min_trades, "trades"),
    ]
    optional = [
        Rule("min_sharpe", "sharpe", ">=", cfg.min_sharpe, "Sharpe ratio"),
        Rule("min_psr", "probabilistic_sharpe", ">=", cfg.min_psr, "probabilistic Sharpe"),
        Rule("min_profit_factor", "profit_factor", ">=", cfg.min_profit_factor, "profit factor"),
        Rule("min_win_rate", "win_rate", ">=", cfg.min_win_rate, "win rate"),
    ]
    rules += [r for r in optional if r.threshold > 0]
    if cfg.must_beat_buy_and_hold:
        rules.append(
            Rule("must_beat_buy_and_hold", "total_return", ">", math.nan, "return vs buy-and-hold")
        )
    return rules


def _number(metrics: Mapping[str, Any], key: str, label: str) -> float | None:
    if key not in metrics:
        raise InputError(f"{label}: metrics.{key} is missing; the gate needs it")
    v = metrics[key]
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputError(f"{label}: metrics.{key} is {v!r}, expected a number or null")
    return v if math.isfinite(v) else None  # ints stay ints in the verdict


def check_rules(
    metrics: Mapping[str, Any], cfg: GateConfig, *, label: str = "report"
) -> list[dict[str, Any]]:
    """One result per rule of ``cfg``: threshold, value, pass/fail (and a note when a null
    metric was read one way or the other)."""
    results: list[dict[str, Any]] = []
    for rule in rules_from(cfg):
        value = _number(metrics, rule.metric, label)
        threshold: float | None = rule.threshold
        note = ""
        if rule.name == "must_beat_buy_and_hold":
            threshold = _number(metrics, "buy_and_hold_return", label)
        if value is None and rule.metric == "profit_factor":
            trades = _number(metrics, "trades", label) or 0
            passed = trades > 0
            note = "no losing trade" if passed else "no trades"
        elif value is None or threshold is None:
            passed = False
            note = "undefined in the report"
        elif rule.op == ">=":
            passed = value >= threshold
        elif rule.op == "<=":
            passed = value <= threshold
        else:
            passed = value > threshold
        results.append(
            {
                "rule": rule.name,
                "metric": rule.metric,
                "label": rule.label,
                "op": rule.op,
                "threshold": threshold,
                "value": value,
                "passed": passed,
                **({"note": note} if note else {}),
            }
        )
    return results


def build_verdict(
    report: Mapping[str, Any],
    rules: Sequence[Mapping[str, Any]],
    *,
    report_ref: Mapping[str, Any] | None = None,
    model: Mapping[str, Any] | None = None,
    sections: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The one place a gate/1 document is assembled. ``rules`` are rule results (from
    :func:`check_rules`, plus any a caller adds, e.g. a sweep's deflated Sharpe); the verdict
    passes only when every one does. ``report_ref`` names the report file and its hash,
    ``model`` the model it judged (:func:`model_identity`), ``sections`` adds named blocks
    (e.g. ``{"sweep": {...}}``)."""
    results = [dict(r) for r in rules]
    failed = [str(r["rule"]) for r in results if not r["passed"]]
    doc: dict[str, Any] = {
        "schema": GATE_SCHEMA,
        "passed": not failed,
        "failed": failed,
        "rules": results,
        "span": report.get("span"),
        "inputs": report.get("inputs"),
        "report": dict(report_ref) if report_ref is not None else None,
        "model": dict(model) if model is not None else None,
        # What the backtest ran with: ``run`` and ``doctor`` compare the deployed settings.
        "config": report.get("config") if isinstance(report.get("config"), dict) else None,
    }
    for name, block in (sections or {}).items():
        if name in doc:
            raise ValueError(f"verdict section {name!r} would replace a core field")
        doc[name] = block
    return doc


def evaluate(
    report: Mapping[str, Any], cfg: GateConfig, *, label: str = "report"
) -> dict[str, Any]:
    """The gate/1 verdict of ``report`` (a parsed backtest/1 document) under ``cfg``."""
    metrics = report.get("metrics")
    if not isinstance(metrics, dict):
        raise InputError(f'{label}: no "metrics" object in the report')
    return build_verdict(report, check_rules(metrics, cfg, label=label))


# -- the receipt: the verdict a model dir carries, naming the exact model it judged ---------


def model_identity(model_dir: Path, manifest: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a verdict names of the model it judged: the version the live loop reports (the
    hash of the model files), the manifest's own sha256 (which lists every file's hash) and
    the hash of its out-of-sample predictions. ``manifest``: already read and checked."""
    from tradekit.contracts import file_hash
    from tradekit.models import manifest as mf

    doc = manifest if manifest is not None else mf.read(model_dir)
    oos = doc.get("oos_predictions")
    return {
        "path": str(model_dir),
        "version": mf.files_version(doc["files"]),
        "manifest_sha256": file_hash(model_dir / mf.MANIFEST),
        "oos_predictions_sha256": oos.get("sha256") if isinstance(oos, dict) else None,
    }


def _tie(report: Mapping[str, Any], model: Mapping[str, Any], label: str) -> None:
    """The report must come from this model's out-of-sample predictions: a verdict on
    another model's backtest would vouch for a model nobody tested."""
    where = model["path"]
    want = model["oos_predictions_sha256"]
    if not want:
        raise InputError(
            f"{where}: the manifest names no out-of-sample predictions, so no backtest can be "
            "tied to this model"
        )
    inputs = report.get("inputs")
    preds = inputs.get("predictions") if isinstance(inputs, dict) else None
    got = preds.get("sha256") if isinstance(preds, dict) else None
    if got != want:
        raise InputError(
            f"{label}: made from predictions {got or '(not named)'}, not {where}'s out-of-sample "
            f"predictions ({want}): backtest {where}/oos_predictions.parquet, then gate that"
        )


def gate_file(
    path: str,
    cfg: GateConfig,
    *,
    model_dir: Path | None = None,
    sweep: tuple[Path, float, float] | None = None,
) -> dict[str, Any]:
    """Read a backtest/1 report (``-`` = stdin) and judge it; the verdict names the report
    and, with ``model_dir``, the model (whose backtest the report must be). ``sweep`` =
    (SWEEP_DIR, min DSR, max PBO): the report must be that sweep's chosen trial, and its
    Sharpe ratio is deflated by the sweep's own trial count (``tradekit.sweep.judge``)."""
    from tradekit.contracts import BACKTEST_SCHEMA, file_hash, read_json

    model = model_identity(model_dir) if model_dir is not None else None
    report = read_json(path, BACKTEST_SCHEMA)
    label = "stdin" if path == "-" else path
    if model is not None:
        _tie(report, model, label)
    metrics = report.get("metrics")
    if not isinstance(metrics, dict):
        raise InputError(f'{label}: no "metrics" object in the report')
    ref = {
        "path": None if path == "-" else path,
        "hash": None if path == "-" else file_hash(path),
    }
    rules = check_rules(metrics, cfg, label=label)
    sections: dict[str, Any] = {}
    if sweep is not None:
        from tradekit.sweep.judge import judge

        extra, sections["sweep"] = judge(report, sweep[0], sweep[1], sweep[2], label=label)
        rules += extra
    return build_verdict(report, rules, report_ref=ref, model=model, sections=sections)


def write_receipt(verdict: Mapping[str, Any], model_dir: Path) -> Path:
    """Store the verdict in the model dir it judged (atomically), for ``deploy`` to check."""
    from tradekit.contracts import write_json

    out = model_dir / RECEIPT
    write_json(verdict, out)
    return out


def receipt_problem(model_dir: Path, identity: Mapping[str, Any]) -> str | None:
    """Why ``model_dir`` may not be deployed (no verdict, a verdict of another model, a failed
    or inconsistent one), or None when it carries a passing verdict for exactly this model."""
    from tradekit.contracts import read_json

    path = model_dir / RECEIPT
    if not path.is_file():
        return f"no gate verdict ({RECEIPT})"
    try:
        doc = read_json(path, GATE_SCHEMA)
    except InputError as e:
        return f"unreadable gate verdict: {e}"
    judged = doc.get("model")
    if not isinstance(judged, dict):
        return f"{RECEIPT} names no model (made by gate without --model)"
    if (judged.get("version"), judged.get("manifest_sha256")) != (
        identity["version"],
        identity["manifest_sha256"],
    ):
        return (
            f"{RECEIPT} judged another model (version {judged.get('version')}), not this one "
            f"(version {identity['version']})"
        )
    rules = doc.get("rules")
    failed = doc.get("failed")
    consistent = (
        isinstance(rules, list)
        and bool(rules)
        and all(isinstance(r, dict) and r.get("passed") is True for r in rules)
        and failed == []
    )
    if doc.get("passed") is not True:
        names = ", ".join(map(str, failed)) if isinstance(failed, list) and failed else "?"
        return f"the model failed the gate ({names})"
    if not consistent:
        return f"{RECEIPT} says passed, but its rules do not all pass"
    return None


# -- the settings the receipt judged, against the settings that run -------------------------

JUDGED_SECTIONS = ("policy", "risk")


def judged_settings(model_dir: Path) -> dict[str, Any] | None:
    """The ``[policy]`` and ``[risk]`` of the backtest that the model's receipt judged; None
    without a readable receipt, or with one made before receipts carried them."""
    from tradekit.contracts import read_json

    path = model_dir / RECEIPT
    if not path.is_file():
        return None
    try:
        doc = read_json(path, GATE_SCHEMA)
    except InputError:
        return None
    cfg = doc.get("config")
    if not isinstance(cfg, dict):
        return None
    out = {k: cfg[k] for k in JUDGED_SECTIONS if isinstance(cfg.get(k), dict)}
    return out or None


def unjudged_settings(
    judged: Mapping[str, Any], running: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Each setting of ``running`` (section -> key -> value, as JSON reads them) whose value
    differs from the judged one: ``[policy] entry_threshold = 0.5 (judged: 0.7)``. A key the
    receipt does not name (an older tradekit's) is not compared."""
    out = []
    for section, values in running.items():
        want = judged.get(section)
        if not isinstance(want, dict):
            continue
        for key, value in values.items():
            if key in want and want[key] != value:
                out.append(f"[{section}] {key} = {_show(value)} (judged: {_show(want[key])})")
    return out


def _show(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
