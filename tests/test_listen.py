"""``tradekit listen`` against a local signal-cli-rest-api (tests/servers/signal.py): commands
only from allow-listed numbers (dataMessage and the linked-device syncMessage shapes), the kill
confirmation code, poll and WebSocket receive, and the courier: ledger rows as phone lines,
delivered exactly once through a Signal outage while a replay trades beside it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal as sig
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Result, cli_env
from tests.servers.signal import SignalServer, envelope, receipt
from tradekit.config import load_config
from tradekit.ledger import Ledger, SideLedger, now_ms
from tradekit.notify import text as tx
from tradekit.notify.commands import Commander
from tradekit.notify.courier import Courier
from tradekit.notify.listen import listen
from tradekit.notify.signal import SignalClient

OWNER = "+4366012345678"  # the account tradekit sends from (linked to the owner's phone)
STRANGER = "+15550001111"
FRIEND = "+4366087654321"

RunCli = Callable[..., Result]


@pytest.fixture
def signal() -> Iterator[SignalServer]:
    with SignalServer(OWNER) as s:
        yield s


def write_config(path: Path, url: str, state: Path, extra: str = "", **notify: Any) -> Path:
    n = {
        "url": url,
        "sender": OWNER,
        "recipients": [OWNER],
        "timeout_s": 2.0,
        "poll_s": 0.1,
        "batch_s": 0.0,
        "receive": "poll",
        **notify,
    }
    lines = ["[notify]", *(f"{k} = {json.dumps(v)}" for k, v in n.items())]
    lines += ["[run]", f"state = {json.dumps(str(state))}"]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    p = tmp_path / "state" / "ledger.db"
    Ledger(p).close()  # what `run` creates
    return p


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return [tuple(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def controls(db: Path) -> list[str]:
    return [r[0] for r in rows(db, "SELECT command FROM controls ORDER BY id")]


def once(run_cli: RunCli, cfg: Path) -> Result:
    r = run_cli("--config", str(cfg), "listen", "--once")
    assert r.code == 0, r.err
    return r


# -- who is heard ------------------------------------------------------------------------------


def test_other_numbers_do_nothing(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, ledger_path: Path
) -> None:
    cfg = write_config(tmp_path / "t.toml", signal.url, ledger_path)
    signal.queue(
        envelope(STRANGER, "pause"),
        envelope(STRANGER, "kill"),
        envelope(STRANGER, "pause", shape="sync", destination=STRANGER),
    )
    r = once(run_cli, cfg)
    assert controls(ledger_path) == []
    assert signal.state.count("POST", "/v2/send") == 0
    logged = rows(ledger_path, "SELECT direction, peer, text, status FROM messages ORDER BY id")
    assert logged == [
        ("in", STRANGER, "pause", "ignored"),
        ("in", STRANGER, "kill", "ignored"),
        ("in", STRANGER, "pause", "ignored"),
    ]
    assert r.err.count("warning: ignored a message from +15550001111") == 3


def test_data_and_sync_shapes_from_the_owner(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, ledger_path: Path
) -> None:
    cfg = write_config(tmp_path / "t.toml", signal.url, ledger_path)
    signal.queue(
        receipt(OWNER),  # not a text: nothing to log or answer
        envelope(OWNER, "Status"),  # dataMessage
        envelope(OWNER, "/pause", shape="sync"),  # typed on the phone, note to self
        envelope(OWNER, "resume", shape="sync", destination=FRIEND),  # the owner to a friend
        envelope(OWNER, "resume", group=True),  # a group chat is never a command
    )
    once(run_cli, cfg)
    assert controls(ledger_path) == ["pause"]
    answers = signal.state.sent
    assert [a["recipients"] for a in answers] == [[OWNER], [OWNER]]
    assert answers[0]["message"].startswith("📊 unknown: stopped")
    assert answers[1]["message"].startswith("pause: queued, not applied: no loop is running")
    logged = rows(ledger_path, "SELECT direction, text, status FROM messages ORDER BY id")
    assert [r for r in logged if r[0] == "in"] == [
        ("in", "Status", "accepted"),
        ("in", "/pause", "accepted"),
        ("in", "", "ignored"),  # the owner's chat with a friend: logged without its text
        ("in", "resume", "ignored"),
    ]
    assert [r[2] for r in logged if r[0] == "out"] == ["sent", "sent"]


def test_once_against_a_service_that_is_down_exits_4(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, ledger_path: Path
) -> None:
    cfg = write_config(tmp_path / "t.toml", signal.url, ledger_path, receive="auto")
    signal.down()
    r = run_cli("--config", str(cfg), "listen", "--once")
    assert r.code == 4
    assert "/v1/about" in r.err
    r = run_cli("--config", str(cfg), "listen", "--once", "--state", str(tmp_path / "no.db"))
    assert r.code == 3
    assert "no.db: no ledger here" in r.err


def test_commands_off_hears_nothing(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, ledger_path: Path
) -> None:
    cfg = write_config(tmp_path / "t.toml", signal.url, ledger_path, commands=False)
    signal.queue(envelope(OWNER, "pause"))
    once(run_cli, cfg)
    assert controls(ledger_path) == []
    assert signal.state.count("POST", "/v2/send") == 0


def test_kill_needs_the_confirmation_code(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, ledger_path: Path
) -> None:
    cfg = write_config(tmp_path / "t.toml", signal.url, ledger_path)

    def say(text: str) -> str:
        signal.queue(envelope(OWNER, text))
        once(run_cli, cfg)
        return signal.state.messages()[-1]

    first = say("kill")
    code = re.search(r"kill (\d{6})", first)
    assert code is not None, first
    assert controls(ledger_path) == []
    wrong = "000000" if code[1] != "000000" else "111111"
    assert "wrong code; nothing done" in say(f"kill {wrong}")
    assert controls(ledger_path) == []
    assert "no kill pending" in say(f"KILL {code[1]}")  # the wrong guess spent the code
    assert controls(ledger_path) == []
    second = re.search(r"kill (\d{6})", say("kill"))
    assert second is not None
    assert say(f"/kill {second[1]}").startswith("kill: queued, not applied")
    assert controls(ledger_path) == ["kill"]


def test_expired_kill_code_does_nothing(signal: SignalServer, ledger_path: Path) -> None:
    cfg = load_config(None)
    t = [1_000_000]
    with SideLedger(ledger_path) as ledger, SignalClient(signal.url, OWNER) as client:
        cmd = Commander(
            cfg, ledger, client, state_path=str(ledger_path), allow={OWNER}, clock=lambda: t[0]
        )
        answer = cmd.handle({"envelope": envelope(OWNER, "kill")})
        assert answer is not None
        code = re.search(r"kill (\d{6})", answer)
        assert code is not None
        t[0] += 120_001
        late = cmd.handle({"envelope": envelope(OWNER, f"kill {code[1]}")})
    assert late is not None and "expired; nothing done" in late
    assert controls(ledger_path) == []


def test_ask_answers_from_the_ledger(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, ledger_path: Path
) -> None:
    pytest.importorskip("tradekit.ask", reason="tradekit.ask is not built yet")
    cfg = write_config(
        tmp_path / "t.toml", signal.url, ledger_path, extra='[ask]\nprovider = "none"\n'
    )
    signal.queue(envelope(OWNER, "ask how did it go?"))
    once(run_cli, cfg)
    [reply] = signal.state.messages()
    assert reply.startswith("Offline answer"), reply
    assert "Realized P&L" in reply


# -- receive by WebSocket (json-rpc mode) -------------------------------------------------------


def test_websocket_receive_when_the_service_runs_json_rpc(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, ledger_path: Path
) -> None:
    signal.state.mode = "json-rpc"
    cfg = write_config(tmp_path / "t.toml", signal.url, ledger_path, receive="auto")
    signal.queue(envelope(OWNER, "help"), envelope(STRANGER, "pause"))
    r = run_cli("--config", str(cfg), "listen", "--once", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["receive"] == "websocket"
    assert signal.state.ws_clients == 1
    assert signal.state.count("GET", f"/v1/receive/{OWNER}") == 0
    assert signal.state.messages() == [tx.HELP]
    assert controls(ledger_path) == []


def test_websocket_reconnects_after_a_drop(signal: SignalServer, ledger_path: Path) -> None:
    signal.state.mode = "json-rpc"
    cfg = load_config(None)
    from dataclasses import replace

    cfg = replace(
        cfg,
        notify=replace(
            cfg.notify, url=signal.url, sender=OWNER, recipients=[OWNER], poll_s=0.1, batch_s=0.0
        ),
    )
    stop = threading.Event()
    th = threading.Thread(target=listen, args=(cfg, ledger_path), kwargs={"stop": stop})
    th.start()
    try:
        signal.queue(envelope(OWNER, "status"))
        wait_for(lambda: len(signal.state.sent) == 1)
        signal.drop_websockets()
        signal.queue(envelope(OWNER, "pause"))
        wait_for(lambda: len(signal.state.sent) == 2)
    finally:
        stop.set()
        th.join(10)
    assert not th.is_alive()
    assert signal.state.ws_clients >= 2
    assert controls(ledger_path) == ["pause"]


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            pytest.fail("timed out")
        time.sleep(0.02)


# -- the courier -------------------------------------------------------------------------------

T = 1_704_067_200_000


def add_fill(db: Ledger, key: str, sym: str, side: str, qty: float, px: float, reason: str,
             candle: int) -> None:  # fmt: skip
    db.add_fill(key, sym, side, qty, px, qty * px, 0.1, reason, candle)


def add_trade(db: Ledger, sym: str, entry: int, exit_: int, pnl: float, reason: str) -> None:
    with db.tx() as c:
        c.execute(
            "INSERT INTO trades (symbol, entry_ms, exit_ms, entry_price, exit_price, qty, fees, "
            "pnl, pnl_pct, exit_reason, entry_reason, mae, partial_exits, created_ms) "
            "VALUES (?, ?, ?, 100, 110, 1, 0.2, ?, ?, ?, 'signal', 0, 1, ?)",
            (sym, entry, exit_, pnl, pnl / 10_000, reason, now_ms()),
        )


@pytest.fixture
def client(signal: SignalServer) -> Iterator[SignalClient]:
    with SignalClient(signal.url, OWNER, timeout_s=2.0, backoff_s=0.01) as c:
        yield c


def courier(ledger: Ledger, client: SignalClient, **kw: Any) -> Courier:
    # The courier writes beside the loop: its own side handle on the same file.
    side = SideLedger(ledger.path)
    return Courier(side, client, [OWNER, FRIEND], retry_s=0.0, **{"batch_s": 0.0, **kw})


def test_courier_lines_partial_exit_collapsed_errors_and_levels(
    signal: SignalServer, client: SignalClient, ledger_path: Path
) -> None:
    with Ledger(ledger_path) as db:
        c = courier(db, client)
        add_fill(db, "a", "BTC/USD", "buy", 0.5, 40_000.0, "signal", T)
        add_fill(db, "b", "BTC/USD", "sell", 0.25, 41_000.0, "partial_1", T + 1)
        for i in range(3):
            db.event("error", "exchange", f"kraken: timeout {i}")
        db.event("info", "control", "pause: paused: no new entries; exits and stops go on")
        add_fill(db, "c", "BTC/USD", "sell", 0.25, 42_000.0, "exit_signal", T + 2)
        add_trade(db, "BTC/USD", T, T + 2, 1234.5, "exit_signal")
        assert c.step().sent == 1
        assert c.step().sent == 0  # nothing new: nothing sent
        [msg] = signal.state.sent
        assert msg["recipients"] == [OWNER, FRIEND]
        # Rows of one millisecond have no order across tables: compare the lines as a set.
        assert sorted(msg["message"].splitlines()) == sorted([
            "🟢 opened BTC/USD 0.5 @ 40,000.00 (signal)",
            "◐ partial exit BTC/USD 0.25 @ 41,000.00 (partial_1)",
            "‼️ 3 exchange errors, last: kraken: timeout 2",
            "🎛 pause: paused: no new entries; exits and stops go on",
            "✅ closed BTC/USD +1,234.50 (+12.35%) 100.00 → 110.00 (exit_signal)",
        ])  # fmt: skip
        assert c.cursors() == {"events": 4, "fills": 3, "trades": 1}
        # Only warnings and errors: the fills and the info event are passed over.
        c2 = courier(db, client, events="warning")
        add_fill(db, "d", "ETH/USD", "buy", 1.0, 2000.0, "signal", T + 3)
        db.event("warning", "halt", "halted: daily_loss (no new entries; exits go on)")
        c2.step()
        assert signal.state.sent[-1]["message"] == (
            "⛔ halted: daily_loss (no new entries; exits go on)"
        )
        assert c2.cursors() == {"events": 5, "fills": 4, "trades": 1}


def test_courier_keeps_events_until_signal_confirms(
    signal: SignalServer, client: SignalClient, ledger_path: Path
) -> None:
    with Ledger(ledger_path) as db:
        c = courier(db, client)
        add_fill(db, "a", "BTC/USD", "buy", 0.5, 40_000.0, "signal", T)
        signal.down()
        assert c.step().failed
        assert c.cursors()["fills"] == 0
        add_fill(db, "b", "ETH/USD", "buy", 2.0, 2_000.0, "signal", T)
        signal.up()
        # The frozen batch goes out first, unchanged; the new row follows in its own message.
        assert c.step().sent == 2
        assert signal.state.messages() == [
            "🟢 opened BTC/USD 0.5 @ 40,000.00 (signal)",
            "🟢 opened ETH/USD 2 @ 2,000.00 (signal)",
        ]
        # A 201 that names a failed recipient: only that one gets the retry.
        signal.state.faults = [f"partial:{FRIEND}"]
        db.event("warning", "gap", "no candle for 3h")
        assert not c.step().sent
        assert c.cursors()["events"] == 0
        assert c.step().sent == 1
        assert [m["recipients"] for m in signal.state.sent[-2:]] == [[OWNER, FRIEND], [FRIEND]]
        assert c.cursors()["events"] == 1
        # A 429 counts as maybe-delivered: the cursor moves on, nothing is resent.
        signal.state.faults = ["429"]
        db.event("error", "model", "new model failed to load")
        posts = signal.state.count("POST", "/v2/send")
        c.step()
        assert c.step().sent == 0
        assert signal.state.count("POST", "/v2/send") == posts + 1
        assert c.cursors()["events"] == 2
        status = rows(ledger_path, "SELECT status FROM messages WHERE direction = 'out'")
        assert [s for (s,) in status] == ["sent", "sent", "partial", "sent", "maybe"]


def test_courier_batches_and_rate_limits(
    signal: SignalServer, client: SignalClient, ledger_path: Path
) -> None:
    now = [0.0]
    with Ledger(ledger_path) as db:
        c = courier(db, client, batch_s=30.0, max_per_hour=2, clock=lambda: now[0])
        db.event("info", "start", "paper run started")
        assert c.step().waiting == "batching"
        now[0] = 20.0
        db.event("warning", "gap", "no candle for 2h")
        assert c.step().waiting == "batching"
        now[0] = 31.0
        assert c.step().sent == 1  # both events in one message
        assert signal.state.messages() == ["▶️ paper run started\n⚠️ no candle for 2h"]
        db.event("info", "model", "model reloaded: a -> b")
        now[0] = 70.0
        c.step()
        now[0] = 101.0
        assert c.step().sent == 1
        db.event("info", "control", "resume: resumed")
        now[0] = 140.0
        c.step()
        now[0] = 200.0
        assert c.step().waiting == "rate limit"  # two messages this hour already
        assert len(signal.state.sent) == 2
        assert c.cursors()["events"] == 3


# -- events delivered exactly once while a replay trades and Signal is down for a while ---------

HOUR = 3_600_000


def _market(ohlcv: Path, preds: Path, n: int = 900) -> None:
    import numpy as np
    import pandas as pd

    from tradekit.contracts import PREDICTIONS, write_ohlcv, write_table

    rng = np.random.default_rng(5)
    frames, pred_frames = [], []
    for j in range(2):
        close = 100.0 * (j + 1) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        open_ = close * np.exp(rng.normal(0, 0.002, n))
        ts = pd.to_datetime(T + np.arange(n) * HOUR, unit="ms", utc=True).as_unit("ms")
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"S{j}/USD",
                    "timestamp": ts,
                    "open": open_,
                    "high": np.maximum(open_, close) * 1.004,
                    "low": np.minimum(open_, close) * 0.996,
                    "close": close,
                    "volume": 1.0,
                }
            )
        )
        x, p = 0.0, np.empty(n)
        for i, e in enumerate(rng.normal(0, 1.0, n)):
            x = 0.85 * x + e
            p[i] = np.tanh(x / 3) * 0.02
        pred_frames.append(pd.DataFrame({"symbol": f"S{j}/USD", "timestamp": ts, "prediction": p}))
    write_ohlcv(
        pd.concat(frames, ignore_index=True), ohlcv, {"exchange": "test", "timeframe": "1h"}
    )
    write_table(pd.concat(pred_frames, ignore_index=True), preds, PREDICTIONS, {})


REPLAY_CONFIG = """
[policy]
entry_threshold = 0.005
exit_threshold = -0.002
stoploss = 0.02
take_profit = 0.03
partial_exits = [0.01]
[risk]
max_open_positions = 2
max_position_frac = 0.45
daily_loss_halt_frac = 0.0
max_drawdown_halt_frac = 0.0
"""

TRADE_COLS = "symbol, entry_ms, exit_ms, entry_price, exit_price, qty, fees, pnl, exit_reason"


@pytest.mark.slow
def test_events_survive_a_signal_outage_while_trading_goes_on(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path
) -> None:
    ohlcv, preds = tmp_path / "o.parquet", tmp_path / "p.parquet"
    _market(ohlcv, preds)
    alone, beside = tmp_path / "alone.db", tmp_path / "beside.db"
    cfg = write_config(
        tmp_path / "t.toml", signal.url, beside, extra=REPLAY_CONFIG, max_per_hour=1000
    )
    replay = ["run", "--replay", str(ohlcv), "-p", str(preds)]
    r = run_cli("--config", str(cfg), *replay, "--state", str(alone))
    assert r.code == 0, r.err

    signal.down()
    env = cli_env()
    log = tmp_path / "listen.log"
    with open(log, "w") as err:
        courier_p = subprocess.Popen(
            [sys.executable, "-m", "tradekit", "--config", str(cfg), "listen"],
            env=env, stderr=err, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            run_p = subprocess.Popen(
                [sys.executable, "-m", "tradekit", "--config", str(cfg), *replay, "--state",
                 str(beside)],
                env=env, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            # Signal stays down until the courier has tried and failed at least once.
            wait_for(lambda: "events not delivered" in log.read_text(), timeout=60)
            signal.up()
            _, run_err = run_p.communicate(timeout=120)
            assert run_p.returncode == 0, run_err

            def caught_up() -> bool:
                cur = rows(beside, "SELECT value FROM courier WHERE key = 'cursors'")
                ends = {
                    t: rows(beside, f"SELECT coalesce(max(id), 0) FROM {t}")[0][0]
                    for t in ("events", "fills", "trades")
                }
                return bool(cur) and json.loads(cur[0][0]) == ends

            wait_for(caught_up, timeout=60)
        finally:
            courier_p.send_signal(sig.SIGTERM)
            rc = courier_p.wait(timeout=30)
    assert rc == 0, log.read_text()

    # Trading did not notice the courier.
    want = rows(alone, f"SELECT {TRADE_COLS} FROM trades ORDER BY id")
    got = rows(beside, f"SELECT {TRADE_COLS} FROM trades ORDER BY id")
    assert len(want) > 10 and got == want

    # Every open and close went out exactly once.
    con = sqlite3.connect(beside)
    con.row_factory = sqlite3.Row
    try:
        opens = [tx.opened(f) for f in con.execute("SELECT * FROM fills WHERE side = 'buy'")]
        closes = [tx.closed(t) for t in con.execute("SELECT * FROM trades")]
    finally:
        con.close()
    lines = [line for m in signal.state.messages() for line in m.splitlines()]
    assert Counter(x for x in lines if x.startswith("🟢 opened")) == Counter(opens)
    assert Counter(x for x in lines if " closed " in x) == Counter(closes)
    assert len(signal.state.sent) > 1, "the rows must span several messages"
    assert all(b["recipients"] == [OWNER] for b in signal.state.sent)
    out = rows(beside, "SELECT status FROM messages WHERE direction = 'out'")
    assert len(out) == len(signal.state.sent) and {s for (s,) in out} == {"sent"}
    assert os.path.getsize(log) > 0


# -- listen never blocks controls; strangers are limited; listen's secrets ----------------------


def _listen_cfg(signal: SignalServer, **ask: Any) -> Any:
    from dataclasses import replace

    cfg = load_config(None)
    return replace(
        cfg,
        notify=replace(
            cfg.notify, url=signal.url, sender=OWNER, recipients=[OWNER], poll_s=0.1,
            batch_s=0.0, receive="poll",
        ),
        ask=replace(cfg.ask, **ask),
    )  # fmt: skip


def test_pause_and_kill_answer_while_an_ask_thinks(signal: SignalServer, ledger_path: Path) -> None:
    """The LLM holds the phone's question until the test lets go: meanwhile pause and kill are
    answered (and a second ask is told to wait), then the answer arrives."""
    from tests.servers.llm import ANSWER, OpenAIServer
    from tradekit.notify.commands import BUSY

    with OpenAIServer() as llm:
        llm.hold()
        cfg = _listen_cfg(signal, provider="openai", base_url=f"{llm.url}/v1", timeout_s=120.0)
        stop = threading.Event()
        th = threading.Thread(target=listen, args=(cfg, ledger_path), kwargs={"stop": stop})
        th.start()

        def said(pred: Callable[[str], bool]) -> Callable[[], bool]:
            return lambda: any(pred(m) for m in signal.state.messages())

        try:
            signal.queue(envelope(OWNER, "ask how did the week go?"))
            assert llm.arrived.wait(30), "the ask never reached the LLM"
            signal.queue(envelope(OWNER, "pause"))
            wait_for(said(lambda m: m.startswith("pause: queued")))
            signal.queue(envelope(OWNER, "ask and now?"))
            wait_for(said(lambda m: m == BUSY))
            signal.queue(envelope(OWNER, "kill"))
            wait_for(said(lambda m: "To confirm, send `kill" in m))
            assert ANSWER not in signal.state.messages()  # the LLM is still thinking
            assert controls(ledger_path) == ["pause"]
            llm.release()
            wait_for(said(lambda m: m == ANSWER))
        finally:
            llm.release()
            stop.set()
            th.join(30)
    assert not th.is_alive()
    msgs = signal.state.messages()
    pause = next(i for i, m in enumerate(msgs) if m.startswith("pause: queued"))
    kill = next(i for i, m in enumerate(msgs) if "To confirm" in m)
    assert pause < kill < msgs.index(ANSWER)
    assert len(llm.requests) == 1  # the busy ask was not sent
    out = rows(ledger_path, "SELECT text, status FROM messages WHERE direction = 'out'")
    assert (ANSWER, "sent") in out


def test_strangers_are_kept_n_per_hour_then_counted_and_pruned(
    signal: SignalServer, run_cli: RunCli, tmp_path: Path, ledger_path: Path
) -> None:
    cfg = write_config(tmp_path / "t.toml", signal.url, ledger_path, ignored_per_hour=3)
    old = now_ms() - 8 * 86_400_000  # past [notify] ignored_keep_days (7)
    con = sqlite3.connect(ledger_path)
    with con:
        con.executemany(
            "INSERT INTO messages (ts_ms, direction, peer, text, status, data) "
            "VALUES (?, 'in', ?, ?, ?, '{}')",
            [(old, STRANGER, "old spam", "ignored"), (old, OWNER, "status", "accepted"),
             (now_ms() - 3600_000 * 2, STRANGER, "spam 2 h ago", "ignored")],
        )  # fmt: skip
    con.close()
    other = "+15550002222"
    signal.queue(*(envelope(STRANGER, f"spam {i}") for i in range(10)), envelope(other, "hi"))
    r = once(run_cli, cfg)
    assert signal.state.count("POST", "/v2/send") == 0  # strangers are never answered
    kept = rows(ledger_path, "SELECT peer, text FROM messages WHERE status = 'ignored' ORDER BY id")
    assert kept == [
        (STRANGER, "spam 2 h ago"),  # younger than the keep period
        (STRANGER, "spam 0"), (STRANGER, "spam 1"), (STRANGER, "spam 2"),
        (other, "hi"),
    ]  # fmt: skip
    assert rows(ledger_path, "SELECT text FROM messages WHERE status = 'accepted'") == [
        ("status",)
    ]  # only ignored rows are ever deleted
    assert "over 3 this hour; the next are counted, not kept" in r.err
    assert "ignored 7 more message(s) from +15550001111 (counted, not kept)" in r.err
    assert r.err.count("warning: ignored a message from +15550001111") == 3


def test_phone_times_are_the_persons(signal: SignalServer, ledger_path: Path) -> None:
    from tradekit.timeutil import zone

    cfg = load_config(None)
    with Ledger(ledger_path) as led:
        led.save_engine({"equity": 1000.0, "last_candle_ms": T}, T)  # 2024-01-01 00:00 UTC
    with SideLedger(ledger_path) as ledger, SignalClient(signal.url, OWNER) as client:
        cmd = Commander(
            cfg, ledger, client, state_path=str(ledger_path), allow={OWNER},
            clock=lambda: T, tz=zone("Europe/Vienna"),
        )  # fmt: skip
        status = cmd.handle({"envelope": envelope(OWNER, "status")})
        kill = cmd.handle({"envelope": envelope(OWNER, "kill")})
    assert status is not None and "last candle 2024-01-01 01:00 CET" in status
    assert kill is not None and "within 120 s (by 01:02:00 CET)" in kill


def test_the_listen_unit_gets_only_the_phones_secrets(tmp_path: Path) -> None:
    """listen talks to Signal and an LLM: its unit reads listen.env (LLM keys, webhook token)
    and never /etc/tradekit/env, where the exchange keys are; pi-setup writes both files."""
    from tests.test_systemd import RECIPES, UNITS, parse, systemd_analyze

    listen_unit = parse(UNITS / "tradekit-listen.service")["Service"]
    run_unit = parse(UNITS / "tradekit-run.service")["Service"]
    assert listen_unit["EnvironmentFile"] == ["/etc/tradekit/listen.env"]
    assert run_unit["EnvironmentFile"] == ["/etc/tradekit/env"]
    # The files' templates in pi-setup.sh: which variables each one is meant to hold.
    script = (RECIPES / "pi-setup.sh").read_text()

    def template(name: str) -> str:
        start = script.index(f"cat >\"$TMP/{name}\" <<'EOF'")
        return script[start : script.index("\nEOF\n", start)]

    assert "ANTHROPIC_API_KEY" in template("listen.env")
    assert "TRADEKIT_EXCHANGE" not in template("listen.env")
    assert "TRADEKIT_EXCHANGE_SECRET" in template("env") and "ANTHROPIC" not in template("env")
    dry = subprocess.run(
        ["bash", str(RECIPES / "pi-setup.sh"), "--dry-run", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert re.search(r"install -m 0600 -o root -g root /etc/tradekit/listen\.env", dry.stdout)
    # The unit as installed verifies (systemd-analyze, in a fake root as test_systemd does).
    exe = systemd_analyze()
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNITS / "tradekit-listen.service", root / "etc/systemd/system")
    shutil.copy(UNITS / "tradekit-notify-failure@.service", root / "etc/systemd/system")
    stub = root / "opt/tradekit/venv/bin/tradekit"
    stub.parent.mkdir(parents=True)
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    if Path("/usr/lib/systemd/system").is_dir():
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    r = subprocess.run(
        [exe, "verify", f"--root={root}", "--man=no",
         str(root / "etc/systemd/system/tradekit-listen.service")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (r.returncode, r.stderr) == (0, "")
