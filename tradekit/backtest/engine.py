"""Drive the kernel: parameters from the config sections, buffers that grow on demand, the
end-of-data marking, and the results as plain arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tradekit import policy as pol
from tradekit import risk as rk
from tradekit.backtest import kernel as kn

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from tradekit.config import BacktestConfig, PolicyConfig, RiskConfig
    from tradekit.data.market import Market


@dataclass(frozen=True)
class Simulation:
    """Kernel output. ``trades`` rows use ``kernel.T_*`` columns, ``fills`` ``kernel.F_*``
    (empty unless traced); ``cash``/``exposure`` per candle only when traced."""

    equity: NDArray[np.float64]
    halts: NDArray[np.uint8]  # per candle: the halt events of ``risk`` (DAILY_ON, ...)
    trades: NDArray[np.float64]
    fills: NDArray[np.float64]
    risk_counts: NDArray[np.int64]
    fees_paid: float
    exposure_candles: int
    mean_exposure: float
    final_equity: float
    cash: NDArray[np.float64]
    exposure: NDArray[np.float64]


def simulate(
    market: Market,
    policy: PolicyConfig,
    risk: RiskConfig,
    costs: BacktestConfig,
    *,
    trace: bool = False,
) -> Simulation:
    """Run the policy and risk limits over ``market`` from ``costs.starting_balance``."""
    pp = pol.params(policy)
    rp, member = rk.params(risk, market.symbols)
    return simulate_arrays(
        market.ts,
        market.open,
        market.high,
        market.low,
        market.close,
        market.valid,
        market.pred,
        pp,
        rp,
        member,
        costs.fee,
        costs.slippage,
        costs.starting_balance,
        trace=trace,
    )


def simulate_arrays(
    ts: NDArray[np.int64],
    op: NDArray[np.float64],
    hi: NDArray[np.float64],
    lo: NDArray[np.float64],
    cl: NDArray[np.float64],
    valid: NDArray[np.uint8],
    pred: NDArray[np.float64],
    pp: NDArray[np.void],
    rp: NDArray[np.void],
    member: NDArray[np.float64],
    fee: float,
    slippage: float,
    starting_balance: float,
    *,
    trace: bool = False,
) -> Simulation:
    """The same on bare arrays of shape (candles, symbols)."""
    n, m = op.shape
    ps, ring = pol.new_state(m, pp)
    acct = kn.new_acct(m)
    wallet = kn.new_wallet(starting_balance)
    w = wallet[0]
    rs = rk.new_state(starting_balance)
    # Buffers start at one trade per 32 candles and double when the kernel stops for room:
    # no full-length trade table for a run that trades a few hundred times.
    trades = np.zeros((max(256, m * 4, n * m // 32), kn.T_N))
    per_bar = m * 2
    fills = np.zeros((max(256, per_bar * 4) if trace else 0, kn.F_N))
    counts = np.zeros(rk.N_CODES, dtype=np.int64)
    equity = np.empty(n)
    halts = np.zeros(n, dtype=np.uint8)
    cash = np.empty(n if trace else 0)
    expo = np.empty(n if trace else 0)
    t = 0
    while t < n:
        t = kn.run(
            t,
            n,
            ts,
            op,
            hi,
            lo,
            cl,
            valid,
            pred,
            pp,
            ring,
            rp,
            member,
            fee,
            slippage,
            ps,
            acct,
            wallet,
            rs,
            trades,
            fills,
            counts,
            equity,
            halts,
            cash,
            expo,
        )
        if t < n:
            if int(w["n_trades"]) + m > len(trades):
                trades = _grow(trades)
            if trace and int(w["n_fills"]) + per_bar > len(fills):
                fills = _grow(fills)
    if int(w["n_trades"]) + m > len(trades):
        trades = _grow(trades)
    final = float(w["equity"])
    if n:
        kn.finish(n - 1, acct, ps, wallet, trades)
    w = wallet[0]
    return Simulation(
        equity=equity,
        halts=halts,
        trades=trades[: int(w["n_trades"])].copy(),
        fills=fills[: int(w["n_fills"])].copy(),
        risk_counts=counts,
        fees_paid=float(w["fees"]),
        exposure_candles=int(w["expo_bars"]),
        mean_exposure=float(w["expo_sum"]) / n if n else 0.0,
        final_equity=final,
        cash=cash,
        exposure=expo,
    )


def _grow(buf: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros((len(buf) * 2, buf.shape[1]))
    out[: len(buf)] = buf
    return out
