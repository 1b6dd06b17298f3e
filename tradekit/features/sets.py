"""Feature sets: a declarative, hashable spec of which features ``featurize`` builds.

A spec comes from ``[features]`` in the config (``set = "default"`` or ``"minimal"``, the
built-in sets) or from a feature-set TOML file with the same keys plus the indicator families to
include. Its ``hash`` (sha256 of a canonical JSON of :meth:`FeatureSpec.to_dict`) goes into the
features/2 metadata, so a model can tell which features it was trained on.

Stdlib only: the live loop and ``featurize`` load a spec without importing numpy or pandas.

Warm-up rule (per symbol, in base candles). Every family has a *need*: the rows before its
first trustworthy value. For windowed families it is the window (plus one for a difference);
for recursive ones (EMA, Wilder RSI/ATR/ADX, MACD) it is the rows until the weight left on the
seed value has fallen below a tolerance: ``ceil(ln(tol) / ln(1 - alpha))`` for one smoothing,
the smallest ``n`` with ``(1 + n*alpha) * (1 - alpha)**n <= tol`` for ADX's two chained
smoothings, and the sum of both EMAs for MACD's signal. ``featurize`` uses ``tol = 1e-3`` (about
3.5x the period for an EMA, 7x for Wilder's smoothing, the idea of TA-Lib's unstable period made
explicit) and reports the rows before every feature is defined as warm-up. A higher timeframe's
need counts in its own candles, so it costs ``need * (higher / base)`` base candles plus the
first complete bucket. :func:`tail_candles` uses the same needs with ``tol = 1e-12``: enough
history for the last row to equal the full-history value within 1e-9 relative.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import ConfigError
from tradekit.timeutil import timeframe_ms

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from tradekit.config import FeaturesConfig

# Bump when a feature's definition changes: it is part of the hash.
SPEC_VERSION = 1

FAMILIES: tuple[str, ...] = (
    "returns",  # close / close[k candles ago] - 1
    "ma",  # distance of the close to its SMA and EMA, as a fraction of price
    "rsi",  # Wilder RSI, 0..100
    "macd",  # MACD line, signal and histogram, divided by the close
    "atr",  # Wilder ATR / close
    "bbands",  # Bollinger position (+-1 at the bands) and width / middle band
    "adx",  # Wilder ADX and +DI - -DI, 0..100
    "obv",  # on-balance volume change over the window / volume traded in it, -1..1
    "volatility",  # standard deviation of one-candle log returns
    "range",  # high / low - 1 of the candle and of the window
    "volume",  # z-score of log(1 + volume) within the window
    "time",  # time of day and day of week on the unit circle
)
BUILTIN_SETS = ("default", "minimal")
_MINIMAL = ("returns", "ma", "rsi", "volatility", "range", "time")
_DEFAULT_CORR = ("returns", "rsi", "volatility")
WARMUP_TOL = 1e-3
TAIL_TOL = 1e-12


@dataclass(frozen=True)
class FeatureSpec:
    """The resolved description of a feature set; equal specs build equal features."""

    name: str
    periods: tuple[int, ...] = (10, 20, 50)
    include_timeframes: tuple[str, ...] = ("4h",)
    corr_symbols: tuple[str, ...] = ("BTC/USD",)
    label_horizon: int = 12
    barrier_width: float = 2.0
    indicators: tuple[str, ...] = FAMILIES
    htf_indicators: tuple[str, ...] = tuple(f for f in FAMILIES if f != "time")
    corr_indicators: tuple[str, ...] = _DEFAULT_CORR
    returns: tuple[int, ...] = (1, 3)
    macd: tuple[int, int, int] = (12, 26, 9)
    bb_std: float = 2.0
    barrier_vol_window: int = 50

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"version": SPEC_VERSION}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @property
    def hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    @property
    def return_horizons(self) -> tuple[int, ...]:
        return tuple(sorted(set(self.returns) | set(self.periods)))


# -- loading ---------------------------------------------------------------------------------

_FILE_KEYS: dict[str, str] = {
    "name": "str",
    "set": "str",
    "periods": "ints",
    "include_timeframes": "strs",
    "corr_symbols": "strs",
    "label_horizon": "int",
    "barrier_width": "float",
    "indicators": "families",
    "htf_indicators": "families",
    "corr_indicators": "families",
    "returns": "ints",
    "macd": "ints",
    "bb_std": "float",
    "barrier_vol_window": "int",
}


def load_spec(cfg: FeaturesConfig, path_or_name: str | None = None) -> FeatureSpec:
    """The spec named by ``path_or_name`` (else ``cfg.set``): a built-in set, whose parameters
    come from ``cfg``, or a TOML file whose keys override ``cfg``'s."""
    which = path_or_name or cfg.set
    base = FeatureSpec(
        name="default",
        periods=tuple(cfg.periods),
        include_timeframes=tuple(cfg.include_timeframes),
        corr_symbols=tuple(cfg.corr_symbols),
        label_horizon=cfg.label_horizon,
        barrier_width=cfg.barrier_width,
    )
    if which in BUILTIN_SETS:
        return _validated(_builtin(which, base), f"feature set {which!r}")
    path = Path(which)
    if path.suffix != ".toml" and not path.is_file():
        raise ConfigError(
            f"feature set {which!r}: not a built-in set ({', '.join(BUILTIN_SETS)}) and no "
            "such .toml file"
        )
    return _from_file(path, base)


def _builtin(name: str, base: FeatureSpec) -> FeatureSpec:
    if name == "minimal":  # no context: for short histories and quick experiments
        return dataclasses.replace(
            base,
            name="minimal",
            indicators=_MINIMAL,
            include_timeframes=(),
            corr_symbols=(),
        )
    return base


def spec_from_dict(d: dict[str, Any], where: str) -> FeatureSpec:
    """The inverse of :meth:`FeatureSpec.to_dict` (a model manifest keeps its feature set so
    that the live loop builds exactly the features the model was trained on)."""
    if d.get("version") != SPEC_VERSION:
        raise ConfigError(f"{where}: feature set spec version {d.get('version')}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(FeatureSpec):
        if f.name not in d:
            raise ConfigError(f"{where}: feature set spec lacks {f.name!r}")
        v = d[f.name]
        values[f.name] = tuple(v) if isinstance(v, list) else v
    return FeatureSpec(**values)


def _from_file(path: Path, base: FeatureSpec) -> FeatureSpec:
    try:
        with path.open("rb") as fh:
            raw: dict[str, Any] = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: feature-set file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    if set(raw) == {"features"} and isinstance(raw["features"], dict):
        raw = raw["features"]  # a [features] table copied from tradekit.toml
    values: dict[str, Any] = {}
    for key, value in raw.items():
        kind = _FILE_KEYS.get(key)
        if kind is None:
            known = ", ".join(sorted(_FILE_KEYS))
            raise ConfigError(f"{path}: unknown key {key!r} (known keys: {known})")
        values[key] = _coerce(value, kind, f"{path}: {key}")
    start = values.pop("set", "default")
    if start not in BUILTIN_SETS:
        raise ConfigError(f"{path}: set {start!r}: expected one of {', '.join(BUILTIN_SETS)}")
    spec = _builtin(start, base)
    values.setdefault("name", path.stem)
    return _validated(dataclasses.replace(spec, **values), str(path))


def _coerce(value: Any, kind: str, where: str) -> Any:
    def bad(what: str) -> ConfigError:
        return ConfigError(f"{where}: expected {what}, got {value!r}")

    if kind == "str":
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    if not isinstance(value, list):
        raise bad("a list")
    if kind == "ints":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise bad("a list of integers")
        return tuple(value)
    if not all(isinstance(v, str) for v in value):
        raise bad("a list of strings")
    if kind == "families":
        unknown = [v for v in value if v not in FAMILIES]
        if unknown:
            raise ConfigError(
                f"{where}: unknown indicator family {unknown[0]!r} (known: {', '.join(FAMILIES)})"
            )
        return tuple(f for f in FAMILIES if f in value)  # canonical order: one hash per set
    return tuple(value)


def _validated(spec: FeatureSpec, where: str) -> FeatureSpec:
    if not spec.periods or any(p < 2 for p in spec.periods):
        raise ConfigError(f"{where}: periods must be integers of at least 2, got {spec.periods}")
    if any(k < 1 for k in spec.returns):
        raise ConfigError(f"{where}: returns must be positive integers, got {spec.returns}")
    if len(spec.macd) != 3 or not 1 < spec.macd[0] < spec.macd[1] or spec.macd[2] < 2:
        raise ConfigError(
            f"{where}: macd must be [fast, slow, signal], fast < slow, got {spec.macd}"
        )
    for tf in spec.include_timeframes:
        try:
            timeframe_ms(tf)
        except Exception:
            raise ConfigError(f"{where}: include_timeframes: {tf!r} is not a timeframe") from None
    if spec.label_horizon < 1 or spec.barrier_vol_window < 2:
        raise ConfigError(f"{where}: label_horizon >= 1 and barrier_vol_window >= 2 required")
    if spec.barrier_width <= 0 or spec.bb_std <= 0:
        raise ConfigError(f"{where}: barrier_width and bb_std must be positive")
    return dataclasses.replace(
        spec,
        periods=tuple(sorted(set(spec.periods))),
        include_timeframes=tuple(dict.fromkeys(spec.include_timeframes)),
        corr_symbols=tuple(dict.fromkeys(spec.corr_symbols)),
        returns=tuple(sorted(set(spec.returns))),
    )


# -- columns ---------------------------------------------------------------------------------


def family_columns(family: str, spec: FeatureSpec) -> list[str]:
    """The columns one family adds, in order (no prefix)."""
    ps = spec.periods
    cols: dict[str, list[str]] = {
        "returns": [f"ret_{k}" for k in spec.return_horizons],
        "ma": [n for p in ps for n in (f"sma_dist_{p}", f"ema_dist_{p}")],
        "rsi": [f"rsi_{p}" for p in ps],
        "macd": ["macd", "macd_signal", "macd_hist"],
        "atr": [f"atr_{p}" for p in ps],
        "bbands": [n for p in ps for n in (f"bb_pos_{p}", f"bb_width_{p}")],
        "adx": [n for p in ps for n in (f"adx_{p}", f"di_diff_{p}")],
        "obv": [f"obv_{p}" for p in ps],
        "volatility": [f"vol_{p}" for p in ps],
        "range": ["hl_1", *(f"hl_{p}" for p in ps)],
        "volume": [f"volz_{p}" for p in ps],
        "time": ["tod_sin", "tod_cos", "dow_sin", "dow_cos"],
    }
    return cols[family]


WEEK_MS = 604_800_000
MONDAY_OFFSET_MS = 4 * 86_400_000  # 1970-01-05, the first Monday: weekly buckets start there


def bucket_offset(tf_ms: int) -> int:
    """Where a higher timeframe's buckets start: weeks on Mondays, the others at the epoch."""
    return MONDAY_OFFSET_MS if tf_ms % WEEK_MS == 0 else 0


def htf_prefix(tf: str) -> str:
    return f"tf{tf}_"


def ref_prefix(symbol: str) -> str:
    return "ref_" + re.sub(r"[^a-z0-9]+", "_", symbol.lower()).strip("_") + "_"


def feature_columns(spec: FeatureSpec, symbols: Sequence[str] | None = None) -> list[str]:
    """Feature column names in output order. Every symbol gets the same columns (the reference
    pairs included, on their own rows too), so ``symbols`` does not change the answer."""
    cols = [c for f in spec.indicators for c in family_columns(f, spec)]
    for tf in spec.include_timeframes:
        cols += [htf_prefix(tf) + c for f in spec.htf_indicators for c in family_columns(f, spec)]
    for sym in spec.corr_symbols:
        cols += [ref_prefix(sym) + c for f in spec.corr_indicators for c in family_columns(f, spec)]
    return cols


def label_columns() -> list[str]:
    return ["label_return", "label_class", "label_barrier"]


# -- warm-up and live tail -------------------------------------------------------------------


def converge_rows(alpha: float, tol: float) -> int:
    """Rows after which a recursive smoothing's seed weighs less than ``tol``."""
    return math.ceil(math.log(tol) / math.log1p(-alpha))


def converge_rows2(alpha: float, tol: float) -> int:
    """The same for two chained smoothings of factor ``alpha`` (Wilder's ADX)."""
    n = converge_rows(alpha, tol)
    while (1 + n * alpha) * (1 - alpha) ** n > tol:
        n += max(1, n // 50)
    return n


def family_need(family: str, spec: FeatureSpec, tol: float) -> int:
    """Leading rows (in the family's own timeframe) before its values are trustworthy."""
    pmax = max(spec.periods)
    if family == "returns":
        return max(spec.return_horizons)
    if family == "ma":
        return max(max(p - 1, converge_rows(2 / (p + 1), tol)) for p in spec.periods)
    if family in ("rsi", "atr"):
        return 1 + max(converge_rows(1 / p, tol) for p in spec.periods)
    if family == "adx":
        return 1 + max(converge_rows2(1 / p, tol) for p in spec.periods)
    if family == "macd":
        _, slow, sig = spec.macd
        return converge_rows(2 / (slow + 1), tol) + converge_rows(2 / (sig + 1), tol)
    if family in ("obv", "volatility"):
        return pmax
    if family in ("bbands", "range", "volume"):
        return pmax - 1
    return 0


def _need(families: Iterable[str], spec: FeatureSpec, tol: float) -> int:
    return max((family_need(f, spec, tol) for f in families), default=0)


def higher_timeframes(spec: FeatureSpec, timeframe: str) -> list[tuple[str, int]]:
    """(name, ratio to the base timeframe) of each higher timeframe; ConfigError if one is not a
    whole multiple above the base."""
    base = timeframe_ms(timeframe)
    out = []
    for tf in spec.include_timeframes:
        ms = timeframe_ms(tf)
        if ms <= base or ms % base:
            raise ConfigError(
                f"[features] include_timeframes: {tf} is not a whole multiple above the input's "
                f"timeframe {timeframe}; drop it or use a longer one"
            )
        out.append((tf, ms // base))
    return out


def _candles(spec: FeatureSpec, timeframe: str, tol: float) -> int:
    need = _need(spec.indicators, spec, tol)
    for _, ratio in higher_timeframes(spec, timeframe):
        # +2 buckets: the partial one at the start of the window and the forming one at its end
        need = max(need, (_need(spec.htf_indicators, spec, tol) + 2) * ratio)
    if spec.corr_symbols:
        need = max(need, _need(spec.corr_indicators, spec, tol))
    return need + 1


def warmup_candles(spec: FeatureSpec, timeframe: str) -> int:
    """How many leading candles per symbol ``featurize`` drops as warm-up: an upper bound for
    a contiguous series, within a few candles (where the series starts in a higher-timeframe
    bucket)."""
    return _candles(spec, timeframe, WARMUP_TOL)


def tail_candles(spec: FeatureSpec, timeframe: str) -> int:
    """Most-recent base candles per symbol that the live loop must pass so that the features of
    the last row equal the full-history computation within 1e-9 relative."""
    return _candles(spec, timeframe, TAIL_TOL) + 8  # a few rows of slack for gaps at the edge
