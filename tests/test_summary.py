"""`tradekit summary`: the day/week text for a phone (golden files), its JSON, the equity PNG,
the window's anchor, and that it stays light (no pandas/numpy/matplotlib without --png)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import cli_env
from tradekit.ledger import Ledger, LedgerView, SideLedger

GOLDEN = Path(__file__).parent / "golden"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
T_END = 1_710_100_800_000  # 2024-03-10 20:00 UTC: the last equity candle
NOW = "2024-03-10T20:30:00Z"


def equity_at(i: int) -> float:
    """A fixed, bumpy curve: a rise, a dip and a partial recovery over 10 days of hours."""
    return round(10_000 + 400 * math.sin(i / 40) - 2.5 * i + (35 if i % 7 == 0 else 0), 2)


def make_ledger(path: Path, *, trades: int = 12) -> Path:
    """A small paper ledger: 10 days of hourly equity ending at T_END, closed trades spread
    over them (the last ones inside the final day), warning/error/info events, one open
    position, a run that has stopped and the engine's saved state."""
    n = 240
    start = T_END - (n - 1) * HOUR_MS
    with Ledger(path) as led:
        led.set_meta(mode="paper", symbols="BTC/USDT,ETH/USDT")
        peak = 0.0
        rows = []
        for i in range(n):
            eq = equity_at(i)
            peak = max(peak, eq)
            rows.append((start + i * HOUR_MS, eq, eq - 600.0, 600.0, peak, 0))
        with led.tx() as db:
            db.executemany("INSERT INTO equity VALUES (?, ?, ?, ?, ?, ?)", rows)
            for k in range(trades):
                exit_ms = T_END - (trades - 1 - k) * 17 * HOUR_MS
                sym = ("BTC/USDT", "ETH/USDT")[k % 2]
                pnl = round((k * 37 % 11 - 5) * 6.5, 2)
                db.execute(
                    "INSERT INTO trades (symbol, entry_ms, exit_ms, entry_price, exit_price, "
                    "qty, fees, pnl, pnl_pct, exit_reason, entry_reason, mae, partial_exits, "
                    "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0.01, 0, 0)",
                    (
                        sym,
                        exit_ms - 5 * HOUR_MS,
                        exit_ms,
                        100.0,
                        100.0 + pnl / 10,
                        10.0,
                        1.2,
                        pnl,
                        pnl / 1000,
                        ("exit_signal", "stoploss")[k % 3 == 0],
                        "entry_signal",
                    ),
                )
            events = [
                (T_END - 3 * HOUR_MS, "warning", "gap", "missed 2 candles of BTC/USDT"),
                (T_END - 2 * HOUR_MS, "warning", "gap", "missed 1 candle of ETH/USDT"),
                (T_END - HOUR_MS, "error", "exchange", "Kraken EService:Unavailable " * 3),
                (T_END - HOUR_MS, "info", "control", "pause: ok"),
                (T_END - 3 * DAY_MS, "warning", "orphan", "LTC/USDT held but not configured"),
            ]
            db.executemany(
                "INSERT INTO events (ts_ms, level, kind, message) VALUES (?, ?, ?, ?)", events
            )
            db.execute(
                "INSERT INTO positions VALUES ('BTC/USDT', 0.01, 60000, ?, 600, 61250.5, "
                "57000, 'entry_signal', ?)",
                (T_END - 4 * HOUR_MS, T_END),
            )
            db.execute(
                "INSERT INTO runs (pid, mode, started_ms, heartbeat_ms, stopped_ms, "
                "model_version, exit) VALUES (999999, 'paper', ?, ?, ?, 'abc123def456', 'ok')",
                (start, T_END, T_END),
            )
        led.save_engine(
            {
                "equity": rows[-1][1],
                "cash": rows[-1][2],
                "risk": [19792, T_END + 4 * HOUR_MS, rows[-24][1], peak, 0.0],
                "paused": False,
                "last_candle_ms": T_END,
            },
            T_END,
        )
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return make_ledger(tmp_path / "state" / "tradekit.db")


@pytest.mark.parametrize("period", ["day", "week"])
def test_golden_text(run_cli, ledger, period):
    # The person is in Vienna: 20:00 UTC in March is 21:00 CET on the phone.
    env = {"TRADEKIT_NOTIFY__TIMEZONE": "Europe/Vienna"}
    r = run_cli("summary", "--period", period, "--state", str(ledger), "--now", NOW, env=env)
    assert r.code == 0, r.err
    golden = GOLDEN / f"summary_{period}.txt"
    if os.environ.get("TRADEKIT_UPDATE_GOLDEN"):
        golden.write_text(r.out, encoding="utf-8")
    assert r.out == golden.read_text(encoding="utf-8")
    # Fit for a phone: no line wider than 40 columns.
    assert max(len(line) for line in r.out.splitlines()) <= 40


def test_json_figures_match_the_ledger(run_cli, ledger):
    r = run_cli("summary", "--state", str(ledger), "--now", NOW, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "summary/1" and doc["period"] == "day"
    start_ms = doc["start_ms"]
    assert doc["end_ms"] - start_ms == DAY_MS
    with LedgerView(ledger) as led:
        trades = led.db.execute(
            "SELECT pnl FROM trades WHERE exit_ms > ? AND exit_ms <= ?", (start_ms, doc["end_ms"])
        ).fetchall()
        peak = led.db.execute("SELECT max(equity) FROM equity").fetchone()[0]
    assert doc["trades"] == len(trades) == 2
    assert doc["realized_pnl"] == pytest.approx(sum(t[0] for t in trades))
    assert doc["wins"] + doc["losses"] == 2
    assert doc["equity"] == equity_at(239)
    assert doc["change"] == pytest.approx(equity_at(239) - equity_at(215))
    assert doc["drawdown_from_peak"] == pytest.approx(1 - equity_at(239) / peak)
    assert [(e["level"], e["kind"], e["count"]) for e in doc["events"]] == [
        ("error", "exchange", 1),
        ("warning", "gap", 2),
    ]
    assert doc["positions"][0]["unrealized_pnl"] == pytest.approx(0.01 * 61250.5 - 600)
    assert doc["model_version"] == "abc123def456" and doc["mode"] == "paper"


def test_anchor_is_the_latest_candle(run_cli, ledger):
    r = run_cli("summary", "--state", str(ledger), "--json")
    doc = json.loads(r.out)
    assert doc["end_ms"] == T_END and doc["last_candle_ms"] == T_END
    assert doc["stale_days"] > 100  # the fixed ledger is from 2024
    assert "! last candle" in run_cli("summary", "--state", str(ledger)).out


def test_risk_state_paused_and_killed(run_cli, ledger):
    with Ledger(ledger) as led:
        doc = led.load_engine()
        assert doc is not None
        led.save_engine({**doc, "paused": True}, T_END)
        assert "Risk: paused" in run_cli("summary", "--state", str(ledger)).out
    with SideLedger(ledger) as side:
        cid = side.request("kill")
    with Ledger(ledger) as led:
        led.control_done(cid, "closed 1 position")
    out = run_cli("summary", "--state", str(ledger)).out
    assert "Risk: killed" in out


def test_png(run_cli, ledger, tmp_path):
    r = run_cli("summary", "--state", str(ledger), "--period", "week", "--png", "out/eq.png")
    assert r.code == 0, r.err
    data = (tmp_path / "out" / "eq.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["eq.png"]  # no temp file left
    assert r.out.startswith("tradekit weekly summary")


def test_missing_ledger_and_bad_period(run_cli):
    r = run_cli("summary", "--state", "nope.db")
    assert r.code == 3 and "nope.db" in r.err
    r = run_cli("summary", "--period", "month", "--state", "nope.db")
    assert r.code == 2 and "--period" in r.err


def test_summary_stays_light(ledger):
    code = (
        "import sys; from tradekit.cli.main import main;"
        f"rc = main(['summary', '--state', {str(ledger)!r}]);"
        "heavy = [m for m in ('pandas', 'numpy', 'matplotlib', 'lightgbm', 'torch', 'ccxt',"
        " 'pyarrow', 'httpx') if m in sys.modules];"
        "print(rc, heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), check=True
    ).stdout
    assert out.strip().endswith("0 []"), out


def test_times_are_the_persons_across_a_dst_change(run_cli, ledger):
    """New York springs forward on 2024-03-10: the day's window starts in EST, ends in EDT.
    The JSON keeps UTC and milliseconds and names the zone."""
    env = {"TRADEKIT_NOTIFY__TIMEZONE": "America/New_York"}
    r = run_cli("summary", "--state", str(ledger), "--now", NOW, env=env)
    assert r.code == 0, r.err
    assert "from 2024-03-09 15:30 EST\nto   2024-03-10 16:30 EDT\n" in r.out
    js = run_cli("summary", "--state", str(ledger), "--now", NOW, "--json", env=env)
    doc = json.loads(js.out)
    assert doc["timezone"] == "America/New_York"
    assert (doc["start"], doc["end"]) == ("2024-03-09 20:30", "2024-03-10 20:30")  # UTC
    assert doc["end_ms"] - doc["start_ms"] == DAY_MS


def test_default_timezone_is_the_systems(run_cli, ledger, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    r = run_cli("summary", "--state", str(ledger), "--now", NOW)
    assert "to   2024-03-11 05:30 JST" in r.out
