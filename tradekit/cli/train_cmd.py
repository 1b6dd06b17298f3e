"""``tradekit train``: walk-forward training, features/1 -> model directory."""

import logging
from typing import Annotated, Any

import typer

from tradekit.cli.context import state


def train(
    ctx: typer.Context,
    features: Annotated[
        str, typer.Argument(metavar="FEATURES", help="features/1 Parquet file (from featurize).")
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="MODEL_DIR",
            help="Model directory to write; an existing one is replaced only on success.",
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="lightgbm, lstm, transformer or ensemble [default: [model] kind].",
        ),
    ] = None,
    members: Annotated[
        str | None,
        typer.Option(
            "--members",
            metavar="MEMBERS.toml",
            help="--model ensemble: its members, regime model and meta-learner "
            "[default: [model.ensemble], else global and per-symbol LightGBM].",
        ),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(help="regression or classification [default: [model] objective]."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(help="Label column to learn [default: by objective]."),
    ] = None,
    train_window: Annotated[
        int | None,
        typer.Option(min=1, help="Training window in candles [default: [model] train_window]."),
    ] = None,
    test_window: Annotated[
        int | None,
        typer.Option(min=1, help="Test window in candles [default: [model] test_window]."),
    ] = None,
    step: Annotated[
        int | None,
        typer.Option(
            min=1, help="Walk-forward step in candles, >= test window [default: [model] step]."
        ),
    ] = None,
    purge: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Gap between train and test in candles; at least the label horizon "
            "[default: [model] purge, 0 = the horizon].",
        ),
    ] = None,
    per_symbol: Annotated[
        bool | None,
        typer.Option(
            "--per-symbol/--global",
            help="One model per symbol, or one across symbols [default: [model] per_symbol].",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(help="auto, cpu or cuda for lstm/transformer [default: [model] device]."),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Epochs per fold for lstm/transformer [default: [model] epochs]."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed [default: [model] seed].")] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="CPU threads, 0 = the cores left free by the load [default: [model] threads].",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue an interrupted run from MODEL_DIR.partial checkpoints."
        ),
    ] = False,
    no_walk_forward: Annotated[
        bool,
        typer.Option(
            "--no-walk-forward", help="Only fit the final model (no folds, no OOS predictions)."
        ),
    ] = False,
    cv: Annotated[
        str,
        typer.Option(
            "--cv",
            help="walk-forward, or cpcv: also combinatorial purged cross-validation paths "
            "(MODEL_DIR/paths/path-NNN.parquet, many out-of-sample backtests).",
        ),
    ] = "walk-forward",
    groups: Annotated[int, typer.Option(min=2, help="--cv cpcv: groups of the time axis.")] = 6,
    test_groups: Annotated[
        int, typer.Option(min=1, help="--cv cpcv: groups each split tests.")
    ] = 2,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the manifest (model/1) on stdout.")
    ] = False,
) -> None:
    """Walk-forward training (LightGBM, LSTM, Transformer, or an ensemble of them with a regime
    model and a stacking meta-learner): features/1 -> model dir."""
    import dataclasses
    from pathlib import Path

    from tradekit.cli import output as out
    from tradekit.errors import UsageError
    from tradekit.models.train import train as run_train

    if cv not in ("walk-forward", "cpcv"):
        raise UsageError(f"--cv {cv!r}: choose walk-forward or cpcv")

    overrides: dict[str, Any] = {
        "kind": model,
        "objective": objective,
        "label": label,
        "train_window": train_window,
        "test_window": test_window,
        "step": step,
        "purge": purge,
        "per_symbol": per_symbol,
        "device": device,
        "epochs": epochs,
        "seed": seed,
        "threads": threads,
    }
    cfg = dataclasses.replace(
        state(ctx).config.model, **{k: v for k, v in overrides.items() if v is not None}
    )
    named = Path(output).name not in ("", ".", "..")  # else training says what to name
    partial = Path(output).with_name(Path(output).name + ".partial") if named else None
    if not resume and partial is not None and (partial / "run.json").is_file():
        # train starts over and removes it: say what it held and what would have kept it.
        logging.getLogger("tradekit.train").warning(
            "%s holds an interrupted run's finished folds; this run starts over and discards "
            "them (`train --resume` continues such a run)",
            partial,
        )
    if cfg.kind == "ensemble":
        from tradekit.models.ensemble import train_ensemble
        from tradekit.models.members import load as load_members

        if cv != "walk-forward":
            raise UsageError("--cv cpcv: not for ensembles (they stack walk-forward folds)")
        result = train_ensemble(
            features,
            output,
            cfg,
            load_members(members, cfg.ensemble),
            resume=resume,
            walk_forward=not no_walk_forward,
            progress=out.progress,
        )
    elif members is not None:
        raise UsageError("--members: only with --model ensemble")
    else:
        result = run_train(
            features,
            output,
            cfg,
            resume=resume,
            walk_forward=not no_walk_forward,
            progress=out.progress,
            cpcv=(groups, test_groups) if cv == "cpcv" else None,
        )
    doc = result.manifest
    walk = doc.get("walk_forward")
    if walk:
        cls = doc["objective"] == "classification"
        cols = ["fold", "train", "test", "rows", "ic", "auc" if cls else "rmse", "hit_rate"]

        def cell(v: object) -> str:
            return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

        # Folds count from 1, as the log's "fold 1/N" does (the manifest keeps its 0-based index).
        rows = [
            [
                f["fold"] + 1,
                f"{f['train']['start'][:16]} .. {f['train']['end'][:16]}",
                f"{f['test']['start'][:16]} .. {f['test']['end'][:16]}",
                *(cell(f["metrics"].get(c)) for c in cols[3:]),
            ]
            for f in walk["folds"]
        ]
        rows.append(["all", "", "", *(cell(walk["overall"].get(c)) for c in cols[3:])])
        out.table(
            f"train {doc['kind']} {doc['objective']} -> {result.model_dir} "
            f"(version {doc['version']})",
            cols,
            rows,
            justify_right=cols[3:],
        )
    else:
        out.say(f"trained {doc['kind']} -> {result.model_dir} (version {doc['version']})")
    if as_json:
        out.emit_json(doc)
