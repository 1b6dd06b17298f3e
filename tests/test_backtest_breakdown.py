"""`backtest --breakdown day|week|month`: results per pair, per exit reason and per calendar
period, in the report and as tables; the parts add up to the whole."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.test_sweep import make_inputs


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_breakdown_adds_up(run_cli, tmp_path, period):
    o, p = make_inputs(tmp_path, n=1500, m=3, seed=8)
    r = run_cli("backtest", o, "-p", p, "-o", "r.json", "--breakdown", period)
    assert r.code == 0, r.err
    rep = json.loads(Path("r.json").read_text())
    m = rep["metrics"]
    rows = rep["breakdown"]["rows"]
    assert rep["breakdown"]["period"] == period
    # 1500 hourly candles from Monday 2024-01-01: 63 days, 9 ISO weeks (W01..W09), 3 months.
    assert len(rows) == {"day": 63, "week": 9, "month": 3}[period]
    assert [r["period"] for r in rows] == sorted(r["period"] for r in rows)
    assert sum(r["candles"] for r in rows) == rep["span"]["candles"]
    assert sum(r["trades"] for r in rows) == m["trades"]
    growth = math.prod(1 + r["return"] for r in rows)
    assert growth - 1 == pytest.approx(m["total_return"], rel=1e-9, abs=1e-12)
    assert rows[-1]["final_equity"] == pytest.approx(m["final_equity"])
    assert max(r["max_drawdown"] for r in rows) <= m["max_drawdown"] + 1e-12
    exits = rep["per_exit_reason"]
    assert sum(x["trades"] for x in exits.values()) == m["trades"]
    assert {k for k, v in rep["exit_reasons"].items() if v} == set(exits)
    pnl = sum(x["pnl"] for x in exits.values())
    assert pnl == pytest.approx(sum(s["pnl"] for s in rep["per_symbol"].values()))
    for title in ("per pair", "per exit reason", f"per {period}"):
        assert title in r.err
    if period == "week":
        assert rows[0]["period"] == "2024-W01"


def test_breakdown_needs_a_known_period(run_cli, tmp_path):
    o, p = make_inputs(tmp_path, n=100, m=1)
    r = run_cli("backtest", o, "-p", p, "--breakdown", "year")
    assert r.code == 2 and "day, week, month" in r.err
    r = run_cli("backtest", o, "-p", p, "-o", "r.json")
    assert r.code == 0 and "breakdown" not in json.loads(Path("r.json").read_text())
