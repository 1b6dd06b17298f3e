"""CPU threads and native settings: OpenMP waits passively in the libraries tradekit loads,
Arrow allocates with the system's allocator, the default thread count leaves the load's cores
alone, and the model file does not depend on the count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tests.test_models import features_frame, write_features
from tradekit import threads
from tradekit.config import ModelConfig
from tradekit.models.train import train


def _spincount(code: str, **env: str) -> str:
    """GOMP_SPINCOUNT as libgomp reports it when loaded by ``code`` (OMP_DISPLAY_ENV)."""
    base = {k: v for k, v in cli_env().items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "OMP_DISPLAY_ENV": "VERBOSE", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [ln for ln in run.stderr.splitlines() if "GOMP_SPINCOUNT" in ln]
    assert lines, run.stderr
    return lines[0].split("=")[1].strip().strip("'")


@pytest.mark.parametrize("library", ["lightgbm", "torch"])
def test_openmp_waits_passively_once_tradekit_is_imported(library: str):
    pytest.importorskip(library)
    assert _spincount(f"import {library}") != "0"  # libgomp's default: it spins
    assert _spincount(f"import tradekit, {library}") == "0"
    # An explicit choice of the caller is kept.
    assert _spincount(f"import tradekit, {library}", OMP_WAIT_POLICY="ACTIVE") != "0"


def test_arrow_allocates_with_the_system_allocator():
    code = "import tradekit, pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    base = {k: v for k, v in cli_env().items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    run = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True)
    assert run.stdout.strip() == "system", run.stderr


def test_default_thread_count_leaves_the_loaded_cores(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    for load, want in ((0.0, 4), (0.4, 4), (1.6, 2), (3.5, 1), (12.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert threads.worker_threads(0) == want, load
    assert threads.worker_threads(3) == 3  # [model] threads / --threads wins


def test_usable_cores_is_within_the_machine():
    assert 1 <= threads.usable_cores() <= (os.cpu_count() or 1)


@pytest.mark.parametrize("per_symbol", [False, True])
def test_models_are_the_same_on_one_or_two_threads(tmp_path: Path, per_symbol: bool):
    """Two threads fit models side by side (folds, or symbols), one thread each: the same
    trees, files and out-of-sample predictions as one thread, byte for byte."""
    frame = features_frame(symbols=("BTC/USD", "ETH/USD", "LTC/USD"), rows=600, n_features=6)
    feats = write_features(tmp_path / "f.parquet", frame)
    outs = []
    for n in (1, 2):
        cfg = ModelConfig(
            n_estimators=40,
            threads=n,
            train_window=300,
            test_window=100,
            step=100,
            per_symbol=per_symbol,
        )
        outs.append(train(feats, tmp_path / f"m{n}", cfg).model_dir)
    files = sorted(p.name for p in outs[0].iterdir() if p.name != "manifest.json")
    assert files == sorted(p.name for p in outs[1].iterdir() if p.name != "manifest.json")
    assert "oos_predictions.parquet" in files and any(f.endswith(".txt") for f in files)
    for name in files:
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    for model in (f for f in files if f.endswith(".txt")):
        assert b"num_threads" not in (outs[0] / model).read_bytes()


def test_training_never_loads_pandas(tmp_path: Path):
    """pandas is ~45 MB of a training process: LightGBM is loaded without it, the features
    are read and the predictions written through Arrow's buffers."""
    feats = write_features(tmp_path / "f.parquet", features_frame(rows=400))
    code = (
        "import sys\n"
        "from tradekit.config import ModelConfig\n"
        "from tradekit.models.train import train\n"
        "cfg = ModelConfig(n_estimators=10, threads=2, train_window=200, test_window=50,"
        " step=50)\n"
        f"train({str(feats)!r}, {str(tmp_path / 'm')!r}, cfg)\n"
        "assert 'lightgbm' in sys.modules\n"
        "assert 'pandas' not in sys.modules, 'pandas was loaded'\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "m" / "oos_predictions.parquet").exists()
