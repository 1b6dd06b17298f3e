"""LightGBM inference without LightGBM: the live loop's predictor.

``treelite``'s GTIL reads LightGBM's own ``model.txt`` and walks the same trees with the same
thresholds, so its predictions are LightGBM's bit for bit (tested), in a process that never
loads ``lightgbm`` (with scipy, about 60 MB of a Pi's memory, and its OpenMP runtime). Training,
``predict`` on files and the backtest keep LightGBM itself; a model dir is the same either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def available() -> bool:
    try:
        import treelite.gtil  # noqa: F401
    except ImportError:
        return False
    return True


class TreeliteModel:
    """One LightGBM model file, predicted by treelite (``predict_matrix`` as LightGBMModel)."""

    def __init__(self, path: Path) -> None:
        import treelite

        try:
            self.model: Any = treelite.frontend.load_lightgbm_model(str(path))
        except (OSError, treelite.TreeliteError) as e:
            raise InputError(f"{path}: not a LightGBM model file ({e})") from None

    def predict_matrix(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        import numpy as np
        import treelite.gtil

        out = treelite.gtil.predict(self.model, np.ascontiguousarray(X), nthread=1)
        return np.asarray(out, dtype=np.float64).reshape(len(X))
