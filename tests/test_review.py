"""`tradekit review`: the night's evidence as review/1 (golden file), kept beside the ledger
where `ask` finds it; the model's age and gate receipt; and `ask` summarising it, the offline
provider included (English and German), with --context review.json recognised too."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.test_summary import HOUR_MS, NOW, T_END, make_ledger
from tradekit.ledger import Ledger

GOLDEN = Path(__file__).parent / "golden"
VOLATILE = ("generated_at",)


def busy_ledger(path: Path) -> Path:
    """test_summary's ledger, plus a last day with rejected entries, a halt and a trade that
    carries its excursions, and a drift report beside it."""
    make_ledger(path)
    with Ledger(path) as led:
        rows = []
        for k, reason in enumerate(
            ["reject_max_positions"] * 3 + ["paused", "reject_min_order", "stale_signal"]
        ):
            t = T_END - (k + 1) * HOUR_MS
            rows.append((t, "ETH/USDT", "open", "skip", reason, None, 100.0, 0.0, "m1", ""))
        rows.append((T_END, "BTC/USDT", "open", "enter", "ok", None, 100.0, 1.0, "m1", ""))
        rows.append(
            (T_END - 30 * HOUR_MS, "BTC/USDT", "open", "skip", "paused", None, 1.0, 0.0, "m1", "")
        )  # fmt: skip  (before the day: not counted)
        led.decisions(rows)
        led.add_trade(
            {
                "symbol": "ETH/USDT", "entry_ms": T_END - 9 * HOUR_MS, "exit_ms": T_END - HOUR_MS,
                "entry_price": 100.0, "exit_price": 102.0, "qty": 1.0, "fees": 0.4, "pnl": 1.6,
                "pnl_pct": 0.016, "exit_reason": "take_profit", "entry_reason": "entry_signal",
                "mae": 0.012, "mfe": 0.031, "partial_exits": 0,
            }
        )  # fmt: skip
        with led.tx() as db:
            db.execute(
                "INSERT INTO events (ts_ms, level, kind, message, data) VALUES (?, ?, ?, ?, ?)",
                (T_END - 2 * HOUR_MS, "warning", "halt", "daily loss halt: no new entries today",
                 json.dumps({"halt": "daily_loss", "change": "start", "candle_ms": T_END})),
            )  # fmt: skip
    drift = {
        "schema": "drift/1",
        "checked_at": "2024-03-10T06:30:00Z",
        "status": "warn",
        "alerts": [],
        "warnings": ["features shifting: vol_20 0.31 (limit 0.29)"],
        "model": {"version": "abc123def456"},
        "retrain": {"recommended": False, "why": []},
        "pause": {"requested": False},
    }
    path.with_name("tradekit.drift.json").write_text(json.dumps(drift))
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return busy_ledger(tmp_path / "state" / "tradekit.db")


def stable(doc: dict[str, Any], ledger: Path) -> dict[str, Any]:
    text = json.dumps({k: v for k, v in doc.items() if k not in VOLATILE}, sort_keys=True)
    return json.loads(text.replace(str(ledger.parent), "<state>"))


def test_golden_review(run_cli, ledger):
    r = run_cli("review", "--state", str(ledger), "--model", "nomodel", "--now", NOW, "-o", "-")
    assert r.code == 0, r.err
    doc = stable(json.loads(r.out), ledger)
    golden = GOLDEN / "review_day.json"
    if os.environ.get("TRADEKIT_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert doc == json.loads(golden.read_text(encoding="utf-8"))
    # The figures the golden file pins, read against the ledger's own rows.
    assert doc["rejects"] == {"reject_max_positions": 3, "paused": 1, "reject_min_order": 1,
                              "stale_signal": 1}  # fmt: skip
    assert doc["decisions"] == {"enter": 1, "skip": 6}
    assert doc["halts"][0]["halt"] == "daily_loss"
    eth = [t for t in doc["trades"]["list"] if t["exit_reason"] == "take_profit"]
    assert eth[0]["mae"] == 0.012 and eth[0]["mfe"] == 0.031
    assert doc["candidates"] == [] and doc["drift"]["status"] == "warn"


def test_review_is_kept_beside_the_ledger_and_week(run_cli, ledger):
    r = run_cli("review", "--state", str(ledger), "--period", "week", "--now", NOW)
    assert r.code == 0, r.err
    doc = json.loads(ledger.with_name("tradekit.review.json").read_text())
    assert doc["schema"] == "review/1" and doc["period"]["name"] == "week"
    assert doc["period"]["end_ms"] - doc["period"]["start_ms"] == 7 * 24 * HOUR_MS
    assert doc["trades"]["count"] > 3
    assert "rejected entries 7" in r.err and "drift warn" in r.err  # the earlier one too
    r = run_cli("review", "--state", str(ledger), "--period", "month")
    assert r.code == 2 and "--period" in r.err


def test_model_age_and_receipt(run_cli, ledger):
    from tests.test_models import train_ok, write_features

    write_features("f.parquet")
    doc = train_ok(run_cli, "f.parquet", "-o", "model")
    r = run_cli("review", "--state", str(ledger), "--model", "model", "-o", "-")
    assert r.code == 0, r.err
    m = json.loads(r.out)["model"]
    assert m["available"] and m["version"] == doc["version"] and 0 <= m["age_days"] < 1
    assert m["receipt"] == {"present": False, "passed": False, "problem": "no gate verdict "
                            "(verdict.json)", "failed": [], "judged_at": None}  # fmt: skip


def test_ask_summarises_the_review_offline(run_cli, ledger):
    r = run_cli("review", "--state", str(ledger), "--model", "nomodel", "--now", NOW)
    assert r.code == 0, r.err
    r = run_cli("ask", "How was the night? Any drift?", "--state", str(ledger),
                "--provider", "none")  # fmt: skip
    assert r.code == 0, r.err
    assert "Review of the day to 2024-03-10" in r.out
    assert "Rejected entries: 6 (reject_max_positions 3" in r.out
    assert "Drift: warn" in r.out and "Candidates: 0." in r.out
    r = run_cli("ask", "Wie war die Nacht?", "--state", str(ledger), "--provider", "none",
                env={"TRADEKIT_ASK__LANGUAGE": "de"})  # fmt: skip
    assert r.code == 0, r.err
    assert "Rückblick auf den Zeitraum day" in r.out and "Abgelehnte Einstiege: 6" in r.out


def test_the_llm_context_holds_the_review(ledger, tmp_path):
    from tradekit.ask.context import build_context
    from tradekit.config import load_config

    cfg = load_config(None, environ={})
    ctx = build_context(cfg, state=str(ledger), model="nomodel")
    assert "review" not in ctx.facts  # none written yet
    from tradekit.review import build_review

    doc = build_review(state=ledger, model_dir="nomodel", at_ms=T_END)
    other = tmp_path / "elsewhere.json"
    other.write_text(json.dumps(doc))
    ctx = build_context(cfg, state=str(tmp_path / "none.db"), model="nomodel",
                        context_files=[str(other)])  # fmt: skip
    assert ctx.facts["review"]["rejects_total"] == 6
    assert "nightly review (review/1)" in ctx.text
    assert "rejected entries by reason: reject_max_positions 3" in ctx.text
