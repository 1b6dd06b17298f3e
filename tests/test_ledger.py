"""Ledger schema migrations and the v2 phone tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tradekit.errors import InputError
from tradekit.live.ledger import MIGRATIONS, VERSION, Ledger


def _v1(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    for stmt in MIGRATIONS[0].split(";\n"):
        if stmt.strip():
            db.execute(stmt)
    db.execute("INSERT INTO meta (key, value) VALUES ('mode', 'paper')")
    db.execute(
        "INSERT INTO events (ts_ms, level, kind, message) VALUES (1, 'info', 'start', 'hello')"
    )
    db.execute("PRAGMA user_version = 1")
    db.close()


def test_v1_ledger_migrates_keeping_its_history(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _v1(path)
    with pytest.raises(InputError, match="schema version 1"):
        Ledger(path, readonly=True)  # readers never migrate: they ask for a run first
    with Ledger(path) as led:
        assert led.db.execute("PRAGMA user_version").fetchone()[0] == VERSION == 2
        assert led.meta() == {"mode": "paper"}
        assert led.db.execute("SELECT message FROM events").fetchone()[0] == "hello"
        mid = led.message("in", "+431", "status", "accepted", answer="ok")
        led.ask_usage(
            "none", "offline", "how are we?", input_tokens=0, output_tokens=0, cost_usd=0.0,
            latency_ms=3, status="ok",
        )  # fmt: skip
        assert mid == 1
    with Ledger(path, readonly=True) as led:
        row = led.db.execute("SELECT peer, text, status FROM messages").fetchone()
        assert tuple(row) == ("+431", "status", "accepted")


@pytest.mark.parametrize("table", ["messages", "asks"])
def test_phone_tables_are_append_only(tmp_path: Path, table: str) -> None:
    with Ledger(tmp_path / "l.db") as led:
        led.message("out", "+431", "hi", "sent")
        led.ask_usage(
            "none", "m", "q", input_tokens=1, output_tokens=2, cost_usd=0.1, latency_ms=1,
            status="ok",
        )  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            led.db.execute(f"UPDATE {table} SET ts_ms = 0")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            led.db.execute(f"DELETE FROM {table}")


def test_courier_state_is_kept_out_of_meta(tmp_path: Path) -> None:
    """An empty meta means a fresh ledger to `run`: the notifier's state must not touch it."""
    with Ledger(tmp_path / "l.db") as led:
        led.db.execute("INSERT INTO courier (key, value) VALUES ('events', '5')")
        assert led.meta() == {}
