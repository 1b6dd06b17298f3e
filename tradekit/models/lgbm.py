"""LightGBM regressor (learns the label) and binary classifier (learns up vs not up).

Deterministic by construction: ``deterministic``, ``force_row_wise``, a fixed seed and a fixed
thread count, so the same inputs give the same trees and the same model file bytes. Saved in
LightGBM's own text format; thresholds are written with full precision, so a loaded model
predicts exactly what the trained one did.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

from tradekit.errors import InputError
from tradekit.models.base import EpochDone, Model, ModelSpec, Panel

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    import numpy.typing as npt


def booster_feature_names(features: Sequence[str]) -> list[str]:
    """Names LightGBM accepts (it rejects JSON punctuation): the real ones where possible."""
    names = [re.sub(r"[^A-Za-z0-9_.\-]", "_", f) for f in features]
    if len(set(names)) < len(names):
        names = [f"f{i}" for i in range(len(features))]
    return names


def import_lightgbm() -> ModuleType:
    """``lightgbm``, loaded without pandas unless pandas is loaded already: LightGBM's compat
    layer imports pandas (about 45 MB of a ~240 MB training process, and of the live loop)
    only to accept DataFrames, and tradekit hands it numpy arrays. The first call should come
    from one thread (``train`` makes it before it starts its pool)."""
    if "lightgbm" not in sys.modules and "pandas" not in sys.modules:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # ImportError in lightgbm.compat
        try:
            import lightgbm
        finally:
            del sys.modules["pandas"]
    import lightgbm

    return lightgbm


def _without_threads(text: str) -> str:
    """The model text without the thread count LightGBM echoes among its parameters: it is
    not a property of the model (deterministic row-wise training gives the same trees on 1 and
    2 threads, ``tests/test_threads.py``), and ``threads = 0`` picks it from the machine's
    load, so the file's bytes would vary with the load."""
    return re.sub(r"^\[num_threads: [^\]\n]*\]\n", "", text, count=1, flags=re.MULTILINE)


class LightGBMModel(Model):
    kind: ClassVar[str] = "lightgbm"

    def __init__(self, spec: ModelSpec, features: Sequence[str]) -> None:
        super().__init__(spec, features)
        self.booster: lgb.Booster | None = None
        self.text: str | None = None  # the trained model in LightGBM's text format
        # Predicting a row or a few is fastest on one thread (no OpenMP start-up).
        self.predict_threads = 1

    def train_params(self) -> dict[str, Any]:
        s = self.spec
        return {
            "objective": "binary" if s.objective == "classification" else "regression",
            "learning_rate": s.learning_rate,
            "num_leaves": s.num_leaves,
            "max_bin": s.max_bin,
            "seed": s.seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": s.n_threads,
            "verbosity": -1,
        }

    def fit(
        self,
        panel: Panel,
        rows: npt.NDArray[np.int64],
        *,
        epoch_done: EpochDone | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        import numpy as np

        lgb = import_lightgbm()
        if not len(rows):
            raise InputError("no labelled rows to train on")
        X = np.ascontiguousarray(panel.X[rows])
        data = lgb.Dataset(
            X,
            label=panel.y[rows],
            feature_name=booster_feature_names(self.features),
            params={"verbosity": -1, "max_bin": self.spec.max_bin},
            free_raw_data=True,
        )
        trained = lgb.train(self.train_params(), data, num_boost_round=self.spec.n_estimators)
        # Keep only the trees: a trained booster also holds its binned data and histogram pool
        # (~10 MB at 300 features). The text round-trips thresholds exactly.
        self.text = _without_threads(trained.model_to_string())
        del trained, data
        self.booster = lgb.Booster(model_str=self.text)
        if epoch_done:
            epoch_done()

    def predict_matrix(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        import numpy as np

        assert self.booster is not None, "predict before fit/load"
        threads = self.predict_threads if len(X) < 10_000 else self.spec.n_threads
        out = self.booster.predict(X, num_threads=threads)
        return np.asarray(out, dtype=np.float64)

    def predict(self, panel: Panel, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        import numpy as np

        if not len(rows):
            return np.empty(0, dtype=np.float64)
        return self.predict_matrix(np.ascontiguousarray(panel.X[rows]))

    def save(self, directory: Path, stem: str) -> list[str]:
        assert self.booster is not None, "save before fit"
        name = f"{stem}.txt"
        text = self.text if self.text is not None else self.booster.model_to_string()
        (directory / name).write_text(text, encoding="utf-8")
        return [name]

    def importance(self) -> dict[str, float]:
        """Total gain per feature, for the manifest."""
        assert self.booster is not None
        gains = self.booster.feature_importance(importance_type="gain")
        return {f: round(float(g), 6) for f, g in zip(self.features, gains, strict=True)}

    @classmethod
    def load(
        cls, directory: Path, stem: str, spec: ModelSpec, features: Sequence[str]
    ) -> LightGBMModel:
        lgb = import_lightgbm()
        path = directory / f"{stem}.txt"
        model = cls(spec, features)
        try:
            model.booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as e:
            raise InputError(f"{path}: not a LightGBM model ({e})") from None
        if model.booster.num_feature() != len(features):
            raise InputError(
                f"{path}: model has {model.booster.num_feature()} features, "
                f"manifest lists {len(features)}"
            )
        return model
