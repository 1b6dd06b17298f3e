"""Fills, fees, cash, positions and equity: the one accounting code of ``backtest`` and ``run``.

Long-only spot with one shared wallet. A symbol's position is an ``ACCT`` record, the wallet a
``WALLET`` record (numpy structured dtypes, as ``tradekit.policy`` explains: numba passes a
record as a bare pointer). The backtest kernel inlines these functions into its compiled loop;
the live engine calls the same compiled functions once per fill from Python, with the values
the broker reports (an exchange's own cost and fee, to the cent), so a replay through the live
engine and a backtest book identical numbers by construction.

Times in a record (``entry_t``, ``sig_t``) are candle indices in a backtest and candle open
times in ms in the live engine: the accounting only stores them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tradekit.jit import njit, records

if TYPE_CHECKING:
    from numpy.typing import NDArray

Rec = Any  # a numpy/numba record

ACCT = np.dtype(
    [
        ("qty", "f8"),
        ("entry_t", "i8"),  # candle of the entry fill
        ("entry_price", "f8"),  # average entry fill price
        ("entry_qty", "f8"),
        ("cost", "f8"),  # cash paid for the entry, fees included
        ("proceeds", "f8"),  # cash received from exits so far, fees deducted
        ("exit_qty", "f8"),
        ("exit_value", "f8"),  # sum of exit qty * fill price (for the average exit price)
        ("fees", "f8"),
        ("mae_low", "f8"),  # lowest low seen while held (maximum adverse excursion)
        ("mfe_high", "f8"),  # highest high seen while held (maximum favourable excursion)
        ("n_partial", "i8"),
        ("entry_reason", "i8"),
        ("entry_sig", "i8"),  # signal candle of the open position's entry
        ("pending", "i8"),  # policy reason code of the intent waiting for the next open
        ("pend_steps", "i8"),  # partial take-profit steps the pending intent sells
        ("sig_t", "i8"),  # candle of the signal behind the pending intent
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

DUST = 1e-12  # a remainder below this share of the entry quantity counts as flat


def new_acct(n_symbols: int) -> NDArray[np.void]:
    a = np.zeros(n_symbols, dtype=ACCT)
    a["last_close"] = np.nan
    a["entry_price"] = np.nan
    a["mae_low"] = np.nan
    a["mfe_high"] = np.nan
    return records(a)


def new_wallet(starting_balance: float) -> NDArray[np.void]:
    w = np.zeros(1, dtype=WALLET)
    w["cash"] = starting_balance
    w["equity"] = starting_balance
    return records(w)


@njit(cache=True, inline="always")
def book_buy(
    a: Rec,
    w: Rec,
    qty: float,
    price: float,
    value: float,
    fee: float,
    t: int,
    reason: int,
    sig: int,
) -> None:
    """An entry fill: a flat symbol becomes a position of ``qty`` at ``price``; ``value`` is
    what the fill cost before the fee (``qty * price`` unless the exchange says otherwise)."""
    # max(): ulp noise only; the risk sizing leaves room for the fee.
    w.cash = max(w.cash - value - fee, 0.0)
    w.fees += fee
    a.qty = qty
    a.entry_t = t
    a.entry_price = price
    a.entry_qty = qty
    a.cost = value + fee
    a.proceeds = 0.0
    a.exit_qty = 0.0
    a.exit_value = 0.0
    a.fees = fee
    a.mae_low = price
    a.mfe_high = price
    a.n_partial = 0
    a.entry_reason = reason
    a.entry_sig = sig


@njit(cache=True)
def book_more(a: Rec, w: Rec, qty: float, value: float, fee: float) -> None:
    """A later fill of the same entry order (an exchange reporting more of it filled): the
    position grows and its entry price becomes the average."""
    w.cash = max(w.cash - value - fee, 0.0)
    w.fees += fee
    entry_value = a.entry_price * a.entry_qty + value
    a.qty += qty
    a.entry_qty += qty
    a.entry_price = entry_value / a.entry_qty
    a.cost += value + fee
    a.fees += fee


@njit(cache=True)
def adopt(a: Rec, qty: float, price: float, t: int) -> None:
    """Take a position the exchange holds and the ledger does not explain (``reconcile
    --adopt``): ``qty`` marked at ``price`` as its cost, without a fill or a cash flow (the
    quote balance is adopted on its own)."""
    if a.qty <= 0.0:
        a.entry_t = t
        a.entry_price = price
        a.entry_qty = qty
        a.cost = qty * price
        a.proceeds = 0.0
        a.exit_qty = 0.0
        a.exit_value = 0.0
        a.fees = 0.0
        a.mae_low = price
        a.mfe_high = price
        a.n_partial = 0
        a.entry_reason = -1  # adopted: not a policy decision
        a.entry_sig = t
    else:
        a.entry_qty += qty - a.qty
        a.cost += (qty - a.qty) * price
    a.qty = qty


@njit(cache=True, inline="always")
def book_sell(a: Rec, w: Rec, qty: float, value: float, fee: float, dust: float) -> bool:
    """A sell fill; True when the position is now flat (a remainder below ``dust`` of the
    entry quantity counts as flat)."""
    a.qty -= qty
    if a.qty < a.entry_qty * dust:
        a.qty = 0.0
    a.proceeds += value - fee
    a.exit_qty += qty
    a.exit_value += value
    a.fees += fee
    w.cash += value - fee
    w.fees += fee
    flat: bool = a.qty <= 0.0
    return flat


@njit(cache=True, inline="always")
def close_trade(a: Rec, mae_price: float) -> tuple[float, float, float, float, float]:
    """The closed trade's (exit price, pnl, pnl_pct, mae, mfe); the position is flat after.
    ``mae_price`` is the worst price of the exit candle that counts (the stop for a stop, the
    low for a target, inf when the exit filled at an open)."""
    exit_price = a.exit_value / a.exit_qty if a.exit_qty > 0 else np.nan
    pnl = a.proceeds - a.cost
    low = min(a.mae_low, mae_price)
    mae = max(0.0, 1.0 - low / a.entry_price)
    mfe = max(0.0, a.mfe_high / a.entry_price - 1.0)
    a.qty = 0.0
    return exit_price, pnl, pnl / a.cost, mae, mfe


@njit(cache=True, inline="always")
def hold_bar(a: Rec, low: float, high: float) -> None:
    """A candle held through without an exit: its range enters MAE and MFE."""
    a.mae_low = min(a.mae_low, low)
    a.mfe_high = max(a.mfe_high, high)


@njit(cache=True)
def open_exposure(
    acct: NDArray[np.void],
    opens: NDArray[np.float64],
    valid: NDArray[np.uint8],
    member: NDArray[np.float64],
    clus: NDArray[np.float64],
) -> tuple[float, int]:
    """(value of all positions, their count) at the open, each marked at its open (at its last
    close without a candle); ``clus[j]`` gets cluster j's value. Recomputed before every entry,
    so an entry sized after a restart sees the same numbers as one sized without it."""
    exposure = 0.0
    n_open = 0
    clus[:] = 0.0
    for s in range(acct.shape[0]):
        q = acct[s].qty
        if q > 0.0:
            mark = opens[s] if valid[s] != 0 else acct[s].last_close
            exposure += q * mark
            n_open += 1
            for j in range(member.shape[1]):
                clus[j] += q * mark * member[s, j]
    return exposure, n_open


def equity(acct: NDArray[np.void], cash: float) -> float:
    """Cash plus every position at its last close (at its entry price before its first
    close): what ``status`` shows between candles."""
    held = acct["qty"] > 0.0
    mark = np.where(np.isnan(acct["last_close"]), acct["entry_price"], acct["last_close"])
    return float(cash + (acct["qty"][held] * mark[held]).sum())
