"""The simulation kernel: one compiled, time-major pass over (candles x symbols), one shared
wallet, long-only spot.

``run(t0, t1, ...)`` simulates candles ``t0..t1-1`` of every symbol, each in the order that
``tradekit.policy`` documents (pending exits at the open, then pending entries sized by
``tradekit.risk``, then stops and targets on the candle's range, then signals at the close).
All state lives in small arrays owned by the caller, so ``run`` stops when an output buffer
may overflow and resumes after the caller has grown it, and ``run(t, t + 1, ...)`` is the
per-candle step that a replay can call one candle at a time. Every function is ``cache=True``
and takes only arrays, records and scalars (no function arguments), so a fresh process loads
the machine code instead of recompiling it.

The per-candle work is written inside the loop, and the policy/risk rules take records, not
arrays, because numba reference-counts every array argument of a call with atomic operations
(about 10 ns per call here, for a loop whose whole candle costs a few ns). Calls with arrays
happen only on events (fills, trade records, entry sizing, dip mode).

Fills: a signal at candle t fills at the symbol's next candle open, with ``slippage`` against
the trader and ``fee`` (a fraction of the fill value) per fill. A symbol without a candle at t
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

from tradekit import policy as pol
from tradekit import risk as rk


def _drop_stale_cache() -> None:
    """numba keys a cached function on its own file only, so machine code that inlined an old
    ``policy``/``risk`` would survive an edit of those files: drop the kernel's cache when
    their source changes (a stamp beside the cache files)."""
    cache = Path(__file__).parent / "__pycache__"
    deps = b"".join(Path(str(m.__file__)).read_bytes() for m in (pol, rk))
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

if TYPE_CHECKING:
    from numpy.typing import NDArray

    F64 = NDArray[np.float64]
Rec = Any  # a numpy/numba record

ACCT = np.dtype(
    [
        ("qty", "f8"),
        ("entry_idx", "i8"),
        ("entry_price", "f8"),
        ("entry_qty", "f8"),
        ("cost", "f8"),  # cash paid for the entry, fee included
        ("proceeds", "f8"),  # cash received from exits so far, fees deducted
        ("exit_qty", "f8"),
        ("exit_value", "f8"),  # sum of exit qty * fill price (for the average exit price)
        ("fees", "f8"),
        ("mae_low", "f8"),
        ("n_partial", "i8"),
        ("entry_reason", "i8"),
        ("entry_sig", "i8"),  # signal candle of the open position's entry
        ("pending", "i8"),  # policy reason code of the intent waiting for the next open
        ("sig_idx", "i8"),  # candle of the signal behind the pending intent
        ("last_close", "f8"),
    ],
    align=True,
)

WALLET = np.dtype(
    [
        ("cash", "f8"),
        ("fees", "f8"),
        ("expo_bars", "i8"),  # candles closing with any position open
        ("expo_sum", "f8"),  # sum over candles of exposure / equity at the close
        ("n_trades", "i8"),
        ("n_fills", "i8"),
        ("equity", "f8"),  # equity at the last close
    ],
    align=True,
)

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
T_N = 14

# -- fill records, only when a fills buffer is given (trace) -----------------------------------
F_IDX = 0
F_SIG_IDX = 1  # the candle whose close produced the order (-1: intrabar stop/target)
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


def new_wallet(starting_balance: float) -> NDArray[np.void]:
    w = np.zeros(1, dtype=WALLET)
    w["cash"] = starting_balance
    w["equity"] = starting_balance
    return w


def new_acct(n_symbols: int) -> NDArray[np.void]:
    a = np.zeros(n_symbols, dtype=ACCT)
    a["last_close"] = np.nan
    return a


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
) -> None:
    value = qty * price
    fee = value * fee_rate
    a.qty -= qty
    if a.qty < a.entry_qty * 1e-12:
        a.qty = 0.0
    a.proceeds += value - fee
    a.exit_qty += qty
    a.exit_value += value
    a.fees += fee
    w.cash += value - fee
    w.fees += fee
    if fills.shape[0] > 0:
        _fill(fills, w, t, sig, s, -1.0, qty, price, fee, reason, np.nan, np.nan)


@njit(cache=True, inline="always")
def _close_trade(s: int, t: int, reason: int, mae_low: float, a: Rec, w: Rec, trades: F64) -> None:
    k = w.n_trades
    r = trades[k]
    r[T_SYM] = s
    r[T_ENTRY_IDX] = a.entry_idx
    r[T_EXIT_IDX] = t
    r[T_ENTRY_PRICE] = a.entry_price
    r[T_EXIT_PRICE] = a.exit_value / a.exit_qty if a.exit_qty > 0 else np.nan
    r[T_QTY] = a.entry_qty
    r[T_FEES] = a.fees
    pnl = a.proceeds - a.cost
    r[T_PNL] = pnl
    r[T_PNL_PCT] = pnl / a.cost
    r[T_EXIT_REASON] = reason
    low = min(a.mae_low, mae_low)
    r[T_MAE] = max(0.0, 1.0 - low / a.entry_price)
    r[T_NPART] = a.n_partial
    r[T_ENTRY_REASON] = a.entry_reason
    r[T_ENTRY_SIG] = a.entry_sig
    w.n_trades = k + 1
    a.qty = 0.0


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
    """Pending entries at the open of ``t``, sized with equity and exposure at open marks
    (a symbol without a candle at ``t`` is marked at its last close); returns how many
    intents it consumed."""
    n_sym = acct.shape[0]
    exposure = 0.0
    n_open = 0
    clus[:] = 0.0  # a scratch buffer of run(): an allocation per entry costs ~10% here
    for s in range(n_sym):
        q = acct[s].qty
        if q > 0.0:
            mark = op[t, s] if valid[t, s] != 0 else acct[s].last_close
            exposure += q * mark
            n_open += 1
            for j in range(member.shape[1]):
                clus[j] += q * mark * member[s, j]
    consumed = 0
    for s in range(n_sym):
        a = acct[s]
        if valid[t, s] == 0 or a.pending == 0:
            continue
        reason = a.pending
        sig = a.sig_idx
        a.pending = 0
        consumed += 1
        if a.qty > 0.0:
            continue
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
        w.cash = max(cash - value - f, 0.0)  # max(): ulp noise only, size_entry leaves room
        w.fees += f
        a.qty = qty
        a.entry_idx = t
        a.entry_price = price
        a.entry_qty = qty
        a.cost = value + f
        a.proceeds = 0.0
        a.exit_qty = 0.0
        a.exit_value = 0.0
        a.fees = f
        a.mae_low = price
        a.n_partial = 0
        a.entry_reason = reason
        a.entry_sig = sig
        pol.on_entry(ps[s], price)
        mark = qty * op[t, s]
        exposure += mark
        n_open += 1
        for j in range(member.shape[1]):
            clus[j] += mark * member[s, j]
        if fills.shape[0] > 0:
            _fill(fills, w, t, sig, s, 1.0, qty, price, f, reason, equity, exposure)
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
    cash_out: F64,
    exposure_out: F64,
) -> int:
    """Simulate candles ``t0..t1-1``; returns the next candle to simulate (``t1`` when done,
    earlier when a record buffer may overflow). ``cash_out``/``exposure_out`` are a trace,
    written only when they have one slot per candle."""
    pp = pp_arr[0]
    rp = rp_arr[0]
    w = w_arr[0]
    rs = rs_arr[0]
    n_sym = op.shape[1]
    trace = cash_out.shape[0] == ts.shape[0]
    dip = pp.dip != 0.0
    per_bar_fills = n_sym * (3 + pp.n_levels)
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
        rk.roll_day(rs, ts[t], w.equity)
        # 1. Pending exits fill at the open; note whether any entry waits.
        entries = False
        for s in range(n_sym if n_pending > 0 else 0):
            a = acct[s]
            if valid[t, s] == 0 or a.pending == 0:
                continue
            if a.pending == pol.EXIT_SIGNAL:
                a.pending = 0
                n_pending -= 1
                if a.qty > 0.0:
                    price = op[t, s] * (1.0 - slip)
                    _sell(s, t, a.sig_idx, a.qty, price, pol.EXIT_SIGNAL, fee, a, w, fills)
                    _close_trade(s, t, pol.EXIT_SIGNAL, np.inf, a, w, trades)
                    pol.on_exit(ps[s])
            else:
                entries = True
        # 2. Pending entries.
        if entries:
            n_pending -= _enter(
                t, op, valid, member, fee, slip, ps, acct, w, rs, rp, fills, risk_counts, clus
            )
        # 3. Stops, targets and partial steps on the candle's range; 4. signals at the close;
        # 5. marks at the close (a symbol without a candle keeps its last close).
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
                o = op[t, s]
                low = lo[t, s]
                while True:
                    reason, raw, frac = pol.intrabar_event(row, o, h, low, pp)
                    if reason == pol.NONE:
                        a.mae_low = min(a.mae_low, low)
                        pol.end_of_bar(row, h)
                        break
                    price = raw * (1.0 - slip)
                    held = a.qty
                    qty = held
                    if frac < 1.0:
                        qty, code = rk.exit_qty(held, frac, price, rp)
                        if qty <= 0.0:
                            risk_counts[code] += 1
                            pol.on_partial(row)  # skip this step; a later one may be sellable
                            continue
                    _sell(s, t, -1, qty, price, reason, fee, a, w, fills)
                    if a.qty <= 0.0:
                        stop = reason == pol.STOPLOSS or reason == pol.TRAILING_STOP
                        _close_trade(s, t, reason, raw if stop else low, a, w, trades)
                        pol.on_exit(row)
                        break
                    pol.on_partial(row)
                    a.n_partial += 1
            a.last_close = c
            if dip:
                pol.dip_update(row, ring[s], h, c, pp)
            intent = pol.on_close(row, pred[t, s], pp)
            if intent != pol.NONE:
                a.pending = intent
                a.sig_idx = t
                n_pending += 1
            if a.qty > 0.0:
                exposure += a.qty * c
        equity = w.cash + exposure
        if exposure > 0.0:
            w.expo_bars += 1
            w.expo_sum += exposure / equity
        w.equity = equity
        rk.note_equity(rs, equity)
        equity_out[t] = equity
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
            value = q * a.last_close
            a.proceeds += value
            a.exit_qty += q
            a.exit_value += value
            w.cash += value
            _close_trade(s, t, pol.END, a.last_close, a, w, trades)
            pol.on_exit(ps[s])
