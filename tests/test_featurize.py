"""``featurize``'s file path (Arrow, a symbol at a time, features/2) against ``build_features``,
and features/1 files (float64 features) still read by ``train`` and ``predict``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_features import COST, SMALL, frame, walk
from tradekit.contracts import FEATURES, OHLCV, open_parquet, read_table, write_ohlcv
from tradekit.features import build_features, featurize_file, label_columns


def _input(path: Path) -> None:
    df = frame(
        walk("BTC/USD", 400, seed=1),
        walk("ETH/USD", 380, start_ms=1_704_067_200_000 + 5 * 3_600_000, seed=2, drop=(40, 41)),
        walk("XRP/USD", 30, seed=3),  # too short: left out whole
    )
    write_ohlcv(df, path, {"exchange": "test", "timeframe": "1h"})


def test_file_equals_build_features_with_float32_features(tmp_path: Path):
    src, out = tmp_path / "in.parquet", tmp_path / "out.parquet"
    _input(src)
    res = featurize_file(src, out, SMALL, cost=COST)
    df, meta = read_table(out, FEATURES)
    ohlcv, _ = read_table(src, OHLCV)
    want, want_meta = build_features(ohlcv, SMALL, "1h", cost=COST)
    assert {k: v for k, v in meta.items() if k not in ("exchange", "source")} == want_meta
    assert res.meta["rows_out"] == len(df) == len(want) and meta["dropped_symbols"] == ["XRP/USD"]
    assert df["symbol"].tolist() == want["symbol"].tolist()
    assert (df["timestamp"] == want["timestamp"]).all()
    for c in meta["features"]:
        assert df[c].dtype == np.float32
        np.testing.assert_array_equal(df[c].to_numpy(), want[c].to_numpy().astype(np.float32))
    for c in label_columns():
        assert df[c].dtype == np.float64
        np.testing.assert_array_equal(df[c].to_numpy(), want[c].to_numpy())
    pf, _ = open_parquet(out, FEATURES)
    assert pf.metadata.num_row_groups == 2  # one per symbol written


def test_stdout_gets_the_same_bytes(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]):
    src = tmp_path / "in.parquet"
    _input(src)
    featurize_file(src, tmp_path / "out.parquet", SMALL, cost=COST)
    featurize_file(src, "-", SMALL, cost=COST)
    assert capsysbinary.readouterr().out == (tmp_path / "out.parquet").read_bytes()


def test_featurize_file_does_not_load_pandas(tmp_path: Path):
    src = tmp_path / "in.parquet"
    _input(src)
    code = (
        "import sys\n"
        "sys.modules['pandas'] = None  # any import of pandas fails\n"
        "from tradekit.features import featurize_file\n"
        "from tradekit.features.sets import FeatureSpec\n"
        "spec = FeatureSpec(name='s', periods=(3, 6), label_horizon=4, macd=(3, 6, 3))\n"
        f"featurize_file({str(src)!r}, {str(tmp_path / 'o.parquet')!r}, spec, cost=0.01)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "o.parquet").exists()


def test_features_1_files_still_train_and_predict(tmp_path: Path, run_cli):
    """A features/1 file (float64 features) gives the same model and predictions as the
    features/2 file of the same candles: both are cast to float32 for the model."""
    src, f2 = tmp_path / "in.parquet", tmp_path / "f2.parquet"
    _input(src)
    featurize_file(src, f2, SMALL, cost=COST)
    ohlcv, _ = read_table(src, OHLCV)
    want, meta = build_features(ohlcv, SMALL, "1h", cost=COST)
    table = pa.Table.from_pandas(want, preserve_index=False)
    old_meta = {
        b"tradekit.schema": b"features/1",
        b"tradekit.meta": pq.read_schema(f2).metadata[b"tradekit.meta"],
    }
    f1 = tmp_path / "f1.parquet"
    pq.write_table(table.replace_schema_metadata(old_meta), f1)
    assert pq.read_schema(f1).field(meta["features"][0]).type == pa.float64()
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        "[model]\nn_estimators = 20\nthreads = 1\ntrain_window = 100\ntest_window = 30\nstep = 30\n"
    )
    for name in ("f1", "f2"):
        r = run_cli(
            "-c",
            str(cfg),
            "train",
            str(tmp_path / f"{name}.parquet"),
            "-o",
            str(tmp_path / f"m-{name}"),
        )
        assert r.code == 0, r.err
        r = run_cli(
            "predict",
            str(tmp_path / f"m-{name}"),
            str(tmp_path / f"{name}.parquet"),
            "-o",
            str(tmp_path / f"p-{name}.parquet"),
        )
        assert r.code == 0, r.err
    assert (tmp_path / "m-f1" / "model.txt").read_bytes() == (
        tmp_path / "m-f2" / "model.txt"
    ).read_bytes()
    p1 = pq.read_table(tmp_path / "p-f1.parquet").column("prediction")
    p2 = pq.read_table(tmp_path / "p-f2.parquet").column("prediction")
    assert p1.equals(p2)
