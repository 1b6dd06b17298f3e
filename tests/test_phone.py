"""The phone's Freqtrade-style commands (profit, daily, balance, trades, performance, positions,
model) and ``forceexit SYMBOL``, sent through the local signal-cli-rest-api
(tests/servers/signal.py) over real ledgers: the fixed one of tests/test_summary.py, and for
forceexit one the loop trades against the Kraken-speaking server."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result
from tests.servers.kraken import KrakenServer
from tests.servers.signal import SignalServer, envelope
from tests.test_summary import DAY_MS, T_END, make_ledger
from tradekit.config import Config, load_config
from tradekit.ledger import Ledger, SideLedger
from tradekit.notify.commands import Commander
from tradekit.notify.signal import SignalClient
from tradekit.timeutil import zone

OWNER = "+4366012345678"
RunCli = Callable[..., Result]


@pytest.fixture
def signal() -> Iterator[SignalServer]:
    with SignalServer(OWNER) as s:
        yield s


def _cfg(tmp: Path, language: str = "auto") -> Config:
    cfg = load_config(None)
    return replace(
        cfg,
        run=replace(cfg.run, model=str(tmp / "models" / "current")),
        ask=replace(cfg.ask, language=language),
    )


class Phone:
    """The owner's phone: each text goes through the Signal server to a Commander."""

    def __init__(self, cfg: Config, signal: SignalServer, ledger: Path, clock: int) -> None:
        self.signal = signal
        self.side = SideLedger(ledger)
        self.client = SignalClient(signal.url, OWNER)
        self.cmd = Commander(
            cfg, self.side, self.client, state_path=str(ledger), allow={OWNER},
            clock=lambda: clock, tz=zone("Europe/Vienna"),
        )  # fmt: skip

    def say(self, text: str) -> str:
        self.signal.queue(envelope(OWNER, text))
        for doc in self.client.receive():
            self.cmd.handle(doc)
        return self.signal.state.messages()[-1]

    def close(self) -> None:
        self.client.close()
        self.side.close()


@pytest.fixture
def phone(signal: SignalServer, tmp_path: Path) -> Iterator[Phone]:
    ledger = make_ledger(tmp_path / "state" / "tradekit.db")
    p = Phone(_cfg(tmp_path), signal, ledger, T_END)
    yield p
    p.close()


def _rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return [tuple(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def test_read_commands_answer_from_the_ledger(phone: Phone, tmp_path: Path) -> None:
    db = tmp_path / "state" / "tradekit.db"
    (total,) = _rows(db, "SELECT round(sum(pnl), 2) FROM trades")[0]
    profit = phone.say("profit")
    assert f"closed {total:+,.2f} USDT" in profit and "in 12 trade(s)" in profit
    daily = phone.say("/daily 3")
    days = [T_END - T_END % DAY_MS - k * DAY_MS for k in range(3)]
    got = _rows(db, "SELECT coalesce(sum(pnl), 0) FROM trades WHERE exit_ms >= ?", days[-1])
    assert daily.count("\n2024-03-") == 3 and "2024-03-10 " in daily and "2024-03-08 " in daily
    assert f"sum {got[0][0]:+,.2f} USDT" in daily
    balance = phone.say("balance")
    assert "total 9,281.17 USDT" in balance and "BTC 0.01 = 612.50" in balance
    trades = phone.say("trades 2")
    newest = _rows(db, "SELECT symbol, pnl FROM trades ORDER BY exit_ms DESC LIMIT 2")
    lines = trades.splitlines()[1:]
    assert [ln.split()[1] for ln in lines] == [s for s, _ in newest]
    assert "2024-03-10 21:00 CET" in lines[0]  # the person's time
    perf = phone.say("performance")
    assert perf.splitlines()[1].startswith("1. ") and "BTC/USDT" in perf and "ETH/USDT" in perf
    pos = phone.say("positions")
    assert "• BTC/USDT 0.01 @ 60,000.00" in pos and "stop 57,000.00" in pos
    model = phone.say("model")
    assert model.startswith("🧠 model: none deployed") and "abc123def456" in model
    assert "daily: expected a number from 1 to 31" in phone.say("daily 99")
    assert "trades: expected a number" in phone.say("trades x")
    help_text = phone.say("help")
    for word in ("profit", "daily", "balance", "trades", "performance", "positions", "model",
                 "forceexit"):  # fmt: skip
        assert f"\n{word}" in help_text


def test_german_numbers_when_the_language_is_german(signal: SignalServer, tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "state" / "tradekit.db")
    p = Phone(_cfg(tmp_path, language="de"), signal, ledger, T_END)
    try:
        assert "total 9.281,17 USDT" in p.say("balance")
        assert "• BTC/USDT 0,01 @ 60.000,00" in p.say("status")
    finally:
        p.close()


def test_forceexit_needs_an_open_position_and_a_code(phone: Phone, tmp_path: Path) -> None:
    db = tmp_path / "state" / "tradekit.db"

    def controls() -> list[str]:
        return [r[0] for r in _rows(db, "SELECT command FROM controls ORDER BY id")]

    assert "no open position in ETH/USDT" in phone.say("forceexit ETH/USDT")
    assert "Send `forceexit SYMBOL` (open: BTC/USDT)" in phone.say("forceexit")
    ask = phone.say("forceexit btc")  # the base names the one held BTC pair
    code = re.search(r"forceexit BTC/USDT (\d{6})", ask)
    assert code is not None, ask
    wrong = "000000" if code[1] != "000000" else "111111"
    assert "wrong code; nothing done" in phone.say(f"forceexit BTC/USDT {wrong}")
    assert "no forceexit pending" in phone.say(f"forceexit BTC/USDT {code[1]}")  # spent
    assert controls() == []
    code = re.search(r"(\d{6})", phone.say("forceexit BTC/USDT"))
    assert code is not None
    reply = phone.say(f"forceexit BTC/USDT {code[1]}")
    assert reply.startswith("forceexit BTC/USDT: queued, not applied"), reply
    assert controls() == ["forceexit:BTC/USDT"]
    assert "⏳ forceexit:BTC/USDT: requested, not applied yet" in phone.say("status")


def test_forceexit_sells_one_position_when_the_loop_applies_it(
    run_cli: RunCli,
    kraken: KrakenServer,
    kraken_env: dict[str, str],
    signal: SignalServer,
    tmp_path: Path,
) -> None:
    from tests.test_run import SYMBOLS, _env, _predictions, _q, _status

    env = _env(kraken_env, tmp_path)
    preds = _predictions(tmp_path / "preds.parquet")
    assert run_cli("run", "--once", "-p", str(preds), env=env).code == 0
    db = tmp_path / "state" / "ledger.db"
    assert {r["symbol"] for r in _q(tmp_path, "SELECT symbol FROM positions")} == set(SYMBOLS)
    p = Phone(_cfg(tmp_path), signal, db, kraken.state.now_ms)
    try:
        code = re.search(r"(\d{6})", p.say("forceexit BTC/USD"))
        assert code is not None
        assert "queued" in p.say(f"forceexit BTC/USD {code[1]}")
    finally:
        p.close()
    r = run_cli("run", "--once", "-p", str(preds), env=env)
    assert r.code == 0, r.err
    snap = _status(run_cli, env)
    assert [x["symbol"] for x in snap["positions"]] == ["BTC/USDT"]
    assert snap["paused"] is False and snap["pending_controls"] == []
    trades = _q(tmp_path, "SELECT symbol, exit_reason FROM trades")
    assert [(t["symbol"], t["exit_reason"]) for t in trades] == [("BTC/USD", "forceexit")]
    done = _q(tmp_path, "SELECT command, result FROM controls")
    assert done[0]["command"] == "forceexit:BTC/USD" and "closed BTC/USD" in done[0]["result"]
    assert _q(tmp_path, "SELECT count(*) AS n FROM decisions WHERE reason = 'forceexit'")[0]["n"]
    with Ledger(db) as led:  # the loop's own ledger still opens: nothing half-written
        assert led.pending_controls() == []
