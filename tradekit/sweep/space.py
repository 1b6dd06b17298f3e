"""SPACE.toml: what a sweep searches, what it maximises and what a trial must satisfy.

```toml
objective = "sortino"            # sharpe, sortino, calmar, profit_factor, or "mix"
[mix]                            # objective = "mix": a weighted sum of report metrics
sharpe = 1.0
calmar = 0.5
[constraints]                    # min_<metric> / max_<metric> of the backtest/1 metrics
min_trades = 30
max_drawdown = 0.25
[params]                         # "section.key" of [policy], [risk] (and [model] with --features)
"policy.entry_threshold" = { low = 0.0, high = 0.01 }             # float range
"policy.stoploss"        = { choices = [0.0, 0.02, 0.05] }        # categorical
"risk.max_open_positions" = { low = 1, high = 5, step = 1 }       # int range (int key)
"model.learning_rate"    = { low = 0.01, high = 0.3, log = true } # log scale
```

Every value a space can produce is checked against the config section it lands in (the same
checks as tradekit.toml) before the sweep starts, so a trial never fails on a bad config.
An undefined objective metric (a Sharpe ratio without variance, a Sortino ratio without a
losing candle) makes the trial infeasible; a profit factor without a losing trade counts as
``PF_CAP``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradekit.config import (
    ModelConfig,
    PolicyConfig,
    RiskConfig,
    with_overrides,
)
from tradekit.errors import InputError, UsageError

OBJECTIVES = ("sharpe", "sortino", "calmar", "profit_factor", "mix")
PF_CAP = 100.0  # a profit factor with no losing trade, for ranking
SEARCHABLE = {"policy": PolicyConfig, "risk": RiskConfig, "model": ModelConfig}
# [model] keys that do not change what a trial learns, or that the sweep sets itself.
NOT_SEARCHABLE = {("model", "device"), ("model", "threads"), ("model", "seed")}
_TOP_KEYS = {"objective", "mix", "constraints", "params", "pbo_blocks"}


@dataclass(frozen=True)
class Param:
    """One searched key: a range (``low``..``high``, optional ``step``/``log``) or ``choices``."""

    name: str  # "policy.stoploss"
    section: str
    key: str
    kind: str  # "float", "int" or "categorical"
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def grid(self) -> list[Any] | None:
        """Every value, for the grid sampler (None: a continuous range)."""
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None:
            return None
        assert self.low is not None and self.high is not None
        n = math.floor((self.high - self.low) / self.step + 1e-9) + 1
        vals = [self.low + i * self.step for i in range(n)]
        return [int(v) for v in vals] if self.kind == "int" else [float(v) for v in vals]


@dataclass(frozen=True)
class Space:
    objective: str
    mix: dict[str, float]
    constraints: dict[str, float]
    params: tuple[Param, ...]
    pbo_blocks: int
    source: dict[str, Any]  # the file as read, for sweep.json and the fingerprint

    @property
    def model_params(self) -> bool:
        return any(p.section == "model" for p in self.params)

    def digest(self) -> str:
        text = json.dumps(self.source, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def value(self, metrics: dict[str, Any]) -> float | None:
        """The objective of a trial's metrics (None: undefined)."""
        if self.objective == "mix":
            total = 0.0
            for k, w in self.mix.items():
                v = _metric(metrics, k)
                if v is None:
                    return None
                total += w * v
            return total
        return _metric(metrics, self.objective)

    def violations(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Per constraint, how far the trial misses it (<= 0: satisfied), relative to the
        threshold's size so that trades and drawdowns weigh alike in the sampler."""
        out: dict[str, float] = {}
        for name, threshold in self.constraints.items():
            kind, metric = constraint_of(name)
            v = _metric(metrics, metric)
            scale = max(abs(threshold), 1e-9)
            if v is None:
                out[name] = 1.0
            elif kind == "min":
                out[name] = (threshold - v) / scale
            else:
                out[name] = (v - threshold) / scale
        return out


def constraint_of(name: str) -> tuple[str, str]:
    """("min" or "max", metric) of a constraint key: ``min_trades`` is trades >= x,
    ``max_drawdown`` (a metric whose name says its bound) is max_drawdown <= x."""
    if name == "max_drawdown":
        return "max", name
    return name[:3], name[4:]


def _metric(metrics: dict[str, Any], key: str) -> float | None:
    v = metrics.get(key)
    if v is None and key == "profit_factor" and (metrics.get("trades") or 0) > 0:
        return PF_CAP
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


METRIC_KEYS = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "probabilistic_sharpe",
    "max_drawdown",
    "trades",
    "win_rate",
    "profit_factor",
    "expectancy",
    "expectancy_pct",
    "exposure",
    "fees_paid",
    "final_equity",
)


def load_space(path: str | Path, *, features: bool) -> Space:
    """Read and check SPACE.toml; ``features``: [model] keys may be searched."""
    label = str(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{label}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{label}: cannot read: {e}") from None
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise InputError(f"{label}: unknown key {unknown[0]!r} (expected {sorted(_TOP_KEYS)})")
    objective = raw.get("objective", "sharpe")
    if objective not in OBJECTIVES:
        raise InputError(f"{label}: objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    mix = _weights(raw.get("mix", {}), label)
    if objective == "mix" and not mix:
        raise InputError(f'{label}: objective "mix" needs a [mix] table of metric = weight')
    if objective != "mix" and mix:
        raise InputError(f'{label}: [mix] is only read with objective = "mix"')
    constraints = _constraints(raw.get("constraints", {}), label)
    blocks = raw.get("pbo_blocks", 16)
    if not isinstance(blocks, int) or isinstance(blocks, bool) or blocks < 2 or blocks % 2:
        raise InputError(f"{label}: pbo_blocks must be an even integer >= 2, got {blocks!r}")
    table = raw.get("params")
    if not isinstance(table, dict) or not table:
        raise InputError(f'{label}: [params] must name at least one key, e.g. "policy.stoploss"')
    params = tuple(_param(name, spec, label, features) for name, spec in table.items())
    return Space(objective, mix, constraints, params, blocks, raw)


def _weights(table: Any, label: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise InputError(f"{label}: [mix] must be a table of metric = weight")
    out = {}
    for k, w in table.items():
        if k not in METRIC_KEYS:
            raise InputError(f"{label}: [mix] {k}: not a metric ({', '.join(METRIC_KEYS)})")
        if isinstance(w, bool) or not isinstance(w, int | float):
            raise InputError(f"{label}: [mix] {k}: weight must be a number, got {w!r}")
        out[k] = float(w)
    return out


def _constraints(table: Any, label: str) -> dict[str, float]:
    if not isinstance(table, dict):
        raise InputError(f"{label}: [constraints] must be a table")
    out = {}
    for k, v in table.items():
        kind, metric = constraint_of(k)
        if kind not in ("min", "max") or k[3:4] != "_" or metric not in METRIC_KEYS:
            raise InputError(
                f"{label}: [constraints] {k}: expected min_<metric> or max_<metric> with a "
                f"metric of {', '.join(METRIC_KEYS)}"
            )
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InputError(f"{label}: [constraints] {k}: expected a number, got {v!r}")
        out[k] = float(v)
    return out


def _param(name: str, spec: Any, label: str, features: bool) -> Param:
    where = f'{label}: [params] "{name}"'
    section, _, key = name.partition(".")
    if section not in SEARCHABLE or not key:
        raise InputError(f"{where}: expected policy.KEY, risk.KEY or model.KEY")
    if section == "model" and not features:
        raise InputError(f"{where}: [model] keys need --features (a retrain per trial)")
    types_ = typing.get_type_hints(SEARCHABLE[section])
    if key not in types_:
        raise InputError(f"{where}: [{section}] has no key {key!r}")
    if (section, key) in NOT_SEARCHABLE:
        raise InputError(f"{where}: not searchable (the sweep sets it per run or per trial)")
    tp = types_[key]
    if tp not in (int, float, bool, str):
        raise InputError(f"{where}: a {typing.get_origin(tp).__name__} key is not searchable")
    if not isinstance(spec, dict):
        raise InputError(f"{where}: expected {{ low = .., high = .. }} or {{ choices = [..] }}")
    extra = sorted(set(spec) - {"low", "high", "step", "log", "choices"})
    if extra:
        raise InputError(f"{where}: unknown field {extra[0]!r}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
            raise InputError(f"{where}: choices must be a non-empty list, alone")
        values = tuple(_typed(c, tp, where) for c in choices)
        p = Param(name, section, key, "categorical", choices=values)
    else:
        if tp not in (int, float):
            raise InputError(f"{where}: a {tp.__name__} key takes choices = [...]")
        if "low" not in spec or "high" not in spec:
            raise InputError(f"{where}: a range needs low and high")
        low, high = _typed(spec["low"], tp, where), _typed(spec["high"], tp, where)
        step = spec.get("step")
        log = spec.get("log", False)
        if not isinstance(log, bool):
            raise InputError(f"{where}: log must be true or false")
        if step is not None:
            step = _typed(step, tp, where)
            if step <= 0:
                raise InputError(f"{where}: step must be > 0")
        if not low < high:
            raise InputError(f"{where}: low {low} must be below high {high}")
        if log and (low <= 0 or step is not None):
            raise InputError(f"{where}: a log range needs low > 0 and no step")
        kind = "int" if tp is int else "float"
        p = Param(name, section, key, kind, low=low, high=high, step=step, log=log)
    for v in p.grid() or [p.low, p.high]:
        check_value(section, key, v, where)
    return p


def _typed(v: Any, tp: type, where: str) -> Any:
    if tp is float and isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, tp) and not (tp is int and isinstance(v, bool)):
        return v
    raise InputError(f"{where}: {v!r} is not a {tp.__name__}")


_DEFAULTS: dict[str, Any] = {
    "policy": PolicyConfig(),
    "risk": RiskConfig(),
    "model": ModelConfig(),
}


def check_value(section: str, key: str, value: Any, where: str) -> None:
    """The config's own check of one value (a fraction, > 0, one of ...)."""
    try:
        with_overrides(_DEFAULTS[section], section, {key: (key, value)})
    except UsageError as e:
        raise InputError(f"{where}: {value!r}: {str(e).partition(':')[2].strip()}") from None


def apply(
    policy: PolicyConfig,
    risk: RiskConfig,
    model: ModelConfig,
    params: dict[str, Any],
) -> tuple[PolicyConfig, RiskConfig, ModelConfig]:
    """The sections with a trial's values laid over them."""
    by: dict[str, dict[str, Any]] = {"policy": {}, "risk": {}, "model": {}}
    for name, v in params.items():
        section, _, key = name.partition(".")
        by[section][key] = v
    return (
        dataclasses.replace(policy, **by["policy"]),
        dataclasses.replace(risk, **by["risk"]),
        dataclasses.replace(model, **by["model"]),
    )
