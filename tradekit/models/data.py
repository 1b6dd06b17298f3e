"""A features/2 (or features/1) file as training arrays, read column by column, without pandas.

Each feature column is decoded from Parquet on its own straight into one float32 matrix, so
reading never holds the whole table twice (Arrow + pandas + matrix): for 1M rows x 60 features
that is 240 MB instead of ~1.4 GB. The keys are read as Arrow arrays (symbols dictionary-coded,
times as int64 ms) and checked here as ``contracts.validate_frame`` checks them (no empty key,
no duplicate, sorted): training never loads pandas (about 45 MB; see ``models.lgbm``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.arrays import KEYS, read_keys, to_numpy
from tradekit.contracts import FEATURES, LABEL_PREFIX, open_parquet
from tradekit.errors import InputError
from tradekit.models.base import Panel

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd


@dataclass
class TrainingData:
    """A features/2 file as arrays, rows sorted by symbol then time."""

    path: Path
    meta: dict[str, Any]
    panel: Panel
    label: str
    label_values: npt.NDArray[np.float64]  # the raw label (metrics use it)
    symbols: list[str]
    codes: npt.NDArray[np.int64]  # symbol index of each row
    ts: npt.NDArray[np.int64]  # ms
    times: npt.NDArray[np.int64]  # unique timestamps, sorted: the walk-forward axis
    tidx: npt.NDArray[np.int64]  # each row's index on that axis
    horizon: int

    @functools.cached_property
    def keys(self) -> pd.DataFrame:
        """symbol, timestamp as a frame, made on first use (it loads pandas: training itself
        reads the arrays)."""
        import numpy as np
        import pandas as pd

        return pd.DataFrame(
            {
                "symbol": np.asarray(self.symbols, dtype=object)[self.codes],
                "timestamp": pd.to_datetime(self.ts, unit="ms", utc=True).as_unit("ms"),
            }
        )


def default_label(objective: str) -> str:
    return "label_class" if objective == "classification" else "label_return"


def load_features(path: str | Path, label: str, objective: str) -> TrainingData:
    """Read and check a features/2 file for training: feature columns from the metadata, a
    label with values, no label among the features."""
    import numpy as np

    p = Path(path)
    pf, meta = open_parquet(p, FEATURES)
    schema = pf.schema_arrow
    names = schema.names
    features = meta.get("features")
    if not isinstance(features, list) or not features:
        raise InputError(f"{p}: metadata lists no feature columns")
    missing = [c for c in features if c not in names]
    if missing:
        raise InputError(f"{p}: feature column(s) {', '.join(missing)} listed but missing")
    leaked = [c for c in features if str(c).startswith(LABEL_PREFIX)]
    if leaked:
        raise InputError(f"{p}: label column(s) {', '.join(leaked)} listed as features")
    label = label or default_label(objective)
    if label not in names:
        have = ", ".join(c for c in names if c.startswith(LABEL_PREFIX)) or "none"
        raise InputError(f"{p}: no label column {label} (labels: {have})")
    try:
        horizon = int(meta["label_horizon"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{p}: label_horizon metadata is not an integer") from None
    codes, symbols, ts = read_keys(pf.read(columns=KEYS, use_threads=False), str(p))
    y = _column(pf, label, np.float64)
    if np.isnan(y).all():
        raise InputError(f"{p}: label {label} has no values (all NaN)")
    X = np.empty((len(ts), len(features)), dtype=np.float32)
    for j, c in enumerate(features):
        X[:, j] = _column(pf, c, np.float32)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    counts = np.diff(np.r_[starts, len(codes)])
    pos = np.arange(len(codes), dtype=np.int64) - np.repeat(starts, counts)
    times, tidx = np.unique(ts, return_inverse=True)
    target = y if objective == "regression" else np.where(np.isnan(y), np.nan, (y > 0) * 1.0)
    return TrainingData(
        path=p,
        meta=meta,
        panel=Panel(X=X, y=target, pos=pos, features=list(features)),
        label=label,
        label_values=y,
        symbols=symbols,
        codes=codes,
        ts=ts,
        times=times.astype(np.int64),
        tidx=tidx.astype(np.int64),
        horizon=horizon,
    )


def _column(pf: Any, name: str, dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """One float column as numpy, nulls as NaN."""
    return to_numpy(pf.read(columns=[name], use_threads=False).column(0), dtype)
