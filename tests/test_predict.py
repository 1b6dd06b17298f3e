"""`tradekit predict` and the live path (`load_model` + `LoadedModel.predict`): same values
both ways, one row at a time as the live loop does, checks of the features against the model,
and bad model directories."""

from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cli_env
from tests.test_models import (
    assert_fails,
    features_frame,
    features_meta,
    train_ok,
    write_config,
    write_features,
)
from tradekit.contracts import FEATURES, PREDICTIONS, read_table, write_table
from tradekit.errors import InputError


@pytest.fixture
def model(run_cli) -> Path:
    write_features("f.parquet")
    train_ok(run_cli, "f.parquet", "-o", "m")
    return Path("m")


def test_cli_predict_equals_loaded_model_predict(run_cli, model):
    from tradekit.models.predict import load_model

    r = run_cli("predict", "m", "f.parquet", "-o", "p.parquet", "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    assert summary["schema"] == "predict/1" and summary["predicted"] == 800
    got, meta = read_table("p.parquet", PREDICTIONS)
    loaded = load_model("m")
    assert meta["model_version"] == loaded.version == summary["model_version"]
    assert meta["feature_set_hash"] == "sha256:feat0" and meta["timeframe"] == "1h"
    frame, _ = read_table("f.parquet", FEATURES)
    want = loaded.predict(frame)
    assert got["symbol"].tolist() == want["symbol"].tolist()
    assert got["timestamp"].equals(want["timestamp"])
    assert np.array_equal(got["prediction"].to_numpy(), want["prediction"].to_numpy())
    # OOS rows were predicted by fold models; the deployed model predicts every row.
    oos = read_table("m/oos_predictions.parquet", PREDICTIONS)[0]
    assert len(oos) < len(got)


def test_live_rows_one_at_a_time_equal_the_batch(model):
    from tradekit.models.predict import load_model

    loaded = load_model("m")
    assert loaded.lookback == 1
    frame, _ = read_table("f.parquet", FEATURES)
    batch = loaded.predict(frame)["prediction"].to_numpy()
    for i in [0, 1, 399, 400, 650, len(frame) - 1]:
        # The live loop's row carries OHLCV and other columns too; only the manifest's
        # features are read, by name, whatever their order.
        row = frame.iloc[[i]][["timestamp", "f3", "f1", "symbol", "f0", "f2"]].assign(close=1.0)
        live = loaded.predict(row)
        assert live["symbol"].iloc[0] == frame["symbol"].iloc[i]
        assert live["timestamp"].iloc[0] == frame["timestamp"].iloc[i]
        assert live["prediction"].iloc[0] == batch[i]
    assert len(loaded.predict(frame.iloc[:0])) == 0
    with pytest.raises(InputError, match=r"missing column.*f2"):
        loaded.predict(frame.iloc[[5]].drop(columns=["f2"]))


def test_single_row_latency_under_5ms(model):
    from tradekit.models.predict import load_model

    loaded = load_model("m")
    frame, _ = read_table("f.parquet", FEATURES)
    row = frame.iloc[[-1]]
    loaded.predict(row)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        loaded.predict(row)
        times.append(time.perf_counter() - t)
    assert statistics.median(times) < 0.005


def test_predict_to_stdout(run_cli, model):
    r = subprocess.run(
        [sys.executable, "-m", "tradekit", "predict", "m", "f.parquet", "-o", "-"],
        capture_output=True,
        env=cli_env(),
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert run_cli("predict", "m", "f.parquet", "-o", "p.parquet").code == 0
    assert r.stdout == Path("p.parquet").read_bytes()


def test_features_with_other_columns_are_refused(run_cli, model):
    frame = features_frame().rename(columns={"f3": "rsi_14"})
    meta = features_meta(frame, features=["f0", "f1", "f2", "rsi_14"])
    write_table(frame, "g.parquet", FEATURES, meta)
    r = run_cli("predict", "m", "g.parquet", "-o", "p.parquet")
    assert_fails(r, 3, "g.parquet", "missing 1: f3", "extra 1: rsi_14")
    assert not Path("p.parquet").exists()


def test_features_of_another_feature_set_are_refused(run_cli, model):
    write_features("g.parquet", feature_set_hash="sha256:other")
    r = run_cli("predict", "m", "g.parquet", "-o", "p.parquet")
    assert_fails(r, 3, "sha256:other", "sha256:feat0")


def test_features_of_another_timeframe_are_refused(run_cli, model):
    write_features("g.parquet", timeframe="4h")
    r = run_cli("predict", "m", "g.parquet", "-o", "p.parquet")
    assert_fails(r, 3, "timeframe 4h", "1h")


def test_empty_features_file(run_cli, model):
    write_features("g.parquet", features_frame().iloc[:0])
    assert_fails(run_cli("predict", "m", "g.parquet", "-o", "p.parquet"), 3, "no rows")


def test_model_dir_without_manifest(run_cli, model):
    Path("empty").mkdir()
    r = run_cli("predict", "empty", "f.parquet", "-o", "p.parquet")
    assert_fails(r, 3, "empty", "manifest.json", "not a model directory")
    assert_fails(run_cli("predict", "nope", "f.parquet", "-o", "p.parquet"), 3, "nope")
    Path("m/manifest.json").write_text(json.dumps({"schema": "model/1", "kind": "lightgbm"}))
    assert_fails(run_cli("predict", "m", "f.parquet", "-o", "p.parquet"), 3, "missing key")


def test_changed_model_file_is_refused(run_cli, model):
    text = Path("m/model.txt").read_text()
    Path("m/model.txt").write_text(text.replace("learning_rate", "learning_rate ", 1))
    r = run_cli("predict", "m", "f.parquet", "-o", "p.parquet")
    assert_fails(r, 3, "model.txt", "sha256 differs")
    Path("m/model.txt").unlink()
    assert_fails(run_cli("predict", "m", "f.parquet", "-o", "p.parquet"), 3, "missing")


def test_version_follows_the_model_files(run_cli, model):
    from tradekit.models.predict import load_model

    v1 = load_model("m").version
    train_ok(run_cli, "f.parquet", "-o", "m")
    assert load_model("m").version == v1  # same inputs, same files
    write_config(n_estimators=10)
    train_ok(run_cli, "f.parquet", "-o", "m")
    v2 = load_model("m").version
    assert v2 != v1 and len(v2) == 12


def test_predictions_file_reads_back_as_parquet(run_cli, model):
    r = run_cli("predict", "m", "f.parquet", "-o", "p.parquet")
    assert r.code == 0
    df = pd.read_parquet(io.BytesIO(Path("p.parquet").read_bytes()))
    assert list(df.columns) == ["symbol", "timestamp", "prediction"]


def test_end_to_end_from_candles(run_cli):
    """fetch (offline sample) -> featurize -> train -> predict, through the real commands."""
    pytest.importorskip("tradekit.features")
    r = run_cli(
        "fetch", "--exchange", "sample", "BTC/USD", "ETH/USD", "-t", "1h",
        "--since", "2018-10-01", "--until", "2019-04-01", "-o", "ohlcv.parquet",
    )  # fmt: skip
    assert r.code == 0, r.err
    r = run_cli("featurize", "ohlcv.parquet", "-o", "feat.parquet")
    assert r.code == 0, r.err
    frame, meta = read_table("feat.parquet", FEATURES)
    write_config(train_window=1000, test_window=400, step=400)
    doc = train_ok(run_cli, "feat.parquet", "-o", "m")
    assert doc["features"] == meta["features"] and doc["label_horizon"] == meta["label_horizon"]
    assert doc["data"]["source"] == meta["source"]
    assert doc["walk_forward"]["folds"] and doc["walk_forward"]["overall"]["rows"] > 0
    r = run_cli("predict", "m", "feat.parquet", "-o", "p.parquet")
    assert r.code == 0, r.err
    assert len(read_table("p.parquet", PREDICTIONS)[0]) == len(frame)
