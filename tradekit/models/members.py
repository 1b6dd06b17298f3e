"""What an ensemble is made of: ``MEMBERS.toml`` (``train --members``) or ``[model.ensemble]``.

Stdlib only: the config check reads the same keys. The format::

    members = ["global", "per_symbol", "lstm"]   # built-in members by name, or tables:

    [[member]]
    name = "fast"            # unique: letters, digits, _ and -
    kind = "lightgbm"        # lightgbm, lstm or transformer
    per_symbol = false
    n_estimators = 100       # any hyperparameter of [model] (not windows, label, objective)

    [regime]                 # the rule-based regime classifier (tradekit.models.regime)
    vol_feature = ""         # "" = vol_P of the features, P the middle common period
    trend_feature = ""       # "" = ret_P for the same P
    high_vol_quantile = 0.8  # high volatility: vol above this quantile of the training window
    trend_threshold = 1.0    # trend: |ret_P| / (vol_P * sqrt(P)) above this

    [meta]                   # the stacking meta-learner (tradekit.models.stacking)
    shrink = 500.0           # weight of the prior, in rows (equal weights, then pooled)
    min_rows = 200           # a fold with fewer stacking rows combines with equal weights

Without members the default set is global and per-symbol LightGBM. Deep members need torch;
without it they are skipped with a note (``optional = false`` makes that an error).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradekit.errors import InputError

MEMBER_KINDS = ("lightgbm", "lstm", "transformer")
# The [model] keys a member may set for itself: the shape of its model, never the data or
# the fold structure, which every member must share for stacking to be out of sample.
PARAM_KEYS = {
    "n_estimators": int,
    "learning_rate": float,
    "num_leaves": int,
    "max_bin": int,
    "epochs": int,
    "batch_size": int,
    "seq_len": int,
    "hidden": int,
    "deep_learning_rate": float,
    "device": str,
    "seed": int,
}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class MemberSpec:
    name: str
    kind: str = "lightgbm"
    per_symbol: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    optional: bool = True  # a deep member without torch is skipped with a note

    @property
    def deep(self) -> bool:
        return self.kind != "lightgbm"

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "per_symbol": self.per_symbol,
            "params": dict(sorted(self.params.items())),
        }


BUILTIN = {
    "global": MemberSpec("global", "lightgbm", False),
    "per_symbol": MemberSpec("per_symbol", "lightgbm", True),
    "lstm": MemberSpec("lstm", "lstm", False),
    "transformer": MemberSpec("transformer", "transformer", False),
}
DEFAULT_MEMBERS = ("global", "per_symbol")


@dataclass(frozen=True)
class RegimeSpec:
    vol_feature: str = ""
    trend_feature: str = ""
    high_vol_quantile: float = 0.8
    trend_threshold: float = 1.0

    def as_json(self) -> dict[str, Any]:
        return {
            "vol_feature": self.vol_feature,
            "trend_feature": self.trend_feature,
            "high_vol_quantile": self.high_vol_quantile,
            "trend_threshold": self.trend_threshold,
        }


@dataclass(frozen=True)
class MetaSpec:
    shrink: float = 500.0
    min_rows: int = 200

    def as_json(self) -> dict[str, Any]:
        return {"shrink": self.shrink, "min_rows": self.min_rows}


@dataclass(frozen=True)
class EnsembleSpec:
    members: tuple[MemberSpec, ...]
    regime: RegimeSpec = RegimeSpec()
    meta: MetaSpec = MetaSpec()
    source: str = "default"

    def as_json(self) -> dict[str, Any]:
        return {
            "members": [m.as_json() for m in self.members],
            "regime": self.regime.as_json(),
            "meta": self.meta.as_json(),
        }


def _typed(value: Any, tp: type, where: str) -> Any:
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise InputError(f"{where}: expected an integer, got {value!r}")
    if not isinstance(value, tp):
        names = {int: "an integer", float: "a number", str: "a string", bool: "true/false"}
        raise InputError(f"{where}: expected {names[tp]}, got {value!r}")
    return value


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(f"{where}: expected a table, got {value!r}")
    return value


def _unknown(keys: Any, known: Any, where: str) -> None:
    extra = sorted(set(keys) - set(known))
    if extra:
        raise InputError(f"{where}: unknown key(s) {', '.join(extra)} (known: {', '.join(known)})")


def _member(raw: Any, where: str) -> MemberSpec:
    if isinstance(raw, str):
        if raw not in BUILTIN:
            raise InputError(
                f"{where}: unknown member {raw!r}; built-in members are {', '.join(BUILTIN)}, "
                "or describe one in a [[member]] table"
            )
        return BUILTIN[raw]
    doc = _table(raw, where)
    _unknown(doc, ("name", "kind", "per_symbol", "optional", *PARAM_KEYS), where)
    name = _typed(doc.get("name", ""), str, f"{where}.name")
    if not _NAME.match(name):
        raise InputError(f"{where}.name: {name!r} must be 1-40 letters, digits, _ or -")
    kind = _typed(doc.get("kind", "lightgbm"), str, f"{where}.kind")
    if kind not in MEMBER_KINDS:
        raise InputError(f"{where}.kind: {kind!r}: expected one of {', '.join(MEMBER_KINDS)}")
    params = {k: _typed(doc[k], PARAM_KEYS[k], f"{where}.{k}") for k in PARAM_KEYS if k in doc}
    return MemberSpec(
        name=name,
        kind=kind,
        per_symbol=_typed(doc.get("per_symbol", False), bool, f"{where}.per_symbol"),
        params=params,
        optional=_typed(doc.get("optional", True), bool, f"{where}.optional"),
    )


def parse(doc: Mapping[str, Any], where: str) -> EnsembleSpec:
    """The ensemble described by ``doc`` (MEMBERS.toml or [model.ensemble]); InputError naming
    ``where`` and the key on any problem."""
    _unknown(doc, ("members", "member", "regime", "meta"), where)
    raw: list[Any] = []
    if "members" in doc:
        if not isinstance(doc["members"], list):
            raise InputError(f"{where}members: expected a list of member names")
        raw += doc["members"]
    if "member" in doc:
        if not isinstance(doc["member"], list):
            raise InputError(f"{where}member: expected [[member]] tables")
        raw += doc["member"]
    members = tuple(
        _member(r, f"{where}member[{i}]") for i, r in enumerate(raw or list(DEFAULT_MEMBERS))
    )
    names = [m.name for m in members]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{where}members: name(s) {', '.join(dup)} given twice")
    if len(members) < 2:
        raise InputError(f"{where}members: an ensemble needs at least two members")
    reg = _table(doc.get("regime", {}), f"{where}regime")
    _unknown(reg, RegimeSpec.__dataclass_fields__, f"{where}regime")
    regime = RegimeSpec(
        vol_feature=_typed(reg.get("vol_feature", ""), str, f"{where}regime.vol_feature"),
        trend_feature=_typed(reg.get("trend_feature", ""), str, f"{where}regime.trend_feature"),
        high_vol_quantile=_typed(
            reg.get("high_vol_quantile", 0.8), float, f"{where}regime.high_vol_quantile"
        ),
        trend_threshold=_typed(
            reg.get("trend_threshold", 1.0), float, f"{where}regime.trend_threshold"
        ),
    )
    if not 0.0 < regime.high_vol_quantile < 1.0:
        raise InputError(f"{where}regime.high_vol_quantile: must be between 0 and 1")
    if regime.trend_threshold <= 0:
        raise InputError(f"{where}regime.trend_threshold: must be > 0")
    met = _table(doc.get("meta", {}), f"{where}meta")
    _unknown(met, MetaSpec.__dataclass_fields__, f"{where}meta")
    meta = MetaSpec(
        shrink=_typed(met.get("shrink", 500.0), float, f"{where}meta.shrink"),
        min_rows=_typed(met.get("min_rows", 200), int, f"{where}meta.min_rows"),
    )
    if meta.shrink <= 0 or meta.min_rows < 1:
        raise InputError(f"{where}meta: shrink must be > 0 and min_rows >= 1")
    return EnsembleSpec(members, regime, meta, source=where.rstrip(": ") or "default")


def load(path: str | Path | None, section: Mapping[str, Any]) -> EnsembleSpec:
    """The ensemble of ``--members PATH`` if given, else of ``[model.ensemble]`` (``section``),
    else the default set."""
    if path is None:
        return parse(section, "[model.ensemble] " if section else "")
    p = Path(path)
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{p}: no such members file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{p}: cannot read the members file ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{p}: not valid TOML: {e}") from None
    return parse(doc, f"{p}: ")


def check_section(section: Mapping[str, Any]) -> str | None:
    """The config check of ``[model] ensemble``: the problem, or None."""
    if not section:
        return None
    try:
        parse(section, "")
    except InputError as e:
        return str(e)
    return None
