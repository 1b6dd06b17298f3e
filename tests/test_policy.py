"""tradekit.policy: each rule and reason code, called the way the live loop calls them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tradekit import policy as pol
from tradekit.config import PolicyConfig
from tradekit.errors import ConfigError


def setup(**kw: object) -> tuple[np.ndarray, np.ndarray, np.void]:
    """(params array, state array, ring) for one symbol; pass ``pp[0]``/``st[0]``."""
    pp = pol.params(PolicyConfig(**kw))  # type: ignore[arg-type]
    st, ring = pol.new_state(1, pp)
    return pp, st, ring


def entered(price: float = 100.0, **kw: object) -> tuple[np.ndarray, np.ndarray]:
    pp, st, _ = setup(**kw)
    pol.on_entry(st[0], price)
    return pp, st


def test_entry_at_threshold_and_not_below():
    pp, st, _ = setup(entry_threshold=0.5, exit_threshold=-0.5)
    assert pol.on_close(st[0], 0.49, pp[0]) == pol.NONE
    assert pol.on_close(st[0], 0.5, pp[0]) == pol.ENTRY_SIGNAL
    assert pol.on_close(st[0], float("nan"), pp[0]) == pol.NONE


def test_exit_below_threshold_only_in_position():
    pp, st, _ = setup(entry_threshold=0.5, exit_threshold=-0.5)
    assert pol.on_close(st[0], -1.0, pp[0]) == pol.NONE  # flat: nothing to exit
    pol.on_entry(st[0], 100.0)
    assert pol.on_close(st[0], 0.9, pp[0]) == pol.NONE  # in position: no second entry
    assert pol.on_close(st[0], -0.5, pp[0]) == pol.NONE  # at the threshold is not below it
    assert pol.on_close(st[0], -0.51, pp[0]) == pol.EXIT_SIGNAL


def test_persistence_needs_k_consecutive_candles_below():
    pp, st = entered(exit_threshold=0.0, persistence=3)
    seq = [-1.0, -1.0, 0.5, -1.0, float("nan"), -1.0, -1.0]
    got = [pol.on_close(st[0], p, pp[0]) for p in seq]
    # The 0.5 resets the count; NaN neither counts nor resets.
    assert got == [0, 0, 0, 0, 0, 0, pol.EXIT_SIGNAL]


def test_reentry_after_exit():
    pp, st = entered(entry_threshold=0.5, exit_threshold=0.0)
    pol.on_exit(st[0])
    assert st[0]["in_pos"] == 0.0 and math.isnan(st[0]["entry"])
    assert pol.on_close(st[0], 0.7, pp[0]) == pol.ENTRY_SIGNAL


def test_stoploss_hit_fills_at_stop_or_gap_open():
    pp, st = entered(100.0, stoploss=0.05, take_profit=0.0)
    assert pol.stop_event(st[0], 100.0, 95.01, pp[0])[0] == pol.NONE
    assert pol.stop_event(st[0], 100.0, 95.0, pp[0]) == (pol.STOPLOSS, 95.0)
    # Gap through the stop: the open is the fill.
    assert pol.stop_event(st[0], 90.0, 89.0, pp[0]) == (pol.STOPLOSS, 90.0)
    assert pol.stop_level(st[0], pp[0]) == (pol.STOPLOSS, 95.0)


def test_targets_are_decided_at_the_close_and_stops_inside_the_candle():
    pp, st = entered(100.0, stoploss=0.05, take_profit=0.05)
    # A candle reaching both: the stop fills inside it (a resting order), so no target.
    assert pol.stop_event(st[0], 100.0, 94.0, pp[0]) == (pol.STOPLOSS, 95.0)
    # The target alone: no intrabar exit; at the close it asks to sell at the next open.
    assert pol.stop_event(st[0], 100.0, 96.0, pp[0])[0] == pol.NONE
    assert pol.close_intent(st[0], 0.0, 106.0, pp[0]) == (pol.TAKE_PROFIT, 0)
    assert pol.close_intent(st[0], 0.0, 104.9, pp[0]) == (pol.NONE, 0)


def test_take_profit_beats_an_exit_signal_beats_a_partial_step():
    pp, st = entered(
        100.0, exit_threshold=0.0, take_profit=0.3, partial_exits=[0.1], partial_exit_frac=0.5
    )
    assert pol.close_intent(st[0], -1.0, 131.0, pp[0]) == (pol.TAKE_PROFIT, 0)
    assert pol.close_intent(st[0], -1.0, 111.0, pp[0]) == (pol.EXIT_SIGNAL, 0)
    assert pol.close_intent(st[0], 1.0, 111.0, pp[0]) == (pol.PARTIAL_TP, 1)
    assert pol.is_exit(pol.PARTIAL_TP) and not pol.is_exit(pol.ENTRY_SIGNAL)


def test_trailing_stop_follows_the_high_of_earlier_candles():
    pp, st = entered(100.0, stoploss=0.0, trailing_stop=0.1)
    row = st[0]
    assert pol.stop_event(row, 100.0, 95.0, pp[0])[0] == pol.NONE  # 90 not reached
    pol.end_of_bar(row, 120.0)  # the watermark takes this candle's high only afterwards
    assert row["high"] == 120.0
    reason, price = pol.stop_event(row, 115.0, 107.0, pp[0])
    assert reason == pol.TRAILING_STOP and price == pytest.approx(108.0)


def test_trailing_stop_above_stoploss_takes_over():
    pp, st = entered(100.0, stoploss=0.05, trailing_stop=0.02)
    pol.end_of_bar(st[0], 110.0)
    reason, price = pol.stop_event(st[0], 109.0, 107.0, pp[0])
    assert reason == pol.TRAILING_STOP and price == pytest.approx(107.8)


def test_partial_steps_in_order_then_take_profit():
    pp, st = entered(
        100.0, stoploss=0.0, take_profit=0.5, partial_exits=[0.2, 0.1], partial_exit_frac=0.25
    )
    row = st[0]
    assert pol.target_event(row, 109.0, pp[0]) == (pol.NONE, 0)
    assert pol.target_event(row, 115.0, pp[0]) == (pol.PARTIAL_TP, 1)  # levels sorted: 10 %
    assert pol.target_event(row, 125.0, pp[0]) == (pol.PARTIAL_TP, 2)  # both in one candle
    pol.on_partial(row)
    assert pol.target_event(row, 125.0, pp[0]) == (pol.PARTIAL_TP, 1)
    pol.on_partial(row)
    assert pol.target_event(row, 125.0, pp[0]) == (pol.NONE, 0)  # steps used up
    assert pol.target_event(row, 151.0, pp[0]) == (pol.TAKE_PROFIT, 0)


def test_dip_entry_needs_a_dip_and_a_turn_up():
    pp, st, ring = setup(entry_threshold=0.0, dip_entry=True, dip_frac=0.1, dip_lookback=3)
    row, p = st[0], pp[0]

    def candle(h: float, c: float, pred: float) -> int:
        pol.dip_update(row, ring[0], h, c, p)
        return int(pol.on_close(row, pred, p))

    assert candle(100.0, 100.0, 1.0) == pol.NONE  # no dip: plain entries are off in dip mode
    assert candle(100.0, 95.0, 2.0) == pol.NONE  # 5 % below the high: not a dip yet
    assert candle(96.0, 89.0, 1.0) == pol.NONE  # dip armed, but the prediction fell
    assert row["dip_armed"] == 1.0
    assert candle(92.0, 90.0, 0.5) == pol.NONE  # still falling
    assert candle(92.0, 91.0, 0.8) == pol.DIP_ENTRY  # turned up above the threshold


def test_dip_is_disarmed_by_a_close_at_the_recent_high():
    pp, st, ring = setup(entry_threshold=0.0, dip_entry=True, dip_frac=0.1, dip_lookback=2)
    row, p = st[0], pp[0]
    pol.dip_update(row, ring[0], 100.0, 85.0, p)
    assert row["dip_armed"] == 1.0
    pol.dip_update(row, ring[0], 88.0, 87.0, p)
    pol.dip_update(row, ring[0], 89.0, 89.0, p)  # the 100 has left the 2-candle window
    assert row["dip_armed"] == 0.0


def test_params_reject_too_many_partial_steps():
    with pytest.raises(ConfigError, match="partial_exits"):
        pol.params(PolicyConfig(partial_exits=[0.01 * i for i in range(1, 20)]))


def test_reason_names_cover_every_code():
    codes = [getattr(pol, n) for n in dir(pol) if n.isupper() and isinstance(getattr(pol, n), int)]
    reasons = [c for c in codes if c in pol.REASON_NAMES]
    assert set(pol.REASON_NAMES) == set(range(len(pol.REASON_NAMES)))
    assert len(set(pol.REASON_NAMES.values())) == len(pol.REASON_NAMES)
    assert pol.END in reasons
