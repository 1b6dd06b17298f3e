"""Ensembles: `train --model ensemble` (members, regime model, stacking meta-learner), the
nested-CV leakage rule, determinism, the manifest's lineage, `predict` on an ensemble, a
missing member, deep members and their absence, and MEMBERS.toml errors.

The leakage rule is tested two ways: on the stacking code itself with random fold layouts
(every row a fold's combiner learns from was tested by an earlier fold and its label ends
before the fold's test span; labels the rule forbids never move the fold's predictions), and
end to end through `train`: changing every label that ends inside or after fold k's test span
leaves the ensemble's fold-k predictions exactly as they were, while changing the labels its
combiner does learn from moves them (so the first check can fail).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_models import HOUR, assert_fails, features_frame, oos, write_config, write_features
from tradekit.models.stacking import MetaModel, stack_folds, stacking_rows

FEATURES = ["f0", "f1", "f2", "f3", "vol_20", "ret_20"]


def ensemble_frame(rows: int = 400, seed: int = 0, **kw: Any) -> pd.DataFrame:
    """features_frame with a volatility and a return column for the regime model."""
    frame = features_frame(rows=rows, seed=seed, **kw)
    rng = np.random.default_rng(seed + 100)
    frame.insert(6, "vol_20", np.abs(rng.normal(0.01, 0.004, len(frame))))
    frame.insert(7, "ret_20", rng.normal(0.0, 0.05, len(frame)))
    return frame


def write_ensemble_features(
    path: str | Path, frame: pd.DataFrame | None = None, **meta: Any
) -> Path:
    frame = ensemble_frame() if frame is None else frame
    return write_features(path, frame, features=FEATURES, **meta)


def small_config(**over: Any) -> Path:
    keys = {"kind": "ensemble", "n_estimators": 10, **over}
    return write_config("model.toml", **keys)


def train_cli(run_cli: Any, *args: str) -> dict[str, Any]:
    if not Path("model.toml").exists():
        small_config()
    r = run_cli("-c", "model.toml", "train", *args)
    assert r.code == 0, r.err
    out = args[args.index("-o") + 1]
    doc: dict[str, Any] = json.loads((Path(out) / "manifest.json").read_text())
    return doc


# -- the leakage rule on the stacking code ---------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(30, 200),
    folds=st.integers(1, 6),
    horizon=st.integers(0, 20),
    members=st.integers(2, 4),
    seed=st.integers(0, 10_000),
)
def test_a_folds_combiner_learns_only_from_earlier_folds_finished_labels(
    n, folds, horizon, members, seed
):
    rng = np.random.default_rng(seed)
    ts = np.arange(n, dtype=np.int64) * 10
    # Folds test consecutive spans; some rows are in none (the first train window).
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(folds + 1, n - 1), replace=False))
    fold_of = np.full(n, -1, dtype=np.int64)
    starts = []
    for k in range(len(cuts) - 1):
        fold_of[cuts[k] : cuts[k + 1]] = k
        starts.append(int(ts[cuts[k]]))
    label_end = ts + horizon * 10
    y = rng.normal(size=n)
    y[rng.random(n) < 0.1] = np.nan
    P = y[:, None] + rng.normal(size=(n, members))
    P[rng.random((n, members)) < 0.05] = np.nan
    regimes = [rng.integers(0, 3, n) for _ in starts]
    out, lineage = stack_folds(
        [f"m{j}" for j in range(members)], "regression", P, y, fold_of, label_end, starts,
        regimes, shrink=5.0, min_rows=3,
    )  # fmt: skip
    for k, (start, stack) in enumerate(zip(starts, lineage, strict=True)):
        used = stacking_rows(fold_of, label_end, np.isfinite(y), k, start)
        assert (fold_of[used] < k).all() and (fold_of[used] >= 0).all()
        assert (label_end[used] < start).all()
        assert set(stack.from_folds) <= set(range(k))
        if stack.last_label_end_ms is not None:
            assert stack.last_label_end_ms < stack.test_start_ms == start
        # Every label the rule forbids (a later fold's, or one ending inside or after this
        # fold's test span) and every later prediction can change without moving fold k.
        forbidden = ~used
        y2 = y.copy()
        y2[forbidden] = rng.normal(size=int(forbidden.sum())) * 50
        P2 = P.copy()
        P2[fold_of > k] += 7.0
        out2, _ = stack_folds(
            [f"m{j}" for j in range(members)], "regression", P2, y2, fold_of, label_end,
            starts, regimes, shrink=5.0, min_rows=3,
        )  # fmt: skip
        test = fold_of == k
        np.testing.assert_array_equal(out[test], out2[test])


def test_the_meta_learner_shrinks_to_the_plain_average_without_data():
    rng = np.random.default_rng(3)
    P = rng.normal(size=(50, 3))
    y = P @ np.array([1.0, 0.0, 0.0])
    regime = np.zeros(50, dtype=np.int64)
    strong = MetaModel.fit(["a", "b", "c"], "regression", P, y, regime, shrink=1e9)
    np.testing.assert_allclose(strong.pooled[1:], [1 / 3] * 3, atol=1e-6)
    weak = MetaModel.fit(["a", "b", "c"], "regression", P, y, regime, shrink=1e-6)
    np.testing.assert_allclose(weak.pooled[1:], [1.0, 0.0, 0.0], atol=1e-4)
    # A regime without rows keeps the pooled weights; JSON round-trips exactly.
    assert weak.weights[2] == weak.pooled
    assert MetaModel.from_json(json.loads(json.dumps(weak.as_json()))) == weak


# -- the leakage rule end to end -------------------------------------------------------------


@settings(max_examples=5, deadline=None)
@given(
    test=st.integers(25, 45),
    extra_step=st.integers(0, 10),
    purge=st.integers(0, 6),
    horizon=st.integers(1, 5),
    k=st.integers(1, 3),
)
def test_future_labels_never_reach_an_ensemble_fold(test, extra_step, purge, horizon, k):
    from tradekit.config import ModelConfig
    from tradekit.models.ensemble import train_ensemble
    from tradekit.models.members import parse

    frame = ensemble_frame(rows=300, horizon=horizon)
    spec = parse({"meta": {"min_rows": 10, "shrink": 20.0}}, "")
    cfg = ModelConfig(
        kind="ensemble", n_estimators=5, train_window=60, test_window=test,
        step=test + extra_step, purge=purge, threads=1,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        write_ensemble_features(Path(d) / "a.parquet", frame, horizon=horizon)
        doc = train_ensemble(Path(d) / "a.parquet", Path(d) / "a", cfg, spec).manifest
        folds = doc["walk_forward"]["folds"]
        k = min(k, len(folds) - 1)
        start = folds[k]["test"]["start_ms"]
        stack = folds[k]["stacking"]
        assert stack["from_folds"] == list(range(k)) or stack["rows"] == 0
        assert stack["last_label_end_ms"] is None or stack["last_label_end_ms"] < start
        # Labels that end at or after fold k's test start (horizon candles after the row).
        ts = frame["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
        late = ts + horizon * HOUR >= start
        changed = frame.copy()
        rng = np.random.default_rng(k)
        changed.loc[late, "label_return"] = rng.normal(0, 0.05, int(late.sum()))
        write_ensemble_features(Path(d) / "b.parquet", changed, horizon=horizon)
        train_ensemble(Path(d) / "b.parquet", Path(d) / "b", cfg, spec)
        a, b = oos(Path(d) / "a"), oos(Path(d) / "b")
        fa, fb = a[a["fold"] == k], b[b["fold"] == k]
        pd.testing.assert_frame_equal(fa.reset_index(drop=True), fb.reset_index(drop=True))
        if stack["combiner"] == "ridge":
            # The labels the combiner did learn from move fold k (the check above can fail).
            early = (ts + horizon * HOUR < start) & (ts >= folds[0]["test"]["start_ms"])
            moved = frame.copy()
            moved.loc[early, "label_return"] *= -3.0
            write_ensemble_features(Path(d) / "c.parquet", moved, horizon=horizon)
            train_ensemble(Path(d) / "c.parquet", Path(d) / "c", cfg, spec)
            c = oos(Path(d) / "c")
            assert not np.allclose(
                fa["prediction"].to_numpy(), c[c["fold"] == k]["prediction"].to_numpy()
            )


# -- the command -----------------------------------------------------------------------------


def test_ensemble_through_train_and_predict(run_cli):
    write_ensemble_features("f.parquet")
    doc = train_cli(run_cli, "f.parquet", "-o", "ens", "--model", "ensemble")
    assert doc["kind"] == "ensemble"
    assert doc["params"]["members"] == ["global", "per_symbol"]
    names = [m["name"] for m in doc["members"]]
    assert names == ["global", "per_symbol"]
    for m in doc["members"]:
        own = json.loads(Path("ens", m["dir"], "manifest.json").read_text())
        assert m["version"] == own["version"] and m["kind"] == own["kind"] == "lightgbm"
        assert m["data"]["features_hash"] == doc["data"]["features_hash"]
        assert m["manifest_sha256"].startswith("sha256:")
        for name, h in own["files"].items():  # every member file is part of the ensemble
            assert doc["files"][f"{m['dir']}/{name}"] == h
    assert "ensemble.json" in doc["files"]
    assert doc["walk_forward"]["folds"][0]["stacking"]["combiner"] == "equal"
    assert set(doc["ensemble"]["meta"]["regimes"]) == {"range", "trend", "high_vol"}
    assert doc["ensemble"]["regime"]["vol_feature"] == "vol_20"
    assert doc["drift_reference"]["features"].keys() == set(FEATURES)
    # predict treats it like any model: the OOS rows predicted again by the final model.
    r = run_cli("predict", "ens", "f.parquet", "-o", "p.parquet")
    assert r.code == 0, r.err
    from tradekit.contracts import PREDICTIONS, read_table

    pred, meta = read_table("p.parquet", PREDICTIONS)
    assert len(pred) == 800 and pred["prediction"].notna().all()
    assert meta["model_kind"] == "ensemble" and meta["model_version"] == doc["version"]


def test_same_seed_same_ensemble(run_cli):
    write_ensemble_features("f.parquet")
    a = train_cli(run_cli, "f.parquet", "-o", "a")
    b = train_cli(run_cli, "f.parquet", "-o", "b")
    assert a["version"] == b["version"]
    for name in ("ensemble.json", "oos_predictions.parquet", *a["files"]):
        assert Path("a", name).read_bytes() == Path("b", name).read_bytes(), name
    r1 = run_cli("predict", "a", "f.parquet", "-o", "pa.parquet")
    r2 = run_cli("predict", "b", "f.parquet", "-o", "pb.parquet")
    assert r1.code == r2.code == 0
    assert Path("pa.parquet").read_bytes() == Path("pb.parquet").read_bytes()
    c = train_cli(run_cli, "f.parquet", "-o", "c", "--seed", "7")
    assert c["version"] != a["version"]


def test_a_missing_member_is_one_line_exit_3(run_cli):
    import shutil

    write_ensemble_features("f.parquet")
    train_cli(run_cli, "f.parquet", "-o", "ens")
    shutil.rmtree("ens/members/per_symbol")
    r = run_cli("predict", "ens", "f.parquet", "-o", "p.parquet")
    assert_fails(r, 3, "members/per_symbol", "ensemble member 'per_symbol'", "missing")
    assert not Path("p.parquet").exists()


def test_members_file_and_its_errors(run_cli):
    write_ensemble_features("f.parquet")
    Path("m.toml").write_text(
        '[[member]]\nname = "small"\nnum_leaves = 4\n\n'
        '[[member]]\nname = "big"\nnum_leaves = 31\nn_estimators = 20\n\n'
        "[regime]\nhigh_vol_quantile = 0.9\n[meta]\nshrink = 50.0\n"
    )
    doc = train_cli(run_cli, "f.parquet", "-o", "ens", "--members", "m.toml")
    assert [m["params"]["num_leaves"] for m in doc["members"]] == [4, 31]
    assert doc["params"]["meta"]["shrink"] == 50.0
    assert doc["ensemble"]["regime"]["high_vol_quantile"] == 0.9
    for text, fragment in (
        ('members = ["global", "xgboost"]\n', "unknown member 'xgboost'"),
        ('[[member]]\nname = "a"\nkind = "forest"\n', "member[0].kind"),
        ('[[member]]\nname = "a"\nlabel = "x"\n', "unknown key(s) label"),
        ('members = ["global"]\n', "at least two members"),
        ('members = ["global", "global"]\n', "given twice"),
        ('members = ["global", "per_symbol"]\n[regime]\nvol_feature = "nope"\n', "regime"),
    ):
        Path("bad.toml").write_text(text)
        r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "x", "--members", "bad.toml")
        assert_fails(r, 3, "bad.toml" if "nope" not in text else "nope", fragment)
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "x", "--members", "nope.toml")
    assert_fails(r, 3, "nope.toml")
    r = run_cli("train", "f.parquet", "-o", "x", "--members", "m.toml")
    assert_fails(r, 2, "--members")
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "x", "--no-walk-forward")
    assert_fails(r, 2, "walk-forward")


def test_model_ensemble_section_in_the_config(run_cli):
    write_ensemble_features("f.parquet")
    small_config()
    with open("model.toml", "a") as fh:
        fh.write('\n[model.ensemble]\nmembers = ["per_symbol", "global"]\n')
    doc = train_cli(run_cli, "f.parquet", "-o", "ens")
    assert doc["params"]["members"] == ["per_symbol", "global"]


def test_deep_members_are_skipped_with_a_note_without_torch(run_cli, monkeypatch):
    # torch is installed here: None in sys.modules is how Python itself blocks an import.
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    write_ensemble_features("f.parquet")
    Path("m.toml").write_text('members = ["global", "per_symbol", "lstm"]\n')
    doc = train_cli(run_cli, "f.parquet", "-o", "ens", "--members", "m.toml")
    assert [m["name"] for m in doc["members"]] == ["global", "per_symbol"]
    assert doc["skipped_members"][0]["name"] == "lstm"
    assert "torch" in doc["skipped_members"][0]["why"]
    Path("m.toml").write_text('[[member]]\nname = "l"\nkind = "lstm"\noptional = false\n'
                              '[[member]]\nname = "g"\n')  # fmt: skip
    r = run_cli("-c", "model.toml", "train", "f.parquet", "-o", "x", "--members", "m.toml")
    assert_fails(r, 3, "torch")


def test_a_sequence_member_beside_lightgbm(run_cli):
    pytest.importorskip("torch")
    write_ensemble_features("f.parquet", ensemble_frame(rows=300))
    Path("m.toml").write_text(
        '[[member]]\nname = "gbm"\n\n'
        '[[member]]\nname = "seq"\nkind = "lstm"\nepochs = 1\nseq_len = 6\nhidden = 8\n'
    )
    doc = train_cli(run_cli, "f.parquet", "-o", "ens", "--members", "m.toml")
    assert doc["lookback"] == 6
    r = run_cli("predict", "ens", "f.parquet", "-o", "p.parquet")
    assert r.code == 0, r.err
    from tradekit.contracts import PREDICTIONS, read_table

    pred, _ = read_table("p.parquet", PREDICTIONS)
    # Rows without a full window for the sequence member get no ensemble prediction.
    assert len(pred) == 2 * (300 - 5)
    assert pred.groupby("symbol")["timestamp"].min().nunique() == 1


def test_the_live_loops_row_path_equals_predict(run_cli):
    """predict_rows (the loop's pandas-free path, LightGBM through treelite with lean) gives
    the same numbers as predict on a frame."""
    from tradekit.contracts import FEATURES, read_table
    from tradekit.models.ensemble_load import LoadedEnsemble
    from tradekit.models.predict import load_model

    write_ensemble_features("f.parquet")
    train_cli(run_cli, "f.parquet", "-o", "ens")
    frame, _ = read_table("f.parquet", FEATURES)
    rows = frame.groupby("symbol").tail(3).reset_index(drop=True)
    want = load_model("ens").predict(rows)["prediction"].to_numpy()
    for lean in (False, True):
        model = load_model("ens", lean=lean)
        assert isinstance(model, LoadedEnsemble) and model.rowwise
        X = rows[model.features].to_numpy(dtype=np.float32)
        got = model.predict_rows(X, rows["symbol"].tolist())
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_an_ensemble_in_the_live_loop(run_cli):
    """run's loading (timeframe, symbols, feature set checked) and the loop's signals serve an
    ensemble as any model: the prediction at a candle equals the ensemble's on the features
    of the whole history; drift judges it too."""
    from tests.test_drift import CONFIG, ROWS, SYMBOLS, walk
    from tradekit.config import load_config
    from tradekit.contracts import write_ohlcv
    from tradekit.live.history import History
    from tradekit.live.signals import ModelSignals
    from tradekit.live.startup import load_model

    Path("tradekit.toml").write_text(CONFIG)
    ohlcv = walk(ROWS, 4)
    write_ohlcv(ohlcv, "ohlcv.parquet", {"exchange": "sample", "timeframe": "1h"})
    assert run_cli("-c", "tradekit.toml", "featurize", "ohlcv.parquet", "-o", "f.parquet").code == 0
    r = run_cli("-c", "tradekit.toml", "train", "f.parquet", "-o", "ens", "--model", "ensemble")
    assert r.code == 0, r.err
    cfg = load_config("tradekit.toml", environ={})
    model = load_model(cfg, Path("ens"))
    signals = ModelSignals(model, list(SYMBOLS), "1h")
    assert signals.rowwise  # features a candle at a time, as for a single LightGBM model
    history = History(list(SYMBOLS), HOUR, 2000)
    ts = ohlcv["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
    for s in SYMBOLS:
        part = ohlcv[ohlcv["symbol"] == s]
        rows = np.column_stack([ts[part.index], part[["open", "high", "low", "close", "volume"]]])
        history.add(s, rows)
    t = int(ts.max())
    live, _ = signals.predict(t, history)
    frame = pd.read_parquet("f.parquet")
    last = frame[frame["timestamp"].dt.as_unit("ms").astype("int64") == t]
    want = model.predict(last.reset_index(drop=True))
    np.testing.assert_allclose(live, want["prediction"].to_numpy(), rtol=0, atol=1e-9)
    r = run_cli("-c", "tradekit.toml", "drift", "ens", "f.parquet", "--json")
    assert r.code in (0, 1) and json.loads(r.out)["model"]["kind"] == "ensemble"
