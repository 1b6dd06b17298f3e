"""One trial: a variant of the config through the same engine and metrics as ``backtest``.

A policy/risk trial runs ``backtest.engine.simulate_arrays`` (the kernel of ``backtest`` and
the buffers it grows) on the market loaded once per worker, and measures it with
``backtest.report.measure``: the numbers a sweep ranks are, bit for bit, those that ``tradekit
backtest`` prints for the same config. A trial with [model] keys first trains a walk-forward
model with them (``models.train.train``) and backtests its out-of-sample predictions.

``Inputs`` is everything a worker needs, built once by the driver and sent once to each
worker (a pickled argument of the local pool's initializer, or one ``ray.put``); a trial
itself travels as its number, parameters and seed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.sweep.space import METRIC_KEYS, Space, apply

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from tradekit.config import BacktestConfig, ModelConfig, PolicyConfig, RiskConfig
    from tradekit.data.market import Market

DAY_MS = 86_400_000
# The metrics a trial keeps (trials/1 columns): those a space may optimise or constrain; the
# rest of the block is in the re-run report.
KEPT = METRIC_KEYS


@dataclass(frozen=True)
class Inputs:
    """What every trial shares. ``market`` is None for model trials (each trial has its own
    predictions); ``ohlcv``/``features``/``work`` are paths the workers read or write."""

    space: Space
    policy: PolicyConfig
    risk: RiskConfig
    model: ModelConfig
    costs: BacktestConfig
    market: Market | None
    buy_and_hold: NDArray[np.float64] | None
    ohlcv: str
    features: str | None
    work: str  # SWEEP_DIR: model trials keep their predictions under it


@dataclass(frozen=True)
class Task:
    number: int
    params: dict[str, Any]
    seed: int


def evaluate(inputs: Inputs, task: Task) -> dict[str, Any]:
    """Run one trial; returns its record (plain JSON types: it goes into Optuna's journal)."""
    from tradekit import selection as sel
    from tradekit.backtest import metrics as bm
    from tradekit.backtest.engine import simulate
    from tradekit.backtest.report import measure
    from tradekit.timeutil import timeframe_ms

    started = time.perf_counter()
    policy, risk, model = apply(inputs.policy, inputs.risk, inputs.model, task.params)
    market, bh = inputs.market, inputs.buy_and_hold
    predictions: str | None = None
    if inputs.features is not None:
        from tradekit.data.market import load_market

        predictions = _train(inputs, model, task)
        market = load_market(inputs.ohlcv, predictions)
        bh = None
    assert market is not None
    start = inputs.costs.starting_balance
    if bh is None:
        bh = bm.buy_and_hold(market.open, market.close, market.valid, start)
    sim = simulate(market, policy, risk, inputs.costs)
    block = measure(sim, timeframe_ms(market.timeframe), start, bh)
    prev = _previous(sim.equity, start)
    mom = sel.moments(sim.equity / prev - 1.0)
    metrics = {k: block[k] for k in KEPT}
    return {
        "number": task.number,
        "params": task.params,
        "seed": task.seed,
        "metrics": metrics,
        "value": inputs.space.value(block),
        "violations": inputs.space.violations(block),
        # Per-candle Sharpe ratio and moments: what DSR and PSR need.
        "moments": [mom.n, mom.sharpe, mom.skew, mom.kurtosis],
        # Daily returns: the rows of the PBO matrix.
        "daily": sel.period_returns(sim.equity, market.ts, start, DAY_MS).tolist(),
        "decisions": int(market.close.size),
        "predictions": predictions,
        "duration_s": time.perf_counter() - started,
    }


def _previous(equity: NDArray[np.float64], start: float) -> NDArray[np.float64]:
    import numpy as np

    out: NDArray[np.float64] = np.concatenate(([start], equity[:-1]))
    return out


def _train(inputs: Inputs, model: ModelConfig, task: Task) -> str:
    """Walk-forward training with the trial's [model] values and seed; returns its out-of-sample
    predictions, kept as SWEEP_DIR/predictions/trial-NNNNN.parquet (the model files are not
    kept: ``tradekit --config best.toml train`` rebuilds the chosen one)."""
    import os
    import shutil

    from tradekit.models.manifest import OOS_FILE
    from tradekit.models.train import train

    assert inputs.features is not None
    out = Path(inputs.work) / "predictions" / f"trial-{task.number:05d}.parquet"
    tmp = Path(inputs.work) / "models" / f"trial-{task.number:05d}"
    cfg = dataclasses.replace(model, seed=task.seed)
    train(inputs.features, tmp, cfg, walk_forward=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp / OOS_FILE, out)
    shutil.rmtree(tmp, ignore_errors=True)
    return str(out)


# -- the local pool's worker side ------------------------------------------------------------

_WORKER: dict[str, Inputs] = {}


def init_worker(inputs: Inputs) -> None:
    """Process-pool initializer: keep the inputs (sent once per worker)."""
    _WORKER["inputs"] = inputs


def run_in_worker(task: Task) -> dict[str, Any]:
    return evaluate(_WORKER["inputs"], task)
