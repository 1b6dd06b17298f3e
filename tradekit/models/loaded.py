"""A model directory loaded for prediction: :class:`LoadedModel`, the one surface that
``predict``, ``run`` and the live loop use (an ensemble's loader returns a subclass of it).
Built by :func:`tradekit.models.predict.load_model`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError
from tradekit.models import manifest as mf
from tradekit.models.base import Model, Panel

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd


def _names(cols: list[str], most: int = 12) -> str:
    """Column names for a one-line error: the first ``most`` and how many more."""
    shown = ", ".join(cols[:most])
    return shown if len(cols) <= most else f"{shown}, ... (+{len(cols) - most} more)"


class LoadedModel:
    """A model directory loaded for prediction."""

    def __init__(self, directory: Path, manifest: dict[str, Any], models: dict[str, Model]):
        self.directory = directory
        self.manifest = manifest
        self.models = models
        self.features: list[str] = list(manifest["features"])
        self.kind: str = manifest["kind"]
        self.objective: str = manifest["objective"]
        self.timeframe: str = manifest["timeframe"]
        self.feature_set: dict[str, Any] = dict(manifest["feature_set"])
        self.per_symbol = mf.GLOBAL not in models
        self._global = models.get(mf.GLOBAL)
        self._positions: dict[
            tuple[Any, ...], npt.NDArray[np.intp]
        ] = {}  # frame columns -> feature indices

    @property
    def lookback(self) -> int:
        """Rows of history per symbol one prediction needs: 1 for LightGBM, seq_len for the
        sequence models (rows without a full window get no prediction)."""
        return int(self.manifest["lookback"])

    @property
    def rowwise(self) -> bool:
        """One feature row per prediction (:meth:`predict_rows`, no pandas): the live loop's
        path, fed a candle at a time by the incremental features."""
        return self.kind == "lightgbm"

    @property
    def version(self) -> str:
        """Short hash of the model files: the ledger records which model made a decision."""
        return mf.files_version(self.manifest["files"])

    def check_meta(self, meta: Mapping[str, Any], label: str) -> None:
        """A features/1 file's metadata must match the model: same feature columns, feature
        set hash and timeframe."""
        have = list(meta.get("features") or [])
        missing = [c for c in self.features if c not in have]
        extra = [c for c in have if c not in self.features]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)}: {_names(missing)}")
            if extra:
                parts.append(f"extra {len(extra)}: {_names(extra)}")
            raise InputError(
                f"{label}: feature columns differ from the model's ({self.directory}): "
                + "; ".join(parts)
            )
        want_hash = self.feature_set.get("hash")
        if meta.get("feature_set_hash") != want_hash:
            raise InputError(
                f"{label}: feature set hash {meta.get('feature_set_hash')} differs from the "
                f"model's {want_hash} (feature set {self.feature_set.get('name')}); featurize "
                "with the model's feature set"
            )
        if meta.get("timeframe") != self.timeframe:
            raise InputError(
                f"{label}: timeframe {meta.get('timeframe')} differs from the model's "
                f"{self.timeframe}"
            )

    def _matrix(self, frame: pd.DataFrame) -> npt.NDArray[np.float32]:
        """The manifest's feature columns of ``frame`` as a float32 matrix (as in training),
        in manifest order."""
        import numpy as np

        key = tuple(frame.columns.tolist())  # tolist: iterating a str Index is 7x slower
        idx = self._positions.get(key)
        if idx is None:
            missing = [c for c in self.features if c not in frame.columns]
            if missing:
                raise InputError(f"features: missing column(s) {', '.join(missing)}")
            idx = np.array([frame.columns.get_loc(c) for c in self.features], dtype=np.intp)
            if len(self._positions) > 16:
                self._positions.clear()
            self._positions[key] = idx
        if len(frame) <= 8:
            # The live path: one row through an object array is ~10x faster than pandas
            # column selection; the values are the same Python floats.
            try:
                return np.asarray(frame.to_numpy()[:, idx], dtype=np.float32)
            except (TypeError, ValueError):
                pass
        X = np.empty((len(frame), len(idx)), dtype=np.float32)
        for j, i in enumerate(idx):
            X[:, j] = frame.iloc[:, i].to_numpy(dtype=np.float64)
        return X

    def _symbols_without_model(self, symbols: Any) -> None:
        unknown = sorted({str(s) for s in symbols} - set(self.models))
        if unknown:
            raise InputError(
                f"no model for symbol(s) {', '.join(unknown)} in {self.directory} "
                "(trained per symbol on other symbols)"
            )

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """``symbol``, ``timestamp``, ``prediction`` for the rows of ``features`` (any extra
        columns ignored), in the input's order; rows without a full window of history (deep
        models) are left out."""
        import pandas as pd

        X = self._matrix(features)
        symbols = features["symbol"].to_numpy()
        if not len(X):
            return pd.DataFrame(
                {"symbol": symbols, "timestamp": features["timestamp"].array, "prediction": []}
            )
        if self.kind == "lightgbm":
            pred = self.predict_rows(X, symbols)
            return pd.DataFrame(
                {
                    "symbol": symbols,
                    "timestamp": features["timestamp"].to_numpy(),
                    "prediction": pred,
                }
            )
        return self._predict_windows(features, X, symbols)

    def predict_rows(self, X: npt.NDArray[np.float32], symbols: Any) -> npt.NDArray[np.float64]:
        """A LightGBM model's predictions for a feature matrix (manifest column order), one
        row per entry of ``symbols`` (no pandas: the live loop's path)."""
        import numpy as np

        if self._global is not None:
            return self._global.predict_matrix(X)  # type: ignore[attr-defined,no-any-return]
        self._symbols_without_model(set(symbols))
        pred = np.empty(len(X))
        syms = np.asarray(symbols, dtype=object)
        for s in set(syms.tolist()):
            mask = syms == s
            pred[mask] = self.models[str(s)].predict_matrix(X[mask])  # type: ignore[attr-defined]
        return pred

    def _predict_windows(
        self, features: pd.DataFrame, X: npt.NDArray[np.float32], symbols: Any
    ) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        ts = np.asarray(features["timestamp"].dt.as_unit("ms").astype("int64"), dtype=np.int64)
        codes_raw, uniques = pd.factorize(symbols, sort=True)
        codes = np.asarray(codes_raw, dtype=np.int64)
        order = np.lexsort((ts, codes))
        sc = codes[order]
        starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]]) if len(sc) else sc
        counts = np.diff(np.r_[starts, len(sc)])
        pos = np.arange(len(sc), dtype=np.int64) - np.repeat(starts, counts)
        panel = Panel(X=X[order], y=np.full(len(X), np.nan), pos=pos, features=self.features)
        sorted_pred = np.full(len(X), np.nan)
        if self._global is not None:
            sorted_pred = self._global.predict(panel, np.arange(len(X), dtype=np.int64))
        else:
            self._symbols_without_model(set(uniques))
            for i, s in enumerate(uniques):
                rows = np.flatnonzero(sc == i).astype(np.int64)
                sorted_pred[rows] = self.models[str(s)].predict(panel, rows)
        pred = np.empty(len(X))
        pred[order] = sorted_pred
        keep = ~np.isnan(pred)
        return pd.DataFrame(
            {
                "symbol": symbols[keep],
                "timestamp": features["timestamp"].to_numpy()[keep],
                "prediction": pred[keep],
            }
        )
