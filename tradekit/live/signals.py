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
    from tradekit.models.loaded import LoadedModel


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
    """The deployed model on features of the newest candles (the feature set of its manifest).

    A one-row model (LightGBM) gets its features a candle at a time
    (``tradekit.features.incremental``: warmed once from the history, then O(1) per new candle,
    bit-identical to ``build_features``) and needs no pandas. A sequence model (LSTM,
    Transformer) reads a window of rows: it computes them over the history's tail."""

    def __init__(
        self,
        model: LoadedModel,
        symbols: list[str],
        timeframe: str,
        *,
        features_of: ModelSignals | None = None,
    ) -> None:
        self.model = model
        self.symbols = symbols
        self.spec = spec_of(model)
        self.timeframe = timeframe
        self.version = model.version
        self.incremental = model.lookback <= 1 and hasattr(model, "predict_rows")
        self._features: Any = None  # IncrementalFeatures, warmed at the first prediction
        self._fed: dict[str, float] = {}  # per symbol: the newest candle given to it
        # Another model's signals on the same feature set and symbols (a candidate beside the
        # live model): their features, computed once per candle, serve both.
        self._source = (
            features_of
            if features_of is not None
            and self.rowwise
            and features_of.rowwise
            and features_of.spec.hash == self.spec.hash
            and features_of.symbols == symbols
            and features_of.timeframe == timeframe
            else None
        )

    @property
    def rowwise(self) -> bool:
        """Features a candle at a time and one row per prediction (LightGBM models, and
        ensembles of them)."""
        return self.incremental and bool(self.model.rowwise)

    @property
    def shares_features(self) -> bool:
        return self._source is not None

    def predict(self, t_ms: int, history: History) -> tuple[NDArray[np.float64], str]:
        if not self.rowwise:
            return self._predict_batch(t_ms, history)
        import numpy as np

        feats = self.feed(history)
        out = np.full(len(self.symbols), np.nan)
        at = [feats.last_ms(s) == t_ms for s in self.symbols]
        if not any(at):
            return out, ""
        X = feats.matrix(self.model.features)[np.asarray(at)]
        syms = [s for s, ok in zip(self.symbols, at, strict=True) if ok]
        out[np.asarray(at)] = self.model.predict_rows(X.astype(np.float32), syms)
        # The decision's input hash: the feature values the model saw at this candle.
        order = np.argsort(np.asarray(syms, dtype=object))
        return out, hashlib.sha256(X[order].tobytes()).hexdigest()[:16]

    def feed(self, history: History) -> Any:
        """The incremental features, given every candle of the history they have not seen
        (a second call for the same candles gives nothing twice)."""
        if self._source is not None:
            return self._source.feed(history)
        import numpy as np

        from tradekit.features.incremental import IncrementalFeatures

        if self._features is None:
            from tradekit import jit

            self._features = IncrementalFeatures(self.spec, self.timeframe, self.symbols)
            for s in self._tracked():
                rows = history.rows.get(s)
                if rows is None or not len(rows):
                    continue
                if jit.ENABLED:
                    self._features.warm(s, _volume_filled(rows))
                else:
                    # Interpreted (the trading loop): step through the tail instead of loading
                    # the batch path's numba kernels; the same state, bit for bit.
                    for row in _volume_filled(rows):
                        self._features.update(s, row.tolist())
                self._fed[s] = float(rows[-1, 0])
            return self._features
        for s in self._tracked():
            rows = history.rows.get(s)
            fed = self._fed.get(s, -np.inf)
            if rows is None or not len(rows) or rows[-1, 0] <= fed:
                continue  # nothing new (the usual case of a second model on these features)
            new = rows[int(np.searchsorted(rows[:, 0], fed, side="right")) :]
            for row in _volume_filled(new):
                self._features.update(s, row.tolist())
            if len(new):
                self._fed[s] = float(new[-1, 0])
        return self._features

    def _tracked(self) -> list[str]:
        return list(dict.fromkeys((*self.symbols, *self.spec.corr_symbols)))

    def _predict_batch(self, t_ms: int, history: History) -> tuple[NDArray[np.float64], str]:
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
        digest = hashlib.sha256(
            rows.loc[rts == t_ms, self.model.features].to_numpy(dtype="float64").tobytes()
        ).hexdigest()[:16]
        return out, digest


def _volume_filled(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """An unknown volume (ccxt's None, kept as NaN) counts as zero, as the batch path does."""
    import numpy as np

    if not np.isnan(rows[:, 5]).any():
        return rows
    out = rows.copy()
    out[:, 5] = np.nan_to_num(out[:, 5])
    return out


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
