"""The ledger package: migrations keep history, readers never write or migrate, the escaped
read-only URI, the side writer's tables, append-only history."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tradekit.errors import InputError
from tradekit.ledger import VERSION, Ledger, LedgerView, SideLedger
from tradekit.ledger.schema import MIGRATIONS


def _at(path: Path, version: int) -> None:
    """A ledger file as a tradekit of schema ``version`` left it, with some history."""
    db = sqlite3.connect(path, isolation_level=None)
    for v in range(version):
        for stmt in MIGRATIONS[v].split(";\n"):
            if stmt.strip():
                db.execute(stmt)
    db.execute("INSERT INTO meta (key, value) VALUES ('mode', 'live')")
    db.execute(
        "INSERT INTO events (ts_ms, level, kind, message) VALUES (1, 'info', 'start', 'hello')"
    )
    db.execute(
        "INSERT INTO orders (key, userref, symbol, side, kind, qty, candle_ms, reason, status, "
        "filled, avg_price, fee, created_ms, updated_ms) VALUES ('BTC/USD|1|entry', 7, "
        "'BTC/USD', 'buy', 'market', 0.5, 1, 'entry_signal', 'closed', 0.5, 40000, 52, 1, 1)"
    )
    db.execute(
        "INSERT INTO fills (order_key, symbol, side, qty, price, fee, reason, candle_ms, "
        "created_ms) VALUES ('BTC/USD|1|entry', 'BTC/USD', 'buy', 0.5, 40000, 52, "
        "'entry_signal', 1, 1)"
    )
    db.execute(f"PRAGMA user_version = {version}")
    db.close()


@pytest.mark.parametrize("version", [1, 2])
def test_old_ledgers_migrate_keeping_their_history(tmp_path: Path, version: int) -> None:
    path = tmp_path / f"v{version}.db"
    _at(path, version)
    before = path.read_bytes()
    with pytest.raises(InputError, match=f"schema version {version}"):
        LedgerView(path)  # readers never migrate: they ask for a run first
    with pytest.raises(InputError, match=f"schema version {version}"):
        SideLedger(path)  # nor does the phone or a control command
    assert path.read_bytes() == before
    with Ledger(path) as led:
        assert led.db.execute("PRAGMA user_version").fetchone()[0] == VERSION == 3
        assert led.meta() == {"mode": "live"}
    with LedgerView(path) as view:
        assert [e["message"] for e in view.events()] == ["hello"]
        (fill,) = view.fills()
        assert (fill["order_key"], fill["seq"], fill["qty"]) == ("BTC/USD|1|entry", 1, 0.5)
        assert fill["value"] == pytest.approx(20_000.0)
        (order,) = view.orders()
        # What the old ledger booked stays booked: recovery does not book it a second time.
        assert (order["booked_qty"], order["booked_fee"]) == (0.5, 52.0)
        assert order["booked_cost"] == pytest.approx(20_000.0)


def test_a_reader_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Ledger(path).close()
    with LedgerView(path) as view, pytest.raises(sqlite3.OperationalError, match="readonly"):
        view.db.execute("INSERT INTO events (ts_ms, level, kind, message) VALUES (1, 'a', 'b', '')")


@pytest.mark.parametrize("name", ["bot#2", "a?b", "50%", "with space"])
def test_readers_open_the_right_file_whatever_its_path(tmp_path: Path, name: str) -> None:
    """`file:{path}` unescaped would read `bot` for `bot#2/l.db` (a URI fragment)."""
    (tmp_path / "bot").mkdir()
    Ledger(tmp_path / "bot" / "l.db").close()  # the file a raw URI would open
    target = tmp_path / name / "l.db"
    with Ledger(target) as led:
        led.event("info", "start", f"I am {name}")
    with LedgerView(target) as view:
        assert [e["message"] for e in view.events()] == [f"I am {name}"]


def test_side_writer_writes_its_tables_only_and_prunes_strangers(tmp_path: Path) -> None:
    path = tmp_path / "l.db"
    Ledger(path).close()
    with SideLedger(path) as side:
        side.message("in", "+43999", "hi", "ignored")
        side.message("in", "+431", "status", "accepted")
        side.request("pause")
        side.set_state("cursors", {"events": 3})
        assert side.state("cursors") == {"events": 3}
        assert side.count_messages(peer="+43999", status="ignored", since_ms=0) == 1
        assert side.prune_ignored(before_ms=2**62) == 1  # the stranger's
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            side.db.execute("DELETE FROM messages")  # an owner's message stays
    with LedgerView(path) as view:
        assert [m["text"] for m in view.messages()] == ["status"]
        assert [c["command"] for c in view.pending_controls()] == ["pause"]
        assert view.meta() == {}  # a fresh ledger stays fresh for `run`


@pytest.mark.parametrize("table", ["messages", "asks", "fills", "adjustments"])
def test_history_is_append_only(tmp_path: Path, table: str) -> None:
    path = tmp_path / "l.db"
    with Ledger(path) as led:
        led.add_fill("k", "BTC/USD", "buy", 1.0, 10.0, 10.0, 0.1, "entry_signal", 1)
        led.add_adjustment("BTC", "BTC/USD", 0.0, 1.0, 10.0, "adopt")
    with SideLedger(path) as side:
        side.message("out", "+431", "hi", "sent")
        side.ask_usage(
            "none", "m", "q", input_tokens=1, output_tokens=2, cost_usd=0.1, latency_ms=1,
            status="ok",
        )  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            side.db.execute(f"UPDATE {table} SET id = id + 100")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            side.db.execute(f"DELETE FROM {table}")


def test_a_fill_booked_in_parts_gets_one_row_per_part(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.db") as led:
        led.add_fill("k", "BTC/USD", "buy", 0.3, 10.0, 3.0, 0.01, "entry_signal", 1)
        led.add_fill("k", "BTC/USD", "buy", 0.2, 11.0, 2.2, 0.01, "entry_signal", 1)
    with LedgerView(tmp_path / "l.db") as view:
        assert [(f["seq"], f["qty"]) for f in view.fills(order_key="k")] == [(1, 0.3), (2, 0.2)]
