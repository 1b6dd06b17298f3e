"""An ensemble directory loaded for prediction: the same surface as any
:class:`~tradekit.models.predict.LoadedModel` (``predict``, ``version``, ``features``,
``lookback``, ``feature_set``, ``check_meta``), so ``predict``, ``run`` and the live loop
treat it like one model.

A prediction asks every member for its prediction of the rows, reads the regime from the
rows' own features, and combines them with the meta-learner of that regime. A row some member
cannot predict (a sequence member without a full window yet) gets no prediction, as a
sequence model leaves such rows out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.contracts import read_json
from tradekit.errors import InputError
from tradekit.models.loaded import LoadedModel
from tradekit.models.regime import RegimeModel
from tradekit.models.stacking import MetaModel

SCHEMA = "ensemble/1"
FILE = "ensemble.json"  # the regime model and the meta-learner's weights

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd


class LoadedEnsemble(LoadedModel):
    def __init__(
        self,
        directory: Path,
        manifest: dict[str, Any],
        members: dict[str, LoadedModel],
        regime: RegimeModel,
        meta: MetaModel,
    ) -> None:
        super().__init__(directory, manifest, {})
        self.members = members
        self.names = list(meta.members)
        self.regime = regime
        self.meta = meta
        self.per_symbol = any(m.per_symbol for m in members.values())

    def _symbols_without_model(self, symbols: Any) -> None:
        for m in self.members.values():
            if m.per_symbol:
                m._symbols_without_model(symbols)

    def member_predictions(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """Rows x members: each member's prediction of each input row (NaN: none)."""
        import numpy as np
        import pandas as pd

        n = len(features)
        P = np.full((n, len(self.names)), np.nan)
        key: npt.NDArray[np.int64] | None = None
        order: npt.NDArray[np.intp] | None = None
        for j, name in enumerate(self.names):
            out = self.members[name].predict(features)
            if len(out) == n:  # every row, in the input's order
                P[:, j] = out["prediction"].to_numpy(dtype=np.float64)
                continue
            if key is None:  # a sequence member left rows out: place the rest by key
                codes, uniques = pd.factorize(features["symbol"].to_numpy(), sort=True)
                ts = features["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
                key = codes.astype(np.int64) * (1 << 42) + ts
                order = np.argsort(key, kind="stable")
                lookup = {str(s): i for i, s in enumerate(uniques)}
            assert order is not None
            oc = np.array([lookup[str(s)] for s in out["symbol"]], dtype=np.int64)
            ots = pd.DatetimeIndex(out["timestamp"]).as_unit("ms").asi8
            okey = oc * (1 << 42) + ots
            pos = order[np.searchsorted(key[order], okey)]
            P[pos, j] = out["prediction"].to_numpy(dtype=np.float64)
        return P

    def regimes(self, features: pd.DataFrame) -> npt.NDArray[np.int64]:
        import numpy as np

        r = self.regime
        vol = features[r.vol_feature].to_numpy(dtype=np.float64)
        ret = features[r.trend_feature].to_numpy(dtype=np.float64)
        return r.classify(vol, ret)

    @property
    def rowwise(self) -> bool:
        """Every member predicts a row from its own features (no sequence member): the
        live loop's row-at-a-time path (:meth:`predict_rows`) serves the ensemble too."""
        return all(m.lookback <= 1 and m.kind == "lightgbm" for m in self.members.values())

    def predict_rows(self, X: npt.NDArray[np.float32], symbols: Any) -> npt.NDArray[np.float64]:
        """The ensemble's predictions for a feature matrix (manifest column order), one row
        per entry of ``symbols``, without pandas (LightGBM members only)."""
        import numpy as np

        if not self.rowwise:
            raise InputError(
                f"{self.directory}: a sequence member needs windows of rows; use predict"
            )
        P = np.column_stack([self.members[n].predict_rows(X, symbols) for n in self.names])
        vol = X[:, self.features.index(self.regime.vol_feature)]
        ret = X[:, self.features.index(self.regime.trend_feature)]
        return self.meta.predict(P, self.regime.classify(vol, ret))

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        missing = [c for c in self.features if c not in features.columns]
        if missing:
            raise InputError(f"features: missing column(s) {', '.join(missing)}")
        P = self.member_predictions(features)
        ok = np.isfinite(P).all(axis=1)
        pred = self.meta.predict(P[ok], self.regimes(features)[ok])
        return pd.DataFrame(
            {
                "symbol": features["symbol"].to_numpy()[ok],
                "timestamp": features["timestamp"].to_numpy()[ok],
                "prediction": pred,
            }
        )


def _member(
    directory: Path, doc: dict[str, Any], entry: dict[str, Any], threads: int, lean: bool
) -> LoadedModel:
    """One member, loaded from its entry in ensemble.json (its own manifest stays local: it
    is lineage, not needed to predict). ``lean``: LightGBM members through treelite, as
    :func:`~tradekit.models.predict.load_model` loads a LightGBM model."""
    from tradekit.models import lean as tl
    from tradekit.models.base import ModelSpec
    from tradekit.models.kinds import model_class

    names = ModelSpec.__dataclass_fields__
    params = dict(entry["params"])
    spec = ModelSpec(
        **{k: v for k, v in params.items() if k in names}, threads=threads, device="cpu"
    )
    path = directory / str(entry["dir"])
    features = list(doc["features"])
    stems = {str(sym): str(stem) for sym, stem in entry["models"].items()}
    models: dict[str, Any]
    if lean and spec.kind == "lightgbm" and tl.available():
        models = {sym: tl.TreeliteModel(path / f"{stem}.txt") for sym, stem in stems.items()}
    else:
        cls = model_class(spec.kind)
        models = {sym: cls.load(path, stem, spec, features) for sym, stem in stems.items()}
    if not models:
        raise InputError(f"{directory / FILE}: member {entry['name']!r} lists no models")
    manifest = {
        **{k: doc[k] for k in ("features", "objective", "timeframe", "feature_set", "label")},
        "kind": spec.kind,
        "params": params,
        "models": dict(entry["models"]),
        "lookback": int(entry["lookback"]),
        "files": dict(entry["files"]),
    }
    return LoadedModel(path, manifest, models)


def load_ensemble(
    directory: Path, doc: dict[str, Any], *, threads: int = 1, lean: bool = False
) -> LoadedEnsemble:
    """The ensemble whose checked manifest is ``doc`` (every file present, hashes matching:
    ``ensemble.json`` and each member's model files are among them)."""
    label = directory / FILE
    spec = read_json(label, SCHEMA)
    try:
        regime = RegimeModel.from_json(spec["regime"])
        meta = MetaModel.from_json(spec["meta"])
        entries = {str(e["name"]): e for e in spec["members"]}
        members = {
            name: _member(directory, doc, entries[name], threads, lean) for name in meta.members
        }
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{label}: malformed ensemble description ({e!r})") from None
    missing = [c for c in (regime.vol_feature, regime.trend_feature) if c not in doc["features"]]
    if missing:
        raise InputError(f"{label}: regime reads {', '.join(missing)}, not among the features")
    return LoadedEnsemble(directory, doc, members, regime, meta)
