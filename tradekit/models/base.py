"""The model interface shared by LightGBM and the torch models, and what they train on.

A :class:`Panel` holds the rows of one or more symbols sorted by symbol, then time, with each
row's position inside its symbol, so a sequence model can build windows that never cross
symbols. Models fit on and predict integer row indices of a panel.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tradekit.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tradekit.config import ModelConfig

KINDS = ("lightgbm", "lstm", "transformer")
OBJECTIVES = ("regression", "classification")
DEEP_KINDS = ("lstm", "transformer")

EpochDone = Callable[[], None]


@dataclass(frozen=True)
class ModelSpec:
    """Hyperparameters of one model (a subset of [model], validated)."""

    kind: str = "lightgbm"
    objective: str = "regression"
    seed: int = 42
    threads: int = 0
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 31
    # Histogram bins per feature. LightGBM's default is 255; walk-forward windows hold a few
    # thousand rows, where 63 bins fit 2.5x faster (split search is bins x features per leaf).
    max_bin: int = 63
    epochs: int = 10
    batch_size: int = 256
    seq_len: int = 32
    hidden: int = 64
    deep_learning_rate: float = 0.001
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"model kind {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.objective not in OBJECTIVES:
            raise UsageError(
                f"objective {self.objective!r}: expected one of {', '.join(OBJECTIVES)}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"device {self.device!r}: expected auto, cpu or cuda")
        for name in ("n_estimators", "epochs", "batch_size", "seq_len", "hidden", "max_bin"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("learning_rate", "deep_learning_rate"):
            if not getattr(self, name) > 0:
                raise UsageError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> ModelSpec:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in asdict(cfg).items() if k in names})

    @property
    def n_threads(self) -> int:
        """A fixed thread count (0 = all cores): LightGBM's results and speed depend on it."""
        return self.threads or os.cpu_count() or 1

    @property
    def deep(self) -> bool:
        return self.kind in DEEP_KINDS

    def params(self) -> dict[str, Any]:
        """The hyperparameters that shape this kind of model (for the manifest)."""
        common = {"kind": self.kind, "objective": self.objective, "seed": self.seed}
        if self.deep:
            keys = ["deep_learning_rate", "epochs", "batch_size", "seq_len", "hidden"]
        else:
            keys = ["n_estimators", "learning_rate", "num_leaves", "max_bin"]
        return {**common, **{k: getattr(self, k) for k in keys}}


@dataclass
class Panel:
    """Rows sorted by symbol, then time. ``X`` holds the features as float32 (half the memory
    of float64; training and every prediction path cast the same way, so their values agree
    exactly). ``y`` is the training target (NaN = unknown): the label itself for regression,
    1.0/0.0 (up / not up) for classification."""

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.float64]
    pos: npt.NDArray[np.int64]  # position of each row inside its symbol (0 = its first row)
    features: Sequence[str]


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and std fitted on a training window; NaN becomes 0 (the mean)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, X: npt.NDArray[np.float32]) -> Standardizer:
        import numpy as np

        with np.errstate(invalid="ignore"):
            finite = np.where(np.isfinite(X), X.astype(np.float64), np.nan)
            counts = np.sum(~np.isnan(finite), axis=0)
            safe = np.where(np.isnan(finite), 0.0, finite)
            mean = np.where(counts > 0, safe.sum(axis=0) / np.maximum(counts, 1), 0.0)
            dev = np.where(np.isnan(finite), 0.0, finite - mean)
            var = (dev**2).sum(axis=0) / np.maximum(counts, 1)
        std = np.sqrt(var)
        std = np.where(std > 1e-12, std, 1.0)  # a constant column passes through as 0
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def transform(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import numpy as np

        out = (X.astype(np.float64) - np.asarray(self.mean)) / np.asarray(self.std)
        out[~np.isfinite(out)] = 0.0
        result: npt.NDArray[np.float32] = out.astype(np.float32)
        return result

    def as_json(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Standardizer:
        return cls(tuple(float(v) for v in doc["mean"]), tuple(float(v) for v in doc["std"]))


class Model(ABC):
    """One trained model: fit on panel rows, predict panel rows, save and load its files."""

    kind: ClassVar[str]

    def __init__(self, spec: ModelSpec, features: Sequence[str]) -> None:
        self.spec = spec
        self.features = list(features)

    @property
    def lookback(self) -> int:
        """Rows of history per symbol one prediction needs (its own row included)."""
        return 1

    @abstractmethod
    def fit(
        self,
        panel: Panel,
        rows: npt.NDArray[np.int64],
        *,
        epoch_done: EpochDone | None = None,
        checkpoint: Path | None = None,
    ) -> None:
        """Fit on ``rows`` (labels known). Deep models save ``checkpoint`` after each epoch
        and continue from it when it exists."""

    @abstractmethod
    def predict(self, panel: Panel, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Predictions for ``rows``; NaN where a row lacks the history it needs."""

    @abstractmethod
    def save(self, directory: Path, stem: str) -> list[str]:
        """Write the model's files (native formats, no pickle); return their names."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, stem: str, spec: ModelSpec, features: Sequence[str]) -> Model:
        """The model saved under ``stem`` in ``directory``."""


def model_files(kind: str, stem: str) -> list[str]:
    """The files a model of ``kind`` saved under ``stem`` consists of."""
    return [f"{stem}.txt"] if kind == "lightgbm" else [f"{stem}.npz", f"{stem}.json"]
