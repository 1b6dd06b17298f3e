"""The sweep driver: Optuna asks, an executor evaluates, Optuna is told, in a fixed order.

Determinism (same seed => same trials, on any executor, killed or not):
- Trials run in batches of ``jobs``, trial numbers ``b*jobs .. (b+1)*jobs-1``; while one batch
  runs the next is asked (two in flight: the workers never wait for the sampler), and a batch
  is told, in trial order, only when it is complete. What the sampler sees when it draws trial
  ``n`` (the told trials and the running ones, as TPE's constant liar reads them) therefore
  depends on ``n``, ``jobs`` and the results only, never on which worker finished first.
- Each draw uses a sampler seeded for that trial (``trial_seed(seed, n)``), not one random
  stream, so a resumed run draws trial ``n`` exactly as the killed one would have (the grid
  sampler takes trial ``n`` to grid point ``n`` of a seeded shuffle instead).
- Resuming re-submits the trials that were running (asked, not told) as their batches, after
  ``journal.repair``; finished trials are never run again.

Every trial's record (metrics, moments, daily returns, duration) is a user attribute in the
journal, so the journal alone rebuilds ``trials.parquet``, ``sweep.json`` and ``best.toml``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradekit.errors import InputError, UsageError
from tradekit.sweep import journal
from tradekit.sweep.evaluate import Task
from tradekit.sweep.space import Param, Space

log = logging.getLogger("tradekit.sweep")

SAMPLERS = ("tpe", "random", "grid")
DEPTH = 2  # batches in flight
UNDEFINED = -1e12  # what Optuna is told for an undefined objective (the trial is infeasible)
RUN_FILE = "run.json"


@dataclass(frozen=True)
class Plan:
    """What the driver needs besides the inputs."""

    space: Space
    directory: Path
    trials: int
    jobs: int
    sampler: str
    seed: int
    resume: bool
    fingerprint: dict[str, Any]


Progress = Callable[[int, int], None]  # (trials done, trials in all)


def trial_seed(seed: int, number: int) -> int:
    digest = hashlib.sha256(f"tradekit-sweep:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def make_sampler(kind: str, space: Space, seed: int, number: int) -> Any:
    import optuna

    if kind == "grid":
        grid = {p.name: p.grid() for p in space.params}
        return optuna.samplers.GridSampler(grid, seed=seed)  # type: ignore[arg-type]
    s = trial_seed(seed, number)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=s)
    return optuna.samplers.TPESampler(seed=s, multivariate=True, constant_liar=True)


def grid_size(space: Space) -> int:
    n = 1
    for p in space.params:
        g = p.grid()
        if g is None:
            raise UsageError(
                f'--sampler grid: "{p.name}" is a continuous range; give it a step or choices'
            )
        n *= len(g)
    return n


def _suggest(trial: Any, p: Param) -> Any:
    if p.kind == "categorical":
        return trial.suggest_categorical(p.name, list(p.choices))
    if p.kind == "int":
        step = int(p.step) if p.step is not None else 1
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=step, log=p.log)  # type: ignore[arg-type]
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)  # type: ignore[arg-type]


def prepare(plan: Plan) -> None:
    """Create SWEEP_DIR or check that it holds the same sweep (``--resume``)."""
    d = plan.directory
    run_file = d / RUN_FILE
    text = json.dumps(plan.fingerprint, sort_keys=True, indent=2) + "\n"
    if d.exists() and not d.is_dir():
        raise InputError(f"{d}: exists and is not a directory")
    if (d / journal.JOURNAL).exists():
        if not plan.resume:
            raise InputError(
                f"{d}: holds a sweep already; --resume continues it, or choose another -o"
            )
        if not run_file.exists() or run_file.read_text(encoding="utf-8") != text:
            raise InputError(
                f"{d}: its sweep was run with other inputs, space, sampler, seed or --jobs; "
                "run without --resume into another directory"
            )
        return
    # A sweep killed before its first trial left only its run file: start it afresh.
    if d.is_dir() and any(p.name not in (".lock", RUN_FILE) for p in d.iterdir()):
        raise InputError(f"{d}: exists and is not a sweep directory; choose another -o")
    d.mkdir(parents=True, exist_ok=True)
    from tradekit.fsutil import atomic_write_text

    atomic_write_text(run_file, text)


def run_search(plan: Plan, executor: Any, progress: Progress | None = None) -> list[dict[str, Any]]:
    """Run the sweep to ``plan.trials`` told trials; returns every trial's record in number
    order (a record per told trial, with its ``state``)."""
    from optuna.trial import TrialState

    journal.repair(plan.directory / journal.JOURNAL, len(plan.space.params))
    total = plan.trials
    if plan.sampler == "grid":
        total = min(total, grid_size(plan.space))
    study, backend = journal.open_study(
        plan.directory, make_sampler(plan.sampler, plan.space, plan.seed, 0)
    )
    frozen = study.get_trials(deepcopy=False)
    asked = len(frozen)
    done = sum(1 for t in frozen if t.state.is_finished())
    # Batches in flight: batch index -> [(trial, handle index)], in order.
    flight: dict[int, list[tuple[Any, Task]]] = {}
    handles: dict[int, list[Any]] = {}

    def submit(b: int, items: list[tuple[Any, Task]]) -> None:
        flight.setdefault(b, []).extend(items)
        handles.setdefault(b, []).append(executor.submit([t for _, t in items]))

    running = [t for t in frozen if t.state == TrialState.RUNNING]
    for ft in running:
        import optuna

        tr = optuna.trial.Trial(study, ft._trial_id)
        task = Task(ft.number, {p.name: _suggest(tr, p) for p in plan.space.params}, 0)
        task = Task(task.number, task.params, trial_seed(plan.seed, task.number))
        submit(ft.number // plan.jobs, [(tr, task)])

    def ask(count: int) -> list[tuple[Any, Task]]:
        nonlocal asked
        items = []
        for _ in range(count):
            study.sampler = make_sampler(plan.sampler, plan.space, plan.seed, asked)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the grid sampler's "re-evaluating" notice
                tr = study.ask()
                params = {p.name: _suggest(tr, p) for p in plan.space.params}
            items.append((tr, Task(tr.number, params, trial_seed(plan.seed, tr.number))))
            asked += 1
        return items

    if asked % plan.jobs and asked < total:  # a batch whose drawing was cut short
        b = asked // plan.jobs
        submit(b, ask(min(plan.jobs - asked % plan.jobs, total - asked)))
    if progress:
        progress(done, total)
    while True:
        while len(flight) < DEPTH and asked < total:
            submit(asked // plan.jobs, ask(min(plan.jobs, total - asked)))
        if not flight:
            break
        b = min(flight)
        items = flight.pop(b)
        results: list[dict[str, Any]] = []
        for h in handles.pop(b):
            results.extend(executor.results(h))
        order = sorted(range(len(items)), key=lambda i: items[i][1].number)
        for i in order:
            tr, _ = items[i]
            _tell(study, tr, results[i])
            done += 1
        backend.sync()
        if progress:
            progress(done, total)
    return records(study)


def _tell(study: Any, trial: Any, rec: dict[str, Any]) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("record", rec)
    # One constraint for the sampler (TPE ranks infeasible trials by their summed violation);
    # the record keeps each one.
    missed = sum(max(v, 0.0) for v in rec["violations"].values())
    missed += 0.0 if rec["value"] is not None else 1.0
    if "constraints:violation" not in trial.storage.get_trial_system_attrs(trial._trial_id):
        trial.set_constraint("violation", missed if missed > 0 else -1.0)
    value = rec["value"] if rec["value"] is not None else UNDEFINED
    study.tell(trial, value, state=TrialState.COMPLETE)


def records(study: Any) -> list[dict[str, Any]]:
    """The told trials' records, by number."""
    out = []
    for t in study.get_trials(deepcopy=False):
        rec = t.user_attrs.get("record")
        if t.state.is_finished() and rec is not None:
            r = dict(rec)
            r["feasible"] = r["value"] is not None and all(
                v <= 0.0 for v in r["violations"].values()
            )
            out.append(r)
    return out


def best_record(recs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The feasible trial with the highest objective (the lowest number among ties)."""
    feasible = [r for r in recs if r["feasible"] and math.isfinite(r["value"])]
    if not feasible:
        return None
    return max(feasible, key=lambda r: (r["value"], -r["number"]))


def clear_scratch(directory: Path) -> None:
    shutil.rmtree(directory / "models", ignore_errors=True)
