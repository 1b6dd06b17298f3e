"""``tradekit trades FILE_OR_LEDGER``: one listing of closed trades from a backtest's trades/1
file or a ledger, filtered by pair, exit reason, time and count; and the charts' time axis,
which names the year."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tests.conftest import Result
from tests.test_backtest import golden_inputs, write_inputs
from tests.test_summary import T_END, make_ledger

RunCli = Callable[..., Result]


def _listing(r: Result) -> dict:
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["schema"] == "tradelist/1"
    return doc


def test_a_backtests_trades_file(run_cli: RunCli) -> None:
    write_inputs(*golden_inputs())
    r = run_cli("backtest", "ohlcv.parquet", "-p", "preds.parquet", "-o", "r.json",
                "--trades", "t.parquet")  # fmt: skip
    assert r.code == 0, r.err
    report = json.loads(Path("r.json").read_text())
    every = _listing(run_cli("trades", "t.parquet", "--json"))
    assert every["kind"] == "trades/1" and every["count"] == report["metrics"]["trades"] > 2
    assert every["pnl"] == sum(s["pnl"] for s in report["per_symbol"].values())
    exits = [t["exit_ms"] for t in every["trades"]]
    assert exits == sorted(exits)
    btc = _listing(run_cli("trades", "t.parquet", "--symbol", "BTC/USD", "--json"))
    assert btc["count"] == report["per_symbol"]["BTC/USD"]["trades"]
    assert {t["symbol"] for t in btc["trades"]} == {"BTC/USD"}
    for reason, stats in report["per_exit_reason"].items():
        got = _listing(run_cli("trades", "t.parquet", "--reason", reason, "--json"))
        assert got["count"] == stats["trades"]
    newest = _listing(run_cli("trades", "t.parquet", "-n", "2", "--json"))
    assert newest["trades"] == every["trades"][-2:]
    since = every["trades"][-3]["exit_ms"]
    later = _listing(run_cli("trades", "t.parquet", "--since", str(since), "--json"))
    assert [t["exit_ms"] for t in later["trades"]] == [e for e in exits if e > since]
    table = run_cli("trades", "t.parquet")
    assert table.code == 0 and table.out == ""  # the table is for people: stderr
    assert f"{every['count']} trade(s), {every['wins']} won" in table.err


def test_a_ledger(run_cli: RunCli, tmp_path: Path) -> None:
    db = make_ledger(tmp_path / "l.db")
    con = sqlite3.connect(db)
    stops = con.execute("SELECT count(*) FROM trades WHERE exit_reason = 'stoploss'").fetchone()
    con.close()
    every = _listing(run_cli("trades", str(db), "--json"))
    assert every["kind"] == "ledger" and every["count"] == 12
    assert every["trades"][-1]["exit_ms"] == T_END
    got = _listing(run_cli("trades", str(db), "--reason", "stoploss", "--json"))
    assert got["count"] == stops[0] and got["per_exit_reason"]["stoploss"]["trades"] == stops[0]
    day = _listing(run_cli("trades", str(db), "--since", str(T_END - 86_400_000), "--json"))
    assert day["count"] == 2  # what the day's summary counts
    assert _listing(run_cli("trades", str(db), "--symbol", "XRP/USDT", "--json"))["count"] == 0


def test_anything_else_is_one_line(run_cli: RunCli) -> None:
    Path("r.json").write_text("{}")
    r = run_cli("trades", "r.json")
    assert r.code == 3 and r.err.count("\n") == 1
    assert "neither a tradekit ledger (SQLite) nor a trades/1 Parquet file" in r.err
    assert run_cli("trades", "missing.db").code == 3


def test_chart_ticks_name_the_year() -> None:
    from datetime import UTC, datetime, timedelta

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from tradekit.report.charts import date_axis

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    t0 = datetime(2018, 6, 15, tzinfo=UTC)
    ax.plot([t0 + timedelta(days=d) for d in range(0, 480, 5)], list(range(96)))
    date_axis(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(labels) >= 4
    assert all(any(y in x for y in ("2018", "2019")) for x in labels), labels


def test_the_equity_plot_with_halts(run_cli: RunCli) -> None:
    """The report's halts are drawn (shaded from start to lift); the PNG is written whole."""
    write_inputs(*golden_inputs())
    env = {"TRADEKIT_RISK__MAX_DRAWDOWN_HALT_FRAC": "0.002"}
    r = run_cli("backtest", "ohlcv.parquet", "-p", "preds.parquet", "--json", "--plot", "eq.png",
                env=env)  # fmt: skip
    assert r.code == 0, r.err
    assert json.loads(r.out)["halts"], "the tight drawdown limit must halt at least once"
    data = Path("eq.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert sorted(p.name for p in Path().iterdir() if p.suffix == ".png") == ["eq.png"]
