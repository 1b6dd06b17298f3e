"""Predictions of a trained model, for files (``tradekit predict``) and for the live loop.

:func:`load_model` reads and checks the manifest once (schema, keys, file hashes) and loads the
model(s); :meth:`LoadedModel.predict` then serves both a whole features file and the one new
row per candle of the live loop. The LightGBM path takes the feature columns straight to a
numpy matrix and calls the booster, so a single row costs well under a millisecond of our own
overhead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tradekit.contracts import FEATURES, PREDICTIONS, file_hash, read_table, write_table
from tradekit.errors import InputError
from tradekit.models import manifest as mf
from tradekit.models.base import ModelSpec
from tradekit.models.kinds import model_class
from tradekit.models.loaded import LoadedModel


def load_model(model_dir: str | Path, *, threads: int = 1, lean: bool = False) -> LoadedModel:
    """Load a model directory for prediction (manifest checked, files verified by hash).

    ``threads`` bounds the CPU threads of prediction (0 = all cores); one keeps a small box
    free for the bot itself and is fastest for a row at a time. ``lean`` predicts a LightGBM
    model with treelite when it is installed (``tradekit.models.lean``), without loading
    LightGBM."""
    directory = Path(model_dir)
    doc = mf.read(directory)
    if doc["kind"] == "ensemble":  # members, regime and meta-learner behind the same surface
        from tradekit.models.ensemble_load import load_ensemble

        return load_ensemble(directory, doc, threads=threads, lean=lean)
    params = dict(doc["params"])
    names = ModelSpec.__dataclass_fields__
    try:
        spec = ModelSpec(
            **{k: v for k, v in params.items() if k in names}, threads=threads, device="cpu"
        )
    except TypeError as e:
        raise InputError(f"{directory / mf.MANIFEST}: bad params ({e})") from None
    from tradekit.models import lean as tl

    if lean and spec.kind == "lightgbm" and tl.available():
        models: dict[str, Any] = {
            str(sym): tl.TreeliteModel(directory / f"{stem}.txt")
            for sym, stem in doc["models"].items()
        }
    else:
        cls = model_class(spec.kind)
        models = {
            str(sym): cls.load(directory, str(stem), spec, doc["features"])
            for sym, stem in doc["models"].items()
        }
    if not models:
        raise InputError(f"{directory / mf.MANIFEST}: lists no models")
    return LoadedModel(directory, doc, models)


def predict_file(
    model_dir: str | Path, features_path: str | Path, output: str | Path, *, threads: int = 1
) -> dict[str, Any]:
    """Predict every row of a features/1 file into a predictions/1 file; returns a summary."""
    model = load_model(model_dir, threads=threads)
    frame, meta = read_table(features_path, FEATURES)
    label = "stdin" if str(features_path) == "-" else str(features_path)
    if not len(frame):
        raise InputError(f"{label}: no rows")
    model.check_meta(meta, label)
    pred = model.predict(frame)
    source = file_hash(features_path) if str(features_path) != "-" else None
    write_table(
        pred,
        output,
        PREDICTIONS,
        {
            "model_kind": model.kind,
            "model_version": model.version,
            "objective": model.objective,
            "label": model.manifest["label"],
            "timeframe": model.timeframe,
            "feature_set": model.feature_set.get("name"),
            "feature_set_hash": model.feature_set.get("hash"),
            "exchange": meta.get("exchange"),
            "source": source,
        },
    )
    return {
        "schema": "predict/1",
        "model": str(model.directory),
        "model_version": model.version,
        "kind": model.kind,
        "rows": len(frame),
        "predicted": len(pred),
        "output": str(output),
    }
