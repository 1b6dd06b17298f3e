"""tradekit.report: one snapshot of the ledger drawn by every view, and one formatting module
(English and German numbers). The ledger is the fixed one of tests/test_summary.py, written by
the real Ledger classes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_summary import T_END, make_ledger
from tradekit.ledger import Ledger, LedgerView, SideLedger
from tradekit.report import snapshot as sn
from tradekit.report.fmt import EN, Fmt, language
from tradekit.report.text import phone, table

STATUS_1 = {  # the keys of status/1 as first released: every one stays
    "schema", "ledger", "mode", "state", "running", "paused", "halted", "halts", "pid",
    "model_version", "last_candle_ms", "heartbeat_ms", "equity", "cash", "peak_equity",
    "drawdown", "realized_pnl_today", "trades_today", "realized_pnl_total", "trades_total",
    "fees_paid", "positions", "open_orders", "last_decisions", "missed_candles", "recent_events",
}  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return make_ledger(tmp_path / "state" / "tradekit.db")


# -- formatting ----------------------------------------------------------------------------------


def test_english_and_german_numbers() -> None:
    de = Fmt("de-AT", "EUR")
    assert EN.money(1234567.891) == "1,234,567.89"
    assert de.money(1234567.891) == "1.234.567,89"
    assert de.money(-12.5, signed=True, cur=True) == "-12,50 EUR"
    assert EN.money(12.5, signed=True) == "+12.50"
    assert EN.pct(0.01234) == "+1.23 %" and de.pct(-0.2, signed=False) == "-20,00 %"
    assert de.qty(0.000123456789) == "0,00012345679"
    assert EN.price(61250.5) == "61,250.50" and de.price(0.123456789) == "0,123457"
    for bad in (None, "x", math.nan, math.inf, True):
        assert EN.money(bad) == EN.pct(bad) == de.qty(bad) == "-"
    assert language("de_DE") == "de" and language("fr") == "en" and language("") == "en"


@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False), st.booleans())
def test_german_is_english_with_the_separators_swapped(v: float, signed: bool) -> None:
    en, de = EN.money(v, signed=signed), Fmt("de").money(v, signed=signed)
    assert de == en.replace(",", "_").replace(".", ",").replace("_", ".")
    assert float(de.replace(".", "").replace(",", ".")) == pytest.approx(round(v, 2), abs=0.006)


# -- the snapshot ----------------------------------------------------------------------------


def test_snapshot_keeps_status_1_and_adds_pending_controls(ledger: Path) -> None:
    snap = sn.load(ledger)
    doc = snap.as_json()
    assert set(doc) >= STATUS_1 and doc["schema"] == "status/1"
    assert doc["pending_controls"] == [] and doc["state"] == "stopped"
    assert doc["currency"] == "USDT" and doc["risk"]["text"] == "ok"
    with SideLedger(ledger) as side:
        cid = side.request("pause")
    snap = sn.load(ledger)
    assert not snap.paused and [c.command for c in snap.pending] == ["pause"]
    assert snap.state == "stopped, pause pending"
    assert "not applied yet: no loop is running" in (snap.pending_text() or "")
    assert json.loads(sn.dumps(snap))["pending_controls"][0]["id"] == cid
    assert "requested  pause at" in table(snap) and "pause: requested, not applied" in phone(snap)
    with Ledger(ledger) as led:  # what the loop does when it applies it
        led.control_done(cid, "paused")
        led.save_engine({**(led.load_engine() or {}), "paused": True}, T_END)
    snap = sn.load(ledger)
    assert snap.pending == () and snap.paused and snap.state == "stopped, paused"


def test_every_view_draws_the_same_figures(ledger: Path) -> None:
    """The table, the phone, the JSON and the API documents show one snapshot's numbers."""
    from tradekit.report import account

    with LedgerView(ledger) as view, view.snapshot():
        snap = sn.build(view)
        bal = account.balance(view, snap)
        prof = account.profit(view, snap)
    eq = snap.equity
    assert eq is not None
    assert f"equity     {EN.money(eq)}" in table(snap)
    assert f"equity {EN.money(eq)} USDT" in phone(snap)
    assert f"equity {Fmt('de').money(eq)} USDT" in phone(snap, Fmt("de", snap.currency))
    assert snap.as_json()["equity"] == bal["total"] == eq
    assert prof["profit_closed_coin"] == pytest.approx(snap.realized_pnl_total)
    pos = snap.positions[0]
    assert pos.unrealized_pnl == pytest.approx(0.01 * 61250.5 - 600)
    assert snap.as_json()["positions"][0]["unrealized_pnl"] == pos.unrealized_pnl
