"""``tradekit drift``: the deployed model against the newest data and against itself live.

Three checks, each against a stored yardstick:

1. **Feature drift**: the PSI of each feature over the newest ``window_days`` against the
   training distribution in the manifest (``drift_reference``, written by ``train``).
2. **Prediction drift**: the PSI of the model's predictions over the same rows against its
   walk-forward out-of-sample predictions at train time.
3. **Live against replay**: each prediction the live loop recorded in the ledger (close-phase
   decisions of this model version) against the model's prediction on the same candle
   recomputed from the stored candles; a difference beyond ``replay_tolerance`` means the
   loop saw other data or other features than the model was given here.

The alert fires when the predictions shift past ``psi_alert``, when at least
``feature_share`` of the features do, or when live and replay disagree; warnings below that.
A PSI counts above the sampling noise of the window (``reference.limit``): a slow feature over
a few days varies by chance far more than a fast one.
Retraining is recommended on feature or prediction drift, or when the model is older than
``max_age_days`` (a replay disagreement is a fault to find, not a stale model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.drift.reference import limit, psi, shares
from tradekit.errors import InputError
from tradekit.sidecar import DRIFT_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

    from tradekit.config import Config
    from tradekit.models.loaded import LoadedModel

DAY_MS = 86_400_000
TOP = 5


@dataclass(frozen=True)
class Data:
    """The rows to judge: features of every row (for the replay) and where they came from."""

    features: pd.DataFrame
    source: str  # "features", "ohlcv" or "store"
    path: str


def _iso(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    )


def _schema_of(path: Path) -> str:
    import pyarrow.parquet as pq

    from tradekit.contracts import SCHEMA_KEY

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as e:  # pyarrow's errors for a file that is not Parquet
        raise InputError(f"{path}: not a Parquet file ({e})") from None
    return bytes(meta.get(SCHEMA_KEY, b"")).decode()


def _featurize(ohlcv: pd.DataFrame, model: LoadedModel, label: str) -> pd.DataFrame:
    from tradekit.features.build import build_features
    from tradekit.live.signals import spec_of

    frame, _ = build_features(
        ohlcv, spec_of(model), model.timeframe, cost=0.0, labels=False, drop_warmup=False,
        source_label=label,
    )  # fmt: skip
    return frame


def load_data(model: LoadedModel, data: str | None, cfg: Config) -> Data:
    """Features of ``data`` (a features file, or ohlcv/1 featurized with the model's own feature
    set), or of the candle store (``[data] store``, ``[exchange] id``) for the model's
    symbols."""
    import pandas as pd

    from tradekit.contracts import FEATURES, read_ohlcv, read_table

    if data is not None:
        path = Path(data)
        schema = _schema_of(path)
        if schema == FEATURES.name or schema in FEATURES.reads:
            frame, meta = read_table(path, FEATURES)
            model.check_meta(meta, str(path))
            return Data(frame, "features", str(path))
        if schema == "ohlcv/1":
            ohlcv, meta = read_ohlcv(path)
            if meta.get("timeframe") not in (None, model.timeframe):
                raise InputError(
                    f"{path}: {meta.get('timeframe')} candles, the model reads {model.timeframe}"
                )
            return Data(_featurize(ohlcv, model, str(path)), "ohlcv", str(path))
        raise InputError(f"{path}: schema {schema or 'none'}, expected features or ohlcv/1")
    from tradekit.data.store import Store

    store = Store(cfg.data.store)
    frames = [
        f
        for s in model.manifest.get("symbols") or cfg.exchange.symbols
        if (f := store.read(cfg.exchange.id, model.timeframe, str(s))) is not None and len(f)
    ]
    where = f"{cfg.data.store}/{cfg.exchange.id}/{model.timeframe}"
    if not frames:
        raise InputError(f"{where}: no stored candles of the model's symbols (tradekit fetch)")
    ohlcv = pd.concat(frames, ignore_index=True)
    return Data(_featurize(ohlcv, model, where), "store", where)


def _feature_drift(
    ref: dict[str, Any], window: pd.DataFrame, alert: float, warn: float
) -> dict[str, Any]:
    """PSI of each feature, and the level it must pass to count (the threshold above the
    sampling noise of a window this long, for a feature this autocorrelated)."""
    import numpy as np

    values, limits, shifting = {}, {}, []
    n = len(window)
    for name, r in ref["features"].items():
        if name not in window.columns:
            continue
        got = shares(window[name].to_numpy(dtype=np.float64), r["edges"])
        values[name] = round(psi(r["shares"], got), 6)
        limits[name] = round(limit(alert, r, n), 6)
        if values[name] >= limit(warn, r, n):
            shifting.append(name)
    # Ranked by how far past its own limit each feature is.
    ranked = sorted(values, key=lambda k: (-(values[k] / limits[k]), k))
    shifted = [k for k in ranked if values[k] >= limits[k]]
    return {
        "psi": dict(sorted(values.items())),
        "limit": dict(sorted(limits.items())),
        "top": [[k, values[k], limits[k]] for k in ranked[:TOP]],
        "shifted": shifted,
        "shifting": [k for k in ranked if k in shifting and k not in shifted],
        "share": len(shifted) / len(values) if values else 0.0,
    }


def _replay(
    model: LoadedModel, data: Data, state: Path, start_ms: int, end_ms: int, cfg: Config
) -> dict[str, Any]:
    """Recorded live predictions of this model version against the model on the same rows."""
    import numpy as np

    from tradekit.ledger import LedgerView

    with LedgerView(state) as view:
        rows = view.close_predictions(start_ms, end_ms)
    ours = [r for r in rows if r["model_version"] == model.version and r["prediction"] is not None]
    others = sorted({str(r["model_version"]) for r in rows} - {model.version})
    if not ours:
        return {"compared": 0, "mismatches": 0, "other_versions": others}
    feats = data.features
    ts = feats["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
    wanted = {(str(r["symbol"]), int(r["candle_ms"])) for r in ours}
    keep = np.array(
        [(str(s), int(t)) in wanted for s, t in zip(feats["symbol"], ts, strict=True)], dtype=bool
    )
    pred = model.predict(feats[keep].reset_index(drop=True))
    pts = pred["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
    replayed = {
        (str(s), int(t)): float(p)
        for s, t, p in zip(pred["symbol"], pts, pred["prediction"], strict=True)
    }
    tol = cfg.drift.replay_tolerance
    entry, exit_ = cfg.policy.entry_threshold, cfg.policy.exit_threshold
    diffs: list[float] = []
    examples: list[dict[str, Any]] = []
    flips = missing = 0
    for r in ours:
        key = (str(r["symbol"]), int(r["candle_ms"]))
        live = float(r["prediction"])
        if key not in replayed:
            missing += 1
            continue
        rep = replayed[key]
        d = abs(live - rep) if math.isfinite(live) and math.isfinite(rep) else math.inf
        diffs.append(d)
        if (live >= entry) != (rep >= entry) or (live < exit_) != (rep < exit_):
            flips += 1
        if d > tol and len(examples) < 3:
            examples.append({"symbol": key[0], "candle_ms": key[1], "live": live, "replay": rep})
    bad = sum(d > tol for d in diffs)
    return {
        "compared": len(diffs),
        "mismatches": int(bad),
        "max_abs_diff": max(diffs) if diffs else None,
        "threshold_flips": flips,
        "not_in_data": missing,
        "examples": examples,
        "other_versions": others,
    }


def check_drift(
    cfg: Config,
    model_dir: str | Path,
    data: str | None = None,
    *,
    state: str | Path | None = None,
    window_days: float | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The ``drift/1`` report of the model in ``model_dir`` (see module doc). ``state`` is the
    ledger for live-against-replay (skipped when it does not exist); ``now_ms`` the check's
    time (the model's age), default now."""
    import numpy as np

    from tradekit.models.predict import load_model
    from tradekit.timeutil import age_days
    from tradekit.timeutil import now_ms as clock

    d = cfg.drift
    now = clock() if now_ms is None else now_ms
    days = d.window_days if window_days is None else window_days
    model = load_model(model_dir, lean=True)  # as `run` loads it (treelite when installed)
    got = load_data(model, data, cfg)
    ts = got.features["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
    if not len(ts):
        raise InputError(f"{got.path}: no rows")
    end = int(ts.max())
    start = end - int(days * DAY_MS)
    window = got.features[ts > start].reset_index(drop=True)
    ref = model.manifest.get("drift_reference")
    notes: list[str] = []
    alerts: list[str] = []
    warnings: list[str] = []
    features = prediction = None
    why: list[str] = []  # the reasons to retrain
    enough = len(window) >= d.min_rows
    if ref is None:
        notes.append(
            "the manifest has no drift reference (trained by an older tradekit): feature and "
            "prediction drift need a retrain"
        )
    elif not enough:
        notes.append(f"{len(window)} rows in the window, fewer than min_rows {d.min_rows}")
    else:
        features = _feature_drift(ref, window, d.psi_alert, d.psi_warn)
        n_shift = len(features["shifted"])
        top = ", ".join(f"{n} {v:.2f} (limit {lim:.2f})" for n, v, lim in features["top"][:3])
        if features["share"] >= d.feature_share and n_shift:
            why.append("feature drift")
            alerts.append(f"{n_shift} of {len(features['psi'])} features shifted: {top}")
        elif n_shift or features["shifting"]:
            warnings.append(f"features shifting: {top}")
        if ref.get("prediction"):
            p = model.predict(window)["prediction"].to_numpy(dtype=np.float64)
            rp = ref["prediction"]
            value = round(psi(rp["shares"], shares(p, rp["edges"])), 6)
            lim = limit(d.psi_alert, rp, len(p))
            prediction = {
                "psi": value,
                "limit": round(lim, 6),
                "rows": len(p),
                "mean": float(np.nanmean(p)) if len(p) else None,
                "reference_source": ref["prediction"].get("source"),
            }
            if value >= lim:
                why.append("prediction drift")
                alerts.append(f"predictions shifted (PSI {value:.2f}, limit {lim:.2f})")
            elif value >= limit(d.psi_warn, rp, len(p)):
                warnings.append(f"predictions shifting (PSI {value:.2f})")
    replay = None
    if state is not None and Path(state).is_file():
        rp_doc = _replay(model, got, Path(state), start + 1, end, cfg)
        if rp_doc["mismatches"]:
            alerts.append(
                f"live and replay disagree on {rp_doc['mismatches']} of {rp_doc['compared']} "
                f"predictions (max difference {rp_doc['max_abs_diff']:.3g})"
            )
        if rp_doc["other_versions"] and not rp_doc["compared"]:
            notes.append(
                "the ledger's decisions in the window come from other model versions ("
                + ", ".join(rp_doc["other_versions"])
                + ")"
            )
        replay = rp_doc
    elif state is not None:
        notes.append(f"no ledger at {state}: live against replay skipped")
    age = age_days(model.manifest.get("created_at"), now)
    if d.max_age_days and age is not None and age > d.max_age_days:
        why.append(f"model older than {d.max_age_days:g} days ({age:g})")
    status = "alert" if alerts else "warn" if warnings else "ok" if enough else "insufficient"
    return {
        "schema": DRIFT_SCHEMA,
        "checked_at": _iso(now),
        "status": status,
        "alerts": alerts,
        "warnings": warnings,
        "notes": notes,
        "model": {
            "dir": str(model_dir),
            "version": model.version,
            "kind": model.kind,
            "created_at": model.manifest.get("created_at"),
            "age_days": age,
        },
        "data": {
            "source": got.source,
            "path": got.path,
            "rows": len(window),
            "symbols": sorted({str(s) for s in window["symbol"]}),
            "start": _iso(start + 1) if len(window) else None,
            "end": _iso(end),
            "window_days": days,
        },
        "thresholds": {
            "psi_warn": d.psi_warn,
            "psi_alert": d.psi_alert,
            "feature_share": d.feature_share,
            "min_rows": d.min_rows,
            "replay_tolerance": d.replay_tolerance,
            "max_age_days": d.max_age_days,
        },
        "features": features,
        "prediction": prediction,
        "live_replay": replay,
        "retrain": {"recommended": bool(why), "why": why},
        "pause": {"requested": False},
    }


def alert_text(doc: dict[str, Any]) -> str:
    """The phone's message for an alert ('' when none)."""
    if doc["status"] != "alert":
        return ""
    model = doc["model"]
    lines = [f"Drift alert, model {model['version']} ({doc['data']['end'][:16]} UTC):"]
    lines += [f"- {a}" for a in doc["alerts"]]
    if doc["retrain"]["recommended"]:
        lines.append(f"Retraining recommended: {', '.join(doc['retrain']['why'])}.")
    if doc["pause"]["requested"]:
        lines.append("New entries paused ([risk] pause_on_drift); `tradekit resume` lifts it.")
    return "\n".join(lines) + "\n"


def record(doc: dict[str, Any], state: str | Path | None, *, pause_on_drift: bool) -> None:
    """On an alert with ``pause_on_drift``, queue a ``pause`` for the loop (it applies it at
    its next iteration: no new entries, exits go on); then keep the report beside the ledger
    (``sidecar.drift_path``) for ``status`` and ``review``. Nothing without a ledger."""
    from tradekit.contracts import write_json
    from tradekit.sidecar import drift_path

    if state is None or not Path(state).is_file():
        return
    if doc["status"] == "alert" and pause_on_drift:
        from tradekit.ledger import SideLedger

        with SideLedger(state) as side:
            doc["pause"] = {"requested": True, "control_id": side.request("pause")}
    write_json(doc, drift_path(state))
