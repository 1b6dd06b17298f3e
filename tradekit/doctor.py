"""``tradekit doctor``: is this machine ready to trade? One row per check, each ``ok``,
``warn``, ``fail`` or ``skip``; any ``fail`` makes the command exit 1.

Checks never raise: a check that cannot run reports why in its row, so one broken part does
not hide the state of the others.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import TradekitError

if TYPE_CHECKING:
    from tradekit.config import Config

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

PERMISSIONS_REMINDER = (
    "the key needs Query Funds, Query Open/Closed Orders & Trades, Create & Modify Orders, "
    "Cancel/Close Orders; never give it Withdraw Funds"
)
MIN_FREE_BYTES = 1 << 30  # below 1 GiB the ledger and candle store can fill the disk: fail
WARN_FREE_BYTES = 5 << 30
SKEW_WARN_S = 2.0  # candle-close decisions tolerate a little drift
SKEW_FAIL_S = 10.0  # beyond this, "closed candle" and the exchange's nonce window disagree
UNITS = ("tradekit-run.service", "tradekit-listen.service", "tradekit-summary.timer")
UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "~/.config/systemd/user")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    seconds: float = 0.0


def _timed(name: str, fn: Callable[[], tuple[str, str]]) -> Check:
    t = time.perf_counter()
    try:
        status, detail = fn()
    except TradekitError as e:  # our errors are one line that names the problem already
        status, detail = FAIL, str(e)
    except Exception as e:  # a check reports; it never takes the others down
        status, detail = FAIL, f"{type(e).__name__}: {e}".splitlines()[0]
    return Check(name, status, detail, round(time.perf_counter() - t, 3))


class Doctor:
    def __init__(self, cfg: Config, *, offline: bool = False, live: bool | None = None) -> None:
        self.cfg = cfg
        self.offline = offline
        self.live = cfg.run.mode == "live" if live is None else live
        self._ex: Any = None
        self._skew_ms: float | None = None

    # -- individual checks ---------------------------------------------------------------
    def config(self) -> tuple[str, str]:
        where = str(self.cfg.path) if self.cfg.path else "built-in defaults"
        if not self.cfg.exchange.symbols:
            return FAIL, f"{where}: [exchange] symbols is empty"
        return OK, f"{where}; {self.cfg.exchange.id} {self.cfg.exchange.timeframe}, " + (
            f"{len(self.cfg.exchange.symbols)} symbols, mode {self.cfg.run.mode}"
        )

    def exchange(self) -> tuple[str, str]:
        if self.offline:
            return SKIP, "--offline"
        if self.cfg.exchange.id == "sample":
            return SKIP, "[exchange] id = sample (offline data, nothing to reach)"
        from tradekit.data.exchange import (
            RetryPolicy,
            load_markets,
            open_exchange,
            resolve_symbol,
        )

        e = self.cfg.exchange
        ex = open_exchange(e.id, api_url=e.api_url, timeout_s=e.timeout_s, rate_limit=e.rate_limit)
        retry = RetryPolicy(retries=min(e.retries, 1), backoff_s=e.retry_backoff_s)
        t0 = time.time() * 1000
        markets = load_markets(ex, retry)
        missing = []
        for s in e.symbols:
            try:
                resolve_symbol(ex, s)
            except Exception:
                missing.append(s)
        if ex.has.get("fetchTime"):
            t1 = time.time() * 1000
            server = float(ex.fetch_time())
            t2 = time.time() * 1000
            # The server stamped its time somewhere inside the round trip: compare with the
            # midpoint. A clock in whole seconds (Kraken's unixtime) is truncated: the time it
            # stands for is, on average, half a second later.
            if server % 1000 == 0:
                server += 500
            self._skew_ms = server - (t1 + t2) / 2
        self._ex = ex
        ms = time.time() * 1000 - t0
        if missing:
            return FAIL, f"{len(markets)} markets, but not {', '.join(missing)}"
        return OK, f"{len(markets)} markets loaded in {ms:.0f} ms; symbols found"

    def clock(self) -> tuple[str, str]:
        if self._skew_ms is None:
            return SKIP, "no exchange time (exchange check skipped or failed)"
        skew = self._skew_ms / 1000
        text = (
            f"local clock {'behind' if skew > 0 else 'ahead of'} the exchange by {abs(skew):.2f} s"
        )
        if abs(skew) >= SKEW_FAIL_S:
            return FAIL, text + " (sync it: timedatectl set-ntp true)"
        if abs(skew) >= SKEW_WARN_S:
            return WARN, text
        return OK, text

    def api_key(self) -> tuple[str, str]:
        have = [n for n in ("exchange_api_key", "exchange_secret") if self.cfg.secret(n)]
        if len(have) == 2:
            src = self.cfg.secrets["exchange_api_key"].source
            return OK, f"key and secret set (from {src}); {PERMISSIONS_REMINDER}"
        if self.live:
            return FAIL, (
                "live mode needs TRADEKIT_EXCHANGE_API_KEY and TRADEKIT_EXCHANGE_SECRET; "
                + PERMISSIONS_REMINDER
            )
        return SKIP, "no key set; paper mode needs none"

    def signal(self) -> tuple[str, str]:
        n = self.cfg.notify
        if not n.sender or not n.recipients:
            return SKIP, "[notify] sender/recipients not set"
        if self.offline:
            return SKIP, "--offline"
        from tradekit.notify import check

        about = check(n)  # /v1/about and /v1/health, as `notify --check` asks them
        text = f"{n.url}: signal-cli-rest-api {about['version']}, mode {about['mode']}"
        if about["sender_registered"] is False:
            return FAIL, f"{text}; {n.sender} is not one of its accounts"
        return OK, text

    def model(self) -> tuple[str, str]:
        from tradekit.gate import model_identity, receipt_problem
        from tradekit.live.startup import load_model, unjudged

        d = Path(self.cfg.run.model).expanduser()
        if not (d / "manifest.json").exists():
            # `run` refuses to start without one (exit 3), paper or live: not ready to trade.
            return FAIL, (
                f"{d}: no deployed model (manifest.json): `run` exits 3 until one is deployed "
                "(`tradekit deploy MODEL_DIR`) or [run] model names one"
            )
        # The checks `run` makes at start: files match the manifest, timeframe, a model for
        # every symbol, the feature set, the model's library installed and loading.
        model = load_model(self.cfg, d)
        text = f"{d}: {model.kind} model {model.version}, files verified, loads"
        problem = receipt_problem(d, model_identity(d, model.manifest))  # files verified once
        if problem is not None:  # deployed with --force, or by hand
            return WARN, f"{text}; not vouched for by the gate: {problem}"
        diff = unjudged(self.cfg, d)
        if diff:
            return WARN, f"{text}; the gate judged other settings: {'; '.join(diff)}"
        return OK, f"{text}, passed the gate with these settings"

    def state(self) -> tuple[str, str]:
        from tradekit.ledger import VERSION, inspect

        p = Path(self.cfg.run.state).expanduser()
        if not p.exists():
            return WARN, f"{p}: no ledger yet (created by the first `tradekit run`)"
        version, result, runs = inspect(p)
        if result != "ok":
            return FAIL, f"{p}: integrity check failed: {result}"
        if version > VERSION:
            return FAIL, f"{p}: schema version {version} is newer than this tradekit ({VERSION})"
        note = "" if version == VERSION else f" (schema {version}: migrated at the next run)"
        return OK, f"{p}: intact, {runs} runs{note}"

    def disk(self) -> tuple[str, str]:
        paths = {Path(self.cfg.run.state).expanduser().parent, Path(self.cfg.data.store)}
        worst: tuple[int, Path] | None = None
        for p in paths:
            q = p.resolve()
            while not q.exists():  # not created yet: the disk it will live on
                q = q.parent
            free = shutil.disk_usage(q).free
            if worst is None or free < worst[0]:
                worst = (free, p)
        assert worst is not None
        free, p = worst
        text = f"{free / (1 << 30):.1f} GiB free on {p}"
        if free < MIN_FREE_BYTES:
            return FAIL, text
        if free < WARN_FREE_BYTES:
            return WARN, text
        return OK, text

    def units(self) -> tuple[str, str]:
        found = {u: d for u in UNITS for d in UNIT_DIRS if (Path(d).expanduser() / u).exists()}
        if not found:
            return WARN, "no tradekit units installed (on the Pi: recipes/pi-setup.sh)"
        missing = [u for u in UNITS if u not in found]
        failed = []
        if shutil.which("systemctl") and Path("/run/systemd/system").exists():
            import subprocess

            for u in found:
                r = subprocess.run(
                    ["systemctl", "is-failed", "--quiet", u], check=False, timeout=10
                )
                if r.returncode == 0:
                    failed.append(u)
        if failed:
            return FAIL, f"failed: {', '.join(failed)} (journalctl -u {failed[0]})"
        if missing:
            return WARN, f"installed: {', '.join(found)}; missing: {', '.join(missing)}"
        return OK, f"installed: {', '.join(found)}"

    # -- all ---------------------------------------------------------------------------
    def run(self) -> list[Check]:
        order: list[tuple[str, Callable[[], tuple[str, str]]]] = [
            ("config", self.config),
            ("exchange", self.exchange),
            ("clock", self.clock),
            ("api key", self.api_key),
            ("signal", self.signal),
            ("model", self.model),
            ("state", self.state),
            ("disk", self.disk),
            ("units", self.units),
        ]
        return [_timed(name, fn) for name, fn in order]


def report(checks: list[Check]) -> dict[str, Any]:
    return {
        "schema": "doctor/1",
        "ok": not any(c.status == FAIL for c in checks),
        "checks": [asdict(c) for c in checks],
        "host": os.uname().nodename,
    }
