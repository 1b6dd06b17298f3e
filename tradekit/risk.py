"""Hard risk limits, pure and shared by ``backtest`` and ``run``: every entry intent is sized,
resized or rejected here, with a reason code.

numba ``@njit(cache=True)`` functions on scalars, records and small arrays (the live loop calls
the same compiled code as the backtest kernel); :func:`params` turns
:class:`~tradekit.config.RiskConfig` into a ``PARAMS`` record and a symbol x cluster membership
matrix. Parameters and risk state are numpy records (structured dtypes ``PARAMS``, ``STATE``;
``tradekit.policy`` says why). Risk state (``new_state``) holds the UTC day, the equity at its
start, the equity peak, and the halts with when they began. Call order (see
``tradekit.policy``): ``roll_day`` at the first candle of each UTC day with the equity carried
into it, ``halt_code`` then ``size_entry`` for each entry, ``note_equity`` with each candle's
closing equity (it starts and lifts the halts and reports each as an event).

Sizing of an entry: the policy asks for a full position, ``max_position_frac`` of equity; then
each cap may cut it (the last cut that binds is the reason code): ``max_position_abs``
(RESIZED_POSITION_CAP), ``max_trade_frac``/``max_trade_abs`` (RESIZED_TRADE_CAP), room under
``max_exposure_frac`` of equity for all positions (RESIZED_EXPOSURE_CAP), room under
``cluster_max_frac`` for every cluster holding the symbol (RESIZED_CLUSTER_CAP), cash after fees
(RESIZED_CASH). The quantity is floored to ``qty_step``; an order worth less than
``min_order_value`` is rejected (with the cap that shrank it, else REJECT_MIN_ORDER).
Halts block entries only; exits always go through. Every halt has a lift rule, the same in
backtest and live: ``daily_loss_halt_frac`` latches at a close that far below the day's starting
equity and lifts when the next UTC day starts; ``max_drawdown_halt_frac`` holds while equity is
that far below its peak and lifts when equity recovers, or after ``drawdown_halt_candles``
closes, when the peak re-bases to the equity at the lift. In live, ``resume`` lifts both by
hand (``lift``). A zero halt fraction turns that halt off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tradekit.jit import njit, records

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from tradekit.config import RiskConfig

Rec = Any  # a numpy/numba record (one element of a structured array)

# -- reason codes ----------------------------------------------------------------------------
OK = 0
RESIZED_POSITION_CAP = 1
RESIZED_TRADE_CAP = 2
RESIZED_EXPOSURE_CAP = 3
RESIZED_CLUSTER_CAP = 4
RESIZED_CASH = 5
REJECT_MAX_POSITIONS = 6
REJECT_DAILY_LOSS_HALT = 7
REJECT_DRAWDOWN_HALT = 8
REJECT_MIN_ORDER = 9
REJECT_NO_CASH = 10
REJECT_EXPOSURE_CAP = 11
REJECT_CLUSTER_CAP = 12
N_CODES = 13

CODE_NAMES: dict[int, str] = {
    OK: "ok",
    RESIZED_POSITION_CAP: "resized_position_cap",
    RESIZED_TRADE_CAP: "resized_trade_cap",
    RESIZED_EXPOSURE_CAP: "resized_exposure_cap",
    RESIZED_CLUSTER_CAP: "resized_cluster_cap",
    RESIZED_CASH: "resized_cash",
    REJECT_MAX_POSITIONS: "reject_max_positions",
    REJECT_DAILY_LOSS_HALT: "reject_daily_loss_halt",
    REJECT_DRAWDOWN_HALT: "reject_drawdown_halt",
    REJECT_MIN_ORDER: "reject_min_order",
    REJECT_NO_CASH: "reject_no_cash",
    REJECT_EXPOSURE_CAP: "reject_exposure_cap",
    REJECT_CLUSTER_CAP: "reject_cluster_cap",
}

PARAMS = np.dtype(
    [
        ("max_pos", "f8"),
        ("pos_frac", "f8"),
        ("pos_abs", "f8"),
        ("trade_frac", "f8"),
        ("trade_abs", "f8"),
        ("expo_frac", "f8"),
        ("cluster_frac", "f8"),
        ("daily", "f8"),
        ("dd", "f8"),
        ("dd_candles", "f8"),  # candles the drawdown halt lasts before it lifts (0: never)
        ("min_order", "f8"),
        ("step", "f8"),
    ],
    align=True,
)

STATE = np.dtype(
    [
        ("day", "i8"),  # UTC day number (ms // 86_400_000); -1 before the first candle
        ("day_end_ms", "i8"),  # first ms of the next day (saves a division per candle)
        ("day_start", "f8"),  # equity carried into the day
        ("peak", "f8"),
        ("halted", "f8"),  # daily halt latched for ``day``
        ("daily_since", "i8"),  # candle whose close latched the daily halt
        ("dd_count", "i8"),  # closes in a row under the drawdown limit (0: not halted)
        ("dd_since", "i8"),  # candle whose close began the drawdown halt
    ],
    align=True,
)

DAY_MS = 86_400_000


def params(cfg: RiskConfig, symbols: Sequence[str]) -> tuple[NDArray[np.void], NDArray[np.float64]]:
    """(one-element ``PARAMS`` array, membership[n_symbols, n_clusters] as 0/1)."""
    rp = np.zeros(1, dtype=PARAMS)
    r = rp[0]
    r["max_pos"] = cfg.max_open_positions
    r["pos_frac"] = cfg.max_position_frac
    r["pos_abs"] = cfg.max_position_abs
    r["trade_frac"] = cfg.max_trade_frac
    r["trade_abs"] = cfg.max_trade_abs
    r["expo_frac"] = cfg.max_exposure_frac
    r["cluster_frac"] = cfg.cluster_max_frac
    r["daily"] = cfg.daily_loss_halt_frac
    r["dd"] = cfg.max_drawdown_halt_frac
    r["dd_candles"] = cfg.drawdown_halt_candles
    r["min_order"] = cfg.min_order_value
    r["step"] = cfg.qty_step
    names = sorted(cfg.clusters)
    member = np.zeros((len(symbols), max(1, len(names))), dtype=np.float64)
    for j, name in enumerate(names):
        listed = set(cfg.clusters[name])
        for i, s in enumerate(symbols):
            if s in listed:
                member[i, j] = 1.0
    return records(rp), member


def new_state(starting_equity: float) -> NDArray[np.void]:
    """A one-element ``STATE`` array (pass ``rs[0]``)."""
    rs = np.zeros(1, dtype=STATE)
    rs["day"] = -1
    rs["day_start"] = starting_equity
    rs["peak"] = starting_equity
    return records(rs)


@njit(cache=True)
def floor_qty(qty: float, step: float) -> float:
    """``qty`` floored to a multiple of ``step`` (0 = no precision). A relative guard of a few
    float epsilons keeps 0.3 / 0.1 (2.999...) from flooring to 2 steps; no more: 1e-9 was a
    whole step at 1e9 steps (10.25135371 in steps of 1e-8 became 10.25135372, a stop for
    more than is held, which the exchange refuses)."""
    if step <= 0.0:
        return qty
    return math.floor(qty / step * (1.0 + 1e-15)) * step


# -- halt events: what ``roll_day`` and ``note_equity`` report (a bit mask per candle) -------
DAILY_ON = 1  # the daily-loss halt latched at this close
DAILY_OFF = 2  # a new UTC day lifted it
DD_ON = 4  # the drawdown halt began at this close
DD_OFF = 8  # equity recovered above the drawdown limit
DD_LIFT = 16  # the drawdown halt lasted ``dd_candles`` closes: lifted, peak re-based
MANUAL_LIFT = 32  # lifted by hand (``resume`` in live)


@njit(cache=True, inline="always")
def roll_day(rs: Rec, ts_ms: int, equity: float) -> int:
    """At a candle of a new UTC day: the day starts with ``equity`` and the daily halt lifts
    (returns DAILY_OFF then, else 0)."""
    if rs.day >= 0 and ts_ms < rs.day_end_ms and ts_ms >= rs.day_end_ms - DAY_MS:
        return 0
    day = ts_ms // DAY_MS
    ev = 0
    if day != rs.day:
        rs.day = day
        rs.day_end_ms = (day + 1) * DAY_MS
        rs.day_start = equity
        if rs.halted != 0.0:
            ev = DAILY_OFF
        rs.halted = 0.0
    return ev


@njit(cache=True, inline="always")
def note_equity(rs: Rec, equity: float, t: int, rp: Rec) -> int:
    """At each close ``t`` (candle index or ms): the peak, and the halts' start and lift rules.

    The daily-loss halt latches for the rest of the UTC day. The drawdown halt holds while
    equity is ``dd`` or more below its peak; after ``dd_candles`` closes in a row it lifts and
    the peak re-bases to the equity then (a flat bot's equity cannot recover by itself, so
    without the rule the halt would never end). Returns the halt events (bit mask)."""
    ev = 0
    if equity > rs.peak:
        rs.peak = equity
    daily = rp.daily
    if daily > 0.0 and rs.halted == 0.0 and equity <= rs.day_start * (1.0 - daily):
        rs.halted = 1.0
        rs.daily_since = t
        ev |= DAILY_ON
    dd = rp.dd
    if dd > 0.0:
        if equity <= rs.peak * (1.0 - dd):
            if rs.dd_count == 0:
                rs.dd_since = t
                ev |= DD_ON
            rs.dd_count += 1
            if rp.dd_candles > 0.0 and rs.dd_count > rp.dd_candles:
                rs.peak = equity
                rs.dd_count = 0
                ev |= DD_LIFT
        elif rs.dd_count > 0:
            rs.dd_count = 0
            ev |= DD_OFF
    return ev


@njit(cache=True)
def lift(rs: Rec, equity: float) -> int:
    """Lift every halt by hand (``resume``): the day and the peak re-base to ``equity``."""
    ev = MANUAL_LIFT if (rs.halted != 0.0 or rs.dd_count > 0) else 0
    rs.halted = 0.0
    rs.day_start = equity
    rs.peak = equity
    rs.dd_count = 0
    return ev


@njit(cache=True)
def halt_code(rs: Rec, equity: float, rp: Rec) -> int:
    """OK, or the halt that blocks new entries at this equity (marked at the open)."""
    daily = rp.daily
    if daily > 0.0 and (rs.halted != 0.0 or equity <= rs.day_start * (1.0 - daily)):
        return REJECT_DAILY_LOSS_HALT
    dd = rp.dd
    if dd > 0.0 and equity <= rs.peak * (1.0 - dd):
        return REJECT_DRAWDOWN_HALT
    return OK


@njit(cache=True)
def size_entry(
    equity: float,
    cash: float,
    price: float,
    fee: float,
    open_positions: int,
    exposure: float,
    cluster_exposure: NDArray[np.float64],
    member: NDArray[np.float64],
    rp: Rec,
) -> tuple[float, int]:
    """(quantity, reason) of a new position at fill ``price`` (slippage included).

    ``exposure``: value of all open positions; ``cluster_exposure[j]``: of those in cluster j;
    ``member[j]``: 1 where this symbol is in cluster j. A zero quantity is a rejection."""
    if open_positions >= rp.max_pos:
        return 0.0, REJECT_MAX_POSITIONS
    if cash <= 0.0 or price <= 0.0 or equity <= 0.0:
        return 0.0, REJECT_NO_CASH
    value = equity * rp.pos_frac
    code = OK
    if 0.0 < rp.pos_abs < value:
        value = rp.pos_abs
        code = RESIZED_POSITION_CAP
    trade = equity * rp.trade_frac
    if 0.0 < rp.trade_abs < trade:
        trade = rp.trade_abs
    if trade < value:
        value = trade
        code = RESIZED_TRADE_CAP
    room = equity * rp.expo_frac - exposure
    if room < value:
        value = room
        code = RESIZED_EXPOSURE_CAP
    for j in range(member.shape[0]):
        if member[j] != 0.0:
            room = equity * rp.cluster_frac - cluster_exposure[j]
            if room < value:
                value = room
                code = RESIZED_CLUSTER_CAP
    # Fees come on top of the order value and must be paid from cash too.
    # The 1e-12 margin keeps cash >= 0 through rounding; it alone is not a resize.
    affordable = cash / (1.0 + fee) * (1.0 - 1e-12)
    if affordable < value:
        if affordable < value * (1.0 - 1e-9):
            code = RESIZED_CASH
        value = affordable
    step = rp.step
    qty = floor_qty(max(value, 0.0) / price, step)
    if step > 0.0 and qty * price * (1.0 + fee) > cash:
        qty -= step
    if qty <= 0.0 or qty * price < rp.min_order:
        if code == RESIZED_CASH:
            return 0.0, REJECT_NO_CASH
        if code == RESIZED_EXPOSURE_CAP:
            return 0.0, REJECT_EXPOSURE_CAP
        if code == RESIZED_CLUSTER_CAP:
            return 0.0, REJECT_CLUSTER_CAP
        return 0.0, REJECT_MIN_ORDER
    return qty, code


@njit(cache=True)
def exit_qty(held: float, frac: float, price: float, rp: Rec) -> tuple[float, int]:
    """(quantity, reason) of a partial exit of ``frac`` of ``held`` at ``price``.

    Floored to the step; too small an order is rejected; a remainder below the minimum order
    (dust that could never be sold alone) is sold with it."""
    qty = floor_qty(held * frac, rp.step)
    if qty <= 0.0 or qty * price < rp.min_order:
        return 0.0, REJECT_MIN_ORDER
    rest = held - qty
    if rest <= held * 1e-12 or rest * price < rp.min_order:
        return held, OK
    return qty, OK


@njit(cache=True)
def partial_qty(
    held: float, frac: float, steps: int, price: float, rp: Rec, counts: NDArray[np.int64]
) -> tuple[float, int]:
    """(quantity, steps sold) of ``steps`` partial take-profit steps sold together: each step
    sells ``frac`` of what is left (``exit_qty``); a step too small to sell is counted in
    ``counts`` and skipped."""
    total = 0.0
    rest = held
    sold = 0
    for _ in range(steps):
        q, code = exit_qty(rest, frac, price, rp)
        if q <= 0.0:
            counts[code] += 1
            continue
        total += q
        sold += 1
        if q >= rest:
            break
        rest -= q
    return total, sold
