"""The drift sentinel: PSI against the manifest's training distribution fires on a planted
shift and not on a resample of the training data (property test, then end to end through
`tradekit drift`); live predictions recorded in a ledger agree with their replay from the
candle store, and a tampered one is caught; the alert file for the phone, the report beside
the ledger that `status` shows, and `[risk] pause_on_drift` queuing a pause for the loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_models import assert_fails
from tradekit.drift.reference import distribution, psi, shares

HOUR = 3_600_000
T0 = 1_650_000_000_000 - 1_650_000_000_000 % HOUR
SYMBOLS = ("BTC/USD", "ETH/USD")
ROWS = 2400  # the live loop's tail of the minimal set is ~1,400 candles: room for it


# -- PSI itself ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(300, 3000),
    shift=st.floats(0.75, 3.0),
    scale=st.floats(2.5, 5.0),
)
def test_psi_fires_on_a_shift_and_not_on_a_resample(seed, n, shift, scale):
    rng = np.random.default_rng(seed)
    train = rng.standard_t(5, size=4000) * 0.02
    train[rng.random(4000) < 0.01] = np.nan
    ref = distribution(train)
    assert abs(sum(ref["shares"]) - 1.0) < 1e-5
    resample = rng.choice(train, size=n, replace=True)
    assert psi(ref["shares"], shares(resample, ref["edges"])) < 0.25
    sd = np.nanstd(train)
    assert psi(ref["shares"], shares(resample + shift * sd, ref["edges"])) > 0.25
    assert psi(ref["shares"], shares(resample * scale, ref["edges"])) > 0.25
    # A feature that starts arriving empty is drift too (the missing bin).
    empty = resample.copy()
    empty[: n // 2] = np.nan
    assert psi(ref["shares"], shares(empty, ref["edges"])) > 0.25


# -- end to end ------------------------------------------------------------------------------


def walk(n: int, seed: int, vol: float = 0.01) -> pd.DataFrame:
    """Random-walk hourly candles of SYMBOLS."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, s in enumerate(SYMBOLS):
        r = rng.normal(0.0, vol, n)
        close = 100.0 * (i + 1) * np.exp(np.cumsum(r))
        open_ = np.r_[close[0], close[:-1]]
        wick = np.abs(rng.normal(0, vol / 2, n))
        parts.append(
            pd.DataFrame(
                {
                    "symbol": pd.Series([s] * n, dtype="str"),
                    "timestamp": pd.to_datetime(
                        T0 + np.arange(n, dtype=np.int64) * HOUR, unit="ms", utc=True
                    ).as_unit("ms"),
                    "open": open_,
                    "high": np.maximum(open_, close) * (1 + wick),
                    "low": np.minimum(open_, close) * (1 - wick),
                    "close": close,
                    "volume": rng.uniform(1, 10, n),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


CONFIG = """
[exchange]
id = "sample"
symbols = ["BTC/USD", "ETH/USD"]
timeframe = "1h"
[data]
store = "store"
[features]
set = "minimal"
[model]
n_estimators = 30
train_window = 800
test_window = 400
step = 400
threads = 1
[run]
state = "state/tradekit.db"
model = "model"
[drift]
window_days = 10.0
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the first 2,400 candles (featurized with the minimal set)."""
    import os

    from tradekit.cli.main import main
    from tradekit.contracts import write_ohlcv

    d = tmp_path_factory.mktemp("drift")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        Path("tradekit.toml").write_text(CONFIG)
        write_ohlcv(walk(ROWS, 1), "ohlcv.parquet", {"exchange": "sample", "timeframe": "1h"})
        assert main(["-c", "tradekit.toml", "featurize", "ohlcv.parquet", "-o", "f.parquet"]) == 0
        assert main(["-c", "tradekit.toml", "train", "f.parquet", "-o", "model"]) == 0
    finally:
        os.chdir(cwd)
    return d


def setup_dir(trained: Path) -> None:
    import shutil

    for name in ("tradekit.toml", "ohlcv.parquet", "f.parquet"):
        shutil.copy(trained / name, name)
    shutil.copytree(trained / "model", "model")


def resampled(frame: pd.DataFrame, manifest: dict[str, Any], seed: int) -> pd.DataFrame:
    """Rows drawn with replacement from the final training window, per symbol, stamped as
    the newest 10 days."""
    rng = np.random.default_rng(seed)
    span = manifest["training"]
    ts = frame["timestamp"].dt.as_unit("ms").astype("int64")
    pool = frame[(ts >= span["start_ms"]) & (ts <= span["end_ms"])]
    parts = []
    for s in SYMBOLS:
        rows = pool[pool["symbol"] == s]
        pick = rows.iloc[rng.integers(0, len(rows), 240)].copy()
        pick["timestamp"] = pd.to_datetime(
            T0 + (ROWS + np.arange(240, dtype=np.int64)) * HOUR, unit="ms", utc=True
        ).as_unit("ms")
        parts.append(pick)
    return pd.concat(parts, ignore_index=True)


def test_drift_fires_on_a_planted_shift_and_not_on_a_resample(run_cli, trained):
    from tradekit.contracts import FEATURES, read_table, write_table

    setup_dir(trained)
    manifest = json.loads(Path("model/manifest.json").read_text())
    assert set(manifest["drift_reference"]["features"]) == set(manifest["features"])
    frame, meta = read_table("f.parquet", FEATURES)
    same = resampled(frame, manifest, seed=5)
    write_table(same, "same.parquet", FEATURES, meta)
    r = run_cli("drift", "model", "same.parquet", "--json", "--alert-file", "alert.txt")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "drift/1" and doc["status"] in ("ok", "warn"), doc["alerts"]
    assert doc["data"]["rows"] == 480 and doc["features"]["shifted"] == []
    assert doc["prediction"]["psi"] < 0.25
    assert Path("alert.txt").read_text() == ""
    # Planted: volatility three times the training's, and a drift in the returns.
    shifted = same.copy()
    for c in meta["features"]:
        if c.startswith(("vol_", "hl_")):
            shifted[c] = shifted[c] * 3.0
        if c.startswith("ret_"):
            shifted[c] = shifted[c] + 4 * float(frame[c].std())
    write_table(shifted, "shifted.parquet", FEATURES, meta)
    r = run_cli("drift", "model", "shifted.parquet", "--json", "--alert-file", "alert.txt")
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    assert doc["status"] == "alert"
    assert {"vol_10", "ret_10"} <= set(doc["features"]["shifted"])
    assert doc["retrain"] == {"recommended": True, "why": ["feature drift", "prediction drift"]}
    text = Path("alert.txt").read_text()
    assert text.startswith("Drift alert, model " + manifest["version"])
    assert "features shifted" in text
    assert r.err.strip().splitlines()[-1].startswith("tradekit: error: drift: ")


def test_a_model_without_a_reference_and_bad_inputs(run_cli, trained):
    setup_dir(trained)
    doc = json.loads(Path("model/manifest.json").read_text())
    del doc["drift_reference"]
    Path("model/manifest.json").write_text(json.dumps(doc))
    r = run_cli("drift", "model", "f.parquet", "--json")
    assert r.code == 0, r.err
    out = json.loads(r.out)
    assert out["features"] is None and "no drift reference" in out["notes"][0]
    r = run_cli("drift", "model", "nope.parquet")
    assert_fails(r, 3, "nope.parquet")
    Path("x.json").write_text("{}")
    r = run_cli("drift", "model", "x.json")
    assert_fails(r, 3, "x.json", "Parquet")
    r = run_cli("-c", "tradekit.toml", "drift")  # [data] store is empty
    assert_fails(r, 3, "store", "tradekit fetch")


def live_decisions(model_dir: Path, ohlcv: pd.DataFrame, times: list[int]) -> list[tuple]:
    """What the live loop records at each candle close: the model on features of the newest
    candles it keeps (the tail its feature set needs), the last row only."""
    from tradekit.features.build import build_features
    from tradekit.features.sets import tail_candles
    from tradekit.live.signals import spec_of
    from tradekit.models.predict import load_model

    model = load_model(model_dir)
    spec = spec_of(model)
    keep = tail_candles(spec, "1h")
    ts = ohlcv["timestamp"].dt.as_unit("ms").astype("int64")
    rows = []
    for t in times:
        tail = ohlcv[ts <= t].groupby("symbol", sort=True).tail(keep).reset_index(drop=True)
        feats, _ = build_features(
            tail, spec, "1h", cost=0.0, labels=False, drop_warmup=False, last=1
        )
        pred = model.predict(feats)
        for s, p in zip(pred["symbol"], pred["prediction"], strict=True):
            rows.append((t, str(s), "close", "signal", "hold", float(p), 1.0, 0.0,
                         model.version, ""))  # fmt: skip
    return rows


def make_ledger(path: Path, rows: list[tuple]) -> None:
    from tradekit.ledger import Ledger

    with Ledger(path) as led:
        led.init({"paused": False, "last_candle_ms": rows[-1][0]}, mode="paper",
                 symbols=",".join(SYMBOLS))  # fmt: skip
        led.decisions(rows)


def test_live_predictions_agree_with_their_replay_from_the_store(run_cli, trained):
    from tradekit.data.store import Store
    from tradekit.ledger import LedgerView

    setup_dir(trained)
    ohlcv = walk(ROWS + 48, 1)  # the training candles and two days after them
    store = Store("store")
    for s in SYMBOLS:
        store.append("sample", "1h", s, ohlcv[ohlcv["symbol"] == s])
    times = [T0 + (ROWS + k) * HOUR for k in range(0, 48, 4)]
    rows = live_decisions(Path("model"), ohlcv, times)
    make_ledger(Path("state/tradekit.db"), rows)
    r = run_cli("-c", "tradekit.toml", "drift", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["data"]["source"] == "store"
    lr = doc["live_replay"]
    assert (lr["compared"], lr["mismatches"], lr["threshold_flips"]) == (24, 0, 0)
    assert lr["max_abs_diff"] <= 1e-9
    # The report is kept beside the ledger, and status shows it.
    kept = json.loads(Path("state/tradekit.drift.json").read_text())
    assert kept["live_replay"] == lr
    r = run_cli("-c", "tradekit.toml", "status", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["drift"]["status"] == doc["status"]
    r = run_cli("-c", "tradekit.toml", "status")
    assert "\ndrift      " in r.out
    # One prediction the loop recorded differs from what the model says on those candles.
    tampered = list(rows)
    t = tampered[5]
    tampered[5] = (*t[:5], t[5] + 0.01, *t[6:])
    Path("state/tradekit.db").unlink()
    make_ledger(Path("state/tradekit.db"), tampered)
    with open("tradekit.toml", "a") as fh:
        fh.write("[risk]\npause_on_drift = true\n")
    r = run_cli("-c", "tradekit.toml", "drift", "--json", "--alert-file", "alert.txt")
    assert r.code == 1
    doc = json.loads(r.out)
    assert doc["live_replay"]["mismatches"] == 1
    assert doc["live_replay"]["examples"][0]["symbol"] == t[1]
    assert doc["retrain"]["recommended"] is False  # a disagreement is a fault, not a stale model
    assert doc["pause"]["requested"] is True
    with LedgerView("state/tradekit.db") as view:
        assert [c["command"] for c in view.pending_controls()] == ["pause"]
    assert "live and replay disagree on 1 of 24" in Path("alert.txt").read_text()
    r = run_cli("-c", "tradekit.toml", "status")
    assert "drift      alert" in r.out and "entries paused by it" in r.out
    # Every view of the snapshot has it: the phone's status and the API's status/1.
    from tradekit.report import snapshot, text

    snap = snapshot.load("state/tradekit.db")
    assert snap.drift is not None and snap.drift["status"] == "alert"
    assert "live and replay disagree" in text.phone(snap)
    assert json.loads(snapshot.dumps(snap))["drift"]["pause_requested"] is True
