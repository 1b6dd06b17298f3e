"""The simulation kernel: one compiled, time-major pass over (candles x symbols), one shared
wallet, long-only spot.

``run(t0, t1, ...)`` simulates candles ``t0..t1-1`` of every symbol, each in the order that
``tradekit.policy`` documents (pending exits at the open, then pending entries sized by
``tradekit.risk``, then stops on the candle's range, then targets and signals at the close).
Fills, fees, cash and positions are booked by ``tradekit.accounting``, the same compiled
functions the live engine calls.
All state lives in small arrays owned by the caller, so ``run`` stops when an output buffer
may overflow and resumes after the caller has grown it, and ``run(t, t + 1, ...)`` is the
per-candle step that a replay can call one candle at a time. Every function is ``cache=True``
and takes only arrays, records and scalars (no function arguments), so a fresh process loads
the machine code instead of recompiling it.

The per-candle work is written inside the loop, and the policy/risk rules take records, not
arrays, because numba reference-counts every array argument of a call with atomic operations
(about 10 ns per call here, for a loop whose whole candle costs a few ns). Calls with arrays
happen only on events (fills, trade records, entry sizing, dip mode).

Fills: a signal, a take-profit or a partial take-profit decided at candle t fills at the
symbol's next candle open; a stop fills inside the candle at its level (at the open when the
candle gaps through it); each with ``slippage`` against the trader and ``fee`` (a fraction of
the fill value) per fill. A symbol without a candle at t
cannot trade at t; its pending order waits for its next candle and it is marked at its last
close.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from tradekit import accounting as ac
from tradekit import jit
from tradekit import policy as pol
from tradekit import risk as rk


def _drop_stale_cache() -> None:
    """numba keys a cached function on its own file only, so machine code that inlined an old
    ``policy``/``risk``/``accounting`` would survive an edit of those files: drop the kernel's
    cache when their source changes (a stamp beside the cache files)."""
    cache = Path(__file__).parent / "__pycache__"
    deps = b"".join(Path(str(m.__file__)).read_bytes() for m in (pol, rk, ac))
    stamp = hashlib.sha256(deps).hexdigest()
    mark = cache / "kernel.deps"
    with contextlib.suppress(OSError):  # a read-only install simply keeps its cache
        if mark.exists() and mark.read_text(encoding="utf-8") == stamp:
            return
        for f in cache.glob("kernel.*.nb[ic]"):
            f.unlink()
        cache.mkdir(exist_ok=True)
        mark.write_text(stamp, encoding="utf-8")


_drop_stale_cache()

if not jit.ENABLED:  # the kernel inlines the rules: they must be compiled too
    raise RuntimeError("the backtest kernel needs the rules compiled (TRADEKIT_JIT is 0)")

if TYPE_CHECKING:
    from numpy.typing import NDArray

    F64 = NDArray[np.float64]
Rec = Any  # a numpy/numba record

ACCT = ac.ACCT
WALLET = ac.WALLET
new_acct = ac.new_acct
new_wallet = ac.new_wallet

# -- trade records (trades[k, T_*]) --------------------------------------------------------
T_SYM = 0
T_ENTRY_IDX = 1
T_EXIT_IDX = 2
T_ENTRY_PRICE = 3
T_EXIT_PRICE = 4
T_QTY = 5
T_FEES = 6
T_PNL = 7
T_PNL_PCT = 8
T_EXIT_REASON = 9
T_MAE = 10
T_NPART = 11
T_ENTRY_REASON = 12
T_ENTRY_SIG = 13
T_MFE = 14
T_N = 15

# -- fill records, only when a fills buffer is given (trace) -----------------------------------
F_IDX = 0
F_SIG_IDX = 1  # the candle whose close produced the order (-1: an intrabar stop)
F_SYM = 2
F_SIDE = 3  # +1 buy, -1 sell
F_QTY = 4
F_PRICE = 5
F_FEE = 6
F_REASON = 7
F_EQUITY = 8  # entries: equity at the open the order was sized with
F_EXPOSURE = 9  # entries: all positions at open marks after this fill
F_CASH = 10  # cash after the fill
F_N = 11


@njit(cache=True, inline="always")
def _fill(
    fills: F64,
    w: Rec,
    t: int,
    sig: int,
    s: int,
    side: float,
    qty: float,
    price: float,
    fee: float,
    reason: int,
    equity: float,
    exposure: float,
) -> None:
    k = w.n_fills
    if k < fills.shape[0]:
        r = fills[k]
        r[F_IDX] = t
        r[F_SIG_IDX] = sig
        r[F_SYM] = s
        r[F_SIDE] = side
        r[F_QTY] = qty
        r[F_PRICE] = price
        r[F_FEE] = fee
        r[F_REASON] = reason
        r[F_EQUITY] = equity
        r[F_EXPOSURE] = exposure
        r[F_CASH] = w.cash
        w.n_fills = k + 1


@njit(cache=True, inline="always")
def _sell(
    s: int,
    t: int,
    sig: int,
    qty: float,
    price: float,
    reason: int,
    fee_rate: float,
    a: Rec,
    w: Rec,
    fills: F64,
) -> bool:
    """Sell ``qty`` of ``s`` at ``price``; True when the position is flat after."""
    value = qty * price
    fee = value * fee_rate
    flat = ac.book_sell(a, w, qty, value, fee, ac.DUST)
    if fills.shape[0] > 0:
        _fill(fills, w, t, sig, s, -1.0, qty, price, fee, reason, np.nan, np.nan)
    return flat


@njit(cache=True, inline="always")
def _close_trade(
    s: int, t: int, reason: int, mae_price: float, a: Rec, w: Rec, trades: F64
) -> None:
    entry_price, entry_qty, fees = a.entry_price, a.entry_qty, a.fees
    exit_price, pnl, pnl_pct, mae, mfe = ac.close_trade(a, mae_price)
    k = w.n_trades
    r = trades[k]
    r[T_SYM] = s
    r[T_ENTRY_IDX] = a.entry_t
    r[T_EXIT_IDX] = t
    r[T_ENTRY_PRICE] = entry_price
    r[T_EXIT_PRICE] = exit_price
    r[T_QTY] = entry_qty
    r[T_FEES] = fees
    r[T_PNL] = pnl
    r[T_PNL_PCT] = pnl_pct
    r[T_EXIT_REASON] = reason
    r[T_MAE] = mae
    r[T_MFE] = mfe
    r[T_NPART] = a.n_partial
    r[T_ENTRY_REASON] = a.entry_reason
    r[T_ENTRY_SIG] = a.entry_sig
    w.n_trades = k + 1


@njit(cache=True)
def _exit_at_open(
    s: int,
    t: int,
    price: float,
    fee: float,
    ps: NDArray[np.void],
    pp: Rec,
    rp: Rec,
    a: Rec,
    w: Rec,
    trades: F64,
    fills: F64,
    risk_counts: NDArray[np.int64],
) -> None:
    """The pending exit of ``s`` at the open of ``t`` (fill ``price``, slippage included): an
    exit signal or take-profit sells everything, partial steps their share."""
    reason = a.pending
    steps = a.pend_steps
    a.pending = 0
    a.pend_steps = 0
    if a.qty <= 0.0:
        return
    row = ps[s]
    qty = a.qty
    sold = 0
    if reason == pol.PARTIAL_TP:
        qty, sold = rk.partial_qty(a.qty, pp.pfrac, steps, price, rp, risk_counts)
        for _ in range(steps):
            pol.on_partial(row)
        if qty <= 0.0:
            return
    if _sell(s, t, a.sig_t, qty, price, reason, fee, a, w, fills):
        _close_trade(s, t, reason, np.inf, a, w, trades)
        pol.on_exit(row)
    else:
        a.n_partial += sold


@njit(cache=True)
def _enter(
    t: int,
    op: F64,
    valid: NDArray[np.uint8],
    member: F64,
    fee: float,
    slip: float,
    ps: NDArray[np.void],
    acct: NDArray[np.void],
    w: Rec,
    rs: Rec,
    rp: Rec,
    fills: F64,
    risk_counts: NDArray[np.int64],
    clus: F64,
) -> int:
    """Pending entries at the open of ``t``, each sized with equity and exposure at open marks
    (``accounting.open_exposure``); returns how many intents it consumed."""
    consumed = 0
    for s in range(acct.shape[0]):
        a = acct[s]
        if valid[t, s] == 0 or a.pending == 0:
            continue
        reason = a.pending
        sig = a.sig_t
        a.pending = 0
        consumed += 1
        if a.qty > 0.0:
            continue
        exposure, n_open = ac.open_exposure(acct, op[t], valid[t], member, clus)
        cash = w.cash
        equity = cash + exposure
        price = op[t, s] * (1.0 + slip)
        code = rk.halt_code(rs, equity, rp)
        qty = 0.0
        if code == rk.OK:
            qty, code = rk.size_entry(
                equity, cash, price, fee, n_open, exposure, clus, member[s], rp
            )
        risk_counts[code] += 1
        if qty <= 0.0:
            continue
        value = qty * price
        f = value * fee
        ac.book_buy(a, w, qty, price, value, f, t, reason, sig)
        pol.on_entry(ps[s], price)
        if fills.shape[0] > 0:
            _fill(
                fills, w, t, sig, s, 1.0, qty, price, f, reason, equity, exposure + qty * op[t, s]
            )
    return consumed


@njit(cache=True)
def run(
    t0: int,
    t1: int,
    ts: NDArray[np.int64],
    op: F64,
    hi: F64,
    lo: F64,
    cl: F64,
    valid: NDArray[np.uint8],
    pred: F64,
    pp_arr: NDArray[np.void],
    ring: F64,
    rp_arr: NDArray[np.void],
    member: F64,
    fee: float,
    slip: float,
    ps: NDArray[np.void],
    acct: NDArray[np.void],
    w_arr: NDArray[np.void],
    rs_arr: NDArray[np.void],
    trades: F64,
    fills: F64,
    risk_counts: NDArray[np.int64],
    equity_out: F64,
    halts_out: NDArray[np.uint8],
    cash_out: F64,
    exposure_out: F64,
) -> int:
    """Simulate candles ``t0..t1-1``; returns the next candle to simulate (``t1`` when done,
    earlier when a record buffer may overflow). ``halts_out[t]`` gets the candle's halt events
    (``risk.DAILY_ON`` ...); ``cash_out``/``exposure_out`` are a trace, written only when they
    have one slot per candle."""
    pp = pp_arr[0]
    rp = rp_arr[0]
    w = w_arr[0]
    rs = rs_arr[0]
    n_sym = op.shape[1]
    trace = cash_out.shape[0] == ts.shape[0]
    dip = pp.dip != 0.0
    # Without a take-profit or partial levels, close_intent is on_close: skip the target check.
    targets = pp.tp > 0.0 or pp.n_levels > 0
    per_bar_fills = n_sym * 2
    clus = np.zeros(member.shape[1])  # cluster exposure, rebuilt at each entry
    n_pending = 0  # intents waiting for an open: most candles have none, and skip step 1-2
    for s in range(n_sym):
        if acct[s].pending != 0:
            n_pending += 1
    for t in range(t0, t1):
        if w.n_trades + n_sym > trades.shape[0]:
            return t
        if fills.shape[0] > 0 and w.n_fills + per_bar_fills > fills.shape[0]:
            return t
        events = rk.roll_day(rs, ts[t], w.equity)
        # 1. Pending exits fill at the open; note whether any entry waits.
        entries = False
        for s in range(n_sym if n_pending > 0 else 0):
            a = acct[s]
            if valid[t, s] == 0 or a.pending == 0:
                continue
            if pol.is_exit(a.pending):
                n_pending -= 1
                price = op[t, s] * (1.0 - slip)
                _exit_at_open(s, t, price, fee, ps, pp, rp, a, w, trades, fills, risk_counts)
            else:
                entries = True
        # 2. Pending entries.
        if entries:
            n_pending -= _enter(
                t, op, valid, member, fee, slip, ps, acct, w, rs, rp, fills, risk_counts, clus
            )
        # 3. Stops on the candle's range; 4. targets and signals at the close; 5. marks at
        # the close (a symbol without a candle keeps its last close).
        exposure = 0.0
        for s in range(n_sym):
            a = acct[s]
            if valid[t, s] == 0:
                if a.qty > 0.0:
                    exposure += a.qty * a.last_close
                continue
            row = ps[s]
            h = hi[t, s]
            c = cl[t, s]
            if a.qty > 0.0:
                reason, raw = pol.stop_event(row, op[t, s], lo[t, s], pp)
                if reason != pol.NONE:
                    _sell(s, t, -1, a.qty, raw * (1.0 - slip), reason, fee, a, w, fills)
                    _close_trade(s, t, reason, raw, a, w, trades)
                    pol.on_exit(row)
                else:
                    ac.hold_bar(a, lo[t, s], h)
                    pol.end_of_bar(row, h)
            a.last_close = c
            if dip:
                pol.dip_update(row, ring[s], h, c, pp)
            if targets:
                intent, steps = pol.close_intent(row, pred[t, s], h, pp)
            else:
                intent, steps = pol.on_close(row, pred[t, s], pp), 0
            if intent != pol.NONE:
                if a.pending == 0:
                    n_pending += 1
                a.pending = intent
                a.pend_steps = steps
                a.sig_t = t
            if a.qty > 0.0:
                exposure += a.qty * c
        equity = w.cash + exposure
        if exposure > 0.0:
            w.expo_bars += 1
            w.expo_sum += exposure / equity
        w.equity = equity
        events |= rk.note_equity(rs, equity, t, rp)
        equity_out[t] = equity
        halts_out[t] = events
        if trace:
            cash_out[t] = w.cash
            exposure_out[t] = exposure
    return t1


@njit(cache=True)
def finish(
    t: int, acct: NDArray[np.void], ps: NDArray[np.void], w_arr: NDArray[np.void], trades: F64
) -> None:
    """Positions still open after candle ``t`` close as trades with reason END, at their last
    close and without a fee: a mark, not a fill, so equity is unchanged."""
    w = w_arr[0]
    for s in range(acct.shape[0]):
        a = acct[s]
        q = a.qty
        if q > 0.0:
            ac.book_sell(a, w, q, q * a.last_close, 0.0, 0.0)
            _close_trade(s, t, pol.END, a.last_close, a, w, trades)
            pol.on_exit(ps[s])
