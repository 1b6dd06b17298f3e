"""Where the loop's predictions come from: a predictions file (``run -p``) or the deployed
model on features of the newest candles."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from tradekit.live.history import History
    from tradekit.models.predict import LoadedModel


class FileSignals:
    """``--predictions P``: predictions/1 rows keyed by (symbol, candle)."""

    def __init__(self, path: str | Path, symbols: list[str]) -> None:
        from tradekit.contracts import PREDICTIONS, read_table

        df, _ = read_table(path, PREDICTIONS)
        ts = df["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
        self.table = {
            (str(s), int(t)): float(p)
            for s, t, p in zip(
                df["symbol"].to_numpy(), ts, df["prediction"].to_numpy(), strict=True
            )
        }
        self.symbols = symbols
        self.version = f"file:{Path(path).name}"

    def predict(self, t_ms: int, history: History) -> tuple[NDArray[np.float64], str]:
        import numpy as np

        vals = [self.table.get((s, t_ms), math.nan) for s in self.symbols]
        return np.asarray(vals, dtype=np.float64), ""


class ModelSignals:
    """The deployed model on features of the newest candles (the feature set of its manifest)."""

    def __init__(self, model: LoadedModel, symbols: list[str], timeframe: str) -> None:
        self.model = model
        self.symbols = symbols
        self.spec = spec_of(model)
        self.timeframe = timeframe
        self.version = model.version

    def predict(self, t_ms: int, history: History) -> tuple[NDArray[np.float64], str]:
        import numpy as np
        import pandas as pd

        from tradekit.features.build import build_features

        frame = history.frame()
        look = max(1, self.model.lookback)
        # Indicators run over the whole tail; only the rows the model reads are kept.
        feats, _ = build_features(
            frame, self.spec, self.timeframe, cost=0.0, labels=False, drop_warmup=False, last=look
        )
        ts = feats["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
        out = np.full(len(self.symbols), np.nan)
        rows = feats[(ts > t_ms - look * history.tf_ms) & (ts <= t_ms)]
        rows = rows[rows["symbol"].isin(self.symbols)].reset_index(drop=True)
        if not len(rows):
            return out, ""
        pred = self.model.predict(rows)
        pts = pd.DatetimeIndex(pred["timestamp"]).as_unit("ms").asi8
        at = {
            str(s): float(p)
            for s, t, p in zip(pred["symbol"], pts, pred["prediction"], strict=True)
            if t == t_ms
        }
        for i, s in enumerate(self.symbols):
            out[i] = at.get(s, math.nan)
        rts = rows["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
        # The decision's input hash: the feature values the model saw at this candle.
        digest = hashlib.sha256(
            rows.loc[rts == t_ms, self.model.features].to_numpy(dtype="float64").tobytes()
        ).hexdigest()[:16]
        return out, digest


def spec_of(model: LoadedModel) -> Any:
    """The model's feature set, from its manifest (trained with it, hash-checked)."""
    from tradekit.features.sets import spec_from_dict

    fs = model.feature_set
    if "spec" not in fs:
        raise InputError(
            f"{model.directory}/manifest.json: no feature set spec (trained by an older "
            "tradekit); retrain the model"
        )
    spec = spec_from_dict(fs["spec"], f"{model.directory}/manifest.json")
    if spec.hash != fs.get("hash"):
        raise InputError(
            f"{model.directory}/manifest.json: feature set spec does not match its hash"
        )
    return spec
