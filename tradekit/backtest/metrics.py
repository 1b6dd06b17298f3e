"""Performance statistics: one pure function over the equity curve and the closed trades.

Conventions (every value is a finite number or ``null``, never NaN/inf):
- Returns are simple per-candle returns of the equity marked at each close, the first one
  measured from the starting balance. Annualised by the timeframe with 365 days a year.
- ``sharpe`` = mean / std (ddof 1) * sqrt(candles per year), risk-free rate 0; ``sortino`` =
  mean / downside deviation (root mean square of min(r, 0) over all candles) * sqrt(candles per
  year); ``calmar`` = cagr / max_drawdown. ``null`` where the denominator is 0 (no variance, no
  losing candle, no drawdown).
- ``probabilistic_sharpe``: P(true Sharpe > 0) after Bailey & Lopez de Prado (2012), from the
  per-candle Sharpe ratio, skewness and kurtosis of the returns and their count.
- ``max_drawdown``: the largest fall from a running peak (starting balance included), a positive
  fraction; ``max_drawdown_duration_candles``: the longest stretch spent below a previous peak.
- Trade statistics are over closed trades, positions open at the end included (closed at the
  last close, see the kernel): ``win_rate`` = share with pnl > 0; ``profit_factor`` = gross
  profit / gross loss (``null`` without a losing trade); ``expectancy`` = mean pnl per trade in
  the quote currency. ``null`` when there is no trade.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tradekit import selection as sel

if TYPE_CHECKING:
    from numpy.typing import NDArray

DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS


def _num(x: float) -> float | None:
    """A finite float, or None (JSON null)."""
    return float(x) if math.isfinite(x) else None


def drawdown(equity: NDArray[np.float64], start: float) -> tuple[float, int]:
    """(max drawdown as a positive fraction, longest underwater stretch in candles)."""
    if len(equity) == 0:
        return 0.0, 0
    peak = np.maximum.accumulate(np.maximum(equity, start))
    dd = 1.0 - equity / peak
    under = dd > 1e-12
    longest = 0
    if under.any():
        # Lengths of runs of True: positions where a run ends minus where it starts.
        edges = np.diff(np.concatenate(([0], under.view(np.int8), [0])))
        longest = int((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max())
    return float(dd.max()), longest


def probabilistic_sharpe(returns: NDArray[np.float64]) -> float | None:
    """P(Sharpe > 0) given the sample's Sharpe ratio, skewness, kurtosis and length (the
    sweep's deflated statistics use the same ``selection`` functions)."""
    m = sel.moments(returns)
    if m.sharpe is None or m.skew is None or m.kurtosis is None:
        return None
    p = sel.psr(m.sharpe, m.n, m.skew, m.kurtosis)
    return None if p is None else _num(p)


def compute(
    equity: NDArray[np.float64],
    pnl: NDArray[np.float64],
    pnl_pct: NDArray[np.float64],
    durations: NDArray[np.float64],
    *,
    starting_balance: float,
    candle_ms: int,
    fees_paid: float,
    exposure_candles: int,
    mean_exposure: float,
    buy_and_hold: NDArray[np.float64],
) -> dict[str, Any]:
    """The ``metrics`` block of a backtest/1 report. ``durations``: candles per trade."""
    n = len(equity)
    start = float(starting_balance)
    final = float(equity[-1]) if n else start
    per_year = YEAR_MS / candle_ms
    years = n * candle_ms / YEAR_MS
    total = final / start - 1.0
    cagr: float | None = None
    if years > 0:
        cagr = -1.0 if final <= 0 else _num(math.exp(math.log(final / start) / years) - 1.0)
    prev = np.concatenate(([start], equity[:-1])) if n else np.zeros(0)
    rets = equity / prev - 1.0 if n else np.zeros(0)
    sharpe = sortino = None
    if n >= 2:
        sd = float(rets.std(ddof=1))
        mean = float(rets.mean())
        if sd > 0:
            sharpe = _num(mean / sd * math.sqrt(per_year))
        down = float(np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2)))
        if down > 0:
            sortino = _num(mean / down * math.sqrt(per_year))
    mdd, mdd_len = drawdown(equity, start)
    calmar = _num(cagr / mdd) if cagr is not None and mdd > 0 else None
    n_tr = len(pnl)
    wins = pnl > 0
    gross_win = float(pnl[wins].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    bh_mdd, _ = drawdown(buy_and_hold, start)
    bh_final = float(buy_and_hold[-1]) if len(buy_and_hold) else start
    return {
        "starting_balance": start,
        "final_equity": final,
        "total_return": total,
        "cagr": cagr,
        "sharpe": sharpe,
        "sortino": sortino,
        "calmar": calmar,
        "probabilistic_sharpe": probabilistic_sharpe(rets),
        "max_drawdown": mdd,
        "max_drawdown_duration_candles": mdd_len,
        "max_drawdown_duration_days": mdd_len * candle_ms / DAY_MS,
        "trades": n_tr,
        "win_rate": float(wins.mean()) if n_tr else None,
        "profit_factor": _num(gross_win / gross_loss) if gross_loss > 0 else None,
        "expectancy": float(pnl.mean()) if n_tr else None,
        "expectancy_pct": float(pnl_pct.mean()) if n_tr else None,
        "best_trade_pct": float(pnl_pct.max()) if n_tr else None,
        "worst_trade_pct": float(pnl_pct.min()) if n_tr else None,
        "avg_trade_candles": float(durations.mean()) if n_tr else None,
        "exposure": exposure_candles / n if n else 0.0,
        "mean_exposure_frac": mean_exposure,
        "fees_paid": fees_paid,
        "buy_and_hold_return": bh_final / start - 1.0,
        "buy_and_hold_max_drawdown": bh_mdd,
    }


def buy_and_hold(
    op: NDArray[np.float64],
    cl: NDArray[np.float64],
    valid: NDArray[np.uint8],
    start: float,
) -> NDArray[np.float64]:
    """Equal-weight buy-and-hold equity at each close: ``start`` split evenly, each share bought
    at its symbol's first open in the span (no fees) and marked at its last close; a share
    waits in cash until its symbol's first candle."""
    n, m = cl.shape
    if n == 0 or m == 0:
        return np.full(n, start)
    ok = valid != 0
    rows = np.where(ok, np.arange(n)[:, None], -1)
    last = np.maximum.accumulate(rows, axis=0)  # last candle seen per symbol, -1 before
    cols = np.arange(m)[None, :]
    marks = cl[np.maximum(last, 0), cols]
    first = ok.argmax(axis=0)
    entry = op[first, np.arange(m)]
    growth = np.where(last >= 0, marks / entry, 1.0)
    out: NDArray[np.float64] = start * growth.mean(axis=1)
    return out
