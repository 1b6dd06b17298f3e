"""tradekit.risk: every cap, halt and rounding rule with its reason code."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradekit import risk as rk
from tradekit.config import RiskConfig

LOOSE = {
    "max_open_positions": 10,
    "max_position_frac": 1.0,
    "max_trade_frac": 1.0,
    "max_exposure_frac": 1.0,
    "cluster_max_frac": 1.0,
    "daily_loss_halt_frac": 0.0,
    "max_drawdown_halt_frac": 0.0,
    "min_order_value": 0.0,
}


def params(symbols=("BTC/USD", "ETH/USD"), **kw):
    rp, member = rk.params(RiskConfig(**{**LOOSE, **kw}), list(symbols))
    return rp[0], member


def size(
    rp,
    member,
    *,
    equity=1000.0,
    cash=None,
    price=10.0,
    fee=0.0,
    n_open=0,
    exposure=0.0,
    clusters=None,
    sym=0,
):
    clus = np.zeros(member.shape[1]) if clusters is None else np.asarray(clusters, dtype=float)
    cash = equity - exposure if cash is None else cash
    return rk.size_entry(equity, cash, price, fee, n_open, exposure, clus, member[sym], rp)


def test_full_size_is_ok():
    rp, m = params(max_position_frac=0.5)
    assert size(rp, m) == (50.0, rk.OK)


def test_position_cap_absolute():
    rp, m = params(max_position_frac=0.5, max_position_abs=200.0)
    assert size(rp, m) == (20.0, rk.RESIZED_POSITION_CAP)


@pytest.mark.parametrize(("frac", "absolute", "qty"), [(0.1, 0.0, 10.0), (1.0, 300.0, 30.0)])
def test_trade_cap(frac, absolute, qty):
    rp, m = params(max_trade_frac=frac, max_trade_abs=absolute)
    assert size(rp, m) == (pytest.approx(qty), rk.RESIZED_TRADE_CAP)


def test_exposure_cap_resizes_then_rejects():
    rp, m = params(max_exposure_frac=0.5)
    assert size(rp, m, exposure=300.0, n_open=1) == (pytest.approx(20.0), rk.RESIZED_EXPOSURE_CAP)
    assert size(rp, m, exposure=500.0, n_open=1) == (0.0, rk.REJECT_EXPOSURE_CAP)


def test_cluster_cap_only_for_members():
    rp, m = params(clusters={"majors": ["BTC/USD"]}, cluster_max_frac=0.3)
    assert m.tolist() == [[1.0], [0.0]]
    assert size(rp, m, exposure=100.0, clusters=[100.0], sym=0) == (
        pytest.approx(20.0),
        rk.RESIZED_CLUSTER_CAP,
    )
    # Not a member: only the overall exposure room (900 of 1000) binds.
    assert size(rp, m, exposure=100.0, clusters=[100.0], sym=1) == (
        pytest.approx(90.0),
        rk.RESIZED_EXPOSURE_CAP,
    )
    assert size(rp, m, exposure=300.0, clusters=[300.0], sym=0) == (0.0, rk.REJECT_CLUSTER_CAP)


def test_cash_and_fees_bound_the_order():
    rp, m = params()
    qty, code = size(rp, m, equity=1000.0, cash=505.0, fee=0.01)
    assert code == rk.RESIZED_CASH
    assert qty * 10.0 * 1.01 <= 505.0 and qty == pytest.approx(50.0)
    assert size(rp, m, cash=0.0) == (0.0, rk.REJECT_NO_CASH)


def test_max_open_positions():
    rp, m = params(max_open_positions=2)
    assert size(rp, m, n_open=1)[1] == rk.OK
    assert size(rp, m, n_open=2) == (0.0, rk.REJECT_MAX_POSITIONS)


def test_min_order_value():
    rp, m = params(max_position_frac=0.004, min_order_value=5.0)
    assert size(rp, m) == (0.0, rk.REJECT_MIN_ORDER)  # 4 quote < 5
    rp, m = params(max_position_frac=0.005, min_order_value=5.0)
    assert size(rp, m) == (pytest.approx(0.5), rk.OK)


def test_qty_step_floors_and_keeps_cash():
    rp, m = params(qty_step=0.1)
    qty, code = size(rp, m, equity=1000.0, price=30.0)
    assert code == rk.OK and qty == pytest.approx(33.3)
    assert abs(qty / 0.1 - round(qty / 0.1)) < 1e-9
    assert rk.floor_qty(0.3, 0.1) == pytest.approx(0.3)  # not 0.2 from 2.9999...
    assert rk.floor_qty(0.29, 0.1) == pytest.approx(0.2)
    assert rk.floor_qty(1.234, 0.0) == 1.234
    # Never a step more than held, however many steps: 10.25135371 ETH in steps of 1e-8.
    assert f"{rk.floor_qty(10.25135371, 1e-8):.8f}" == "10.25135371"
    assert f"{rk.floor_qty(123.45678901, 1e-8):.8f}" == "123.45678901"


@given(
    st.integers(1, 10**10),  # 100 BTC in steps of 1e-8
    st.sampled_from([1e-8, 1e-6, 1e-4, 0.001, 0.01, 0.1, 1.0]),
    st.integers(0, 999),
)
def test_floor_qty_is_a_whole_number_of_steps_never_above_the_quantity(
    n: int, step: float, thousandths: int
) -> None:
    """Printed to the step's decimals (what an exchange reads), ``n`` steps and a fraction of
    one floor to ``n`` steps: never one more (more than is held), never one less."""
    decimals = max(0, round(-np.log10(step)))
    qty = float(
        f"{n * step:.{decimals}f}{thousandths:03d}" if decimals else f"{n}.{thousandths:03d}"
    )
    assert f"{rk.floor_qty(qty, step):.{decimals}f}" == f"{n * step:.{decimals}f}", (qty, step)
    # All-in with a fee: the floored order plus its fee still fits in the cash.
    rp, m = params(qty_step=0.001)
    qty, _ = size(rp, m, equity=1000.0, price=33.0, fee=0.004)
    assert qty * 33.0 * 1.004 <= 1000.0


DAY = 86_400_000


def test_daily_loss_halt_latches_at_a_close_and_lifts_the_next_day():
    rp, _ = params(daily_loss_halt_frac=0.05)
    rs = rk.new_state(1000.0)
    assert rk.roll_day(rs[0], 10 * DAY, 1000.0) == 0
    assert rk.halt_code(rs[0], 960.0, rp) == rk.OK
    assert rk.halt_code(rs[0], 950.0, rp) == rk.REJECT_DAILY_LOSS_HALT  # at this open only
    assert rk.halt_code(rs[0], 1000.0, rp) == rk.OK
    assert rk.note_equity(rs[0], 950.0, 7, rp) == rk.DAILY_ON  # a close latches it
    assert rs[0]["daily_since"] == 7
    assert rk.halt_code(rs[0], 1000.0, rp) == rk.REJECT_DAILY_LOSS_HALT  # latched
    assert rk.note_equity(rs[0], 1000.0, 8, rp) == 0
    assert rk.roll_day(rs[0], 10 * DAY + 3_600_000, 1000.0) == 0  # same day: still halted
    assert rk.halt_code(rs[0], 1000.0, rp) == rk.REJECT_DAILY_LOSS_HALT
    assert rk.roll_day(rs[0], 11 * DAY, 950.0) == rk.DAILY_OFF  # next UTC day from 950
    assert rk.halt_code(rs[0], 950.0, rp) == rk.OK
    assert rs[0]["day_start"] == 950.0


def test_drawdown_halt_from_the_peak_lifts_on_recovery():
    rp, _ = params(max_drawdown_halt_frac=0.2, drawdown_halt_candles=0)
    rs = rk.new_state(1000.0)
    assert rk.note_equity(rs[0], 1500.0, 0, rp) == 0
    assert rk.halt_code(rs[0], 1201.0, rp) == rk.OK
    assert rk.halt_code(rs[0], 1200.0, rp) == rk.REJECT_DRAWDOWN_HALT
    assert rk.note_equity(rs[0], 1100.0, 1, rp) == rk.DD_ON
    for t in range(2, 500):  # no candle rule: held as long as equity stays down
        assert rk.note_equity(rs[0], 1100.0, t, rp) == 0
    assert rs[0]["dd_since"] == 1 and rs[0]["dd_count"] == 499
    assert rk.note_equity(rs[0], 1300.0, 500, rp) == rk.DD_OFF  # recovered above 1200
    assert rk.halt_code(rs[0], 1300.0, rp) == rk.OK


def test_drawdown_halt_lifts_after_its_candles_and_rebases_the_peak():
    rp, _ = params(max_drawdown_halt_frac=0.2, drawdown_halt_candles=3)
    rs = rk.new_state(1000.0)
    assert rk.note_equity(rs[0], 700.0, 10, rp) == rk.DD_ON
    assert [rk.note_equity(rs[0], 700.0, t, rp) for t in (11, 12)] == [0, 0]
    assert rk.halt_code(rs[0], 700.0, rp) == rk.REJECT_DRAWDOWN_HALT  # 3 closes: still on
    assert rk.note_equity(rs[0], 700.0, 13, rp) == rk.DD_LIFT
    assert rs[0]["peak"] == 700.0 and rk.halt_code(rs[0], 700.0, rp) == rk.OK
    assert rk.note_equity(rs[0], 560.0, 14, rp) == rk.DD_ON  # 20 % below the new peak


def test_lift_by_hand_rebases_day_and_peak():
    rp, _ = params(daily_loss_halt_frac=0.05, max_drawdown_halt_frac=0.2)
    rs = rk.new_state(1000.0)
    rk.roll_day(rs[0], 10 * DAY, 1000.0)
    rk.note_equity(rs[0], 700.0, 1, rp)
    assert rk.halt_code(rs[0], 700.0, rp) != rk.OK
    assert rk.lift(rs[0], 700.0) == rk.MANUAL_LIFT
    assert rk.halt_code(rs[0], 700.0, rp) == rk.OK
    assert rk.lift(rs[0], 700.0) == 0  # nothing left to lift


def test_partial_steps_sold_together():
    rp, _ = params(qty_step=0.01, min_order_value=5.0)
    counts = np.zeros(rk.N_CODES, dtype=np.int64)
    assert rk.partial_qty(1.0, 0.5, 2, 100.0, rp, counts) == (pytest.approx(0.75), 2)
    assert rk.partial_qty(1.0, 0.04, 2, 100.0, rp, counts) == (0.0, 0)  # too small, counted
    assert counts[rk.REJECT_MIN_ORDER] == 2
    assert rk.partial_qty(0.1, 0.6, 3, 100.0, rp, counts) == (0.1, 1)  # dust: all at once


def test_halts_off_at_zero():
    rp, _ = params()
    rs = rk.new_state(1000.0)
    assert rk.halt_code(rs[0], 1.0, rp) == rk.OK


def test_partial_exit_quantity():
    rp, _ = params(qty_step=0.01, min_order_value=5.0)
    assert rk.exit_qty(1.0, 0.333, 100.0, rp) == (pytest.approx(0.33), rk.OK)
    assert rk.exit_qty(1.0, 0.04, 100.0, rp) == (0.0, rk.REJECT_MIN_ORDER)  # 4 quote
    # The remainder would be dust below the minimum order: sell everything.
    assert rk.exit_qty(0.1, 0.6, 100.0, rp) == (0.1, rk.OK)


def test_code_names_are_unique_and_complete():
    assert set(rk.CODE_NAMES) == set(range(rk.N_CODES))
    assert len(set(rk.CODE_NAMES.values())) == rk.N_CODES
