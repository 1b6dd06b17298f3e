"""Walk-forward folds over the time axis: train window, purge gap, test window, step.

The axis is the sorted unique timestamps of all symbols, so every fold cuts all symbols at the
same instant. A training row's label looks ``horizon`` candles ahead, so the gap between the
last training candle and the first test candle is at least the label horizon: no training label
sees a price inside the test span (``purge_rows`` also drops stragglers of symbols with missing
candles, by label end time).

Test spans never overlap (``step >= test_window``): each out-of-sample row has exactly one
prediction, from the one fold that tested it, and no rule is needed to pick between folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tradekit.errors import InputError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


@dataclass(frozen=True)
class Fold:
    """Candle indices on the unique-timestamp axis; ends are exclusive."""

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int

    @property
    def gap(self) -> int:
        return self.test_start - self.train_end


def effective_purge(purge: int, horizon: int) -> int:
    """The gap in candles: ``purge`` (0 = the label horizon), never less than the horizon."""
    return max(purge, horizon, 0)


def plan_folds(
    n: int,
    train_window: int,
    test_window: int,
    step: int,
    purge: int,
    *,
    label: str = "features",
) -> list[Fold]:
    """Folds over ``n`` candles. The first fold needs a full test window; the last one may be
    cut short by the end of the data, so the newest candles are tested too."""
    if min(train_window, test_window, step) < 1 or purge < 0:
        raise UsageError(
            "walk-forward: train window, test window and step must be at least 1, purge >= 0"
        )
    if step < test_window:
        raise UsageError(
            f"walk-forward: step {step} < test window {test_window} would test rows twice; "
            "use a step of at least the test window"
        )
    need = train_window + purge + test_window
    if n < need:
        raise InputError(
            f"{label}: {n} candles available but one walk-forward fold needs train window "
            f"{train_window} + purge {purge} + test window {test_window} = {need}; "
            "shorten the windows or give more data"
        )
    folds: list[Fold] = []
    start = 0
    while start + train_window + purge < n:
        train_end = start + train_window
        test_start = train_end + purge
        folds.append(
            Fold(len(folds), start, train_end, test_start, min(test_start + test_window, n))
        )
        start += step
    return folds


def label_end_times(
    symbol_codes: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], horizon: int
) -> npt.NDArray[np.int64]:
    """Per row, the timestamp of the candle its label reaches (``horizon`` rows later in the same
    symbol); the largest int64 where the symbol has no such row (the label is unknown there).
    Rows are sorted by symbol, then time."""
    import numpy as np

    out = np.full(len(ts), np.iinfo(np.int64).max, dtype=np.int64)
    if horizon <= 0:
        return ts.copy()
    if len(ts) > horizon:
        same = symbol_codes[horizon:] == symbol_codes[:-horizon]
        ahead = ts[horizon:]
        head = out[:-horizon]
        head[same] = ahead[same]
    return out
