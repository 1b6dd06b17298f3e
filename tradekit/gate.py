"""The quality gate: a backtest/1 report against thresholds -> a gate/1 verdict.

Pure and light (stdlib only): the verdict is a function of the report's metrics and the rules,
so the weekly job can run ``tradekit gate report.json && tradekit deploy ...`` cheaply.

A rule whose metric is missing from the report is a bad report (exit 3), not a failed model.
A metric that is present but null (undefined, e.g. a Sortino ratio with no losing candle or a
profit factor with no losing trade) fails its rule unless the rule says how to read it: a null
profit factor with at least one trade means "no losses" and passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tradekit.config import GateConfig
from tradekit.errors import InputError

GATE_SCHEMA = "gate/1"


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


def evaluate(
    report: Mapping[str, Any], cfg: GateConfig, *, label: str = "report"
) -> dict[str, Any]:
    """The gate/1 verdict of ``report`` (a parsed backtest/1 document) under ``cfg``."""
    metrics = report.get("metrics")
    if not isinstance(metrics, dict):
        raise InputError(f'{label}: no "metrics" object in the report')
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
    failed = [r["rule"] for r in results if not r["passed"]]
    return {
        "schema": GATE_SCHEMA,
        "passed": not failed,
        "failed": failed,
        "rules": results,
        "span": report.get("span"),
        "inputs": report.get("inputs"),
    }


def gate_file(path: str, cfg: GateConfig) -> dict[str, Any]:
    """Read a backtest/1 report (``-`` = stdin) and judge it; the verdict names the report."""
    from tradekit.contracts import BACKTEST_SCHEMA, file_hash, read_json

    report = read_json(path, BACKTEST_SCHEMA)
    label = "stdin" if path == "-" else path
    verdict = evaluate(report, cfg, label=label)
    verdict["report"] = {
        "path": None if path == "-" else path,
        "hash": None if path == "-" else file_hash(path),
    }
    return verdict
