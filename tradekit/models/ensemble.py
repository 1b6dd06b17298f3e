"""``train --model ensemble``: members, a regime model and a stacking meta-learner, walk-forward.

Each member is an ordinary model directory, trained by :func:`tradekit.models.train.train` on
the same features file with the same walk-forward windows, into ``MODEL_DIR/members/NAME``.
Its out-of-sample predictions are then stacked fold by fold (:func:`stacking.stack_folds`):
the combiner of fold k learns from rows that earlier folds tested, whose label ends before
fold k's test span, so the ensemble's out-of-sample predictions are out of sample at both
levels. The deployed combiner learns from every member's out-of-sample rows; the deployed
members are the ones fitted on the latest window, as for any model.

The directory::

    manifest.json           model/1, kind "ensemble": members with version, hash and lineage,
                            the stacking of each fold, the regime and meta-learner, drift reference
    ensemble.json           ensemble/1: the regime model and the meta-learner's weights
    members/NAME/...        each member's model dir (manifest, model files, its OOS predictions)
    oos_predictions.parquet the ensemble's out-of-sample predictions (predictions/1)

``files`` in the manifest lists every file prediction needs, the members' included, so the
version (their content hash) changes when any member does, and ``deploy`` ships them all.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.contracts import (
    FEATURES,
    PREDICTIONS,
    file_hash,
    open_parquet,
    table_metadata,
    write_arrow,
    write_json,
)
from tradekit.errors import InputError, MissingDependency, TradekitError, UsageError
from tradekit.models import manifest as mf
from tradekit.models.ensemble_load import FILE, SCHEMA
from tradekit.models.members import EnsembleSpec, MemberSpec
from tradekit.models.metrics import score
from tradekit.models.regime import RegimeModel, pick_features
from tradekit.models.stacking import MetaModel, stack_folds
from tradekit.models.train import ProgressFactory, TrainResult, train
from tradekit.models.workdir import publish, work_dir

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tradekit.config import ModelConfig
    from tradekit.models.data import TrainingData

log = logging.getLogger("tradekit.models")

KIND = "ensemble"
MEMBERS_DIR = "members"


@dataclass
class _Member:
    spec: MemberSpec
    directory: Path
    manifest: dict[str, Any]
    seconds: float


def usable_members(spec: EnsembleSpec) -> tuple[list[MemberSpec], list[dict[str, str]]]:
    """The members this machine can train, and the skipped ones with why (deep members
    without torch, unless marked not optional: then MissingDependency)."""
    have_torch = importlib.util.find_spec("torch") is not None
    use, skipped = [], []
    for m in spec.members:
        if m.deep and not have_torch:
            if not m.optional:
                raise MissingDependency(
                    f"ensemble member {m.name!r} ({m.kind}) needs torch: "
                    "pip install 'tradekit[deep]' (or mark it optional = true)"
                )
            why = f"{m.kind} needs torch, which is not installed (pip install 'tradekit[deep]')"
            log.warning("ensemble member %s skipped: %s", m.name, why)
            skipped.append({"name": m.name, "kind": m.kind, "why": why})
            continue
        use.append(m)
    if len(use) < 2:
        raise UsageError(
            f"an ensemble needs at least two members it can train; left: "
            f"{', '.join(m.name for m in use) or 'none'} "
            f"(skipped: {', '.join(s['name'] for s in skipped)})"
        )
    return use, skipped


def member_config(cfg: ModelConfig, m: MemberSpec) -> ModelConfig:
    return dataclasses.replace(
        cfg, kind=m.kind, per_symbol=m.per_symbol, ensemble={}, **dict(m.params)
    )


def _train_members(
    features_path: Path,
    work: Path,
    cfg: ModelConfig,
    members: list[MemberSpec],
    resume: bool,
    progress: ProgressFactory | None,
) -> list[_Member]:
    out = []
    for m in members:
        d = work / MEMBERS_DIR / m.name
        t0 = time.perf_counter()
        if resume and (d / mf.MANIFEST).exists():
            log.info("ensemble member %s: finished in the interrupted run, kept", m.name)
        else:
            log.info("ensemble member %s: training %s%s", m.name, m.kind,
                     " per symbol" if m.per_symbol else "")  # fmt: skip
            train(features_path, d, member_config(cfg, m), resume=resume, progress=progress)
        seconds = time.perf_counter() - t0
        log.info("ensemble member %s: %.1f s", m.name, seconds)
        out.append(_Member(m, d, mf.read(d), seconds))
    return out


def _folds(members: list[_Member]) -> list[dict[str, Any]]:
    """The walk-forward folds every member shares (the same windows on the same data)."""
    first = members[0].manifest.get("walk_forward") or {}

    def spans(doc: dict[str, Any]) -> list[tuple[int, int, int, int]]:
        wf = doc.get("walk_forward") or {}
        return [
            (f["train"]["start_ms"], f["train"]["end_ms"], f["test"]["start_ms"],
             f["test"]["end_ms"])
            for f in wf.get("folds") or []
        ]  # fmt: skip

    want = spans(members[0].manifest)
    for m in members[1:]:
        if spans(m.manifest) != want:
            raise InputError(
                f"ensemble member {m.spec.name}: its walk-forward folds differ from "
                f"{members[0].spec.name}'s; members must share the fold structure"
            )
    if not want:
        raise InputError("ensemble: the members have no walk-forward folds to stack")
    folds: list[dict[str, Any]] = first["folds"]
    return folds


def _row_index(data: TrainingData) -> npt.NDArray[np.int64]:
    """A sortable key per row (symbol code, time): rows are sorted by symbol, then time."""
    import numpy as np

    key: npt.NDArray[np.int64] = data.codes.astype(np.int64) * (1 << 42) + data.ts
    return key


def _member_oos(
    member: _Member, data: TrainingData, key: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(row index, prediction, fold) of a member's out-of-sample predictions."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from tradekit.arrays import to_numpy
    from tradekit.contracts import PREDICTIONS, open_parquet

    path = member.directory / mf.OOS_FILE
    # Through the contract reader: checked, and without pandas (pq.read_table imports it).
    pf, _ = open_parquet(path, PREDICTIONS)
    table = pf.read(columns=["symbol", "timestamp", "prediction", "fold"])
    enc: Any = pc.dictionary_encode(table.column("symbol").combine_chunks().cast(pa.string()))
    code_of = {s: i for i, s in enumerate(data.symbols)}
    names = enc.dictionary.to_pylist()
    lookup = np.array([code_of.get(str(s), -1) for s in names], dtype=np.int64)
    codes = lookup[to_numpy(enc.indices, np.int64)]
    stamp = table.column("timestamp").combine_chunks().cast(pa.timestamp("ms", tz="UTC"))
    ts = to_numpy(stamp, np.int64)
    mkey = codes * (1 << 42) + ts
    rows = np.searchsorted(key, mkey)
    ok = (codes >= 0) & (rows < len(key))
    ok[ok] = key[rows[ok]] == mkey[ok]
    if not ok.all():
        raise InputError(f"{path}: predictions for rows the features file does not have")
    pred = to_numpy(table.column("prediction"), np.float64)
    fold = to_numpy(table.column("fold"), np.int64)
    return rows.astype(np.int64), pred, fold


def _span_rows(data: TrainingData, start_ms: int, end_ms: int) -> npt.NDArray[np.bool_]:
    mask: npt.NDArray[np.bool_] = (data.ts >= start_ms) & (data.ts <= end_ms)
    return mask


def _column(data: TrainingData, name: str) -> npt.NDArray[np.float64]:
    import numpy as np

    j = list(data.panel.features).index(name)
    return np.asarray(data.panel.X[:, j], dtype=np.float64)


def _stack(
    data: TrainingData,
    members: list[_Member],
    spec: EnsembleSpec,
    objective: str,
) -> dict[str, Any]:
    """The ensemble's OOS predictions, per-fold docs and lineage, and the final combiner."""
    import numpy as np

    from tradekit.models.walkforward import label_end_times

    names = [m.spec.name for m in members]
    folds = _folds(members)
    key = _row_index(data)
    n = len(key)
    P = np.full((n, len(members)), np.nan)
    fold_of = np.full(n, -1, dtype=np.int64)
    for j, m in enumerate(members):
        rows, pred, fold = _member_oos(m, data, key)
        P[rows, j] = pred
        fold_of[rows] = fold  # the same fold for every member (same spans, checked)
    features = list(data.panel.features)
    regime_spec = spec.regime
    vol_name, ret_name, _ = pick_features(regime_spec, features)
    vol, ret = _column(data, vol_name), _column(data, ret_name)
    fold_regimes = []
    regimes = []
    for f in folds:
        # Each fold's regime model is calibrated on its own train window (features only).
        train_rows = _span_rows(data, f["train"]["start_ms"], f["train"]["end_ms"])
        model = RegimeModel.fit(regime_spec, features, vol[train_rows])
        fold_regimes.append(model)
        regimes.append(model.classify(vol, ret))
    label_end = label_end_times(data.codes, data.ts, data.horizon)
    y = data.panel.y
    oos, lineage = stack_folds(
        names,
        objective,
        P,
        y,
        fold_of,
        label_end,
        [int(f["test"]["start_ms"]) for f in folds],
        regimes,
        spec.meta.shrink,
        spec.meta.min_rows,
    )
    # The deployed regime model: calibrated on the final training window (the members').
    training = members[0].manifest["training"]
    final_rows = _span_rows(data, training["start_ms"], training["end_ms"])
    regime = RegimeModel.fit(regime_spec, features, vol[final_rows])
    complete = np.isfinite(P).all(axis=1) & (fold_of >= 0) & np.isfinite(y)
    if int(complete.sum()) >= spec.meta.min_rows:
        meta = MetaModel.fit(
            names, objective, P[complete], y[complete],
            regime.classify(vol, ret)[complete], spec.meta.shrink,
        )  # fmt: skip
    else:
        meta = MetaModel.equal(names, objective)
    return {
        "folds": folds,
        "oos": oos,
        "fold_of": fold_of,
        "lineage": lineage,
        "fold_regimes": fold_regimes,
        "regime": regime,
        "meta": meta,
        "final_rows": final_rows,
        "member_scores": {
            name: score(P[fold_of >= 0, j], data.label_values[fold_of >= 0], objective)
            for j, name in enumerate(names)
        },
    }


def member_entry(m: _Member) -> dict[str, Any]:
    """A member in ensemble.json: its model files and how to load them."""
    doc = m.manifest
    return {
        "name": m.spec.name,
        "dir": f"{MEMBERS_DIR}/{m.spec.name}",
        "kind": doc["kind"],
        "params": doc["params"],
        "per_symbol": bool(doc.get("per_symbol")),
        "models": doc["models"],
        "lookback": doc["lookback"],
        "files": doc["files"],
    }


def _lineage(m: _Member) -> dict[str, Any]:
    doc = m.manifest
    wf = doc.get("walk_forward") or {}
    return {
        "name": m.spec.name,
        "kind": doc["kind"],
        "per_symbol": bool(doc.get("per_symbol")),
        "dir": f"{MEMBERS_DIR}/{m.spec.name}",
        "version": doc["version"],  # the content hash of its model files
        "manifest_sha256": file_hash(m.directory / mf.MANIFEST),  # MODEL_DIR/members/NAME
        "params": doc["params"],
        "lookback": doc["lookback"],
        "data": doc.get("data"),
        "training": doc.get("training"),
        "oos": wf.get("overall"),
        "created_at": doc.get("created_at"),
    }


def _write_oos(work: Path, data: TrainingData, st: dict[str, Any], meta: dict[str, Any]) -> int:
    import numpy as np
    import pyarrow as pa

    from tradekit.arrays import from_numpy, take_strings

    oos, fold_of = st["oos"], st["fold_of"]
    rows = np.flatnonzero(np.isfinite(oos) & (fold_of >= 0))  # key order by construction
    table = pa.table(
        {
            "symbol": take_strings(data.symbols, data.codes[rows]),
            "timestamp": from_numpy(data.ts[rows], pa.timestamp("ms", tz="UTC")),
            "prediction": from_numpy(oos[rows], pa.float64()),
            "fold": from_numpy(fold_of[rows], pa.int64()),
        }
    )
    write_arrow(
        table.replace_schema_metadata(table_metadata(PREDICTIONS, meta)), work / mf.OOS_FILE
    )
    return len(rows)


def _fold_docs(data: TrainingData, st: dict[str, Any], objective: str) -> list[dict[str, Any]]:
    import numpy as np

    docs = []
    for f, stack, reg in zip(st["folds"], st["lineage"], st["fold_regimes"], strict=True):
        test = (st["fold_of"] == f["fold"]) & np.isfinite(st["oos"])
        metrics = score(st["oos"][test], data.label_values[test], objective)
        docs.append(
            {
                "fold": f["fold"],
                "train": f["train"],
                "purge": f["purge"],
                "test": {**f["test"], "rows": int(test.sum())},
                "metrics": metrics,
                "stacking": stack.as_json(),
                "regime_vol_cut": reg.vol_cut,
            }
        )
    return docs


def train_ensemble(
    features_path: str | Path,
    model_dir: str | Path,
    cfg: ModelConfig,
    spec: EnsembleSpec,
    *,
    resume: bool = False,
    walk_forward: bool = True,
    progress: ProgressFactory | None = None,
) -> TrainResult:
    """Train the members of ``spec`` and stack them into ``model_dir`` (see module doc)."""
    from tradekit.models.base import OBJECTIVES
    from tradekit.models.data import load_features

    if not walk_forward:
        raise UsageError(
            "an ensemble learns to combine its members from their walk-forward out-of-sample "
            "predictions: drop --no-walk-forward"
        )
    if cfg.objective not in OBJECTIVES:
        raise UsageError(f"objective {cfg.objective!r}: expected one of {', '.join(OBJECTIVES)}")
    target = Path(model_dir)
    if target.name in ("", ".", ".."):
        raise UsageError(f"-o {model_dir}: name a model directory, e.g. -o models/ensemble")
    members, skipped = usable_members(spec)
    features = Path(features_path)
    features_hash = file_hash(features)
    _, meta = open_parquet(features, FEATURES)  # the names now, the data after the members
    pick_features(spec.regime, list(meta.get("features") or []))  # before hours of training
    fingerprint = {
        "features_hash": features_hash,
        "ensemble": spec.as_json(),
        "members": [member_config(cfg, m).__repr__() for m in members],
    }
    work = work_dir(target, fingerprint, resume, (MEMBERS_DIR,), kept="members")
    try:
        t0 = time.perf_counter()
        trained = _train_members(features, work, cfg, members, resume, progress)
        t1 = time.perf_counter()
        data = load_features(features, cfg.label, cfg.objective)
        st = _stack(data, trained, spec, cfg.objective)
        doc = _finish(work, features, features_hash, data, cfg, spec, trained, skipped, st)
        log.info(
            "ensemble: members %.1f s (%s), stacking %.2f s",
            t1 - t0,
            ", ".join(f"{m.spec.name} {m.seconds:.1f} s" for m in trained),
            time.perf_counter() - t1,
        )
    except TradekitError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    publish(work, target)
    return TrainResult(target, doc, int(doc["oos_predictions"]["rows"]))


def _finish(
    work: Path,
    features: Path,
    features_hash: str,
    data: TrainingData,
    cfg: ModelConfig,
    spec: EnsembleSpec,
    trained: list[_Member],
    skipped: list[dict[str, str]],
    st: dict[str, Any],
) -> dict[str, Any]:
    """ensemble.json, the OOS file and the manifest, written into ``work``."""
    import numpy as np

    from tradekit.drift.reference import build_reference

    names = [m.spec.name for m in trained]
    # What loading a member needs, here rather than in the member's own manifest: that one
    # carries its training time, and the version (the hash of every listed file) must not.
    write_json(
        {
            "schema": SCHEMA,
            "members": [member_entry(m) for m in trained],
            "regime": st["regime"].as_json(),
            "meta": st["meta"].as_json(),
        },
        work / FILE,
    )
    files: dict[str, str] = {FILE: file_hash(work / FILE)}
    for m in trained:
        prefix = f"{MEMBERS_DIR}/{m.spec.name}/"
        files.update({prefix + name: h for name, h in m.manifest["files"].items()})
    files = dict(sorted(files.items()))
    version = mf.files_version(files)
    meta = data.meta
    oos_rows = _write_oos(
        work,
        data,
        st,
        {
            "model_kind": KIND,
            "model_version": version,
            "objective": cfg.objective,
            "label": data.label,
            "timeframe": meta["timeframe"],
            "feature_set": meta["feature_set"],
            "feature_set_hash": meta["feature_set_hash"],
            "exchange": meta.get("exchange"),
            "source": features_hash,
            "ohlcv_source": meta.get("source"),
        },
    )
    oos = st["oos"]
    done = np.isfinite(oos) & (st["fold_of"] >= 0)
    first_wf = trained[0].manifest["walk_forward"]
    walk_doc = {
        "train_window": first_wf["train_window"],
        "test_window": first_wf["test_window"],
        "step": first_wf["step"],
        "purge": first_wf["purge"],
        "folds": _fold_docs(data, st, cfg.objective),
        "overall": score(oos[done], data.label_values[done], cfg.objective),
        "members_overall": st["member_scores"],
    }
    versions: dict[str, str] = {}
    for m in trained:
        versions.update(m.manifest.get("versions") or {})
    final_rows = st["final_rows"]
    final_ts = data.ts[final_rows & ~np.isnan(data.label_values)]
    params = {
        "kind": KIND,
        "objective": cfg.objective,
        "seed": cfg.seed,
        "members": names,
        "regime": spec.regime.as_json(),
        "meta": spec.meta.as_json(),
    }
    doc = mf.build(
        params=params,
        features=data.panel.features,
        label=data.label,
        meta=meta,
        features_file=features,
        features_hash=features_hash,
        symbols=data.symbols,
        per_symbol=False,
        models={m.spec.name: f"{MEMBERS_DIR}/{m.spec.name}" for m in trained},
        lookback=max(int(m.manifest["lookback"]) for m in trained),
        training=mf.span(int(final_ts.min()), int(final_ts.max()), len(final_ts)),
        walk_forward=walk_doc,
        files=files,
        oos={"file": mf.OOS_FILE, "rows": oos_rows, "sha256": file_hash(work / mf.OOS_FILE)},
        extra={
            "members": [_lineage(m) for m in trained],
            "skipped_members": skipped,
            "ensemble": {
                "file": FILE,
                "regime": st["regime"].as_json(),
                "meta": st["meta"].as_json(),
            },
            "drift_reference": build_reference(
                data.panel.X, final_rows, data.panel.features, oos[done], "walk-forward OOS"
            ),
            "versions": dict(sorted(versions.items())),
        },
    )
    write_json(doc, work / mf.MANIFEST)
    (work / "run.json").unlink()
    return doc
