"""``backtest --plot``: equity in the quote currency against buy-and-hold, the drawdown in percent
underneath, the risk halts shaded from where each started to where it lifted, trades marked.

The time axis names the year on every tick (a run spans years); numbers carry thousands
separators. matplotlib (Agg backend) is imported inside :func:`write_plot` only.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tradekit.backtest.report import BacktestResult

MAX_POINTS = 4000  # a million-candle curve is drawn from at most this many points
MAX_MARKERS = 600  # more trades than this: markers would hide the curve; every n-th is drawn
HALT_COLOR = {"daily_loss": "tab:orange", "drawdown": "tab:purple"}
HALT_LABEL = {"daily_loss": "halt: daily loss", "drawdown": "halt: drawdown"}


def _when(iso: str | None, default: np.datetime64) -> np.datetime64:
    if not iso:
        return default
    return np.datetime64(datetime.fromisoformat(iso.replace("Z", "+00:00")).replace(tzinfo=None))


def write_plot(result: BacktestResult, path: str | Path) -> None:
    """A PNG of the run, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, PercentFormatter

    from tradekit.backtest import kernel as kn
    from tradekit.fsutil import atomic_path
    from tradekit.report.charts import date_axis
    from tradekit.report.snapshot import quote_currency

    rep = result.report
    m = rep["metrics"]
    span = rep["span"]
    cur = quote_currency(span["symbols"])
    ts = result.market.ts
    eq = result.sim.equity
    bh = result.buy_and_hold
    n = len(ts)
    stride = max(1, n // MAX_POINTS)
    pick = np.arange(0, n, stride)
    days = ts.astype("datetime64[ms]")
    start = float(m["starting_balance"])
    peak = np.maximum.accumulate(np.maximum(eq, start))
    dd = eq / peak - 1.0
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(days[pick], eq[pick], lw=1.2, label="strategy", color="tab:blue", zorder=3)
    top.plot(days[pick], bh[pick], lw=1.0, label="buy and hold", color="tab:gray", zorder=2)
    top.axhline(start, color="black", lw=0.6, ls=":", zorder=1)
    tr = result.sim.trades
    if len(tr):
        step = max(1, len(tr) // MAX_MARKERS)
        shown = tr[::step]
        ent = shown[:, kn.T_ENTRY_IDX].astype(np.int64)
        ext = shown[:, kn.T_EXIT_IDX].astype(np.int64)
        size = 14 if len(tr) <= MAX_MARKERS else 6
        top.scatter(days[ent], eq[ent], marker="^", s=size, color="tab:green", lw=0, zorder=4,
                    label="entry" if step == 1 else f"entry (1 in {step})")  # fmt: skip
        top.scatter(days[ext], eq[ext], marker="v", s=size, color="tab:red", lw=0, zorder=4,
                    label="exit" if step == 1 else f"exit (1 in {step})")  # fmt: skip
    end = days[-1] if n else np.datetime64("now")
    kinds = []
    for h in rep.get("halts") or []:
        color = HALT_COLOR.get(h["kind"], "tab:brown")
        a, b = _when(h["started"], end), _when(h.get("lifted"), end)
        for ax in (top, bottom):
            ax.axvspan(a, b, color=color, alpha=0.18, lw=0, zorder=0)
            ax.axvline(a, color=color, lw=0.6, alpha=0.7, zorder=0)  # a short halt still shows
        if h["kind"] not in kinds:
            kinds.append(h["kind"])
    handles, labels = top.get_legend_handles_labels()
    for k in kinds:
        handles.append(Patch(color=HALT_COLOR.get(k, "tab:brown"), alpha=0.35))
        labels.append(HALT_LABEL.get(k, f"halt: {k}") + " (start to lift)")
    top.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.9)
    fig.suptitle(
        f"{', '.join(span['symbols'])} {span['timeframe']}, {span['start'][:10]} to "
        f"{span['end'][:10]}",
        fontsize=12,
    )
    top.set_title(
        f"total return {m['total_return']:+.1%}   buy and hold "
        f"{m['buy_and_hold_return']:+.1%}   max drawdown {m['max_drawdown']:.1%}   "
        f"trades {m['trades']}   halts {len(rep.get('halts') or [])}",
        fontsize=10,
    )
    top.set_ylabel(f"equity ({cur})" if cur else "equity")
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
    top.grid(alpha=0.3)
    bottom.fill_between(days[pick], dd[pick] * 100, 0.0, color="tab:red", alpha=0.45, lw=0)
    bottom.set_ylabel("drawdown")
    bottom.yaxis.set_major_formatter(PercentFormatter(100, decimals=0))
    bottom.set_ylim(min(-1.0, float(dd.min()) * 100 * 1.08) if n else -1.0, 0.5)
    bottom.grid(alpha=0.3)
    date_axis(bottom)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
