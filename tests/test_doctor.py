"""``tradekit doctor`` against real parts: the Kraken-speaking server for markets and clock,
real SQLite files for the ledger check, a config file for the config check."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import OHLC_NOW_MS
from tests.servers.kraken import KrakenServer, KrakenState
from tests.servers.market import Market


def _env(url: str, tmp: Path) -> dict[str, str]:
    return {
        "TRADEKIT_EXCHANGE__API_URL": url,
        "TRADEKIT_EXCHANGE__RATE_LIMIT": "false",
        "TRADEKIT_EXCHANGE__RETRIES": "0",
        "TRADEKIT_EXCHANGE__RETRY_BACKOFF_S": "0.01",
        "TRADEKIT_EXCHANGE__TIMEOUT_S": "2",
        "TRADEKIT_EXCHANGE__SYMBOLS": "BTC/USD,BTC/USDT",
        "TRADEKIT_RUN__STATE": str(tmp / "state" / "tradekit.db"),
        "TRADEKIT_RUN__MODEL": str(tmp / "model"),
    }


class _WallClock(KrakenState):
    """A Kraken-speaking server whose clock is the local wall clock at each request."""

    @property  # type: ignore[override]
    def now_ms(self) -> int:
        return int(time.time() * 1000)

    @now_ms.setter
    def now_ms(self, value: int) -> None:  # the dataclass __init__ sets it: ignored
        pass


def _fields(state: KrakenState) -> dict[str, object]:
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


def _checks(out: str) -> dict[str, dict[str, object]]:
    doc = json.loads(out)
    assert doc["schema"] == "doctor/1"
    return {c["name"]: c for c in doc["checks"]}


def test_paper_machine_without_a_model_is_not_ready(
    run_cli, market: Market, tmp_path: Path
) -> None:
    from tradekit.ledger import Ledger

    Ledger(tmp_path / "state" / "tradekit.db").close()
    # The server's clock runs with the local one (not fixed when it started), so the skew is
    # what the check itself measures, however long the imports and requests before it took.
    with KrakenServer(market, 0) as k:
        k.httpd.state = k.state = _WallClock(**_fields(k.state))
        r = run_cli("doctor", "--json", env=_env(k.url, tmp_path))
    assert r.code == 1, r.err
    c = _checks(r.out)
    assert [c[n]["status"] for n in ("config", "exchange", "clock", "state", "disk")] == ["ok"] * 5
    assert "markets loaded" in str(c["exchange"]["detail"])
    assert c["api key"]["status"] == "skip"  # paper needs no key
    # `run` would exit 3 without a model, paper or live: doctor must not say ready.
    assert c["model"]["status"] == "fail" and "`run` exits 3" in str(c["model"]["detail"])
    assert r.err.splitlines()[-1] == "tradekit: error: doctor: 1 check(s) failed: model"
    assert "check" in r.err and "exchange" in r.err  # the table goes to stderr


def test_clock_skew_fails(run_cli, market: Market, tmp_path: Path) -> None:
    with KrakenServer(market, OHLC_NOW_MS) as k:  # an exchange clock years behind
        r = run_cli("doctor", "--json", env=_env(k.url, tmp_path))
    assert r.code == 1
    c = _checks(r.out)
    assert c["clock"]["status"] == "fail"
    assert "ahead of the exchange" in str(c["clock"]["detail"])
    assert "clock" in r.err.splitlines()[-1]


def test_unreachable_exchange_and_corrupt_ledger_fail(run_cli, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "state" / "tradekit.db"
    db.parent.mkdir()
    db.write_bytes(b"this is not sqlite" * 100)
    r = run_cli("doctor", "--json", env=_env(f"http://127.0.0.1:{port}", tmp_path))
    assert r.code == 1
    c = _checks(r.out)
    assert c["exchange"]["status"] == "fail"
    assert c["clock"]["status"] == "skip"
    assert c["state"]["status"] == "fail"
    assert "not a database" in str(c["state"]["detail"])
    assert "Traceback" not in r.err


def test_live_without_key_fails_with_permissions_reminder(run_cli, tmp_path: Path) -> None:
    r = run_cli("doctor", "--offline", "--live", "--json", env=_env("", tmp_path))
    assert r.code == 1
    c = _checks(r.out)
    assert c["api key"]["status"] == "fail"
    assert "never give it Withdraw" in str(c["api key"]["detail"])
    assert c["model"]["status"] == "fail"  # live with nothing deployed cannot trade


def test_key_is_never_printed(run_cli, tmp_path: Path) -> None:
    env = {
        **_env("", tmp_path),
        "TRADEKIT_EXCHANGE_API_KEY": "AKEY-do-not-print",
        "TRADEKIT_EXCHANGE_SECRET": "c2VjcmV0LWRvLW5vdC1wcmludA==",
    }
    r = run_cli("doctor", "--offline", "--json", env=env)
    assert _checks(r.out)["api key"]["status"] == "ok"
    assert "do-not-print" not in r.out + r.err
    assert "c2VjcmV0" not in r.out + r.err


def test_invalid_config_is_a_failed_check(run_cli, tmp_path: Path) -> None:
    (tmp_path / "tradekit.toml").write_text("[risk]\nmax_positons = 3\n")
    r = run_cli("doctor", "--offline", "--json")
    assert r.code == 1  # a check said no, not "bad input": doctor is the tool that says why
    c = _checks(r.out)
    assert c["config"]["status"] == "fail"
    assert "max_positons" in str(c["config"]["detail"])
    assert {c[n]["status"] for n in c if n != "config"} == {"skip"}


@pytest.mark.parametrize("free,status", [(10 << 30, "ok"), (3 << 30, "warn"), (1 << 20, "fail")])
def test_disk_thresholds(free: int, status: str, tmp_path: Path, monkeypatch) -> None:
    """The thresholds, on a disk whose free space is set (a real disk cannot be filled here)."""
    import shutil

    from tradekit.config import load_config
    from tradekit.doctor import Doctor

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=free))
    cfg = load_config(None)
    got, detail = Doctor(cfg, offline=True).disk()
    assert got == status, detail


def test_signal_service_up_and_down(run_cli, tmp_path: Path) -> None:
    from tests.servers.signal import SignalServer

    with SignalServer(mode="json-rpc") as sig:
        env = {
            **_env("", tmp_path),
            "TRADEKIT_NOTIFY__URL": sig.url,
            "TRADEKIT_NOTIFY__SENDER": sig.state.number,
            "TRADEKIT_NOTIFY__RECIPIENTS": sig.state.number,
            "TRADEKIT_NOTIFY__TIMEOUT_S": "1",
            "TRADEKIT_EXCHANGE__ID": "sample",  # no exchange to reach in this test
        }
        up = _checks(run_cli("doctor", "--json", env=env).out)
        sig.down()
        r = run_cli("doctor", "--json", env=env)
    assert up["signal"]["status"] == "ok"
    assert "mode json-rpc" in str(up["signal"]["detail"])
    assert r.code == 1
    assert _checks(r.out)["signal"]["status"] == "fail"


def test_deployed_model_gets_the_checks_run_makes(run_cli, tmp_path: Path) -> None:
    """A small model trained here on the offline sample: it passes as deployed, and fails for
    a config of another timeframe, as `run` would refuse it."""
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        '[exchange]\nsymbols = ["BTC/USD"]\n'
        "[model]\nn_estimators = 5\ntrain_window = 500\ntest_window = 200\n"
    )
    ohlcv, feats, model = (str(tmp_path / n) for n in ("o.parquet", "f.parquet", "model"))
    for argv in (
        ["fetch", "BTC/USD", "--exchange", "sample", "-t", "1h", "--since", "2019-01-01",
         "--until", "2019-05-01", "-o", ohlcv],
        ["featurize", ohlcv, "-o", feats],
        ["train", feats, "-o", model],
    ):  # fmt: skip
        r = run_cli("-c", str(cfg), *argv)
        assert r.code == 0, r.err
    env = {**_env("", tmp_path), "TRADEKIT_EXCHANGE__SYMBOLS": "BTC/USD"}

    def model_check(**extra: str) -> dict[str, object]:
        doctor = ("-c", str(cfg), "doctor", "--offline", "--json")
        return _checks(run_cli(*doctor, env={**env, **extra}).out)["model"]

    # Loads, but nothing vouches for it: told, not failed (deploy --force is allowed).
    unjudged = model_check()
    assert unjudged["status"] == "warn", unjudged
    assert "lightgbm model" in str(unjudged["detail"])
    assert "not vouched for by the gate: no gate verdict" in str(unjudged["detail"])
    report = str(tmp_path / "report.json")
    r = run_cli(
        "-c", str(cfg), "backtest", ohlcv, "-p", f"{model}/oos_predictions.parquet", "-o", report
    )
    assert r.code == 0, r.err
    lenient = ("--min-sortino", "-1000", "--max-drawdown", "1", "--min-trades", "0")
    r = run_cli("-c", str(cfg), "gate", report, "--model", model, *lenient)
    assert r.code == 0, r.err
    ok = model_check()
    assert ok["status"] == "ok", ok
    assert "passed the gate with these settings" in str(ok["detail"])
    # The Pi's config must be the one the gate judged: another threshold is an untested bot.
    other = model_check(TRADEKIT_POLICY__ENTRY_THRESHOLD="0.05")
    assert other["status"] == "warn", other
    assert "[policy] entry_threshold = 0.05 (judged: 0.002)" in str(other["detail"])
    env["TRADEKIT_EXCHANGE__TIMEFRAME"] = "4h"
    bad = _checks(run_cli("-c", str(cfg), "doctor", "--offline", "--json", env=env).out)["model"]
    assert bad["status"] == "fail"
    assert "trained on 1h candles" in str(bad["detail"])
