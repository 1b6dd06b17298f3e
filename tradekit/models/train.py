"""``train``: features/1 -> a model directory, by walk-forward.

For each fold the model is fitted on the train window (labelled rows whose label ends before
the test span), predicts the test window, and is scored there; the out-of-sample predictions
of all folds go to ``oos_predictions.parquet``. The deployed model is then fitted on the latest
``train_window`` candles that have labels.

The directory is built in ``MODEL_DIR.partial/`` beside the target and renamed over it only on
success, so a failed or killed run leaves the previous model in place. The partial directory
keeps each finished fold's predictions and per-epoch checkpoints of the fold in progress:
``resume=True`` continues from there (finished folds are not retrained; an interrupted fold
continues at its next epoch) and gives the same result as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.arrays import from_numpy, take_strings
from tradekit.contracts import PREDICTIONS, file_hash, table_metadata, write_arrow, write_json
from tradekit.errors import TradekitError, UsageError
from tradekit.models import manifest as mf
from tradekit.models.base import Model, ModelSpec
from tradekit.models.data import TrainingData, load_features
from tradekit.models.kinds import make_model
from tradekit.models.metrics import score
from tradekit.models.walkforward import Fold, effective_purge, label_end_times, plan_folds
from tradekit.models.workdir import publish, work_dir
from tradekit.threads import usable_cores, worker_threads

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from tradekit.config import ModelConfig

log = logging.getLogger("tradekit.models")

Advance = Callable[..., None]
ProgressFactory = Callable[[str, int], AbstractContextManager[Advance]]


@dataclass
class TrainResult:
    model_dir: Path
    manifest: dict[str, Any]
    oos_rows: int


@contextmanager
def _no_progress(description: str, total: int) -> Iterator[Advance]:
    def advance(n: int = 1) -> None:
        pass

    yield advance


class _Trainer:
    def __init__(
        self,
        data: TrainingData,
        spec: ModelSpec,
        per_symbol: bool,
        work: Path,
        advance: Advance,
    ) -> None:
        import numpy as np

        self.data, self.spec, self.per_symbol, self.work = data, spec, per_symbol, work
        self.advance = advance
        # LightGBM models of a few thousand rows train faster side by side, one thread each,
        # than one after another on all threads (OpenMP's start and barriers cost more than
        # they save there); single-threaded fits also give the same trees whatever the count.
        self.workers = 1 if spec.deep else max(1, spec.threads)
        self.solo = spec if self.workers == 1 else dataclasses.replace(spec, threads=1)
        self.labelled = ~np.isnan(data.label_values)
        self.label_end = label_end_times(data.codes, data.ts, data.horizon)
        groups: list[tuple[str, npt.NDArray[np.bool_]]] = [("*", np.ones(len(data.ts), bool))]
        if per_symbol:
            groups = [(s, data.codes == i) for i, s in enumerate(data.symbols)]
        self.groups = groups

    def _stem(self, i: int) -> str:
        return f"model-{i:03d}" if self.per_symbol else "model"

    def fit_each(
        self, train_mask: npt.NDArray[np.bool_], tag: str, alone: bool = True
    ) -> Iterator[tuple[int, Model]]:
        """One model (or one per symbol) fitted on the rows of ``train_mask``, yielded in
        group order. Several are fitted at once, one thread each, when there are several and
        ``alone`` (no other fits run beside these); at most ``workers + 1`` models live in
        memory at a time."""
        import numpy as np

        tasks = []
        for i, (_, gmask) in enumerate(self.groups):
            rows = np.flatnonzero(train_mask & gmask).astype(np.int64)
            if not len(rows):  # a symbol without history in this window: no model, no rows
                self.advance(self.spec.epochs if self.spec.deep else 1)
                continue
            tasks.append((i, rows))
        if self.workers == 1 or len(tasks) < 2 or not alone:
            spec = self.spec if alone and len(tasks) < 2 else self.solo
            for i, rows in tasks:
                yield i, self._fit(spec, i, rows, tag)
            return
        with ThreadPoolExecutor(self.workers) as pool:
            todo = iter(tasks)
            running = deque(
                pool.submit(self._fit, self.solo, i, rows, tag)
                for i, rows in itertools.islice(todo, self.workers)
            )
            for i, _ in tasks:
                model = running.popleft().result()
                for j, more in itertools.islice(todo, 1):
                    running.append(pool.submit(self._fit, self.solo, j, more, tag))
                yield i, model

    def _fit(self, spec: ModelSpec, i: int, rows: npt.NDArray[np.int64], tag: str) -> Model:
        model = make_model(spec, self.data.panel.features)
        suffix = f"-s{i:03d}" if self.per_symbol else ""
        ckpt = self.work / "checkpoints" / f"{tag}{suffix}.pt" if spec.deep else None
        model.fit(self.data.panel, rows, epoch_done=self.advance, checkpoint=ckpt)
        return model

    def run_folds(
        self, folds: list[Fold]
    ) -> Iterator[tuple[Fold, npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
        """(fold, test rows, predictions) of each fold, in order. One model per fold (not
        per symbol): the folds themselves are fitted side by side."""
        if self.workers == 1 or self.per_symbol or len(folds) < 2:
            for fold in folds:
                yield (fold, *self.run_fold(fold))
            return
        with ThreadPoolExecutor(self.workers) as pool:
            for fold, (rows, pred) in zip(
                folds, pool.map(lambda f: self.run_fold(f, alone=False), folds), strict=True
            ):
                yield fold, rows, pred

    def train_mask(self, fold: Fold) -> npt.NDArray[np.bool_]:
        """Labelled rows of the train window whose label ends before the test span."""
        d = self.data
        mask: npt.NDArray[np.bool_] = (
            (d.tidx >= fold.train_start)
            & (d.tidx < fold.train_end)
            & self.labelled
            & (self.label_end < int(d.times[fold.test_start]))
        )
        return mask

    def run_fold(
        self, fold: Fold, alone: bool = True
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """(test row indices, predictions) of one fold, from disk when already done."""
        import numpy as np

        record = self.work / "folds" / f"fold-{fold.index:03d}.npz"
        if record.exists():
            log.info("fold %d: reusing its predictions from the interrupted run", fold.index + 1)
            with np.load(record, allow_pickle=False) as z:
                self.advance(len(self.groups) * (self.spec.epochs if self.spec.deep else 1))
                return z["rows"].astype(np.int64), z["pred"].astype(np.float64)
        d = self.data
        train = self.train_mask(fold)
        test = (d.tidx >= fold.test_start) & (d.tidx < fold.test_end)
        rows_parts, pred_parts = [], []
        for i, model in self.fit_each(train, f"fold-{fold.index:03d}", alone):
            rows = np.flatnonzero(test & self.groups[i][1]).astype(np.int64)
            if len(rows):
                rows_parts.append(rows)
                pred_parts.append(model.predict(d.panel, rows))
        rows = np.concatenate(rows_parts) if rows_parts else np.empty(0, np.int64)
        pred = np.concatenate(pred_parts) if pred_parts else np.empty(0, np.float64)
        order = np.argsort(rows, kind="stable")
        rows, pred = rows[order], pred[order]
        tmp = record.with_name(f".{record.stem}.tmp.npz")
        np.savez(tmp, rows=rows, pred=pred)
        os.replace(tmp, record)
        for ckpt in (self.work / "checkpoints").glob(f"fold-{fold.index:03d}*.pt"):
            ckpt.unlink()
        return rows, pred

    def train_rows_final(self, train_window: int) -> npt.NDArray[np.bool_]:
        import numpy as np

        lab_times = np.unique(self.data.ts[self.labelled])
        cutoff = lab_times[-train_window] if len(lab_times) > train_window else lab_times[0]
        mask: npt.NDArray[np.bool_] = self.labelled & (self.data.ts >= cutoff)
        return mask


def _fold_doc(
    fold: Fold, data: TrainingData, train_rows: int, test_rows: int, metrics: dict[str, Any]
) -> dict[str, Any]:
    """A fold in the manifest: spans (rows: fitted on / predicted), gap, metrics (over the
    test rows with a known label)."""
    t = data.times
    return {
        "fold": fold.index,
        "train": mf.span(int(t[fold.train_start]), int(t[fold.train_end - 1]), train_rows),
        "purge": fold.gap,
        "test": mf.span(int(t[fold.test_start]), int(t[fold.test_end - 1]), test_rows),
        "metrics": metrics,
    }


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "unknown"


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _build(
    work: Path,
    data: TrainingData,
    spec: ModelSpec,
    cfg: ModelConfig,
    folds: list[Fold],
    purge: int,
    walk_forward: bool,
    features_hash: str,
    progress: ProgressFactory | None,
    cpcv: tuple[int, int] | None = None,
) -> tuple[dict[str, Any], int]:
    """Fit the folds and the final model in ``work``; write the model files, OOS predictions
    and the manifest there. Returns (manifest, OOS rows)."""
    import numpy as np
    import pyarrow as pa

    units = spec.epochs if spec.deep else 1
    n_groups = len(data.symbols) if cfg.per_symbol else 1
    total = (len(folds) + 1) * n_groups * units
    with (progress or _no_progress)(f"train {spec.kind}", total) as advance:
        trainer = _Trainer(data, spec, cfg.per_symbol, work, advance)
        fold_docs, oos_rows, oos_pred, oos_fold = [], [], [], []
        for fold, rows, pred in trainer.run_folds(folds):
            metrics = score(pred, data.label_values[rows], spec.objective)
            train_rows = int(trainer.train_mask(fold).sum())
            keep = ~np.isnan(pred)
            fold_docs.append(_fold_doc(fold, data, train_rows, int(keep.sum()), metrics))
            log.info(
                "fold %d/%d: train %d rows, test %d rows, %s",
                fold.index + 1,
                len(folds),
                train_rows,
                metrics["rows"],
                ", ".join(f"{k} {_fmt(v)}" for k, v in metrics.items() if k != "rows"),
            )
            oos_rows.append(rows[keep])
            oos_pred.append(pred[keep])
            oos_fold.append(np.full(int(keep.sum()), fold.index, dtype=np.int64))
        final_mask = trainer.train_rows_final(cfg.train_window)
        files: list[str] = []
        members: dict[str, str] = {}
        extra: dict[str, Any] = {}
        for i, model in trainer.fit_each(final_mask, "final"):
            stem = trainer._stem(i)
            files += model.save(work, stem)
            members[trainer.groups[i][0]] = stem
            if spec.kind == "lightgbm" and not cfg.per_symbol:
                from tradekit.models.lgbm import LightGBMModel

                assert isinstance(model, LightGBMModel)
                extra["importance_gain"] = model.importance()
    hashes = mf.hash_files(work, files)
    meta = data.meta
    walk_doc = None
    oos_doc: dict[str, Any] | None = None
    oos_count = 0
    if walk_forward:
        rows = np.concatenate(oos_rows) if oos_rows else np.empty(0, np.int64)
        pred = np.concatenate(oos_pred) if oos_pred else np.empty(0, np.float64)
        fold_of = np.concatenate(oos_fold) if oos_fold else np.empty(0, np.int64)
        order = np.argsort(rows, kind="stable")  # contract order: symbol, then time
        rows, pred, fold_of = rows[order], pred[order], fold_of[order]
        overall = score(pred, data.label_values[rows], spec.objective)
        oos = pa.table(
            {
                "symbol": take_strings(data.symbols, data.codes[rows]),
                "timestamp": from_numpy(data.ts[rows], pa.timestamp("ms", tz="UTC")),
                "prediction": from_numpy(pred, pa.float64()),
                "fold": from_numpy(fold_of, pa.int64()),
            }
        )
        pred_meta = {
            "model_kind": spec.kind,
            "model_version": mf.files_version(hashes),
            "objective": spec.objective,
            "label": data.label,
            "timeframe": meta["timeframe"],
            "feature_set": meta["feature_set"],
            "feature_set_hash": meta["feature_set_hash"],
            "exchange": meta.get("exchange"),
            "source": features_hash,
            "ohlcv_source": meta.get("source"),
        }
        oos = oos.replace_schema_metadata(table_metadata(PREDICTIONS, pred_meta))
        write_arrow(oos, work / mf.OOS_FILE)  # rows in key order by construction; no pandas
        walk_doc = {
            "train_window": cfg.train_window,
            "test_window": cfg.test_window,
            "step": cfg.step,
            "purge": purge,
            "folds": fold_docs,
            "overall": overall,
        }
        oos_count = oos.num_rows
        oos_doc = {"file": mf.OOS_FILE, "rows": oos_count, "sha256": file_hash(work / mf.OOS_FILE)}
        log.info(
            "out of sample: %d rows, %s",
            overall["rows"],
            ", ".join(f"{k} {_fmt(v)}" for k, v in overall.items() if k != "rows"),
        )
    if cpcv is not None:  # extra out-of-sample paths beside the walk-forward ones
        from tradekit.models.cpcv import run_paths

        extra["cpcv"] = run_paths(
            data, spec, cfg.per_symbol, cpcv[0], cpcv[1], purge, work, {"model_kind": spec.kind}
        )
    final_ts = data.ts[final_mask]
    from tradekit.drift.reference import build_reference  # the drift sentinel's yardstick

    extra["drift_reference"] = build_reference(
        data.panel.X, final_mask, data.panel.features,
        np.concatenate(oos_pred) if oos_pred else None, "walk-forward OOS",
    )  # fmt: skip
    manifest = mf.build(
        params=spec.params(),
        features=data.panel.features,
        label=data.label,
        meta=meta,
        features_file=data.path,
        features_hash=features_hash,
        symbols=data.symbols,
        per_symbol=cfg.per_symbol,
        models=members,
        lookback=spec.seq_len if spec.deep else 1,
        training=mf.span(int(final_ts.min()), int(final_ts.max()), int(final_mask.sum())),
        walk_forward=walk_doc,
        files=hashes,
        oos=oos_doc,
        extra=extra,
    )
    write_json(manifest, work / mf.MANIFEST)
    for scratch in ("folds", "checkpoints"):
        shutil.rmtree(work / scratch, ignore_errors=True)
    (work / "run.json").unlink()
    return manifest, oos_count


def train(
    features_path: str | Path,
    model_dir: str | Path,
    cfg: ModelConfig,
    *,
    resume: bool = False,
    walk_forward: bool = True,
    progress: ProgressFactory | None = None,
    cpcv: tuple[int, int] | None = None,
) -> TrainResult:
    """Train a model of ``cfg.kind`` on a features/1 file into ``model_dir`` (see module doc).

    ``progress(description, total)`` is entered once and its ``advance()`` called per fitted
    epoch (deep models) or per fitted model (LightGBM). ``cpcv`` = (groups, test groups) adds
    combinatorial purged cross-validation paths (``tradekit.models.cpcv``)."""

    spec = ModelSpec.from_config(cfg)
    # One thread count for the whole run, fixed now: the free cores when none is set (a
    # busy machine gets fewer threads; OpenMP's passive waiting is set by tradekit.threads).
    threads = worker_threads(spec.threads)
    if threads != spec.threads:
        log.info(
            "training on %d thread(s): %d usable cores, load %s", threads, usable_cores(), _load()
        )
        spec = dataclasses.replace(spec, threads=threads)
    if spec.kind == "lightgbm":  # here, before any pool: see import_lightgbm
        from tradekit.models.lgbm import import_lightgbm

        import_lightgbm()
    if spec.deep:
        from tradekit.models.deep import require_torch, resolve_device

        require_torch(spec.kind)
        resolve_device(spec.device)  # no CUDA for --device cuda: say so before reading data
    data = load_features(features_path, cfg.label, spec.objective)
    purge = effective_purge(cfg.purge, data.horizon)
    if cfg.purge and purge > cfg.purge:
        log.info("purge %d < label horizon %d: using %d", cfg.purge, data.horizon, purge)
    folds = (
        plan_folds(
            len(data.times),
            cfg.train_window,
            cfg.test_window,
            cfg.step,
            purge,
            label=str(data.path),
        )
        if walk_forward
        else []
    )
    target = Path(model_dir)
    if target.name in ("", ".", ".."):
        raise UsageError(f"-o {model_dir}: name a model directory, e.g. -o models/btc-1h")
    features_hash = file_hash(data.path)
    # What a resumed run must share with the interrupted one. Device and thread count are left
    # out on purpose: an interrupted GPU box is often resumed on a different one.
    fingerprint = {
        "features_hash": features_hash,
        "params": spec.params(),
        "label": data.label,
        "per_symbol": cfg.per_symbol,
        "walk_forward": walk_forward,
        "windows": [cfg.train_window, cfg.test_window, cfg.step, purge],
        **({"cpcv": list(cpcv)} if cpcv else {}),
    }
    work = work_dir(target, fingerprint, resume, ("folds", "checkpoints"))
    try:
        manifest, oos_count = _build(
            work, data, spec, cfg, folds, purge, walk_forward, features_hash, progress, cpcv
        )
    except TradekitError:
        shutil.rmtree(work, ignore_errors=True)  # a failure that a resume would only repeat
        raise
    publish(work, target)
    return TrainResult(target, manifest, oos_count)
