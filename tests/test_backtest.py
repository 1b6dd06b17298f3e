"""`tradekit backtest`: fills, stops, risk in the kernel; accounting invariants under hypothesis;
the backtest/1 report (golden), trades/1, the plot, and bad inputs."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_risk import LOOSE
from tradekit import policy as pol
from tradekit import risk as rk
from tradekit.backtest import kernel as kn
from tradekit.backtest.engine import Simulation, simulate_arrays
from tradekit.config import PolicyConfig, RiskConfig
from tradekit.contracts import (
    PREDICTIONS,
    TRADES,
    file_hash,
    read_table,
    to_table,
    write_ohlcv,
    write_table,
)

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
GOLDEN = Path(__file__).parent / "golden" / "backtest_report.json"
LOOSE_RISK = LOOSE  # every cap and halt out of the way


def run_sim(
    o: Any,
    h: Any,
    lo: Any,
    c: Any,
    pred: Any,
    valid: Any = None,
    *,
    fee: float = 0.0,
    slip: float = 0.0,
    start: float = 1000.0,
    policy: dict[str, Any] | None = None,
    risk: dict[str, Any] | None = None,
    symbols: list[str] | None = None,
) -> Simulation:
    """The kernel on (candles,) or (candles, symbols) arrays, traced."""

    def two_d(x: Any) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        return np.ascontiguousarray(a[:, None] if a.ndim == 1 else a)

    o, h, lo, c, pred = map(two_d, (o, h, lo, c, pred))
    n, m = o.shape
    v = np.ones((n, m), np.uint8) if valid is None else np.asarray(valid, np.uint8).reshape(n, m)
    pp = pol.params(
        PolicyConfig(
            **{"entry_threshold": 0.5, "exit_threshold": -0.5, "stoploss": 0.0, **(policy or {})}
        )
    )
    syms = symbols or [f"S{j}/USD" for j in range(m)]
    rp, member = rk.params(RiskConfig(**{**LOOSE_RISK, **(risk or {})}), syms)
    ts = T0 + np.arange(n, dtype=np.int64) * HOUR
    return simulate_arrays(ts, o, h, lo, c, v, pred, pp, rp, member, fee, slip, start, trace=True)


def flat(n: int, price: float = 100.0) -> tuple[np.ndarray, ...]:
    p = np.full(n, price)
    return p.copy(), p + 1.0, p - 1.0, p.copy()


def signals(n: int, at: dict[int, float]) -> np.ndarray:
    s = np.zeros(n)
    for i, v in at.items():
        s[i] = v
    return s


# -- kernel scenarios --------------------------------------------------------------------------


def test_signal_fills_at_next_open_with_fees_and_slippage():
    o = np.array([100.0, 101, 102, 103, 104, 105, 106, 107])
    h, lo, c = o + 2, o - 2, o + 0.5
    r = run_sim(o, h, lo, c, signals(8, {1: 1.0, 4: -1.0}), fee=0.01, slip=0.001)
    (t,) = r.trades
    assert (t[kn.T_ENTRY_IDX], t[kn.T_EXIT_IDX], t[kn.T_ENTRY_SIG]) == (2, 5, 1)
    entry, exit_ = 102 * 1.001, 105 * 0.999
    assert t[kn.T_ENTRY_PRICE] == pytest.approx(entry)
    assert t[kn.T_EXIT_PRICE] == pytest.approx(exit_)
    qty = 1000 / (entry * 1.01)
    assert t[kn.T_QTY] == pytest.approx(qty)
    fees = qty * entry * 0.01 + qty * exit_ * 0.01
    assert t[kn.T_FEES] == pytest.approx(fees)
    assert t[kn.T_PNL] == pytest.approx(qty * (exit_ - entry) - fees)
    assert r.final_equity == pytest.approx(1000 + t[kn.T_PNL])
    assert t[kn.T_EXIT_REASON] == pol.EXIT_SIGNAL and t[kn.T_ENTRY_REASON] == pol.ENTRY_SIGNAL
    # MAE: lows of candles 2..4 (the exit candle's range is after the exit at its open).
    assert t[kn.T_MAE] == pytest.approx(1 - 100 / entry)
    assert r.fills[:, kn.F_IDX].tolist() == [2, 5]
    assert r.fills[:, kn.F_SIG_IDX].tolist() == [1, 4]


def test_signal_on_the_last_candle_never_fills():
    r = run_sim(*flat(5), signals(5, {4: 1.0}))
    assert len(r.trades) == 0 and len(r.fills) == 0 and r.final_equity == 1000


def test_stop_is_live_on_the_entry_candle_and_gaps_fill_at_the_open():
    o, h, lo, c = flat(6)
    lo[2] = 94.0  # entry candle reaches the 5 % stop
    r = run_sim(o, h, lo, c, signals(6, {1: 1.0}), policy={"stoploss": 0.05})
    (t,) = r.trades
    assert t[kn.T_EXIT_IDX] == 2 and t[kn.T_EXIT_REASON] == pol.STOPLOSS
    assert t[kn.T_EXIT_PRICE] == pytest.approx(95.0)
    assert t[kn.T_MAE] == pytest.approx(0.05)  # the stop, not the candle's low
    o, h, lo, c = flat(6)
    o[3], h[3], lo[3], c[3] = 90.0, 91.0, 89.0, 90.0  # gap below the stop
    r = run_sim(o, h, lo, c, signals(6, {1: 1.0}), policy={"stoploss": 0.05})
    assert r.trades[0, kn.T_EXIT_PRICE] == pytest.approx(90.0)
    assert r.trades[0, kn.T_EXIT_IDX] == 3


def test_stop_before_target_in_one_candle():
    o, h, lo, c = flat(6)
    h[3], lo[3] = 120.0, 80.0
    r = run_sim(o, h, lo, c, signals(6, {1: 1.0}), policy={"stoploss": 0.1, "take_profit": 0.1})
    assert r.trades[0, kn.T_EXIT_REASON] == pol.STOPLOSS
    assert r.trades[0, kn.T_EXIT_PRICE] == pytest.approx(90.0)


def test_partial_exits_sell_at_the_next_open_then_exit_signal():
    o, h, lo, c = flat(8)
    h[3] = 125.0  # both partial steps (10 %, 20 %) reached in one candle
    o[4], h[4], lo[4], c[4] = 112.0, 113.0, 111.0, 112.0  # ... and sold at the next open
    pol_kw = {"partial_exits": [0.1, 0.2], "partial_exit_frac": 0.5}
    r = run_sim(o, h, lo, c, signals(8, {1: 1.0, 5: -1.0}), policy=pol_kw)
    (t,) = r.trades
    assert t[kn.T_NPART] == 2 and t[kn.T_EXIT_REASON] == pol.EXIT_SIGNAL
    sells = r.fills[r.fills[:, kn.F_SIDE] < 0]
    assert sells[:, kn.F_IDX].tolist() == [4, 6]
    assert sells[:, kn.F_QTY] == pytest.approx([7.5, 2.5])  # half, then half of the rest
    assert sells[:, kn.F_PRICE] == pytest.approx([112.0, 100.0])
    assert t[kn.T_EXIT_PRICE] == pytest.approx((7.5 * 112 + 2.5 * 100) / 10)
    assert t[kn.T_PNL] == pytest.approx(90.0)
    assert t[kn.T_MFE] == pytest.approx(0.25)  # the high of 125 while held


def test_take_profit_sells_at_the_next_open_not_at_the_level():
    o, h, lo, c = flat(8)
    h[3] = 115.0  # the 10 % target is reached inside candle 3
    o[4], h[4], lo[4], c[4] = 104.0, 105.0, 103.0, 104.0
    r = run_sim(o, h, lo, c, signals(8, {1: 1.0}), policy={"take_profit": 0.1})
    (t,) = r.trades
    assert t[kn.T_EXIT_REASON] == pol.TAKE_PROFIT
    assert (t[kn.T_ENTRY_IDX], t[kn.T_EXIT_IDX]) == (2, 4)
    assert t[kn.T_EXIT_PRICE] == pytest.approx(104.0)


def test_max_open_positions_rejects_and_counts():
    n = 6
    o, h, lo, c = (np.column_stack([x, x]) for x in flat(n))
    pred = np.column_stack([signals(n, {1: 1.0}), signals(n, {1: 1.0})])
    r = run_sim(o, h, lo, c, pred, risk={"max_open_positions": 1, "max_position_frac": 0.5})
    assert len(r.trades) == 1 and r.trades[0, kn.T_SYM] == 0  # symbol order decides
    assert r.risk_counts[rk.REJECT_MAX_POSITIONS] == 1 and r.risk_counts[rk.OK] == 1


def test_drawdown_halt_blocks_entries_but_not_exits():
    o = np.array([100.0, 100, 100, 100, 50, 50, 50, 50, 50, 50])
    h, lo, c = o + 1, o - 1, o.copy()
    c[3] = 50.0
    pred = signals(10, {1: 1.0, 5: -1.0, 7: 1.0})
    r = run_sim(o, h, lo, c, pred, risk={"max_drawdown_halt_frac": 0.3})
    assert len(r.trades) == 1 and r.trades[0, kn.T_EXIT_REASON] == pol.EXIT_SIGNAL
    assert r.risk_counts[rk.REJECT_DRAWDOWN_HALT] == 1


def test_missing_candle_delays_the_fill_and_marks_at_last_close():
    n = 6
    o, h, lo, c = (np.column_stack([x, x * 2]) for x in flat(n))
    valid = np.ones((n, 2), np.uint8)
    valid[2, 1] = 0  # symbol 1 has no candle at 2: its order waits for candle 3
    pred = np.column_stack([np.zeros(n), signals(n, {1: 1.0})])
    r = run_sim(o, h, lo, c, pred, valid)
    assert r.trades[0, kn.T_ENTRY_IDX] == 3 and r.trades[0, kn.T_EXIT_REASON] == pol.END


def test_open_position_at_the_end_is_marked_without_fee():
    o = np.array([100.0, 100, 100, 110, 120])
    r = run_sim(o, o + 1, o - 1, o, signals(5, {1: 1.0}), fee=0.01)
    (t,) = r.trades
    assert t[kn.T_EXIT_REASON] == pol.END and t[kn.T_EXIT_PRICE] == pytest.approx(120.0)
    assert t[kn.T_FEES] == pytest.approx(t[kn.T_QTY] * 100 * 0.01)  # the entry fee only
    assert r.final_equity == pytest.approx(1000 + t[kn.T_PNL])
    assert r.equity[-1] == pytest.approx(r.final_equity)


def test_buffers_grow_past_their_first_size():
    n = 2000
    o, h, lo, c = flat(n)
    pred = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    r = run_sim(o, h, lo, c, pred)
    # Enter at 1, 3, ..., 1999; exit at 2, 4, ..., 1998; the last one is open at the end.
    assert len(r.trades) == 1000 and len(r.fills) == 2 * 999 + 1
    assert r.trades[-1, kn.T_EXIT_REASON] == pol.END


# -- invariants under hypothesis -----------------------------------------------------------


@st.composite
def markets(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(10, 60))
    m = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, draw(st.sampled_from([0.005, 0.03, 0.1])), (n, m))
    close = 100 * np.exp(np.cumsum(steps, axis=0))
    gap = np.exp(rng.normal(0, 0.01, (n, m)))
    op = np.vstack([close[:1], close[:-1]]) * gap
    hi = np.maximum(op, close) * (1 + np.abs(rng.normal(0, 0.02, (n, m))))
    lo = np.minimum(op, close) * (1 - np.abs(rng.normal(0, 0.02, (n, m))))
    valid = (rng.random((n, m)) > draw(st.sampled_from([0.0, 0.2]))).astype(np.uint8)
    pred = rng.normal(0, 1, (n, m))
    pred[rng.random((n, m)) < 0.1] = np.nan
    policy = {
        "entry_threshold": draw(st.floats(-0.5, 1.0)),
        "exit_threshold": draw(st.floats(-1.0, 0.5)),
        "stoploss": draw(st.sampled_from([0.0, 0.02, 0.1])),
        "take_profit": draw(st.sampled_from([0.0, 0.03, 0.2])),
        "trailing_stop": draw(st.sampled_from([0.0, 0.05])),
        "partial_exits": draw(st.sampled_from([[], [0.01], [0.02, 0.05]])),
        "partial_exit_frac": draw(st.sampled_from([0.3, 0.5])),
        "persistence": draw(st.integers(1, 3)),
        "dip_entry": draw(st.booleans()),
        "dip_frac": 0.02,
        "dip_lookback": draw(st.integers(1, 6)),
    }
    risk = {
        "max_open_positions": draw(st.integers(1, 3)),
        "max_position_frac": draw(st.floats(0.05, 1.0)),
        "max_position_abs": draw(st.sampled_from([0.0, 300.0])),
        "max_trade_frac": draw(st.floats(0.05, 1.0)),
        "max_exposure_frac": draw(st.floats(0.1, 1.0)),
        "clusters": draw(st.sampled_from([{}, {"a": ["S0/USD", "S1/USD"]}])),
        "cluster_max_frac": draw(st.floats(0.1, 1.0)),
        "daily_loss_halt_frac": draw(st.sampled_from([0.0, 0.02])),
        "max_drawdown_halt_frac": draw(st.sampled_from([0.0, 0.1])),
        "min_order_value": draw(st.sampled_from([0.0, 5.0, 50.0])),
        "qty_step": draw(st.sampled_from([0.0, 0.01, 1.0])),
    }
    fee = draw(st.sampled_from([0.0, 0.001, 0.01]))
    slip = draw(st.sampled_from([0.0, 0.002]))
    return {
        "arrays": (op, hi, lo, close, pred, valid),
        "policy": policy,
        "risk": risk,
        "fee": fee,
        "slip": slip,
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets())
def test_accounting_and_risk_invariants(case):
    op, hi, lo, cl, pred, valid = case["arrays"]
    risk = case["risk"]
    start = 1000.0
    r = run_sim(
        op,
        hi,
        lo,
        cl,
        pred,
        valid,
        fee=case["fee"],
        slip=case["slip"],
        start=start,
        policy=case["policy"],
        risk=risk,
    )
    n, m = op.shape
    tol = 1e-9 * start
    assert (r.cash >= 0).all()
    f = r.fills
    assert (f[:, kn.F_FEE] >= 0).all() and r.fees_paid >= 0
    buys = f[f[:, kn.F_SIDE] > 0]
    # No fill before its signal; entries only on candles the symbol has.
    assert (buys[:, kn.F_IDX] > buys[:, kn.F_SIG_IDX]).all()
    sig_sells = f[(f[:, kn.F_SIDE] < 0) & (f[:, kn.F_SIG_IDX] >= 0)]
    assert (sig_sells[:, kn.F_IDX] > sig_sells[:, kn.F_SIG_IDX]).all()
    idx = f[:, kn.F_IDX].astype(int)
    assert (valid[idx, f[:, kn.F_SYM].astype(int)] == 1).all()
    # Risk limits at each entry (sized with the equity at that open).
    eq_at = buys[:, kn.F_EQUITY]
    value = buys[:, kn.F_QTY] * buys[:, kn.F_PRICE]
    cap = np.minimum(risk["max_position_frac"], risk["max_trade_frac"]) * eq_at
    if risk["max_position_abs"]:
        cap = np.minimum(cap, risk["max_position_abs"])
    assert (value <= cap * (1 + 1e-9) + tol).all()
    assert (buys[:, kn.F_EXPOSURE] <= risk["max_exposure_frac"] * eq_at * (1 + 1e-9) + tol).all()
    assert (value >= risk["min_order_value"] * (1 - 1e-9)).all()
    if risk["qty_step"]:
        steps = buys[:, kn.F_QTY] / risk["qty_step"]
        assert np.allclose(steps, np.round(steps), atol=1e-6)
    # Replay the fills: cash, positions and equity agree with the kernel at every close.
    cash = start
    qty = np.zeros(m)
    last = np.full(m, np.nan)
    k = 0
    for t in range(n):
        while k < len(f) and f[k, kn.F_IDX] == t:
            s, side = int(f[k, kn.F_SYM]), f[k, kn.F_SIDE]
            q, p, fee = f[k, kn.F_QTY], f[k, kn.F_PRICE], f[k, kn.F_FEE]
            cash += -side * q * p - fee
            qty[s] += side * q
            assert fee == pytest.approx(q * p * case["fee"])
            k += 1
        last = np.where(valid[t] == 1, cl[t], last)
        assert (qty >= -1e-9).all()
        assert np.count_nonzero(qty > 0) <= risk["max_open_positions"]
        assert cash == pytest.approx(r.cash[t], rel=1e-9, abs=tol)
        held = qty > 0
        marked = float((qty[held] * last[held]).sum())
        assert r.equity[t] == pytest.approx(cash + marked, rel=1e-9, abs=tol)
        assert r.exposure[t] == pytest.approx(marked, rel=1e-9, abs=tol)
    # Closed trades (the ones open at the end marked at the last close) add up to the result.
    assert r.trades[:, kn.T_PNL].sum() == pytest.approx(r.final_equity - start, abs=1e-6)
    assert (r.trades[:, kn.T_MAE] >= 0).all()
    # Codes below REJECT_MAX_POSITIONS are accepted entries (as sized or resized).
    assert r.risk_counts[: rk.REJECT_MAX_POSITIONS].sum() == len(buys)


# -- files and the CLI ---------------------------------------------------------------------


def candles_frame(symbols: dict[str, np.ndarray], start: int = T0) -> pd.DataFrame:
    """ohlcv/1 rows from closes per symbol: open = previous close, high/low 1 % around."""
    parts = []
    for sym, close in symbols.items():
        n = len(close)
        op = np.concatenate(([close[0]], close[:-1]))
        parts.append(
            pd.DataFrame(
                {
                    "symbol": pd.Series([sym] * n, dtype="str"),
                    "timestamp": pd.to_datetime(start + np.arange(n) * HOUR, unit="ms", utc=True),
                    "open": op,
                    "high": np.maximum(op, close) * 1.01,
                    "low": np.minimum(op, close) * 0.99,
                    "close": close,
                    "volume": np.ones(n),
                }
            )
        )
    df = pd.concat(parts, ignore_index=True)
    df["timestamp"] = df["timestamp"].dt.as_unit("ms")
    return df


def preds_frame(rows: dict[str, np.ndarray], start: int = T0) -> pd.DataFrame:
    parts = []
    for sym, p in rows.items():
        parts.append(
            pd.DataFrame(
                {
                    "symbol": pd.Series([sym] * len(p), dtype="str"),
                    "timestamp": pd.to_datetime(
                        start + np.arange(len(p)) * HOUR, unit="ms", utc=True
                    ).as_unit("ms"),
                    "prediction": np.asarray(p, dtype=float),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def golden_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two symbols, 72 hourly candles, a sine-shaped trend with fixed predictions."""
    i = np.arange(72)
    btc = 40_000 * (1 + 0.08 * np.sin(i / 7)) * (1 + 0.001 * i)
    eth = 2_000 * (1 + 0.12 * np.sin(i / 5 + 1)) * (1 - 0.0005 * i)
    # A late and noisy view of the trend: some wins, some losses, a stop and a partial exit.
    pb = np.round(np.cos(i / 7 - 0.9) + 0.4 * np.sin(i * 1.7), 3)
    pe = np.round(np.cos(i / 5 + 0.2) + 0.4 * np.sin(i * 2.3), 3)
    return candles_frame({"BTC/USD": btc, "ETH/USD": eth}), preds_frame(
        {"BTC/USD": pb, "ETH/USD": pe}
    )


GOLDEN_TOML = """
[policy]
entry_threshold = 0.3
exit_threshold = -0.2
stoploss = 0.02
take_profit = 0.0
partial_exits = [0.03]
partial_exit_frac = 0.5

[risk]
max_open_positions = 2
max_position_frac = 0.4
max_trade_frac = 0.4
max_exposure_frac = 0.7
qty_step = 0.0001

[backtest]
fee = 0.002
slippage = 0.0005
starting_balance = 10000.0
"""


def write_inputs(ohlcv: pd.DataFrame, preds: pd.DataFrame) -> None:
    write_ohlcv(ohlcv, "ohlcv.parquet", {"exchange": "kraken", "timeframe": "1h"})
    write_table(preds, "preds.parquet", PREDICTIONS, {})


def approx_equal(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for k in a:
            approx_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            approx_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_golden_report_and_trades(run_cli):
    write_inputs(*golden_inputs())
    Path("tradekit.toml").write_text(GOLDEN_TOML, encoding="utf-8")
    r = run_cli(
        "backtest",
        "ohlcv.parquet",
        "-p",
        "preds.parquet",
        "-o",
        "report.json",
        "--trades",
        "trades.parquet",
    )
    assert r.code == 0, r.err
    assert "total_return" in r.err and r.out == ""
    report = json.loads(Path("report.json").read_text(encoding="utf-8"))
    assert report["schema"] == "backtest/1"
    assert report["inputs"]["ohlcv"]["sha256"] == file_hash("ohlcv.parquet")
    assert report["inputs"]["predictions"]["sha256"] == file_hash("preds.parquet")
    m = report["metrics"]
    assert m["trades"] > 2 and m["fees_paid"] > 0
    assert sum(report["exit_reasons"].values()) == m["trades"]
    assert sum(p["trades"] for p in report["per_symbol"].values()) == m["trades"]
    assert m["final_equity"] == pytest.approx(
        10_000 + sum(p["pnl"] for p in report["per_symbol"].values())
    )
    trades, meta = read_table("trades.parquet", TRADES)
    assert list(trades.columns) == [*TRADES.columns, "mfe", "partial_exits", "entry_reason"]
    assert len(trades) == m["trades"] and meta["timeframe"] == "1h"
    assert (trades["exit_time"] >= trades["entry_time"]).all()
    assert trades["pnl"].sum() == pytest.approx(m["final_equity"] - 10_000)
    assert set(trades["exit_reason"]) <= set(report["exit_reasons"])
    # Identical re-run: byte-identical report except generated_at.
    first = Path("report.json").read_text(encoding="utf-8")
    assert run_cli("backtest", "ohlcv.parquet", "-p", "preds.parquet", "-o", "again.json").code == 0
    again = Path("again.json").read_text(encoding="utf-8")
    strip = [ln for ln in first.splitlines() if "generated_at" not in ln]
    assert strip == [ln for ln in again.splitlines() if "generated_at" not in ln]
    # The golden file: everything but the run's own time and the input hashes/paths.
    del report["generated_at"]
    for side in report["inputs"].values():
        side["sha256"] = "<hash>"
    if os.environ.get("TRADEKIT_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    approx_equal(report, json.loads(GOLDEN.read_text(encoding="utf-8")))


def test_json_and_plot(run_cli):
    write_inputs(*golden_inputs())
    r = run_cli("backtest", "ohlcv.parquet", "-p", "preds.parquet", "--json", "--plot", "eq.png")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "backtest/1" and doc["span"]["candles"] == 72
    data = Path("eq.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_no_trades_gives_nulls_not_nan(run_cli):
    ohlcv, _ = golden_inputs()
    write_inputs(ohlcv, preds_frame({"BTC/USD": np.full(72, -1.0)}))
    r = run_cli("backtest", "ohlcv.parquet", "-p", "preds.parquet", "-o", "r.json")
    assert r.code == 0, r.err
    m = json.loads(Path("r.json").read_text(encoding="utf-8"))["metrics"]
    assert m["trades"] == 0 and m["total_return"] == 0.0 and m["max_drawdown"] == 0.0
    for key in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "expectancy"):
        assert m[key] is None, key
    assert m["buy_and_hold_return"] != 0.0


def assert_clean_failure(r, *fragments: str) -> None:
    assert r.code == 3, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tradekit: error: "), r.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    assert not Path("r.json").exists() and not Path("t.parquet").exists()
    assert not list(Path().glob(".*.tmp"))


def bad_case(run_cli, preds: pd.DataFrame, *fragments: str, raw: bool = False) -> None:
    ohlcv, _ = golden_inputs()
    write_ohlcv(ohlcv, "ohlcv.parquet", {"exchange": "kraken", "timeframe": "1h"})
    if raw:  # as another tool might write it: unsorted, duplicated
        pq.write_table(to_table(preds, PREDICTIONS, {}), "preds.parquet")
    else:
        write_table(preds, "preds.parquet", PREDICTIONS, {})
    r = run_cli(
        "backtest", "ohlcv.parquet", "-p", "preds.parquet", "-o", "r.json", "--trades", "t.parquet"
    )
    assert_clean_failure(r, *fragments)


def test_prediction_symbol_missing_from_ohlcv(run_cli):
    bad_case(run_cli, preds_frame({"SOL/USD": np.ones(5)}), "SOL/USD", "ohlcv.parquet")


def test_prediction_time_missing_from_ohlcv(run_cli):
    late = T0 + 70 * HOUR
    bad_case(
        run_cli,
        preds_frame({"ETH/USD": np.ones(5)}, start=late),
        "ETH/USD",
        "2024-01-04 00:00",
        "no candle",
    )


def test_all_nan_predictions(run_cli):
    bad_case(run_cli, preds_frame({"BTC/USD": np.full(10, np.nan)}), "preds.parquet", "NaN")


def test_empty_predictions(run_cli):
    bad_case(run_cli, preds_frame({"BTC/USD": np.ones(3)}).iloc[:0], "no prediction rows")


def test_unsorted_predictions(run_cli):
    df = preds_frame({"BTC/USD": np.ones(5)}).iloc[::-1].reset_index(drop=True)
    bad_case(run_cli, df, "preds.parquet", "not sorted", raw=True)


def test_duplicate_predictions(run_cli):
    df = preds_frame({"BTC/USD": np.ones(5)})
    bad_case(run_cli, pd.concat([df, df.iloc[2:3]]).sort_values("timestamp"), "duplicate", raw=True)


def test_wrong_file_kind(run_cli):
    ohlcv, _ = golden_inputs()
    write_ohlcv(ohlcv, "ohlcv.parquet", {"exchange": "kraken", "timeframe": "1h"})
    r = run_cli("backtest", "ohlcv.parquet", "-p", "ohlcv.parquet", "-o", "r.json")
    assert_clean_failure(r, "ohlcv.parquet", "expected predictions/1")
    r = run_cli("backtest", "missing.parquet", "-p", "ohlcv.parquet", "-o", "r.json")
    assert_clean_failure(r, "missing.parquet", "no such file")


@pytest.mark.parametrize(
    ("field", "value", "fragments"),
    [
        ("high", "below_low", ("high 2025.65 is below low 2066.99", "high_below_low")),
        ("close", 0.0, ("close is 0, not a positive price",)),
        ("low", -5.0, ("low is -5, not a positive price",)),
        ("open", np.nan, ("open is NaN, not a positive price",)),
    ],
)
def test_impossible_candles_are_refused(run_cli, field, value, fragments):
    """Like `data check` and the other readers: a traded candle with high < low, a price at or
    below zero or a NaN is bad input (exit 3, one line naming the file, symbol, time, field),
    not something to simulate fills at."""
    ohlcv, preds = golden_inputs()
    row = ohlcv.index[(ohlcv["symbol"] == "ETH/USD")][30]  # 2024-01-02 06:00, traded
    if value == "below_low":
        ohlcv.loc[row, "high"] = ohlcv.loc[row, "low"] * 0.98
    else:
        ohlcv.loc[row, field] = value
    write_inputs(ohlcv, preds)
    r = run_cli(
        "backtest", "ohlcv.parquet", "-p", "preds.parquet", "-o", "r.json", "--trades", "t.parquet"
    )
    assert_clean_failure(r, "ohlcv.parquet", "ETH/USD", "2024-01-02 06:00", *fragments)


def test_impossible_candle_outside_the_traded_span_is_ignored(run_cli):
    """Only candles the simulation trades on are judged: a bad one before the first
    prediction, or of a symbol without predictions, does not stop the backtest."""
    ohlcv, preds = golden_inputs()
    eth = ohlcv.index[ohlcv["symbol"] == "ETH/USD"]
    ohlcv.loc[eth[5], "high"] = ohlcv.loc[eth[5], "low"] * 0.5
    late = preds[preds["timestamp"] >= pd.Timestamp(T0 + 10 * HOUR, unit="ms", tz="UTC")]
    write_inputs(ohlcv, late[late["symbol"] == "BTC/USD"].reset_index(drop=True))
    r = run_cli("backtest", "ohlcv.parquet", "-p", "preds.parquet", "-o", "r.json")
    assert r.code == 0, r.err
