"""LightGBM through `tradekit train`: learning, determinism, per-symbol models, metrics, the
model directory's manifest and atomic replacement, and bad inputs (exit 3, one line).

The helpers at the top build synthetic features/1 files; the other model tests import them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tradekit.contracts import FEATURES, PREDICTIONS, read_table, write_table
from tradekit.errors import InputError

HOUR = 3_600_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % HOUR


def features_frame(
    symbols: Sequence[str] = ("BTC/USD", "ETH/USD"),
    rows: int = 400,
    n_features: int = 4,
    horizon: int = 4,
    seed: int = 0,
    offsets: Sequence[int] = (),
    noise: float = 0.5,
) -> pd.DataFrame:
    """Features where the forward return depends on f0 and f1 (plus noise); the last
    ``horizon`` labels of each symbol are unknown. ``offsets[i]`` starts symbol i that many
    candles later."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, s in enumerate(symbols):
        X = rng.normal(size=(rows, n_features))
        ret = 0.01 * (X[:, 0] + 0.5 * X[:, 1]) + noise * 0.01 * rng.normal(size=rows)
        ret[-horizon:] = np.nan
        cls = np.where(ret > 0.002, 1.0, np.where(ret < -0.002, -1.0, 0.0))
        cls[np.isnan(ret)] = np.nan
        start = T0 + (offsets[i] if i < len(offsets) else 0) * HOUR
        frame = {
            "symbol": pd.Series([s] * rows, dtype="str"),
            "timestamp": pd.to_datetime(
                start + np.arange(rows, dtype=np.int64) * HOUR, unit="ms", utc=True
            ).as_unit("ms"),
            **{f"f{j}": X[:, j] for j in range(n_features)},
            "label_return": ret,
            "label_class": cls,
            "label_barrier": cls,
        }
        parts.append(pd.DataFrame(frame))
    return pd.concat(parts, ignore_index=True)


def features_meta(frame: pd.DataFrame, horizon: int = 4, **over: Any) -> dict[str, Any]:
    meta = {
        "timeframe": "1h",
        "feature_set": "synthetic",
        "feature_set_hash": "sha256:feat0",
        "features": [c for c in frame.columns if c.startswith("f")],
        "labels": ["label_return", "label_class", "label_barrier"],
        "label_horizon": horizon,
        "exchange": "sample",
        "source": "sha256:ohlcv0",
        "symbols": sorted(set(frame["symbol"])),
    }
    meta.update(over)
    return meta


def write_features(path: str | Path, frame: pd.DataFrame | None = None, **meta: Any) -> Path:
    frame = features_frame() if frame is None else frame
    horizon = int(meta.pop("horizon", 4))
    write_table(frame, path, FEATURES, features_meta(frame, horizon, **meta))
    return Path(path)


def write_config(path: str | Path = "model.toml", **model: Any) -> Path:
    """A config with small, fast defaults; keys override [model]."""
    keys = {
        "n_estimators": 30,
        "train_window": 150,
        "test_window": 50,
        "step": 50,
        "threads": 1,
        **model,
    }
    lines = ["[model]"] + [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def train_ok(run_cli, *args: str) -> dict[str, Any]:
    if not Path("model.toml").exists():
        write_config()
    r = run_cli("-c", "model.toml", "train", *args)
    assert r.code == 0, r.err
    out = args[args.index("-o") + 1]
    return json.loads((Path(out) / "manifest.json").read_text())


def assert_fails(r, code: int, *fragments: str) -> str:
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err
    line = r.err.strip().splitlines()[-1]
    assert line.startswith("tradekit: error: "), r.err
    for f in fragments:
        assert f in line, (f, line)
    return line


def oos(model_dir: str | Path) -> pd.DataFrame:
    return read_table(Path(model_dir) / "oos_predictions.parquet", PREDICTIONS)[0]


# -- metrics ---------------------------------------------------------------------------------


def test_rankdata_averages_ties():
    from tradekit.models.metrics import rankdata

    got = rankdata(np.array([3.0, 1.0, 3.0, 2.0, 3.0]))
    assert got.tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


def test_spearman_auc_logloss_against_direct_definitions():
    from tradekit.models.metrics import auc, log_loss, spearman

    rng = np.random.default_rng(3)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    # Spearman without ties = Pearson of the 0..n-1 order positions.
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    assert spearman(x, y) == pytest.approx(np.corrcoef(rx, ry)[0, 1], abs=1e-12)
    assert spearman(x, -x) == pytest.approx(-1.0)
    prob = np.round(rng.random(300), 1)  # many ties
    up = (rng.random(300) < prob).astype(float)
    pos, neg = prob[up == 1], prob[up == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert auc(prob, up) == pytest.approx(pairs.mean(), abs=1e-12)
    assert auc(prob, np.ones(300)) is None
    p = np.array([0.9, 0.2, 0.6])
    want = -np.mean(np.log([0.9, 0.8, 0.6]))
    assert log_loss(p, np.array([1.0, 0.0, 1.0])) == pytest.approx(want)


# -- LightGBM --------------------------------------------------------------------------------


def test_regressor_learns_the_signal_out_of_sample(run_cli):
    write_features("f.parquet")
    doc = train_ok(run_cli, "f.parquet", "-o", "m")
    assert doc["schema"] == "model/1" and doc["kind"] == "lightgbm"
    assert doc["label"] == "label_return" and doc["features"] == ["f0", "f1", "f2", "f3"]
    overall = doc["walk_forward"]["overall"]
    assert overall["ic"] > 0.5 and overall["hit_rate"] > 0.65
    assert all(f["metrics"]["ic"] > 0.3 for f in doc["walk_forward"]["folds"])
    # The one feature that matters most carries the most gain.
    gain = doc["importance_gain"]
    assert max(gain, key=gain.get) == "f0"
    assert doc["files"] == {"model.txt": doc["files"]["model.txt"]}
    assert doc["data"]["source"] == "sha256:ohlcv0"
    assert doc["feature_set"] == {"name": "synthetic", "hash": "sha256:feat0"}
    assert doc["versions"]["lightgbm"] and doc["seed"] == 42
    # The deployed model trains on the newest labelled train_window candles.
    last_labelled = T0 + (400 - 4 - 1) * HOUR
    assert doc["training"]["end_ms"] == last_labelled
    assert doc["training"]["start_ms"] == last_labelled - 149 * HOUR
    assert not Path("m.partial").exists()


def test_classifier_predicts_the_probability_of_up(run_cli):
    write_features("f.parquet")
    doc = train_ok(run_cli, "f.parquet", "-o", "m", "--objective", "classification")
    assert doc["label"] == "label_class" and doc["objective"] == "classification"
    overall = doc["walk_forward"]["overall"]
    assert overall["auc"] > 0.8 and overall["ic"] > 0.4
    assert 0 < overall["log_loss"] < 0.6
    pred = oos("m")["prediction"]
    assert ((pred > 0) & (pred < 1)).all()


def test_other_label_column(run_cli):
    write_features("f.parquet")
    doc = train_ok(
        run_cli, "f.parquet", "-o", "m", "--objective", "classification", "--label", "label_barrier"
    )
    assert doc["label"] == "label_barrier"


def test_same_inputs_and_seed_give_identical_files(run_cli):
    write_features("f.parquet")
    a = train_ok(run_cli, "f.parquet", "-o", "a")
    b = train_ok(run_cli, "f.parquet", "-o", "b")
    for name in ("model.txt", "oos_predictions.parquet"):
        assert (Path("a") / name).read_bytes() == (Path("b") / name).read_bytes(), name
    a.pop("created_at"), b.pop("created_at")
    assert a == b
    c = train_ok(run_cli, "f.parquet", "-o", "c", "--seed", "7")
    assert c["seed"] == 7


def test_per_symbol_models(run_cli):
    from tradekit.models.predict import load_model

    frame = features_frame(symbols=("A/USD", "B/USD", "C/USD"))
    write_features("f.parquet", frame)
    doc = train_ok(run_cli, "f.parquet", "-o", "m", "--per-symbol")
    assert doc["per_symbol"] is True
    assert doc["models"] == {"A/USD": "model-000", "B/USD": "model-001", "C/USD": "model-002"}
    assert sorted(doc["files"]) == ["model-000.txt", "model-001.txt", "model-002.txt"]
    assert doc["walk_forward"]["overall"]["ic"] > 0.4
    model = load_model("m")
    # Each row goes to its symbol's model: B's rows give the same predictions alone as in a
    # mixed frame, and different ones when routed to A's model.
    sample = frame.iloc[::7].reset_index(drop=True)
    mixed = model.predict(sample)
    b_rows = sample[sample["symbol"] == "B/USD"]
    alone = model.predict(b_rows)["prediction"].to_numpy()
    assert np.array_equal(mixed["prediction"].to_numpy()[b_rows.index], alone)
    as_a = model.predict(b_rows.assign(symbol="A/USD"))["prediction"].to_numpy()
    assert not np.array_equal(alone, as_a)
    with pytest.raises(InputError, match=r"no model for symbol.*Z/USD"):
        model.predict(b_rows.assign(symbol="Z/USD"))


def test_no_walk_forward_trains_only_the_final_model(run_cli):
    write_features("f.parquet")
    doc = train_ok(run_cli, "f.parquet", "-o", "m", "--no-walk-forward")
    assert doc["walk_forward"] is None and doc["oos_predictions"] is None
    assert not Path("m/oos_predictions.parquet").exists()
    assert doc["training"]["rows"] == 2 * 150


def test_existing_model_dir_is_replaced_only_on_success(run_cli):
    write_features("f.parquet")
    first = train_ok(run_cli, "f.parquet", "-o", "m")
    before = Path("m/model.txt").read_bytes()
    frame = features_frame()
    frame["label_return"] = np.nan
    write_features("bad.parquet", frame)
    write_config()
    assert_fails(run_cli("-c", "model.toml", "train", "bad.parquet", "-o", "m"), 3, "all NaN")
    assert Path("m/model.txt").read_bytes() == before
    second = train_ok(run_cli, "f.parquet", "-o", "m", "--seed", "1")
    assert second["seed"] == 1 and first["seed"] == 42
    assert sorted(p.name for p in Path(".").iterdir()) == [
        "bad.parquet",
        "f.parquet",
        "m",
        "model.toml",
    ]


def test_refuses_to_overwrite_a_directory_that_is_not_a_model(run_cli):
    write_features("f.parquet")
    Path("docs").mkdir()
    Path("docs/notes.txt").write_text("keep me")
    write_config()
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "docs")
    assert_fails(r, 3, "docs", "not a model directory")
    assert Path("docs/notes.txt").read_text() == "keep me"


# -- bad inputs ------------------------------------------------------------------------------


def test_missing_feature_column(run_cli):
    frame = features_frame().drop(columns=["f2"])
    write_table(frame, "f.parquet", FEATURES, features_meta(features_frame()))
    write_config()
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "m")
    assert_fails(r, 3, "f.parquet", "f2", "missing")
    assert not Path("m").exists() and not Path("m.partial").exists()


def test_empty_file(run_cli):
    write_features("f.parquet", features_frame().iloc[:0])
    write_config()
    assert_fails(run_cli("-c", "model.toml", "train", "f.parquet", "-o", "m"), 3, "no rows")


def test_nan_only_label(run_cli):
    frame = features_frame()
    frame["label_class"] = np.nan
    write_features("f.parquet", frame)
    write_config()
    r = run_cli(
        "-c", "model.toml", "train", "f.parquet", "-o", "m", "--objective", "classification"
    )
    assert_fails(r, 3, "label_class", "all NaN")


def test_unknown_label_and_label_as_feature(run_cli):
    write_features("f.parquet")
    write_config()
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "m", "--label", "label_nope")
    assert_fails(r, 3, "label_nope", "label_return")
    frame = features_frame()
    meta = features_meta(frame)
    meta["features"] = [*meta["features"], "label_return"]
    write_table(frame, "g.parquet", FEATURES, meta)
    r = run_cli("-c", "model.toml", "train", "g.parquet", "-o", "m")
    assert_fails(r, 3, "label_return", "listed as features")


def test_too_little_data_names_the_numbers(run_cli):
    write_features("f.parquet", features_frame(rows=150))
    write_config()
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "m")
    assert_fails(r, 3, "150 candles", "150 + purge 4 + test window 50 = 204")


def test_not_a_features_file(run_cli):
    Path("x.parquet").write_text("nope")
    write_config()
    assert_fails(run_cli("-c", "model.toml", "train", "x.parquet", "-o", "m"), 3, "x.parquet")


def test_overlapping_test_windows_are_a_usage_error(run_cli):
    write_features("f.parquet")
    write_config()
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "m", "--step", "20")
    assert_fails(r, 2, "step 20", "test window 50")


def test_bad_kind_is_a_usage_error(run_cli):
    write_features("f.parquet")
    write_config()
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "m", "--model", "xgboost")
    assert_fails(r, 2, "xgboost")


def test_output_must_name_a_directory(run_cli):
    write_features("f.parquet")
    write_config()
    assert_fails(run_cli("-c", "model.toml", "train", "f.parquet", "-o", "."), 2, "-o .")
