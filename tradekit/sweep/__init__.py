"""``tradekit sweep``: search [policy]/[risk] (and [model]) keys honestly.

Every trial is counted (Optuna's journal in SWEEP_DIR, resumable after a kill), runs through
the same engine and metrics as ``backtest``, and the choice is judged by how many trials it
was chosen from (DSR) and how often such a choice fails out of sample (PBO). ``run_sweep`` is
the one entry point; ``space``, ``evaluate``, ``executors``, ``search``, ``journal`` and
``record`` are its parts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError, UsageError

if TYPE_CHECKING:
    from tradekit.config import Config
    from tradekit.sweep.search import Progress


@dataclass(frozen=True)
class SweepRequest:
    space: str
    ohlcv: str
    predictions: str | None
    features: str | None
    output: str
    trials: int = 100
    jobs: int = 1
    sampler: str = "tpe"
    seed: int = 0
    executor: str = "local"
    ray_address: str | None = None
    resume: bool = False


@dataclass(frozen=True)
class SweepResult:
    directory: Path
    doc: dict[str, Any]  # sweep/1
    records: list[dict[str, Any]]


def run_sweep(req: SweepRequest, config: Config, progress: Progress | None = None) -> SweepResult:
    """Run (or resume) the sweep and write its products; see the module docs."""
    import dataclasses

    from tradekit.contracts import SWEEP_SCHEMA, file_hash
    from tradekit.sweep import record, search
    from tradekit.sweep.evaluate import Inputs
    from tradekit.sweep.executors import make_executor
    from tradekit.sweep.space import load_space

    if (req.predictions is None) == (req.features is None):
        raise UsageError("give either --predictions (policy/risk sweep) or --features")
    if req.sampler not in search.SAMPLERS:
        raise UsageError(f"--sampler {req.sampler!r}: choose {', '.join(search.SAMPLERS)}")
    if req.executor not in ("local", "ray"):
        raise UsageError(f"--executor {req.executor!r}: choose local or ray")
    if req.trials < 1 or req.jobs < 1:
        raise UsageError("--trials and --jobs must be at least 1")
    space = load_space(req.space, features=req.features is not None)
    if req.sampler == "grid":
        search.grid_size(space)  # a continuous range cannot be a grid: say so now
    hashes: dict[str, str] = {}
    for name, path in (
        ("ohlcv", req.ohlcv),
        ("predictions", req.predictions),
        ("features", req.features),
    ):
        if path is not None:
            if not Path(path).is_file():
                raise InputError(f"{path}: no such file")
            hashes[name] = file_hash(path)
    model = config.model
    if req.features is not None and req.jobs > 1 and model.threads == 0:
        model = dataclasses.replace(model, threads=1)  # one thread per trial: jobs fill the cores
    base = {
        "policy": dataclasses.asdict(config.policy),
        "risk": dataclasses.asdict(config.risk),
        "backtest": dataclasses.asdict(config.backtest),
        **({"model": dataclasses.asdict(model)} if req.features else {}),
    }
    plan = search.Plan(
        space=space,
        directory=Path(req.output),
        trials=req.trials,
        jobs=req.jobs,
        sampler=req.sampler,
        seed=req.seed,
        resume=req.resume,
        fingerprint={
            "space_sha256": space.digest(),
            "inputs": hashes,
            "sampler": req.sampler,
            "seed": req.seed,
            "jobs": req.jobs,
            "config": base,
        },
    )
    market = bh = None
    candle_ms = 0
    if req.predictions is not None:
        from tradekit.backtest.metrics import buy_and_hold
        from tradekit.data.market import load_market
        from tradekit.timeutil import timeframe_ms

        market = load_market(req.ohlcv, req.predictions)
        bh = buy_and_hold(market.open, market.close, market.valid, config.backtest.starting_balance)
        candle_ms = timeframe_ms(market.timeframe)
    search.prepare(plan)
    inputs = Inputs(
        space=space,
        policy=config.policy,
        risk=config.risk,
        model=model,
        costs=config.backtest,
        market=market,
        buy_and_hold=bh,
        ohlcv=os.path.abspath(req.ohlcv),
        features=os.path.abspath(req.features) if req.features else None,
        work=os.path.abspath(req.output),
    )
    from tradekit.sweep.journal import exclusive

    with exclusive(plan.directory):
        executor = make_executor(req.executor, inputs, req.jobs, req.ray_address)
        try:
            recs = search.run_search(plan, executor, progress)
        finally:
            executor.close()
        search.clear_scratch(plan.directory)
    best = search.best_record(recs)
    if candle_ms == 0:
        from tradekit.timeutil import timeframe_ms

        candle_ms = timeframe_ms(_timeframe(req.ohlcv))
    preds = (best.get("predictions") if best else None) or req.predictions
    reproduce = (
        f"tradekit --config {Path(req.output) / record.BEST_FILE} backtest {req.ohlcv} "
        f"--predictions {preds}"
    )
    doc: dict[str, Any] = {
        "schema": SWEEP_SCHEMA,
        "space": space.source,
        "space_sha256": space.digest(),
        "objective": space.objective,
        "constraints": space.constraints,
        "sampler": req.sampler,
        "seed": req.seed,
        "jobs": req.jobs,
        "executor": req.executor,
        "inputs": {
            k: {"path": p, "sha256": hashes[k]}
            for k, p in (
                ("ohlcv", req.ohlcv),
                ("predictions", req.predictions),
                ("features", req.features),
            )
            if p is not None
        },
        "n_trials": len(recs),
        "n_feasible": sum(1 for r in recs if r["feasible"]),
        "best": None,
        "selection": record.selection(recs, best, space, candle_ms),
        "files": {"trials": record.TRIALS_FILE, "best_config": record.BEST_FILE},
        "reproduce": reproduce if best else None,
    }
    if best is not None:
        doc["best"] = {
            "trial": best["number"],
            "value": best["value"],
            "params": best["params"],
            "seed": best["seed"],
            "metrics": best["metrics"],
            "predictions": preds,
            "predictions_sha256": file_hash(preds) if preds else None,
        }
    doc = record.write_products(plan.directory, recs, best, doc, space, config, hashes, reproduce)
    return SweepResult(plan.directory, doc, recs)


def _timeframe(ohlcv: str) -> str:
    from tradekit.contracts import OHLCV, open_parquet

    _, meta = open_parquet(ohlcv, OHLCV)
    return str(meta.get("timeframe") or "1h")
