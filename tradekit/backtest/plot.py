"""``backtest --plot``: equity against buy-and-hold, the drawdown underneath, trades marked.

matplotlib (Agg backend) is imported inside :func:`write_plot` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tradekit.backtest.report import BacktestResult

MAX_POINTS = 4000  # a million-candle curve is drawn from at most this many points
MAX_MARKERS = 2000


def write_plot(result: BacktestResult, path: str | Path) -> None:
    """A PNG of the run, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    from tradekit.backtest import kernel as kn
    from tradekit.fsutil import atomic_path

    ts = result.market.ts
    eq = result.sim.equity
    bh = result.buy_and_hold
    n = len(ts)
    stride = max(1, n // MAX_POINTS)
    pick = np.arange(0, n, stride)
    days = ts.astype("datetime64[ms]")
    peak = np.maximum.accumulate(np.maximum(eq, result.report["metrics"]["starting_balance"]))
    dd = eq / peak - 1.0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(days[pick], eq[pick], lw=1.0, label="strategy", color="tab:blue")
    top.plot(days[pick], bh[pick], lw=1.0, label="buy and hold", color="tab:gray")
    tr = result.sim.trades
    if len(tr):
        step = max(1, len(tr) // MAX_MARKERS)
        shown = tr[::step]
        ent = shown[:, kn.T_ENTRY_IDX].astype(np.int64)
        ext = shown[:, kn.T_EXIT_IDX].astype(np.int64)
        top.scatter(days[ent], eq[ent], marker="^", s=12, color="tab:green", label="entry")
        top.scatter(days[ext], eq[ext], marker="v", s=12, color="tab:red", label="exit")
    m = result.report["metrics"]
    top.set_title(
        f"total return {m['total_return']:+.1%}  buy and hold {m['buy_and_hold_return']:+.1%}"
        f"  max drawdown {m['max_drawdown']:.1%}  trades {m['trades']}"
    )
    top.set_ylabel("equity")
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3)
    bottom.fill_between(days[pick], dd[pick], 0.0, color="tab:red", alpha=0.4, lw=0)
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    locator = bottom.xaxis.get_major_locator()
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
