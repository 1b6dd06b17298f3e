"""`tradekit serve` over a real replay's ledger: the REST shapes (golden files), /metrics
parsed by prometheus-client's own parser and checked against the API, the token-guarded
controls, the Host check, the refusal of all-interfaces, a port in use, a missing ledger, and
a server that stays light. The pages in a real browser: tests/test_serve_browser.py."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, cli_env
from tests.servers.dashboard import DEPLOYS, Dashboard, make_bot

GOLDEN = ROOT / "tests" / "golden" / "api"
TOKEN = "s3cret-serve-token-for-tests"
# Values that depend on the wall clock, the machine or the temporary directory.
VOLATILE = {
    "created_ms",
    "ts_ms",
    "updated_ms",
    "requested_ms",
    "done_ms",
    "order_timestamp",
    "updated_timestamp",
    "heartbeat_ms",
    "created_at",
    "manifest_sha256",
    "oos_predictions_sha256",
    "date_ts",
    "version",
    "tradekit_version",
}


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bot")
    cwd = Path.cwd()
    os.chdir(d)
    try:
        return make_bot(d)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def dash(bot: Path) -> Iterator[Dashboard]:
    d = Dashboard.start(bot, token=TOKEN)
    try:
        yield d
    finally:
        d.stop()


def ledger_rows(bot: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(bot.parent / "ledger.db") as db:
        return db.execute(sql).fetchall()


# -- REST shapes -----------------------------------------------------------------------------

GOLDEN_CASES = {
    "status": "api/v1/status",
    "balance": "api/v1/balance",
    "profit": "api/v1/profit",
    "performance": "api/v1/performance",
    "daily": "api/v1/daily?days=3&until=2024-01-10",
    "trades": "api/v1/trades?limit=2&symbol=S1/USD",
    "positions": "api/v1/positions",
    "orders": "api/v1/orders?status=all&limit=2",
    "decisions": "api/v1/decisions?limit=3&symbol=S0/USD",
    "events": "api/v1/events?limit=3",
    "model": "api/v1/model",
    "candidates": "api/v1/candidates",
    "deploys": "api/v1/deploys",
    "equity": "api/v1/equity?limit=3",
    "candles": "api/v1/candles?symbol=S0/USD&limit=3",
    "controls": "api/v1/controls",
}


def normalized(doc: Any, root: str) -> Any:
    if isinstance(doc, dict):
        return {
            k: "<volatile>" if k in VOLATILE and v is not None else normalized(v, root)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [normalized(v, root) for v in doc]
    if isinstance(doc, str):
        return doc.replace(root, "<bot>")
    return doc


@pytest.mark.parametrize("name", list(GOLDEN_CASES))
def test_rest_shapes_match_the_golden_files(dash, bot, name):
    r = dash.get(GOLDEN_CASES[name])
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    doc = normalized(r.json(), str(bot.parent))
    golden = GOLDEN / f"{name}.json"
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if os.environ.get("TRADEKIT_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), "no golden file: run TRADEKIT_UPDATE_GOLDEN=1 on this test"
    assert doc == json.loads(golden.read_text(encoding="utf-8"))


def test_api_numbers_are_the_ledgers(dash, bot):
    trades = ledger_rows(bot, "SELECT symbol, pnl, exit_reason, exit_ms FROM trades")
    profit = dash.get("api/v1/profit").json()
    assert profit["closed_trade_count"] == len(trades) > 20
    assert profit["profit_closed_coin"] == pytest.approx(sum(t[1] for t in trades))
    assert profit["winning_trades"] == sum(t[1] > 0 for t in trades)
    perf = dash.get("api/v1/performance").json()
    assert {p["pair"] for p in perf} == {t[0] for t in trades}
    for p in perf:
        assert p["count"] == sum(t[0] == p["pair"] for t in trades)
        assert p["profit_abs"] == pytest.approx(sum(t[1] for t in trades if t[0] == p["pair"]))
    assert [p["profit_abs"] for p in perf] == sorted((p["profit_abs"] for p in perf), reverse=True)
    # Filters: every trade returned matches, and the total counts them all.
    stop = [t for t in trades if t[0] == "S1/USD" and t[2] == "take_profit"]
    got = dash.get("api/v1/trades", params={"symbol": "S1/USD", "reason": "take_profit"}).json()
    assert got["total_trades"] == len(stop) > 0
    assert {(t["pair"], t["exit_reason"]) for t in got["trades"]} == {("S1/USD", "take_profit")}
    day = 1_704_240_000_000  # 2024-01-03
    on_day = [t for t in trades if day <= t[3] < day + 86_400_000]
    got = dash.get("api/v1/trades", params={"from": "2024-01-03", "to": "2024-01-03"}).json()
    assert got["total_trades"] == len(on_day)
    daily = dash.get("api/v1/daily", params={"days": 1, "until": "2024-01-03"}).json()
    assert daily["data"][0]["trade_count"] == len(on_day)
    assert daily["data"][0]["abs_profit"] == pytest.approx(sum(t[1] for t in on_day))
    # Positions carry the engine's stop; balance adds up to the equity.
    pos = dash.get("api/v1/positions").json()["positions"]
    held = ledger_rows(bot, "SELECT symbol, qty, stop_price FROM positions")
    assert [(p["pair"], p["amount"], p["stop_loss_abs"]) for p in pos] == held
    bal = dash.get("api/v1/balance").json()
    assert sum(c["est_stake"] for c in bal["currencies"]) == pytest.approx(bal["total"])


def test_bad_parameters_are_400_with_the_reason(dash):
    for path, words in (
        ("api/v1/trades?limit=x", "limit: expected an integer"),
        ("api/v1/trades?from=yesterday", "from: expected a date"),
        ("api/v1/candles?symbol=XX/USD", "symbol: 'XX/USD' is not one of"),
        ("api/v1/daily?days=0", "days: must be between"),
    ):
        r = dash.get(path)
        assert r.status_code == 400, path
        assert words in r.json()["error"], r.json()


def test_candles_come_from_the_store_with_fills_and_predictions(dash, bot):
    from tradekit.contracts import read_table

    df, _ = read_table(bot.parent / "ohlcv.parquet", None)
    want = df[df["symbol"] == "S1/USD"].tail(50)
    doc = dash.get("api/v1/candles", params={"symbol": "S1/USD", "limit": 50}).json()
    rows = doc["candles"]["rows"]
    assert doc["candles"]["available"] is True and len(rows) == 50
    assert [r[0] for r in rows] == want["timestamp"].astype("int64").tolist()
    assert [r[4] for r in rows] == want["close"].tolist()
    start, end = rows[0][0], rows[-1][0]
    fills = ledger_rows(
        bot,
        "SELECT candle_ms, side, price FROM fills WHERE symbol = 'S1/USD' "
        f"AND candle_ms BETWEEN {start} AND {end} ORDER BY candle_ms, id",
    )
    assert [(f["time"], f["side"], f["price"]) for f in doc["fills"]] == fills
    preds = ledger_rows(
        bot,
        "SELECT candle_ms, prediction FROM decisions WHERE symbol = 'S1/USD'"
        f" AND phase = 'close' AND prediction IS NOT NULL AND candle_ms BETWEEN "
        f"{start} AND {end} ORDER BY candle_ms",
    )
    assert [tuple(p) for p in doc["predictions"]] == preds


def test_deploy_history_newest_first(dash):
    doc = dash.get("api/v1/deploys").json()
    assert doc["available"] is True
    assert [d["release"] for d in doc["deploys"]] == [d["release"] for d in reversed(DEPLOYS)]


# -- /metrics --------------------------------------------------------------------------------


def test_metrics_parse_and_agree_with_the_api(dash, bot):
    from prometheus_client.parser import text_string_to_metric_families

    from tradekit.config import RiskConfig

    r = dash.get("metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    value = {s.name: s.value for f in fams.values() for s in f.samples if not s.labels}
    status = dash.get("api/v1/status").json()
    assert value["tradekit_up"] == 1
    assert value["tradekit_equity"] == pytest.approx(status["equity"])
    assert value["tradekit_drawdown_ratio"] == pytest.approx(status["drawdown"])
    assert value["tradekit_open_positions"] == len(status["positions"])
    assert value["tradekit_trades_total"] == status["trades_total"]
    assert value["tradekit_realized_pnl"] == pytest.approx(status["realized_pnl_total"])
    exposure = sum(p["value"] for p in status["positions"])
    assert value["tradekit_exposure_ratio"] == pytest.approx(exposure / status["equity"])
    assert value["tradekit_exposure_cap_ratio"] == RiskConfig().max_exposure_frac
    assert fams["tradekit_trades"].type == "counter"
    orders = {s.labels["status"]: s.value for s in fams["tradekit_orders"].samples}
    assert orders == {
        k: float(v)
        for k, v in ledger_rows(bot, "SELECT status, count(*) FROM orders GROUP BY status")
    }
    halted = {s.labels["kind"]: s.value for s in fams["tradekit_halted"].samples}
    assert halted == {"daily_loss": 0.0, "drawdown": 0.0, "reconcile": 0.0}
    (info,) = fams["tradekit_model_info"].samples  # the text format shows info as a gauge
    model = dash.get("api/v1/model").json()
    assert info.name == "tradekit_model_info" and info.value == 1
    assert info.labels["version"] == model["model"]["version"]
    assert info.labels["gate"] == "passed"
    latency = value["tradekit_decision_latency_seconds"]  # a replay decides long after
    assert latency > 0
    for name in (
        "tradekit_exchange_errors_total",
        "tradekit_last_candle_timestamp_seconds",
        "tradekit_last_cycle_timestamp_seconds",
        "tradekit_halt_events_total",
    ):
        assert name in value


def test_the_grafana_dashboard_reads_only_metrics_that_exist(dash):
    from prometheus_client.parser import text_string_to_metric_families

    fams = text_string_to_metric_families(dash.get("metrics").text)
    exposed = {s.name for f in fams for s in f.samples}
    doc = json.loads((ROOT / "recipes" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"tradekit_\w+", e)}
    assert len(used) >= 15
    assert used <= exposed, used - exposed


# -- controls --------------------------------------------------------------------------------


def pending(bot: Path) -> list[str]:
    return [r[0] for r in ledger_rows(bot, "SELECT command FROM controls WHERE done_ms IS NULL")]


def test_controls_need_the_token_and_kill_a_confirmation(dash, bot):
    before = pending(bot)
    for headers in (
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": "Basic " + TOKEN},
    ):
        r = dash.post("api/v1/pause", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
    assert pending(bot) == before
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = dash.post("api/v1/pause", headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["command"] == "pause" and r.json()["running"] is False
    assert pending(bot) == [*before, "pause"]
    r = dash.post("api/v1/kill", headers=auth)
    assert r.status_code == 400 and "confirm" in r.json()["error"]
    r = dash.post("api/v1/kill", headers=auth, json={"confirm": "yes"})
    assert r.status_code == 400
    assert pending(bot) == [*before, "pause"]
    r = dash.post("api/v1/kill", headers=auth, json={"confirm": "kill"})
    assert r.status_code == 202
    r = dash.post("api/v1/resume", headers=auth)
    assert r.status_code == 202
    assert pending(bot) == [*before, "pause", "kill", "resume"]
    assert dash.get("api/v1/controls", headers=auth).json()["authorized"] is True
    assert dash.get("api/v1/controls").json()["authorized"] is False
    assert dash.get("api/v1/pause").status_code == 405  # a GET never controls
    assert TOKEN not in "".join(dash.lines)  # the token is never logged


def test_without_a_token_the_server_is_read_only(bot):
    d = Dashboard.start(bot)
    try:
        r = d.post("api/v1/pause", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 401
        assert "TRADEKIT_SERVE_TOKEN" in r.json()["error"]
        assert d.get("api/v1/controls").json()["token_set"] is False
        page = d.get("/").text
        assert "Read-only" in page and 'id="unlock"' not in page
    finally:
        d.stop()


# -- the HTTP surface ------------------------------------------------------------------------


def test_pages_and_their_live_fragments(dash):
    for path, words in (
        ("/", ["Equity and drawdown", "Exposure against the caps", "gate receipt", "passed"]),
        ("/positions", ["S0/USD", "stop on the exchange", "no open orders"]),
        ("/trades?symbol=S1/USD", ["trades match", "MAE", "MFE"]),
        ("/trades?offset=x&from=nonsense", ["trades match"]),
        ("/chart?symbol=S2/USD", ['data-symbol="S2/USD"', "last decision"]),
        ("/decisions", ["reason code", "entry_signal"]),
        ("/events", ["Events"]),
        ("/models", ["gate receipt", "deployable", "no candidates"]),
        ("/deploys", ["rolled back", "20240121T080000Z-bbbbbbbb"]),
    ):
        r = dash.get(path)
        assert r.status_code == 200, path
        for w in words:
            assert w in r.text, (path, w)
        assert r.headers["x-frame-options"] == "DENY"
        frag = dash.get(path + ("&" if "?" in path else "?") + "fragment=live")
        assert frag.status_code == 200 and "<html" not in frag.text and "<nav" not in frag.text


def test_a_foreign_host_name_is_refused(dash):
    """DNS rebinding: a page on another name that resolves to 127.0.0.1 gets nothing."""
    r = dash.get("api/v1/status", headers={"Host": "evil.example:8080"})
    assert r.status_code == 421 and "allowed_hosts" in r.text
    port = dash.url.rsplit(":", 1)[1].strip("/")
    assert dash.get("api/v1/status", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_static_files_are_served_and_vendored_small():
    static = ROOT / "tradekit" / "serve" / "static"
    vendor = static / "vendor"
    for name in ("LICENSE-lightweight-charts", "NOTICE-lightweight-charts", "VENDORED.md"):
        assert (vendor / name).is_file(), name
    for f in static.rglob("*"):
        if f.is_file():
            assert f.stat().st_size < 1_000_000, f
    text = (vendor / "VENDORED.md").read_text()
    assert "5.3.0" in text and "LightweightCharts" in text


def test_a_missing_ledger_is_503_and_the_server_stays_up(bot, tmp_path):
    d = Dashboard.start(bot, "--state", str(tmp_path / "none.db"))
    try:
        r = d.get("api/v1/status")
        assert r.status_code == 503 and "no ledger here" in r.json()["error"]
        assert d.get("/").status_code == 503
        metrics = d.get("metrics")
        assert metrics.status_code == 200 and "tradekit_up 0.0" in metrics.text
        assert any("no ledger at" in line for line in d.lines)
    finally:
        assert d.stop() == 130  # SIGTERM: a clean stop, as `run`'s


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]"])
def test_all_interfaces_need_the_flag(run_cli, host):
    r = run_cli("serve", "--host", host, "--port", "0")
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "--allow-all-interfaces" in lines[0], r.err


def test_a_port_in_use_is_one_line(run_cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_cli("serve", "--port", str(port))
    assert r.code == 2
    assert r.err.strip() == (
        f"tradekit: error: 127.0.0.1:{port} is in use; pick another with --port or [serve] "
        "port (the default 8642 keeps clear of signal-cli-rest-api's 8080)"
    )


def test_serve_stays_light(bot):
    """Every route answered in-process: none of the trading stack is imported (the candle
    chart's pyarrow runs in a child process)."""
    code = f"""
import sys
from starlette.testclient import TestClient
from tradekit.config import load_config
from tradekit.serve.app import build_app, PAGES, API_READS
from tradekit.serve.site import site_from
site = site_from(load_config({str(bot)!r}), state=None, host="127.0.0.1")
c = TestClient(build_app(site), base_url="http://127.0.0.1")
for path, _ in PAGES:
    assert c.get(path).status_code == 200, path
for name in API_READS:
    assert c.get("/api/v1/" + name, params={{"symbol": "S0/USD"}}).status_code == 200, name
assert c.get("/metrics").status_code == 200
heavy = sorted(m for m in ("pandas", "numpy", "pyarrow", "lightgbm", "torch", "ccxt", "numba",
                           "matplotlib", "fabric") if m in sys.modules)
print("HEAVY", heavy)
"""
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120
    )
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr


def test_the_systemd_unit():
    from tests.test_systemd import UNITS, one, parse

    unit = parse(UNITS / "tradekit-serve.service")
    assert one(unit, "Service", "ExecStart") == "/opt/tradekit/venv/bin/tradekit serve"
    assert "130" in one(unit, "Service", "SuccessExitStatus").split()
    assert {"2", "3"} <= set(one(unit, "Service", "RestartPreventExitStatus").split())
    assert one(unit, "Service", "MemoryDenyWriteExecute") == "yes"  # no JIT in serve
    assert one(unit, "Unit", "OnFailure") == "tradekit-notify-failure@%n.service"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    assert int(one(unit, "Service", "MemoryMax").removesuffix("M")) <= 256
