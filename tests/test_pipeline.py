"""``make pipeline``: rules keyed on files, so a second ``make`` reruns only stale stages, and
deploy refuses the model whose gate receipt failed. Runs the real Makefile with the real CLI on
the offline sample (a few months of one symbol, few boosting rounds: this tests the wiring, not
the model)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TK = ROOT / ".venv" / "bin" / "tradekit"

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or not TK.exists(), reason="needs make and .venv (make install)"
)


def _make(pipe: Path, *args: str, cfg: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADEKIT_", "MAKE", "MFLAGS"))}
    env["TRADEKIT_CONFIG"] = str(cfg)
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-C",
            str(ROOT),
            *args,
            f"PIPE={pipe}",
            f"CONFIG={cfg}",
            "FETCH_ARGS=BTC/USD --exchange sample -t 1h --since 2019-01-01 --until 2019-07-01 "
            "--fill-gaps",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _commands(dry: subprocess.CompletedProcess[str]) -> list[str]:
    return re.findall(r"(?:^|; )\.venv/bin/tradekit (\w+)", dry.stdout, re.M)


def test_pipeline_reruns_only_stale_stages_and_stops_at_a_failing_gate(tmp_path: Path) -> None:
    cfg = tmp_path / "tradekit.toml"
    cfg.write_text(
        '[exchange]\nsymbols = ["BTC/USD"]\n'
        "[model]\nn_estimators = 20\ntrain_window = 1000\ntest_window = 300\n"
        # An unreachable bar: the gate must fail, whatever the model.
        "[gate]\nmin_sortino = 1000.0\n"
    )
    pipe = tmp_path / "pipe"
    first = _make(pipe, "pipeline", cfg=cfg)
    # A failing gate is an answer, not a broken pipeline: no "make: *** ... Error", one line.
    assert first.returncode == 0, first.stderr[-2000:]
    assert "make: ***" not in first.stderr
    assert first.stderr.rstrip().endswith(
        f"pipeline: NOT deployed: the model did not pass the gate (verdict in {pipe}/verdict.json)"
    )
    assert (pipe / "verdict.json").exists()  # the failing verdict is kept
    assert not (pipe / "deployed.json").exists()  # and nothing was deployed
    assert first.stderr.count("Sortino ratio") == 1  # the gate's table, once
    # The Makefile has no gate check of its own: deploy refused the model by its receipt.
    assert "the model failed the gate (min_sortino" in first.stderr
    assert (pipe / "model" / "verdict.json").exists()

    # Up to date up to the verdict: only deploy (which refuses again) would run.
    assert _commands(_make(pipe, "-n", "pipeline", cfg=cfg)) == ["deploy"]

    # A newer report reruns the verdict onward; a newer config reruns featurize onward, while
    # the candles of this week are kept.
    time.sleep(1.1)  # make compares mtimes at one-second resolution on some filesystems
    (pipe / "report.json").touch()
    assert _commands(_make(pipe, "-n", "pipeline", cfg=cfg)) == ["gate", "deploy"]
    cfg.touch()
    assert _commands(_make(pipe, "-n", "pipeline", cfg=cfg)) == [
        "fetch",
        "featurize",
        "train",
        "backtest",
        "gate",
        "deploy",
    ]
