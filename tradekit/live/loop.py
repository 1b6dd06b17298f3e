"""``tradekit run``: the real-time loop around the engine (paper or live).

One iteration: controls (pause/resume/kill from another shell), model reload when the deployed
manifest changes, the watchdog ping, and, only when a candle of the configured timeframe is
due by the exchange's clock, the new-candle cycle: fetch the newest candles, features for the
newest rows, predict, ``close_phase`` of the closed candle and ``open_phase`` of the next one.
Idle iterations make no exchange request (live mode refreshes the exchange's dead man's switch
every ``deadman_s / 3`` seconds), so a bot waiting for its next hourly candle costs almost
nothing.

SIGTERM / SIGINT end the loop after the cycle in progress; positions stay open; exit 0.
"""

from __future__ import annotations

import hashlib
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import ConfigError, ExternalError, InputError, UsageError
from tradekit.live import sdnotify
from tradekit.live.ledger import Ledger, now_ms

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import NDArray

    from tradekit.config import Config
    from tradekit.live.engine import Engine
    from tradekit.models.predict import LoadedModel

log = logging.getLogger(__name__)

PERMISSIONS = (
    "the key needs only Query Funds, Query Open Orders & Trades, Create & Modify Orders and "
    "Cancel/Close Orders; never give it Withdraw Funds"
)


@dataclass
class RunSummary:
    mode: str
    cycles: int = 0  # new-candle cycles
    iterations: int = 0
    last_candle_ms: int | None = None
    exit: str = "stopped"
    events: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cycles": self.cycles,
            "iterations": self.iterations,
            "last_candle_ms": self.last_candle_ms,
            "exit": self.exit,
            "events": self.events,
        }


class _Stop:
    """SIGTERM/SIGINT set the flag; the loop finishes its cycle and leaves."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.signal = signum
        self.event.set()


# -- signals: predictions from a file, or the deployed model on live features ------------------
class FileSignals:
    """``--predictions P``: predictions/1 rows keyed by (symbol, candle)."""

    def __init__(self, path: str | Path, symbols: list[str]) -> None:
        from tradekit.contracts import PREDICTIONS, read_table

        df, _ = read_table(path, PREDICTIONS)
        ts = df["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
        self.table = {
            (str(s), int(t)): float(p)
            for s, t, p in zip(
                df["symbol"].to_numpy(), ts, df["prediction"].to_numpy(), strict=True
            )
        }
        self.symbols = symbols
        self.version = f"file:{Path(path).name}"

    def predict(self, t_ms: int, history: History) -> tuple[NDArray[np.float64], str]:
        import numpy as np

        vals = [self.table.get((s, t_ms), math.nan) for s in self.symbols]
        return np.asarray(vals, dtype=np.float64), ""


class ModelSignals:
    """The deployed model on features of the newest candles (the feature set of its manifest)."""

    def __init__(self, model: LoadedModel, symbols: list[str], timeframe: str) -> None:
        self.model = model
        self.symbols = symbols
        self.spec = spec_of(model)
        self.timeframe = timeframe
        self.version = model.version

    def predict(self, t_ms: int, history: History) -> tuple[NDArray[np.float64], str]:
        import numpy as np
        import pandas as pd

        from tradekit.features.build import build_features

        frame = history.frame()
        look = max(1, self.model.lookback)
        # Indicators run over the whole tail; only the rows the model reads are kept.
        feats, _ = build_features(
            frame, self.spec, self.timeframe, cost=0.0, labels=False, drop_warmup=False, last=look
        )
        ts = feats["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
        out = np.full(len(self.symbols), np.nan)
        rows = feats[(ts > t_ms - look * history.tf_ms) & (ts <= t_ms)]
        rows = rows[rows["symbol"].isin(self.symbols)].reset_index(drop=True)
        if not len(rows):
            return out, ""
        pred = self.model.predict(rows)
        pts = pd.DatetimeIndex(pred["timestamp"]).as_unit("ms").asi8
        at = {
            str(s): float(p)
            for s, t, p in zip(pred["symbol"], pts, pred["prediction"], strict=True)
            if t == t_ms
        }
        for i, s in enumerate(self.symbols):
            out[i] = at.get(s, math.nan)
        rts = rows["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
        # The decision's input hash: the feature values the model saw at this candle.
        digest = hashlib.sha256(
            rows.loc[rts == t_ms, self.model.features].to_numpy(dtype="float64").tobytes()
        ).hexdigest()[:16]
        return out, digest


def spec_of(model: LoadedModel) -> Any:
    """The model's feature set, from its manifest (trained with it, hash-checked)."""
    from tradekit.features.sets import spec_from_dict

    fs = model.feature_set
    if "spec" not in fs:
        raise InputError(
            f"{model.directory}/manifest.json: no feature set spec (trained by an older "
            "tradekit); retrain the model"
        )
    spec = spec_from_dict(fs["spec"], f"{model.directory}/manifest.json")
    if spec.hash != fs.get("hash"):
        raise InputError(
            f"{model.directory}/manifest.json: feature set spec does not match its hash"
        )
    return spec


# -- candle history --------------------------------------------------------------------------
class History:
    """The newest candles of every symbol the features need, kept in memory as one float64
    array per symbol (ms, open, high, low, close, volume) and appended to the candle store
    (so a restart does not refetch what it had)."""

    def __init__(self, symbols: list[str], tf_ms: int, keep: int) -> None:
        import numpy as np

        self.symbols = symbols
        self.tf_ms = tf_ms
        self.keep = keep
        self.rows: dict[str, NDArray[np.float64]] = {s: np.empty((0, 6)) for s in symbols}

    def add(self, symbol: str, rows: Any) -> int:
        """Append candles (ccxt rows or an array) newer than the newest kept one."""
        import numpy as np

        if not len(rows):
            return 0
        have = self.rows[symbol]
        last = have[-1, 0] if len(have) else -1.0
        a = np.asarray(rows, dtype=np.float64)[:, :6]
        a = a[a[:, 0] > last]
        if len(a):
            self.rows[symbol] = np.concatenate([have, a])[-self.keep :]
        return len(a)

    def last_ms(self, symbol: str) -> int | None:
        have = self.rows[symbol]
        return int(have[-1, 0]) if len(have) else None

    def last_row(self, symbol: str) -> list[float] | None:
        have = self.rows[symbol]
        return have[-1].tolist() if len(have) else None

    def frame(self) -> pd.DataFrame:
        """ohlcv/1 frame of every symbol's kept candles (built from the arrays, no row loop)."""
        import numpy as np
        import pandas as pd

        syms = [s for s in sorted(self.symbols) if len(self.rows[s])]
        arr = np.concatenate([self.rows[s] for s in syms])
        counts = [len(self.rows[s]) for s in syms]
        return pd.DataFrame(
            {
                "symbol": pd.Series(np.repeat(np.asarray(syms, dtype=object), counts), dtype="str"),
                "timestamp": pd.to_datetime(
                    arr[:, 0].astype(np.int64), unit="ms", utc=True
                ).as_unit("ms"),
                "open": arr[:, 1],
                "high": arr[:, 2],
                "low": arr[:, 3],
                "close": arr[:, 4],
                "volume": np.nan_to_num(arr[:, 5]),
            }
        )


# -- the loop ----------------------------------------------------------------------------------
class Runner:
    def __init__(
        self,
        cfg: Config,
        *,
        live: bool,
        state: str | Path,
        model_dir: str | Path,
        predictions: str | Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.live = live
        self.mode = "live" if live else "paper"
        self.state_path = Path(state)
        self.model_dir = Path(model_dir)
        self.predictions = predictions
        self.symbols = list(cfg.exchange.symbols)
        self.stop = _Stop()
        self.summary = RunSummary(self.mode)
        self._manifest_stamp: tuple[float, int] | None = None
        self._clock_offset = 0  # exchange clock - local clock, ms
        self._halt: str | None = None  # the risk halt last announced

    # ---- start -----------------------------------------------------------------------------
    def check_config(self) -> None:
        cfg = self.cfg
        if not self.symbols:
            raise ConfigError("[exchange] symbols is empty: nothing to trade")
        if cfg.exchange.id == "sample":
            raise UsageError("run needs a real exchange ([exchange] id); 'sample' has no clock")
        if self.live:
            if cfg.run.mode != "live":
                raise UsageError(
                    '--live needs [run] mode = "live" in the config as well (two switches, '
                    "so a stray flag never trades real money)"
                )
            missing = [n for n in ("exchange_api_key", "exchange_secret") if not cfg.secret(n)]
            if missing:
                names = " and ".join(
                    "TRADEKIT_EXCHANGE_API_KEY"
                    if n == "exchange_api_key"
                    else "TRADEKIT_EXCHANGE_SECRET"
                    for n in missing
                )
                raise ConfigError(
                    f"live mode needs {names} in the environment or .env; {PERMISSIONS}"
                )
        elif cfg.run.mode == "live":
            raise UsageError(
                '[run] mode = "live" but --live was not given: refusing to guess; pass --live '
                "to trade real money, or --paper"
            )

    def load_signals(self) -> FileSignals | ModelSignals:
        if self.predictions is not None:
            return FileSignals(self.predictions, self.symbols)
        return ModelSignals(self.load_model(), self.symbols, self.cfg.exchange.timeframe)

    def load_model(self) -> LoadedModel:
        """The deployed model, checked as `run` needs it (files, timeframe, symbols, feature
        set); `doctor` makes the same checks through here."""
        from tradekit.models.predict import load_model

        if not (self.model_dir / "manifest.json").exists():
            raise InputError(
                f"{self.model_dir}: no deployed model (manifest.json missing); deploy one or "
                "set [run] model"
            )
        model = load_model(self.model_dir)
        if model.timeframe != self.cfg.exchange.timeframe:
            raise InputError(
                f"{self.model_dir}: model trained on {model.timeframe} candles, "
                f"[exchange] timeframe is {self.cfg.exchange.timeframe}"
            )
        if model.per_symbol:
            model._symbols_without_model(self.symbols)
        spec_of(model)  # fails now, not at the first candle
        self._manifest_stamp = self._stamp()
        return model

    def _stamp(self) -> tuple[float, int] | None:
        try:
            st = (self.model_dir / "manifest.json").stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def open_exchange(self) -> Any:
        from tradekit.data.exchange import open_exchange

        ex_cfg = self.cfg.exchange
        return open_exchange(
            ex_cfg.id,
            api_url=ex_cfg.api_url,
            timeout_s=ex_cfg.timeout_s,
            rate_limit=ex_cfg.rate_limit,
            api_key=self.cfg.secret("exchange_api_key") if self.live else None,
            secret=self.cfg.secret("exchange_secret") if self.live else None,
            password=self.cfg.secret("exchange_password") if self.live else None,
        )

    # ---- run -------------------------------------------------------------------------------
    def run(self, *, once: bool = False, max_iterations: int | None = None) -> RunSummary:
        from tradekit.data.exchange import RetryPolicy, load_markets, resolve_symbol
        from tradekit.live.brokers import make_broker
        from tradekit.live.engine import Engine
        from tradekit.timeutil import timeframe_ms

        self.check_config()
        signals = self.load_signals()
        cfg = self.cfg
        self.retry = RetryPolicy(cfg.exchange.retries, cfg.exchange.retry_backoff_s)
        ledger = Ledger(self.state_path)
        self.ledger = ledger
        try:
            meta = ledger.meta()
            if meta.get("mode") and meta["mode"] != self.mode:
                raise InputError(
                    f"{self.state_path}: ledger of a {meta['mode']} run; a {self.mode} run "
                    "needs its own [run] state file"
                )
            ex = self.open_exchange()
            self.ex = ex
            load_markets(ex, self.retry)
            for s in self.symbols:
                resolve_symbol(ex, s)
            broker = make_broker(self, ex)
            self.broker = broker
            fresh = not meta
            if fresh:
                cash = broker.starting_cash(self.cfg)
                ledger.set_meta(
                    mode=self.mode, symbols=",".join(self.symbols), created_ms=str(now_ms())
                )
            else:
                cash = 0.0
            engine = Engine(
                self.symbols,
                cfg.policy,
                cfg.risk,
                fee=cfg.backtest.fee,
                slippage=cfg.backtest.slippage,
                cash=cash,
                broker=broker,
                ledger=ledger,
                model_version=signals.version,
            )
            self.engine = engine
            self._restore(engine, fresh)
            self.tf_ms = timeframe_ms(cfg.exchange.timeframe)
            need = set(self.symbols)
            keep = cfg.run.history or 0
            if isinstance(signals, ModelSignals):
                from tradekit.features.sets import tail_candles

                need |= set(signals.spec.corr_symbols)
                keep = keep or tail_candles(signals.spec, cfg.exchange.timeframe)
            self.history = History(sorted(need), self.tf_ms, max(keep, 3))
            prev = ledger.last_run()
            if prev is not None and prev["stopped_ms"] is None:
                msg = (
                    f"restarted: the previous run (pid {prev['pid']}) ended without a clean "
                    "stop; state restored from the ledger"
                )
                ledger.event("warning", "restart", msg, pid=prev["pid"])
                log.warning(msg)
            else:
                ledger.event("info", "start", f"{self.mode} run started, model {signals.version}")
            self.run_id = ledger.start_run(self.mode, signals.version)
            broker.reconcile(engine)
            self._halt_check(engine)
            self._load_history()
            return self._loop(engine, signals, once=once, max_iterations=max_iterations)
        finally:
            ledger.close()

    def _restore(self, engine: Engine, fresh: bool) -> None:
        doc = self.ledger.load_engine()
        if doc is None:
            if not fresh:
                self.ledger.event("info", "start", f"{self.mode} run starts with an empty state")
            return
        gone = engine.load_doc(doc)
        for sym in gone:
            msg = (
                f"{sym}: position held in the ledger but no longer in [exchange] symbols; "
                "it is not traded (add the symbol back, or close it by hand)"
            )
            self.ledger.event("warning", "orphan", msg, symbol=sym)
            self.summary.events.append(msg)
            log.warning(msg)

    @staticmethod
    def _halt_name(engine: Engine) -> str | None:
        """The risk halt in force (daily loss, drawdown, ...), or None."""
        from tradekit import risk as rk

        rs = engine.rs[0]
        if int(rs["day"]) < 0:
            return None
        code = rk.halt_code(rs, engine.equity, engine.rp[0])
        return None if code == rk.OK else rk.CODE_NAMES[code][len("reject_") : -len("_halt")]

    def _halt_check(self, engine: Engine) -> None:
        self._halt = self._halt_name(engine)
        if self._halt is not None:
            msg = f"halted: {self._halt} (no new entries; exits go on)"
            self.ledger.event("warning", "halt", msg, equity=engine.equity)
            self.summary.events.append(msg)
            log.warning(msg)
        with self.ledger.tx():
            self.ledger.save_engine(engine.to_doc(), engine.last_candle_ms)

    def _halt_transition(self, engine: Engine) -> None:
        """An event when a halt starts or ends mid-run, so the phone hears of it."""
        now = self._halt_name(engine)
        if now == self._halt:
            return
        if now is not None:
            msg = f"halted: {now} (no new entries; exits go on)"
            self.ledger.event("warning", "halt", msg, equity=engine.equity)
            log.warning(msg)
        else:
            msg = f"halt lifted ({self._halt}): new entries allowed again"
            self.ledger.event("info", "halt", msg, equity=engine.equity)
            log.info(msg)
        self.summary.events.append(msg)
        self._halt = now

    def _load_history(self) -> None:
        """Stored candles (the candle store), then the exchange's newest on top."""
        from tradekit.data.store import Store

        store = Store(self.cfg.data.store)
        self.store = store
        ex_id = self.cfg.exchange.id
        tf = self.cfg.exchange.timeframe
        for s in self.history.symbols:
            try:
                df = store.read(ex_id, tf, s)
            except InputError as e:
                log.warning("%s; starting %s from the exchange's candles", e, s)
                df = None
            if df is not None and len(df):
                tail = df.iloc[-self.history.keep :]
                import numpy as np

                ts = tail["timestamp"].dt.as_unit("ms").astype("int64").to_numpy()
                vals = tail[["open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)
                self.history.add(s, np.column_stack([ts.astype(np.float64), vals]))

    def _fetch(self, symbol: str) -> list[list[float]]:
        from tradekit.data.exchange import call

        since = self.history.last_ms(symbol)
        rows: list[list[float]] = call(
            self.ex,
            self.ex.fetch_ohlcv,
            symbol,
            self.cfg.exchange.timeframe,
            since=since,
            retry=self.retry,
            what=f"fetching {symbol} candles",
        )
        return rows

    def _exchange_now(self) -> int:
        from tradekit.data.exchange import exchange_now_ms

        t = exchange_now_ms(self.ex, self.retry)
        self._clock_offset = t - now_ms()
        return t

    def _loop(
        self,
        engine: Engine,
        signals: FileSignals | ModelSignals,
        *,
        once: bool,
        max_iterations: int | None,
    ) -> RunSummary:
        handlers = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        watchdog = sdnotify.watchdog_interval_s()
        ready = False
        try:
            while True:
                self.summary.iterations += 1
                if self._controls(engine):
                    break
                signals = self._maybe_reload(signals, engine)
                due = once or self._due(engine)
                if due:
                    try:
                        self._cycle(engine, signals)
                    except ExternalError as e:
                        if once:
                            raise
                        # The exchange is away: the candle stays due and is tried again at
                        # the next poll; stops already rest on the exchange.
                        self.ledger.event("error", "exchange", str(e))
                        log.error("%s; retrying at the next poll", e)
                self.broker.idle(engine)
                self.ledger.heartbeat(self.run_id)
                if not ready:
                    sdnotify.notify(f"READY=1\nSTATUS={self.mode} loop up")
                    ready = True
                if watchdog:
                    sdnotify.notify("WATCHDOG=1")
                if once or self.stop.event.is_set():
                    break
                if max_iterations is not None and self.summary.iterations >= max_iterations:
                    break
                wait = self.cfg.run.poll_s
                if watchdog:
                    wait = min(wait, watchdog)
                if self.stop.event.wait(wait):
                    break
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
            sdnotify.notify("STOPPING=1")
            exit_ = self.summary.exit
            if self.stop.signal is not None:
                exit_ = f"signal {signal.Signals(self.stop.signal).name}"
            self.summary.exit = exit_
            self.ledger.stop_run(self.run_id, exit_)
        self.summary.last_candle_ms = engine.last_candle_ms
        return self.summary

    def _due(self, engine: Engine) -> bool:
        """A new candle may have closed: by the local clock corrected by the exchange's."""
        last = engine.last_candle_ms
        if last is None:
            return True
        return now_ms() + self._clock_offset >= last + 2 * self.tf_ms

    def _cycle(self, engine: Engine, signals: FileSignals | ModelSignals) -> None:
        import numpy as np

        from tradekit.data import candles

        now = self._exchange_now()
        fresh: dict[str, list[list[float]]] = {}
        for s in self.history.symbols:
            raw = self._fetch(s)
            # float64 with NaN for a missing value (ccxt gives None for an unknown volume)
            rows = np.asarray(raw, dtype=np.float64).reshape(-1, 6) if raw else np.empty((0, 6))
            done = rows[:, 0] + self.tf_ms <= now
            closed = rows[done]
            self.history.add(s, closed)
            fresh[s] = rows[~done].tolist()
            if len(closed):
                try:
                    self.store.append(
                        self.cfg.exchange.id,
                        self.cfg.exchange.timeframe,
                        s,
                        candles.from_rows(s, closed.tolist()),
                    )
                except InputError as e:
                    log.warning("candle store: %s", e)
        lasts = [self.history.last_ms(s) for s in self.symbols]
        known = [x for x in lasts if x is not None]
        if not known:
            return
        t = max(known)
        prev = engine.last_candle_ms
        if prev is not None and t <= prev:
            return  # nothing new closed yet
        if prev is not None and t > prev + self.tf_ms:
            missed = (t - prev) // self.tf_ms - 1
            msg = (
                f"{missed} candle(s) passed while the loop was down; decisions resume at the newest"
            )
            self.ledger.event("warning", "gap", msg, since_ms=prev, until_ms=t)
            log.warning(msg)
        n = len(self.symbols)
        o, h, lo, c = (np.full(n, np.nan) for _ in range(4))
        for i, s in enumerate(self.symbols):
            row = self.history.last_row(s)
            if row is not None and row[0] == t:
                o[i], h[i], lo[i], c[i] = row[1:5]
        t0 = time.perf_counter()
        if engine.open_ms is None or engine.open_ms < t:
            engine.open_phase(t, o)  # first candle of a fresh ledger: no pending orders yet
        pred, digest = signals.predict(t, self.history)
        self.broker.before_close(engine)
        engine.close_phase(t, o, h, lo, c, pred, digest)
        opens = np.full(n, np.nan)
        for i, s in enumerate(self.symbols):
            nxt = [r for r in fresh.get(s, []) if r[0] == t + self.tf_ms]
            # The next candle's first price; until the exchange lists it, the close.
            opens[i] = nxt[0][1] if nxt else c[i]
        engine.open_phase(t + self.tf_ms, opens)
        self.broker.after_cycle(engine)
        self._halt_transition(engine)
        self.summary.cycles += 1
        self.summary.last_candle_ms = t
        log.info(
            "candle %s: equity %.2f, %d open position(s), decided in %.1f ms",
            t,
            engine.equity,
            sum(1 for a in engine.acct if a.qty > 0),
            (time.perf_counter() - t0) * 1000,
        )

    def _controls(self, engine: Engine) -> bool:
        """Apply pause/resume/kill requests; True when the loop must stop."""
        stop = False
        for row in self.ledger.pending_controls():
            cmd = row["command"]
            if cmd == "pause":
                engine.paused = True
                result = "paused: no new entries; exits and stops go on"
            elif cmd == "resume":
                engine.paused = False
                result = "resumed"
            elif cmd == "kill":
                result = self.broker.kill(engine)
                stop = True
                self.summary.exit = "killed"
            else:
                result = f"unknown command {cmd!r}"
            with self.ledger.tx():
                self.ledger.control_done(int(row["id"]), result)
                self.ledger.save_engine(engine.to_doc(), engine.last_candle_ms)
            self.ledger.event("info", "control", f"{cmd}: {result}")
            log.info("%s: %s", cmd, result)
        return stop

    def _maybe_reload(
        self, signals: FileSignals | ModelSignals, engine: Engine
    ) -> FileSignals | ModelSignals:
        if not isinstance(signals, ModelSignals):
            return signals
        stamp = self._stamp()
        if stamp is None or stamp == self._manifest_stamp:
            return signals
        self._manifest_stamp = stamp
        old = signals.model
        try:
            new = self.load_model()
            fresh = ModelSignals(new, self.symbols, self.cfg.exchange.timeframe)
        except (InputError, ConfigError, ExternalError) as e:
            msg = f"new model in {self.model_dir} failed to load, keeping {old.version}: {e}"
            self.ledger.event("error", "model", msg)
            log.error(msg)
            return signals
        msg = f"model reloaded: {old.version} -> {new.version}"
        if set(new.features) != set(old.features):
            msg += f" (feature list changed: {len(old.features)} -> {len(new.features)} columns)"
        engine.model_version = new.version
        self.ledger.event("info", "model", msg)
        self.ledger.heartbeat(self.run_id, new.version)
        log.info(msg)
        return fresh
