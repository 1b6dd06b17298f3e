"""Predictions -> intents (enter, exit, partial exit), pure and shared by ``backtest`` and ``run``.

Every decision is a numba ``@njit(cache=True)`` function on scalars and one small record of
per-symbol state, callable from Python by the live loop and inlined into the backtest kernel
(one decision path, DESIGN.md). The config section becomes a parameter record once, in
:func:`params`. A rule returns a reason code (``REASON_NAMES`` names them).

Parameters and per-symbol state are numpy *records* (structured dtypes ``PARAMS`` and
``STATE``): numba passes a record as a bare pointer, with none of the reference counting that an
array argument costs on every call (measured: 10 ns per call, more than the whole candle). The
dip ring (the last ``dip_lookback`` highs) is a separate float array per symbol, touched only in
dip mode. All of it is plain numbers, so a live loop can persist it (``state.tolist()``).

Order of calls for one candle ``t`` (the backtest's ``backtest.kernel.run(t, t + 1, ...)``; a
live loop or a paper-broker replay must keep it; the UTC day rolls first, ``risk.roll_day``):

1. At the open of ``t``: intents pending from ``t-1`` fill at the open: exits first (an exit
   signal, a take-profit, partial take-profit steps; all symbols), then entries in symbol order,
   so freed cash and slots are usable. Entries are sized by ``risk.halt_code`` ->
   ``risk.size_entry`` with equity marked at the open, then ``on_entry(row, fill_price)``.
2. Intrabar, on the candle's low: ``stop_event``: the stop-loss or trailing stop (the higher);
   a gap through the stop fills at the open. Stops are live on the entry candle. These are the
   only exits inside a candle, because they are the only ones that rest on the exchange in live
   trading (Kraken spot holds the coins of an open sell order, so a resting take-profit could
   not coexist with the resting stop for the same coins).
3. After the intrabar phase: ``end_of_bar(row, high)`` raises the trailing watermark (the
   watermark used in step 2 is the high *before* this candle, as the order of high and low in a
   candle is unknown).
4. At the close of ``t``: in dip mode ``dip_update(row, ring, high, close, pp)`` first; then
   ``close_intent(row, prediction, high, pp)`` gives the intent for the open of ``t+1``: a
   take-profit or partial take-profit level that the candle's high reached (sold at the next
   open, as live trading sells it: a market order once the candle has closed), else the
   prediction's ENTRY_SIGNAL / DIP_ENTRY / EXIT_SIGNAL / NONE. A signal never fills on the
   candle that produced it. Then ``risk.note_equity`` with the equity marked at the close.

Rules: enter when the prediction >= ``entry_threshold`` (flat only; re-entry after any exit
on a later candle). Exit when the prediction is below ``exit_threshold`` for ``persistence``
consecutive candles. A NaN prediction is "no information": no entry, the exit count neither
grows nor resets. Dip mode (``dip_entry``) replaces plain entries: a dip is armed when the
close is ``dip_frac`` or more below the highest high of the last ``dip_lookback`` candles; it
is disarmed by a close at that high; an armed symbol enters once the prediction turns up
(>= ``entry_threshold`` and above its previous value).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tradekit.jit import njit, records

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from tradekit.config import PolicyConfig

Rec = Any  # a numpy/numba record (one element of a structured array)

# -- reason codes (shared with trades/1 exit_reason / entry_reason) -------------------------
NONE = 0
ENTRY_SIGNAL = 1
DIP_ENTRY = 2
EXIT_SIGNAL = 3
STOPLOSS = 4
TAKE_PROFIT = 5
TRAILING_STOP = 6
PARTIAL_TP = 7
END = 8  # still open at the end of the data: marked at the last close, no fee

REASON_NAMES: dict[int, str] = {
    NONE: "none",
    ENTRY_SIGNAL: "entry_signal",
    DIP_ENTRY: "dip_entry",
    EXIT_SIGNAL: "exit_signal",
    STOPLOSS: "stoploss",
    TAKE_PROFIT: "take_profit",
    TRAILING_STOP: "trailing_stop",
    PARTIAL_TP: "partial_tp",
    END: "end",
}

MAX_LEVELS = 16  # partial take-profit steps at most

PARAMS = np.dtype(
    [
        ("entry", "f8"),
        ("exit", "f8"),
        ("sl", "f8"),
        ("tp", "f8"),
        ("trail", "f8"),
        ("pfrac", "f8"),
        ("persist", "f8"),
        ("dip", "f8"),
        ("dip_frac", "f8"),
        ("dip_lookback", "i8"),
        ("n_levels", "i8"),
        ("levels", "f8", (MAX_LEVELS,)),
    ],
    align=True,
)

STATE = np.dtype(
    [
        ("in_pos", "f8"),
        ("entry", "f8"),  # entry fill price (slippage included): stops/targets measure from it
        ("high", "f8"),  # trailing watermark: highest high since entry, before this candle
        ("partials", "i8"),  # partial take-profit steps done
        ("below", "i8"),  # consecutive candles below the exit threshold
        ("prev_pred", "f8"),
        ("dip_armed", "f8"),
        ("ring_pos", "i8"),
        ("ring_n", "i8"),
    ],
    align=True,
)


def params(cfg: PolicyConfig) -> NDArray[np.void]:
    """The policy section as a one-element ``PARAMS`` array (pass ``pp[0]`` to the rules)."""
    from tradekit.errors import ConfigError

    levels = sorted(g for g in cfg.partial_exits if g > 0)
    if len(levels) > MAX_LEVELS:
        raise ConfigError(f"[policy] partial_exits: at most {MAX_LEVELS} steps, got {len(levels)}")
    pp = np.zeros(1, dtype=PARAMS)
    r = pp[0]
    r["entry"] = cfg.entry_threshold
    r["exit"] = cfg.exit_threshold
    r["sl"] = cfg.stoploss
    r["tp"] = cfg.take_profit
    r["trail"] = cfg.trailing_stop
    r["pfrac"] = cfg.partial_exit_frac
    r["persist"] = max(1, cfg.persistence)
    r["dip"] = 1.0 if cfg.dip_entry else 0.0
    r["dip_frac"] = cfg.dip_frac
    r["dip_lookback"] = max(1, cfg.dip_lookback)
    r["n_levels"] = len(levels)
    r["levels"][: len(levels)] = levels
    return records(pp)


def new_state(n_symbols: int, pp: NDArray[np.void]) -> tuple[NDArray[np.void], NDArray[np.float64]]:
    """Fresh (flat) state records and dip rings for ``n_symbols`` symbols."""
    st = np.zeros(n_symbols, dtype=STATE)
    st["entry"] = np.nan
    st["prev_pred"] = np.nan
    ring = np.zeros((n_symbols, int(pp[0]["dip_lookback"])), dtype=np.float64)
    return records(st), ring


@njit(cache=True)
def on_entry(row: Rec, fill_price: float) -> None:
    row.in_pos = 1.0
    row.entry = fill_price
    row.high = fill_price
    row.partials = 0
    row.below = 0
    row.dip_armed = 0.0


@njit(cache=True)
def on_exit(row: Rec) -> None:
    row.in_pos = 0.0
    row.entry = np.nan
    row.partials = 0
    row.below = 0


@njit(cache=True)
def on_partial(row: Rec) -> None:
    row.partials += 1


@njit(cache=True, inline="always")
def stop_level(row: Rec, pp: Rec) -> tuple[int, float]:
    """(STOPLOSS or TRAILING_STOP, level) of a held position, or (NONE, -1): the higher of
    the stop-loss below the entry and the trailing stop below the watermark."""
    if row.in_pos == 0.0:
        return NONE, -1.0
    stop = -1.0
    reason = NONE
    if pp.sl > 0.0:
        stop = row.entry * (1.0 - pp.sl)
        reason = STOPLOSS
    if pp.trail > 0.0:
        trail = row.high * (1.0 - pp.trail)
        if trail > stop:
            stop = trail
            reason = TRAILING_STOP
    return reason, stop


@njit(cache=True, inline="always")
def stop_event(row: Rec, o: float, lo: float, pp: Rec) -> tuple[int, float]:
    """The stop inside this candle: (reason, raw fill price), or (NONE, 0); a gap through the
    stop fills at the open."""
    reason, stop = stop_level(row, pp)
    if reason != NONE and lo <= stop:
        return reason, min(o, stop)
    return NONE, 0.0


@njit(cache=True, inline="always")
def target_event(row: Rec, h: float, pp: Rec) -> tuple[int, int]:
    """A target the candle's high reached: (TAKE_PROFIT, 0), (PARTIAL_TP, steps: partial
    levels reached beyond those already sold), or (NONE, 0)."""
    if row.in_pos == 0.0:
        return NONE, 0
    entry = row.entry
    if pp.tp > 0.0 and h >= entry * (1.0 + pp.tp):
        return TAKE_PROFIT, 0
    k = row.partials
    steps = 0
    while k + steps < pp.n_levels and h >= entry * (1.0 + pp.levels[k + steps]):
        steps += 1
    if steps > 0:
        return PARTIAL_TP, steps
    return NONE, 0


@njit(cache=True, inline="always")
def close_intent(row: Rec, pred: float, h: float, pp: Rec) -> tuple[int, int]:
    """The intent for the next open, at this candle's close: (reason, partial steps). A
    take-profit beats an exit signal beats a partial step beats the prediction's entry."""
    intent = on_close(row, pred, pp)  # always: it keeps the exit count and previous prediction
    target, steps = target_event(row, h, pp)
    if target == TAKE_PROFIT:
        return TAKE_PROFIT, 0
    if intent == EXIT_SIGNAL:
        return EXIT_SIGNAL, 0
    if target == PARTIAL_TP:
        return PARTIAL_TP, steps
    return intent, 0


@njit(cache=True)
def is_exit(reason: int) -> bool:
    """A pending intent that sells at the next open (else it is an entry)."""
    return reason in (EXIT_SIGNAL, TAKE_PROFIT, PARTIAL_TP)


@njit(cache=True, inline="always")
def end_of_bar(row: Rec, h: float) -> None:
    """After the intrabar checks: the trailing watermark takes this candle's high."""
    if row.in_pos != 0.0 and h > row.high:
        row.high = h


@njit(cache=True)
def dip_update(row: Rec, ring: NDArray[np.float64], h: float, c: float, pp: Rec) -> None:
    """Dip mode, at the close: remember the high; arm on a close ``dip_frac`` below the
    highest high of the last ``dip_lookback`` candles, disarm on a close at that high."""
    lookback = pp.dip_lookback
    pos = row.ring_pos
    ring[pos] = h
    row.ring_pos = (pos + 1) % lookback
    if row.ring_n < lookback:
        row.ring_n += 1
    top = h
    for i in range(row.ring_n):
        top = max(top, ring[i])
    if row.in_pos == 0.0:
        if c <= top * (1.0 - pp.dip_frac):
            row.dip_armed = 1.0
        elif c >= top:
            row.dip_armed = 0.0


@njit(cache=True, inline="always")
def on_close(row: Rec, pred: float, pp: Rec) -> int:
    """The intent for the next open from the prediction known at this candle's close."""
    if np.isnan(pred):
        return NONE
    prev = row.prev_pred
    row.prev_pred = pred
    if row.in_pos != 0.0:
        if pred < pp.exit:
            row.below += 1
            if row.below >= pp.persist:
                return EXIT_SIGNAL
        else:
            row.below = 0
        return NONE
    if pred >= pp.entry:
        if pp.dip == 0.0:
            return ENTRY_SIGNAL
        if row.dip_armed != 0.0 and not np.isnan(prev) and pred > prev:
            return DIP_ENTRY
    return NONE
