"""CPU threads: OpenMP waits passively in the libraries tradekit loads, the default thread
count leaves the load's cores alone, and the model file does not depend on the count."""

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


def test_default_thread_count_leaves_the_loaded_cores(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    for load, want in ((0.0, 4), (0.4, 4), (1.6, 2), (3.5, 1), (12.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert threads.training_threads(0) == want, load
    assert threads.training_threads(3) == 3  # [model] threads / --threads wins


def test_usable_cores_is_within_the_machine():
    assert 1 <= threads.usable_cores() <= (os.cpu_count() or 1)


def test_model_file_is_the_same_on_one_or_two_threads(tmp_path: Path):
    feats = write_features(tmp_path / "f.parquet", features_frame(rows=600, n_features=6))
    texts = []
    for n in (1, 2):
        cfg = ModelConfig(n_estimators=40, threads=n, train_window=300, test_window=100, step=100)
        out = train(feats, tmp_path / f"m{n}", cfg)
        texts.append((out.model_dir / "model.txt").read_bytes())
        assert b"num_threads" not in texts[-1]
    assert texts[0] == texts[1]
