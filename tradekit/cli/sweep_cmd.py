"""``tradekit sweep``: search [policy]/[risk] (or [model]) keys; every trial counted."""

from typing import Annotated, Any

import typer

from tradekit.cli.context import state
from tradekit.cli.options import JsonOpt


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def sweep(
    ctx: typer.Context,
    space: Annotated[str, typer.Argument(metavar="SPACE.toml", help="What to search (TOML).")],
    ohlcv: Annotated[str, typer.Option("--ohlcv", metavar="FILE", help="ohlcv/1 Parquet.")],
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="SWEEP_DIR", help="Sweep directory.")
    ],
    predictions: Annotated[
        str | None,
        typer.Option(
            "--predictions",
            "-p",
            metavar="FILE",
            help="predictions/1 Parquet (a model's out-of-sample rows): [policy]/[risk] sweep.",
        ),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            "--features",
            metavar="FILE",
            help="features/1 Parquet: [model] keys too, a walk-forward retrain per trial.",
        ),
    ] = None,
    trials: Annotated[int, typer.Option(min=1, help="Trials in all (resume: the total).")] = 100,
    jobs: Annotated[
        int,
        typer.Option(min=1, help="Trials run at once (the batch: results depend on it)."),
    ] = 1,
    sampler: Annotated[str, typer.Option(help="tpe, random or grid.")] = "tpe",
    seed: Annotated[int, typer.Option(help="Sampler seed: same seed, same trials.")] = 0,
    executor: Annotated[
        str, typer.Option(help="local (process pool) or ray (needs tradekit[ray]).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="ADDR",
            help="Ray cluster to join (host:port); default: a private local one.",
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the sweep in SWEEP_DIR.")
    ] = False,
    top: Annotated[int, typer.Option(min=0, help="Rows in the table of best trials.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Search policy/risk (or model) keys with Optuna; every trial is counted for the gate.

    Writes SWEEP_DIR/trials.parquet (trials/1), sweep.json (sweep/1: best trial, DSR, PSR,
    PBO) and best.toml (a config that reproduces the best trial through `backtest`).
    """
    from tradekit.cli import output as out
    from tradekit.sweep import SweepRequest, run_sweep

    req = SweepRequest(
        space=space,
        ohlcv=ohlcv,
        predictions=predictions,
        features=features,
        output=output,
        trials=trials,
        jobs=jobs,
        sampler=sampler,
        seed=seed,
        executor=executor,
        ray_address=ray_address,
        resume=resume,
    )
    cfg = state(ctx).config
    with out.counter("sweep", "trials") as progress:
        result = run_sweep(req, cfg, progress)
    doc = result.doc
    recs = sorted(
        (r for r in result.records if r["feasible"]), key=lambda r: (-r["value"], r["number"])
    )[:top]
    names = [p for p in doc["space"]["params"]]
    cols = ["trial", doc["objective"], "trades", "max_dd", "sharpe", *names]
    rows = [
        [
            str(r["number"]),
            _fmt(r["value"]),
            _fmt(r["metrics"]["trades"]),
            _fmt(r["metrics"]["max_drawdown"]),
            _fmt(r["metrics"]["sharpe"]),
            *(_fmt(r["params"][n]) for n in names),
        ]
        for r in recs
    ]
    if rows:
        out.table(
            f"sweep {result.directory}: best of {doc['n_trials']} trials "
            f"({doc['n_feasible']} feasible)",
            cols,
            rows,
            justify_right=cols[1:5],
        )
    sel = doc["selection"]
    if doc["best"] is None:
        out.say(f"sweep: no feasible trial among {doc['n_trials']}; no best.toml written")
    else:
        out.say(
            f"best trial {doc['best']['trial']} of {sel['trials']}: DSR {_fmt(sel['dsr'])}, "
            f"PSR {_fmt(sel['psr'])}, PBO {_fmt(sel['pbo'])}; reproduce: {doc['reproduce']}"
        )
    if as_json:
        out.emit_json(doc)
