"""A sweep's products, rebuilt from its journal: ``trials.parquet`` (trials/1), ``sweep.json``
(sweep/1, with the selection statistics) and ``best.toml`` (the config of the chosen trial).

Selection statistics (``tradekit.selection``), all of the chosen trial, all in sweep/1:
- ``trials``: every trial the sweep ran (feasible or not): the N that deflates.
- ``sharpe_variance``: the variance (ddof 1) of the per-candle Sharpe ratios of the trials
  that have one; ``expected_max_sharpe``: what the best of N such trials reaches by luck.
- ``dsr``: the chosen trial's PSR against that expected maximum; ``psr``: against 0.
- ``pbo``: CSCV over the feasible trials' daily returns (the candidates the selection chose
  among), ``pbo_blocks`` blocks; null with fewer than 2 feasible trials.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.contracts import META_KEY, SCHEMA_KEY, TRIALS, finite, write_json
from tradekit.errors import InputError
from tradekit.fsutil import atomic_path, atomic_write_text
from tradekit.sweep.evaluate import KEPT
from tradekit.sweep.judge import config_digest
from tradekit.sweep.space import Space, apply

if TYPE_CHECKING:
    from tradekit.config import Config

TRIALS_FILE = "trials.parquet"
SWEEP_FILE = "sweep.json"
BEST_FILE = "best.toml"
YEAR_MS = 365 * 86_400_000


def best_sections(config: Config, rec: dict[str, Any], model_trials: bool) -> dict[str, Any]:
    """Every config section, with the chosen trial's values (and model seed) laid over."""
    policy, risk, model = apply(config.policy, config.risk, config.model, rec["params"])
    if model_trials:
        model = dataclasses.replace(model, seed=rec["seed"])
    out = config.as_dict()
    out["policy"] = dataclasses.asdict(policy)
    out["risk"] = dataclasses.asdict(risk)
    out["model"] = dataclasses.asdict(model)
    return out


def selection(
    recs: list[dict[str, Any]], best: dict[str, Any] | None, space: Space, candle_ms: int
) -> dict[str, Any]:
    import numpy as np

    from tradekit import selection as sel

    srs = [r["moments"][1] for r in recs if r["moments"][1] is not None]
    var = float(np.var(srs, ddof=1)) if len(srs) > 1 else 0.0
    n_trials = len(recs)
    sr0 = sel.expected_max_sharpe(n_trials, var)
    per_year = YEAR_MS / candle_ms
    out: dict[str, Any] = {
        "trials": n_trials,
        "sharpe_variance": var,
        "expected_max_sharpe": sr0,
        "expected_max_sharpe_annual": sr0 * math.sqrt(per_year),
        "sharpe_per_candle": None,
        "dsr": None,
        "psr": None,
        "pbo": None,
        "pbo_detail": None,
    }
    if best is not None:
        n, sr, skew, kurt = best["moments"]
        if sr is not None:
            out["sharpe_per_candle"] = sr
            out["psr"] = sel.psr(sr, n, skew, kurt)
            out["dsr"] = sel.dsr(sr, n, skew, kurt, n_trials, var)
    feasible = [r for r in recs if r["feasible"]]
    if len(feasible) >= 2:
        width = min(len(r["daily"]) for r in feasible)
        matrix = np.array([r["daily"][:width] for r in feasible]).T
        res = sel.pbo(matrix, space.pbo_blocks)
        if res is not None:
            out["pbo"] = res.pbo
            out["pbo_detail"] = res.summary()
    return out


def write_trials(
    path: Path, recs: list[dict[str, Any]], space: Space, hashes: dict[str, str]
) -> None:
    """trials/1: one row per trial (see tradekit.contracts)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def col(values: list[Any], tp: pa.DataType) -> Any:
        return pa.array(values, type=tp)

    cols: dict[str, Any] = {
        "trial": col([r["number"] for r in recs], pa.int64()),
        "value": col([r["value"] for r in recs], pa.float64()),
        "feasible": col([r["feasible"] for r in recs], pa.bool_()),
        "seed": col([r["seed"] for r in recs], pa.int64()),
        "duration_s": col([r["duration_s"] for r in recs], pa.float64()),
    }
    for p in space.params:
        values = [r["params"][p.name] for r in recs]
        cols[p.name] = pa.array(values)  # the key's own type: float, int, bool or string
    for k in KEPT:
        tp = pa.int64() if k == "trades" else pa.float64()
        cols[k] = col([r["metrics"][k] for r in recs], tp)
    for i, k in enumerate(("candles", "sharpe_per_candle", "skewness", "kurtosis")):
        cols[k] = col([r["moments"][i] for r in recs], pa.int64() if i == 0 else pa.float64())
    for name in space.constraints:
        cols[f"violation.{name}"] = col([r["violations"][name] for r in recs], pa.float64())
    for name, h in sorted(hashes.items()):
        cols[f"{name}_sha256"] = col([h] * len(recs), pa.string())
    cols["predictions"] = col([r.get("predictions") for r in recs], pa.string())
    cols["daily_returns"] = col([r["daily"] for r in recs], pa.list_(pa.float64()))
    table = pa.table(cols)
    meta = {"objective": space.objective, "space_sha256": space.digest(), **hashes}
    table = table.replace_schema_metadata(
        {SCHEMA_KEY: TRIALS.name.encode(), META_KEY: json.dumps(meta, sort_keys=True).encode()}
    )
    try:
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}") from None


def write_best(path: Path, sections: dict[str, Any], header: list[str]) -> None:
    import tomlkit

    doc = tomlkit.document()
    for line in header:
        doc.add(tomlkit.comment(line))
    for name, values in sections.items():
        table = tomlkit.table()
        for k, v in values.items():
            if isinstance(v, dict):
                item = tomlkit.inline_table()
                item.update(v)
                table.add(k, item)
            else:
                table.add(k, v)
        doc.add(name, table)
    atomic_write_text(path, tomlkit.dumps(doc))


def write_products(
    directory: Path,
    recs: list[dict[str, Any]],
    best: dict[str, Any] | None,
    doc: dict[str, Any],
    space: Space,
    config: Config,
    hashes: dict[str, str],
    reproduce: str,
) -> dict[str, Any]:
    """Write trials.parquet, best.toml (when a trial is feasible) and sweep.json (last: its
    presence means the others are complete)."""
    write_trials(directory / TRIALS_FILE, recs, space, hashes)
    if best is not None:
        sections = best_sections(config, best, space.model_params)
        doc["best"]["config_sha256"] = config_digest(sections)
        header = [
            f"The best trial ({best['number']}) of the sweep in {directory}: "
            f"{space.objective} = {best['value']:.6g}.",
            "Reproduce it exactly:",
            f"  {reproduce}",
        ]
        write_best(directory / BEST_FILE, sections, header)
    else:
        (directory / BEST_FILE).unlink(missing_ok=True)
    doc["generated_at"] = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_json(finite(doc), directory / SWEEP_FILE)
    return doc
