"""``run_backtest``: OHLCV + predictions -> a backtest/1 report, trades/1 and an equity plot.

Everything is computed before anything is written, and each file is written atomically, so a
failed run leaves no half-written output. Only ``generated_at`` depends on the run itself:
the same inputs and config give byte-identical reports otherwise.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tradekit.contracts import BACKTEST_SCHEMA, file_hash
from tradekit.timeutil import timeframe_ms

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from tradekit.backtest.engine import Simulation
    from tradekit.config import BacktestConfig, PolicyConfig, RiskConfig
    from tradekit.data.market import Market

CONVENTIONS = {
    "signal": "prediction at a candle's close",
    "fill": "next candle open of the symbol, slippage against the trader, fee per fill",
    "stops": "stop-loss and trailing stop checked on each candle's low from the entry candle on, "
    "filled at the stop (at the open when the candle gaps through it), as a resting exchange "
    "stop fills",
    "targets": "take-profit and partial take-profit: a candle whose high reaches the level "
    "sells at the next open, as live trading does (a market order after the close)",
    "halts": "daily loss: latched at a close, lifted at the next UTC day; drawdown: held while "
    "equity is under the limit, lifted when it recovers or after drawdown_halt_candles "
    "closes (the peak re-bases to the equity then)",
    "open_at_end": "closed as trades with exit_reason 'end' at the last close, no fee",
    "annualisation": "365 days a year, by the timeframe",
}


@dataclass(frozen=True)
class BacktestResult:
    report: dict[str, Any]
    market: Market
    sim: Simulation
    buy_and_hold: NDArray[np.float64]


def iso(ms: int | float) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_backtest(
    ohlcv_path: str | Path,
    predictions_path: str | Path,
    policy: PolicyConfig,
    risk: RiskConfig,
    costs: BacktestConfig,
    *,
    breakdown: str | None = None,
) -> BacktestResult:
    """Load, simulate and measure; writes nothing (see ``write_trades``, ``plot.write_plot``
    and ``tradekit.contracts.write_json`` for the outputs). ``breakdown`` (day, week or
    month) adds the results per calendar period."""
    from tradekit import policy as pol
    from tradekit import risk as rk
    from tradekit.backtest import kernel as kn
    from tradekit.backtest import metrics
    from tradekit.backtest.engine import simulate
    from tradekit.data.market import load_market

    market = load_market(ohlcv_path, predictions_path)
    sim = simulate(market, policy, risk, costs)
    start = costs.starting_balance
    bh = metrics.buy_and_hold(market.open, market.close, market.valid, start)
    tr = sim.trades
    tf_ms = timeframe_ms(market.timeframe)
    block = measure(sim, tf_ms, start, bh)
    per_symbol: dict[str, Any] = {}
    for j, s in enumerate(market.symbols):
        mine = tr[tr[:, kn.T_SYM] == j]
        pnl = mine[:, kn.T_PNL]
        sym_bh = metrics.buy_and_hold(
            market.open[:, j : j + 1], market.close[:, j : j + 1], market.valid[:, j : j + 1], 1.0
        )
        per_symbol[s] = {
            "trades": len(mine),
            "wins": int((pnl > 0).sum()),
            "win_rate": float((pnl > 0).mean()) if len(mine) else None,
            "pnl": float(pnl.sum()),
            "fees": float(mine[:, kn.T_FEES].sum()),
            "return_contribution": float(pnl.sum()) / start,
            "buy_and_hold_return": float(sym_bh[-1]) - 1.0 if len(sym_bh) else 0.0,
        }
    reasons = tr[:, kn.T_EXIT_REASON].astype(np.int64)
    exit_reasons = {
        name: int((reasons == code).sum())
        for code, name in sorted(pol.REASON_NAMES.items())
        if code not in (pol.NONE, pol.ENTRY_SIGNAL, pol.DIP_ENTRY)
    }
    per_exit = {}
    for code, name in sorted(pol.REASON_NAMES.items()):
        mine = tr[reasons == code]
        if len(mine):
            per_exit[name] = _trade_stats(mine, start)
    risk_events = {rk.CODE_NAMES[c]: int(sim.risk_counts[c]) for c in range(rk.N_CODES)}
    n = len(market.ts)
    report: dict[str, Any] = {
        "schema": BACKTEST_SCHEMA,
        "generated_at": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "policy": dataclasses.asdict(policy),
            "risk": dataclasses.asdict(risk),
            "backtest": dataclasses.asdict(costs),
        },
        "span": {
            "start": iso(market.ts[0]),
            "end": iso(market.ts[-1]),
            "candles": n,
            "days": n * tf_ms / 86_400_000,
            "timeframe": market.timeframe,
            "symbols": list(market.symbols),
        },
        "metrics": block,
        "per_symbol": per_symbol,
        "exit_reasons": exit_reasons,
        "per_exit_reason": per_exit,
        "risk_events": risk_events,
        "halts": halt_periods(sim.halts, market.ts),
        "inputs": {
            "ohlcv": {
                "path": str(ohlcv_path),
                "sha256": file_hash(ohlcv_path),
                "rows": market.ohlcv_rows,
            },
            "predictions": {
                "path": str(predictions_path),
                "sha256": file_hash(predictions_path),
                "rows": market.prediction_rows,
            },
        },
        "conventions": CONVENTIONS,
    }
    if breakdown is not None:
        report["breakdown"] = {
            "period": breakdown,
            "rows": periods(sim.equity, tr, market.ts, start, breakdown),
        }
    return BacktestResult(report, market, sim, bh)


def _trade_stats(tr: NDArray[np.float64], start: float) -> dict[str, Any]:
    from tradekit.backtest import kernel as kn

    pnl = tr[:, kn.T_PNL]
    n = len(tr)
    return {
        "trades": n,
        "wins": int((pnl > 0).sum()),
        "win_rate": float((pnl > 0).mean()) if n else None,
        "pnl": float(pnl.sum()),
        "avg_pnl_pct": float(tr[:, kn.T_PNL_PCT].mean()) if n else None,
        "avg_candles": float((tr[:, kn.T_EXIT_IDX] - tr[:, kn.T_ENTRY_IDX] + 1).mean())
        if n
        else None,
        "return_contribution": float(pnl.sum()) / start,
    }


BREAKDOWNS = ("day", "week", "month")


def _period_keys(ts: NDArray[np.int64], period: str) -> list[str]:
    """Each candle's UTC period: 2024-01-31, 2024-W05 (ISO week) or 2024-01."""
    fmt = {"day": "%Y-%m-%d", "week": "%G-W%V", "month": "%Y-%m"}[period]
    days = np.unique(ts // 86_400_000)
    names = {int(d): datetime.fromtimestamp(int(d) * 86_400, tz=UTC).strftime(fmt) for d in days}
    return [names[int(d)] for d in ts // 86_400_000]


def periods(
    equity: NDArray[np.float64],
    trades: NDArray[np.float64],
    ts: NDArray[np.int64],
    start: float,
    period: str,
) -> list[dict[str, Any]]:
    """Per calendar period (UTC): the return of the equity from the previous period's last
    close to this one's, the deepest drawdown inside it, and the trades that closed in it."""
    import itertools

    from tradekit.backtest import kernel as kn
    from tradekit.backtest.metrics import drawdown

    if len(ts) == 0:
        return []
    keys = _period_keys(ts, period)
    edges = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]] + [len(keys)]
    exit_idx = trades[:, kn.T_EXIT_IDX].astype(np.int64)
    out = []
    prev = start
    for a, b in itertools.pairwise(edges):
        mine = trades[(exit_idx >= a) & (exit_idx < b)]
        end = float(equity[b - 1])
        dd, _ = drawdown(equity[a:b], prev)
        row = {"period": keys[a], "start": iso(ts[a]), "candles": b - a}
        row.update(_trade_stats(mine, start))
        row["return"] = end / prev - 1.0
        row["max_drawdown"] = dd
        row["final_equity"] = end
        out.append(row)
        prev = end
    return out


def measure(
    sim: Simulation, candle_ms: int, starting_balance: float, buy_and_hold: NDArray[np.float64]
) -> dict[str, Any]:
    """The ``metrics`` block of a simulation: what ``backtest`` reports and ``sweep`` ranks
    (one function, so a sweep's trial and its re-run through ``backtest`` agree exactly)."""
    from tradekit.backtest import kernel as kn
    from tradekit.backtest import metrics

    tr = sim.trades
    durations = tr[:, kn.T_EXIT_IDX] - tr[:, kn.T_ENTRY_IDX] + 1
    return metrics.compute(
        sim.equity,
        tr[:, kn.T_PNL],
        tr[:, kn.T_PNL_PCT],
        durations,
        starting_balance=starting_balance,
        candle_ms=candle_ms,
        fees_paid=sim.fees_paid,
        exposure_candles=sim.exposure_candles,
        mean_exposure=sim.mean_exposure,
        buy_and_hold=buy_and_hold,
    )


def halt_periods(events: NDArray[np.uint8], ts: NDArray[np.int64]) -> list[dict[str, Any]]:
    """The halts as periods: kind, the close that began it, the candle where it lifted (None:
    still in force at the end) and how (new_day, recovered, after_candles)."""
    from tradekit import risk as rk

    out: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    ends = {
        rk.DAILY_OFF: ("daily_loss", "new_day"),
        rk.DD_OFF: ("drawdown", "recovered"),
        rk.DD_LIFT: ("drawdown", "after_candles"),
    }
    for t in np.flatnonzero(events):
        ev = int(events[t])
        for bit, (kind, how) in ends.items():
            if ev & bit and kind in open_:
                p = open_.pop(kind)
                p["lifted"], p["lifted_by"] = iso(ts[t]), how
        for bit, kind in ((rk.DAILY_ON, "daily_loss"), (rk.DD_ON, "drawdown")):
            if ev & bit:
                p = {"kind": kind, "started": iso(ts[t]), "lifted": None, "lifted_by": None}
                open_[kind] = p
                out.append(p)
    return out


def write_trades(result: BacktestResult, path: str | Path) -> None:
    """trades/1 Parquet, written with pyarrow directly (no pandas on this path)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tradekit import policy as pol
    from tradekit.backtest import kernel as kn
    from tradekit.contracts import META_KEY, SCHEMA_KEY, TRADES, check_arrow_schema
    from tradekit.errors import InputError
    from tradekit.fsutil import atomic_path

    tr = result.sim.trades
    ts = result.market.ts
    syms = np.asarray(result.market.symbols, dtype=object)
    names = np.asarray([pol.REASON_NAMES[i] for i in range(len(pol.REASON_NAMES))], dtype=object)
    ms = pa.timestamp("ms", tz="UTC")
    idx = {c: tr[:, c].astype(np.int64) for c in (kn.T_SYM, kn.T_ENTRY_IDX, kn.T_EXIT_IDX)}
    cols: dict[str, Any] = {
        "symbol": pa.array(syms[idx[kn.T_SYM]].tolist(), type=pa.string()),
        "entry_time": pa.array(ts[idx[kn.T_ENTRY_IDX]], type=pa.int64()).cast(ms),
        "exit_time": pa.array(ts[idx[kn.T_EXIT_IDX]], type=pa.int64()).cast(ms),
        "entry_price": pa.array(tr[:, kn.T_ENTRY_PRICE]),
        "exit_price": pa.array(tr[:, kn.T_EXIT_PRICE]),
        "qty": pa.array(tr[:, kn.T_QTY]),
        "fees": pa.array(tr[:, kn.T_FEES]),
        "pnl": pa.array(tr[:, kn.T_PNL]),
        "pnl_pct": pa.array(tr[:, kn.T_PNL_PCT]),
        "exit_reason": pa.array(names[tr[:, kn.T_EXIT_REASON].astype(np.int64)].tolist()),
        "mae": pa.array(tr[:, kn.T_MAE]),
        "mfe": pa.array(tr[:, kn.T_MFE]),
        "partial_exits": pa.array(tr[:, kn.T_NPART].astype(np.int64)),
        "entry_reason": pa.array(names[tr[:, kn.T_ENTRY_REASON].astype(np.int64)].tolist()),
    }
    table = pa.table(cols)
    check_arrow_schema(table.schema, TRADES, str(path))
    meta = {
        "timeframe": result.market.timeframe,
        "ohlcv_sha256": result.report["inputs"]["ohlcv"]["sha256"],
        "predictions_sha256": result.report["inputs"]["predictions"]["sha256"],
    }
    table = table.replace_schema_metadata(
        {SCHEMA_KEY: TRADES.name.encode(), META_KEY: json.dumps(meta, sort_keys=True).encode()}
    )
    try:
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    except OSError as e:
        raise InputError(f"{path}: cannot write: {e.strerror or e}") from None
