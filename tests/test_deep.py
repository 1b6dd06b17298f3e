"""LSTM and Transformer (torch, CPU): training, saving and loading, exact determinism, and
resuming a killed run from its checkpoints with the same result as an uninterrupted one."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_models import assert_fails, features_frame, oos, write_features
from tradekit.config import ModelConfig
from tradekit.contracts import FEATURES, read_table

pytest.importorskip("torch")

KINDS = ["lstm", "transformer"]


def tiny(kind: str, **over: object) -> ModelConfig:
    """2 symbols x 300 rows, 4 features: seq_len 8, hidden 8, 2 epochs."""
    keys = {
        "kind": kind,
        "train_window": 150,
        "test_window": 50,
        "step": 50,
        "epochs": 2,
        "batch_size": 64,
        "seq_len": 8,
        "hidden": 8,
        "deep_learning_rate": 0.01,
        "threads": 1,
        "device": "cpu",
        **over,
    }
    return ModelConfig(**keys)  # type: ignore[arg-type]


@pytest.fixture
def feats(tmp_path: Path) -> Path:
    return write_features(tmp_path / "f.parquet", features_frame(rows=300))


def killer(after: int) -> Callable[[str, int], object]:
    """A progress callback that kills the run after ``after`` finished epochs, as a SIGTERM on
    an interruptible GPU box would (main() turns SIGTERM into KeyboardInterrupt)."""

    @contextmanager
    def progress(description: str, total: int) -> Iterator[Callable[..., None]]:
        done = [0]

        def advance(n: int = 1) -> None:
            done[0] += n
            if done[0] >= after:
                raise KeyboardInterrupt

        yield advance

    return progress


@pytest.mark.parametrize("kind", KINDS)
def test_train_save_load_and_predict(kind, feats, tmp_path):
    from tradekit.models.predict import load_model
    from tradekit.models.train import train

    result = train(feats, tmp_path / "m", tiny(kind))
    doc = result.manifest
    assert doc["kind"] == kind and doc["lookback"] == 8
    assert sorted(doc["files"]) == ["model.json", "model.npz"]
    assert doc["versions"]["torch"]
    hp = json.loads((tmp_path / "m/model.json").read_text())
    assert hp["seq_len"] == 8 and hp["hidden"] == 8 and len(hp["scaler"]["mean"]) == 4
    # Scaler fitted on the final training window only.
    frame, _ = read_table(feats, FEATURES)
    ts = frame["timestamp"].dt.as_unit("ms").astype("int64")
    window = frame[(ts >= doc["training"]["start_ms"]) & (ts <= doc["training"]["end_ms"])]
    assert hp["scaler"]["mean"] == pytest.approx(window[["f0", "f1", "f2", "f3"]].mean().tolist())
    pred = oos(tmp_path / "m")
    assert len(pred) == sum(f["test"]["rows"] for f in doc["walk_forward"]["folds"]) > 0
    assert np.isfinite(pred["prediction"]).all()
    model = load_model(tmp_path / "m")
    assert model.lookback == 8 and model.kind == kind
    out = model.predict(frame)
    # Each symbol's first seq_len - 1 rows have no full window, so no prediction.
    assert len(out) == len(frame) - 2 * 7
    eighth = frame.groupby("symbol")["timestamp"].nth(7).reset_index(drop=True)
    assert out.groupby("symbol")["timestamp"].min().reset_index(drop=True).equals(eighth)
    # The live loop's view: the last `lookback` rows of a symbol predict its newest row, the
    # same value as the whole-file prediction.
    last = frame[frame["symbol"] == "ETH/USD"].tail(model.lookback)
    live = model.predict(last)
    assert len(live) == 1 and live["timestamp"].iloc[0] == last["timestamp"].iloc[-1]
    batch = out[out["symbol"] == "ETH/USD"]["prediction"].iloc[-1]
    # Equal here; a tolerance because BLAS may pick other kernels for a batch of one elsewhere.
    assert live["prediction"].iloc[0] == pytest.approx(batch, rel=1e-6, abs=1e-9)
    assert len(model.predict(last.iloc[1:])) == 0  # one row short of a window


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_predictions(kind, feats, tmp_path):
    from tradekit.models.predict import load_model
    from tradekit.models.train import train

    train(feats, tmp_path / "a", tiny(kind, test_window=100, step=100))
    train(feats, tmp_path / "b", tiny(kind, test_window=100, step=100))
    for name in ("model.npz", "model.json", "oos_predictions.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    frame, _ = read_table(feats, FEATURES)
    pa = load_model(tmp_path / "a").predict(frame)["prediction"].to_numpy()
    pb = load_model(tmp_path / "b").predict(frame)["prediction"].to_numpy()
    assert np.array_equal(pa, pb)
    train(feats, tmp_path / "c", tiny(kind, test_window=100, step=100, seed=5))
    assert (tmp_path / "a/model.npz").read_bytes() != (tmp_path / "c/model.npz").read_bytes()


@pytest.mark.parametrize(("kind", "after"), [("lstm", 3), ("transformer", 6)])
def test_resume_after_a_kill_equals_an_uninterrupted_run(kind, after, feats, tmp_path, caplog):
    """Killed mid-fold (after 3 epochs: fold 1 of 3 done, fold 2 after its first epoch) or
    after a fold's last epoch but before its predictions were saved (after 6), then resumed."""
    from tradekit.models.train import train

    cfg = tiny(kind)
    train(feats, tmp_path / "whole", cfg)
    # An old model in place stays there, untouched, while the new run is killed.
    train(feats, tmp_path / "m", tiny(kind, epochs=1, test_window=100, step=100))
    old = (tmp_path / "m/model.npz").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        train(feats, tmp_path / "m", cfg, progress=killer(after))  # type: ignore[arg-type]
    assert (tmp_path / "m/model.npz").read_bytes() == old
    partial = tmp_path / "m.partial"
    done = sorted(p.name for p in (partial / "folds").iterdir())
    ckpts = sorted(p.name for p in (partial / "checkpoints").iterdir())
    if after == 3:
        assert done == ["fold-000.npz"] and ckpts == ["fold-001.pt"]
    else:
        assert done == ["fold-000.npz", "fold-001.npz"] and ckpts == ["fold-002.pt"]
    # Resuming fits only what is left: finished folds are reused, the interrupted one
    # continues at its next epoch.
    with caplog.at_level(logging.INFO, logger="tradekit.models"):
        train(feats, tmp_path / "m", cfg, resume=True)
    said = [r.getMessage() for r in caplog.records]
    reused = [m for m in said if "reusing its predictions" in m]
    resumed = [m for m in said if "resuming after epoch" in m]
    if after == 3:
        assert len(reused) == 1 and resumed == ["fold-001.pt: resuming after epoch 1 of 2"]
    else:
        assert len(reused) == 2 and resumed == ["fold-002.pt: resuming after epoch 2 of 2"]
    assert not partial.exists()
    for name in ("model.npz", "model.json", "oos_predictions.parquet"):
        assert (tmp_path / "m" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()


def test_resume_refuses_checkpoints_of_another_run(feats, tmp_path):
    from tradekit.errors import InputError
    from tradekit.models.train import train

    with pytest.raises(KeyboardInterrupt):
        train(feats, tmp_path / "m", tiny("lstm"), progress=killer(1))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="other inputs or parameters"):
        train(feats, tmp_path / "m", tiny("lstm", hidden=4), resume=True)
    # Without --resume the stale partial directory is simply started over.
    train(feats, tmp_path / "m", tiny("lstm", hidden=4, epochs=1))
    assert (tmp_path / "m/manifest.json").exists()


def test_cli_train_and_resume(run_cli, feats):
    Path("model.toml").write_text(
        "[model]\nkind = 'lstm'\ntrain_window = 150\ntest_window = 100\nstep = 100\n"
        "epochs = 1\nseq_len = 8\nhidden = 8\nthreads = 1\ndeep_learning_rate = 0.01\n"
    )
    r = run_cli("-c", "model.toml", "train", str(feats), "-o", "m", "--resume", "--device", "cpu")
    assert r.code == 0, r.err
    r = run_cli("-c", "model.toml", "predict", "m", str(feats), "-o", "p.parquet")
    assert r.code == 0, r.err
    assert len(pd.read_parquet("p.parquet")) == 600 - 2 * 7


def test_cuda_without_a_gpu_is_a_usage_error(run_cli, feats):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = run_cli("train", str(feats), "-o", "m", "--model", "lstm", "--device", "cuda")
    assert_fails(r, 2, "--device cuda")


def test_missing_torch_names_the_extra(run_cli, feats, monkeypatch):
    # torch is installed here; a None entry in sys.modules makes `import torch` fail the way
    # it does on a box without the [deep] extra (the Pi).
    monkeypatch.setitem(sys.modules, "torch", None)
    r = run_cli("train", str(feats), "-o", "m", "--model", "transformer")
    assert_fails(r, 3, "transformer needs torch", "tradekit[deep]")


def test_a_failed_run_leaves_no_partial_directory(run_cli, feats):
    # seq_len 200 > the 150-candle train window: no training window fits in fold 1.
    Path("deep.toml").write_text(
        "[model]\nkind = 'lstm'\ntrain_window = 150\ntest_window = 50\nstep = 50\n"
        "epochs = 1\nseq_len = 200\nhidden = 8\nthreads = 1\n"
    )
    r = run_cli("-c", "deep.toml", "train", str(feats), "-o", "m")
    assert_fails(r, 3, "no training windows", "seq_len")
    assert not Path("m").exists() and not Path("m.partial").exists()
