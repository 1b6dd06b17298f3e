"""``tradekit run``: the real-time loop around the engine (paper or live).

Start-up (``startup``): the switches and keys, the deployed model, the exchange, the engine
restored from the ledger. Then recovery (``recovery``), before anything trades: every order the
ledger left unsettled is looked up on the exchange and booked, the balances are set beside the
ledger, each held position's stop is checked and re-placed.

One iteration: controls (``controls``), a model reload when the deployed manifest changes, the
watchdog ping, and, only when a candle of the configured timeframe is due by the exchange's
clock (or an order's fate is open), the new-candle cycle: fetch the newest candles, features
for the newest rows, predict, ``close_phase`` of the closed candle and ``open_phase`` of the
next one. A late restart manages the positions it holds over the candles it missed (their
stops, their watermarks) but makes no entry from a stale signal. Idle iterations make no
exchange request, so a bot waiting for its next hourly candle costs almost nothing.

SIGTERM / SIGINT (``tradekit.interrupt``) stop the loop at its next safe point, between
start-up steps or after the cycle in progress; positions and their stops stay; exit 130.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit import interrupt
from tradekit.errors import ConfigError, ExternalError, InputError
from tradekit.ledger import Ledger, now_ms
from tradekit.live import controls, recovery, sdnotify, startup
from tradekit.live.history import History
from tradekit.live.signals import FileSignals, ModelSignals

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from tradekit.config import Config
    from tradekit.live.candidates import Candidates
    from tradekit.live.engine import Engine

log = logging.getLogger(__name__)


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
        self.summary = RunSummary(self.mode)
        self._manifest_stamp: tuple[float, int] | None = None
        self._clock_offset = 0  # exchange clock - local clock, ms
        self.candidates: Candidates | None = None

    # ---- start -----------------------------------------------------------------------------
    def run(self, *, once: bool = False, max_iterations: int | None = None) -> RunSummary:
        from tradekit.data.exchange import RetryPolicy, load_markets, resolve_symbol
        from tradekit.live.brokers import BrokerContext, LiveLoopBroker, make_broker
        from tradekit.timeutil import timeframe_ms

        cfg = self.cfg
        startup.check_config(cfg, self.live)
        interrupt.check()
        signals = startup.load_signals(cfg, self.model_dir, self.predictions)
        self._manifest_stamp = self._stamp()
        interrupt.check()
        self.retry = RetryPolicy(cfg.exchange.retries, cfg.exchange.retry_backoff_s)
        self.tf_ms = timeframe_ms(cfg.exchange.timeframe)
        ledger = Ledger(self.state_path)
        self.ledger = ledger
        try:
            meta = ledger.meta()
            if meta.get("mode") and meta["mode"] != self.mode:  # before asking the exchange
                raise InputError(
                    f"{self.state_path}: ledger of a {meta['mode']} run; a {self.mode} run "
                    "needs its own [run] state file"
                )
            self.ex = startup.open_exchange(cfg, self.live)
            cache = self.state_path.parent / f".markets-{cfg.exchange.id}.json"
            load_markets(self.ex, self.retry, cache=cache)
            for s in self.symbols:
                resolve_symbol(self.ex, s)
            interrupt.check()
            if self.live:
                self._exchange_now()
            ctx = BrokerContext(
                ledger,
                exchange_now=lambda: now_ms() + self._clock_offset,
                exchange_stops=cfg.run.exchange_stops,
                deadline_s=cfg.run.order_deadline_s,
            )
            broker = make_broker(
                ctx,
                live=self.live,
                exchange=self.ex,
                retry=self.retry,
                quote=self.symbols[0].split("/")[1],
                fee=cfg.backtest.fee,
                slippage=cfg.backtest.slippage,
                paper_balance=cfg.run.paper_balance,
            )
            self.broker = broker
            engine, gone = startup.open_engine(
                cfg, ledger, broker, mode=self.mode, tf_ms=self.tf_ms, model_version=signals.version
            )
            if isinstance(broker, LiveLoopBroker):
                broker.bind(engine)
            self.engine = engine
            for sym in gone:
                self._note(
                    "warning",
                    "orphan",
                    f"{sym}: position held in the ledger but no longer in [exchange] symbols; "
                    "it is not traded (add the symbol back, or close it by hand)",
                )
            self._history(signals)
            self._announce_start(signals.version)
            if isinstance(signals, ModelSignals):
                self._check_judged()
            self.run_id = ledger.start_run(self.mode, signals.version)
            interrupt.check()
            self._recover(engine)
            self._announce_halts(engine)
            self.candidates = self._candidates(signals)
            self._load_history()
            return self._loop(engine, signals, once=once, max_iterations=max_iterations)
        finally:
            if self.candidates is not None:
                self.candidates.close()
            ledger.close()

    def _note(self, level: str, kind: str, msg: str, **data: Any) -> None:
        self.ledger.event(level, kind, msg, **data)
        self.summary.events.append(msg)
        log.log(logging.INFO if level == "info" else logging.WARNING, "%s", msg)

    def _announce_start(self, version: str) -> None:
        prev = self.ledger.last_run()
        if prev is not None and prev["stopped_ms"] is None:
            msg = (
                f"restarted: the previous run (pid {prev['pid']}) ended without a clean stop; "
                "recovering from the exchange and the ledger"
            )
            self.ledger.event("warning", "restart", msg, pid=prev["pid"])
            log.warning(msg)
        else:
            self.ledger.event("info", "start", f"{self.mode} run started, model {version}")

    def _recover(self, engine: Engine) -> None:
        """Before anything trades: book what the exchange did while the loop was away, set the
        balances beside the ledger (live), and check every held position's stop."""
        t0 = time.perf_counter()
        n = len(self.ledger.unsettled_orders())
        recovery.settle(engine, self.broker, self.ledger, wait=True)
        from tradekit.live.brokers import LiveLoopBroker

        diffs = []
        if isinstance(self.broker, LiveLoopBroker):
            diffs = recovery.reconcile(engine, self.broker, self.ledger)
        self.broker.place_stops(engine)
        held = len(engine.held())
        msg = (
            f"{self.mode} state recovered in {time.perf_counter() - t0:.2f}s: {n} unsettled "
            f"order(s) looked up, {held} position(s), cash {engine.cash:,.2f}, equity "
            f"{engine.equity:,.2f}"
        )
        if diffs:
            msg += "; differences halt new entries: " + "; ".join(map(str, diffs))
        self._note("warning" if diffs else "info", "reconcile", msg)

    def _announce_halts(self, engine: Engine) -> None:
        for name in engine.halts():
            if name != "reconcile":
                self._note("warning", "halt", f"halted: {name} (no new entries; exits go on)")

    def _stamp(self) -> tuple[float, int] | None:
        try:
            st = (self.model_dir / "manifest.json").stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def _history(self, signals: FileSignals | ModelSignals) -> None:
        need = set(self.symbols)
        keep = self.cfg.run.history or 0
        if isinstance(signals, ModelSignals):
            from tradekit.features.sets import tail_candles

            need |= set(signals.spec.corr_symbols)
            keep = keep or tail_candles(signals.spec, self.cfg.exchange.timeframe)
        self.history = History(sorted(need), self.tf_ms, max(keep, 3))

    def _load_history(self) -> None:
        """The candle cache beside the ledger, then the store for what it lacks; the
        exchange's newest come on top at the first cycle."""
        self.history.load(self._cache, self._source)
        self._fill_store()

    def _fill_store(self) -> None:
        self.history.fill_from_store(
            Path(self.cfg.data.store), self.cfg.exchange.id, self.cfg.exchange.timeframe
        )

    def _candidates(self, signals: FileSignals | ModelSignals) -> Candidates:
        """Candidate models beside the live one (``tradekit.live.candidates``), loaded now so
        that the history keeps what they need too."""
        from tradekit import evidence
        from tradekit.live.candidates import Candidates

        where = evidence.directory(self.cfg.run.candidates, str(self.model_dir))
        cands = Candidates(
            self.cfg,
            directory=where,
            state=self.state_path,
            tf_ms=self.tf_ms,
            note=self._note,
            fetchable=lambda s: s in (self.ex.markets or {}),
        )
        try:
            cands.scan(signals, self.history)
        except Exception as e:  # candidates never stop the live loop (it rescans each candle)
            log.debug("candidates", exc_info=True)
            self._note("warning", "candidate", f"candidates: scan failed: {e}")
        return cands

    @property
    def _cache(self) -> Path:
        return self.state_path.with_name(self.state_path.stem + ".candles.npz")

    @property
    def _source(self) -> str:
        return f"{self.cfg.exchange.id}/{self.cfg.exchange.timeframe}"

    # ---- the loop ------------------------------------------------------------------------
    def _loop(
        self,
        engine: Engine,
        signals: FileSignals | ModelSignals,
        *,
        once: bool,
        max_iterations: int | None,
    ) -> RunSummary:
        watchdog = sdnotify.watchdog_interval_s()
        ready = False
        try:
            while True:
                self.summary.iterations += 1
                stop = controls.apply(engine, self.broker, self.ledger)
                if stop:
                    self.summary.exit = stop
                    break
                signals = self._maybe_reload(signals, engine)
                if once or self._due(engine):
                    try:
                        self._cycle(engine, signals)
                    except ExternalError as e:
                        if once:
                            raise
                        # The exchange is away: the candle stays due and is tried again at
                        # the next poll; stops already rest on the exchange.
                        self.ledger.event("error", "exchange", str(e))
                        log.error("%s; retrying at the next poll", e)
                self.ledger.heartbeat(self.run_id)
                if not ready:
                    sdnotify.notify(f"READY=1\nSTATUS={self.mode} loop up")
                    ready = True
                if watchdog:
                    sdnotify.notify("WATCHDOG=1")
                if once or interrupt.requested():
                    break
                if max_iterations is not None and self.summary.iterations >= max_iterations:
                    break
                wait = self.cfg.run.poll_s
                if watchdog:
                    wait = min(wait, watchdog)
                if interrupt.event().wait(wait):
                    break
        finally:
            sdnotify.notify("STOPPING=1")
            if interrupt.requested():
                self.summary.exit = f"signal {interrupt.name()}"
            self.ledger.stop_run(self.run_id, self.summary.exit)
        self.summary.last_candle_ms = engine.last_candle_ms
        return self.summary

    def _due(self, engine: Engine) -> bool:
        """A new candle may have closed (by the local clock corrected by the exchange's), or an
        open phase or an order is unfinished."""
        last = engine.last_candle_ms
        if last is None or not engine.open_done:
            return True
        if now_ms() + self._clock_offset >= last + 2 * self.tf_ms:
            return True
        return any(r["kind"] != "stop" for r in self.ledger.unsettled_orders())

    def _exchange_now(self) -> int:
        from tradekit.data.exchange import exchange_now_ms

        t = exchange_now_ms(self.ex, self.retry)
        self._clock_offset = t - now_ms()
        return t

    def _fetch(self, now: int) -> dict[str, list[list[float]]]:
        """The newest candles of every symbol: closed ones into the history (saved to the
        candle cache); returns each symbol's forming candle(s)."""
        import numpy as np

        from tradekit.data.exchange import call

        fresh: dict[str, list[list[float]]] = {}
        added = 0
        for s in self.history.symbols:
            raw = call(
                self.ex,
                self.ex.fetch_ohlcv,
                s,
                self.cfg.exchange.timeframe,
                since=self.history.last_ms(s),
                retry=self.retry,
                what=f"fetching {s} candles",
            )
            # float64 with NaN for a missing value (ccxt gives None for an unknown volume)
            rows = np.asarray(raw, dtype=np.float64).reshape(-1, 6) if raw else np.empty((0, 6))
            done = rows[:, 0] + self.tf_ms <= now
            added += self.history.add(s, rows[done])
            fresh[s] = rows[~done].tolist()
        if added:
            self.history.save(self._cache, self._source)
        return fresh

    def _ohlc(self, t: int) -> tuple[NDArray[np.float64], ...]:
        """(open, high, low, close) of candle ``t`` per symbol, NaN where it has none."""
        import numpy as np

        out = np.full((4, len(self.symbols)), np.nan)
        for i, s in enumerate(self.symbols):
            row = self.history.at(s, t)
            if row is not None:
                out[:, i] = row[1:5]
        return out[0], out[1], out[2], out[3]

    def _opens(self, t: int, fresh: dict[str, list[list[float]]], fallback: Any) -> Any:
        """The first price of candle ``t`` (forming) per symbol; until the exchange lists it,
        ``fallback`` (the close before it)."""
        import numpy as np

        opens = np.array(fallback, dtype=np.float64)
        for i, s in enumerate(self.symbols):
            nxt = [r for r in fresh.get(s, []) if r[0] == t]
            if nxt:
                opens[i] = nxt[0][1]
        return opens

    def _cycle(self, engine: Engine, signals: FileSignals | ModelSignals) -> None:
        now = self._exchange_now()
        recovery.settle(engine, self.broker, self.ledger, wait=False)
        fresh = self._fetch(now)
        known = [x for x in (self.history.last_ms(s) for s in self.symbols) if x is not None]
        if not known:
            return
        t = max(known)
        tf = self.tf_ms
        last = engine.last_candle_ms
        if last is not None and t <= last:
            # Nothing closed since: finish an open phase a crash cut short (its candle forms).
            if not engine.open_done and engine.open_ms == last + tf:
                engine.open_phase(last + tf, self._opens(last + tf, fresh, self._ohlc(last)[3]))
            self.broker.place_stops(engine)
            return
        if last is None:
            engine.open_phase(t, self._ohlc(t)[0])  # a fresh ledger: nothing pending yet
        else:
            engine.expire_open(last + tf)  # its candle has closed: stale entries are dropped
            missed = list(range(last + tf, t, tf))
            if missed:
                self._note(
                    "warning",
                    "gap",
                    f"{len(missed)} candle(s) passed while the loop was down; positions are "
                    "managed at the newest candle, no entry is made from a stale signal",
                    since_ms=last,
                    until_ms=t,
                )
                for m in missed:
                    o, h, lo, _ = self._ohlc(m)
                    engine.missed(m, o, h, lo, stops=not self.broker.live)
        o, h, lo, c = self._ohlc(t)
        t0 = time.perf_counter()
        pred, digest = signals.predict(t, self.history)
        recovery.settle(engine, self.broker, self.ledger, wait=False)  # stops that filled
        engine.close_phase(t, o, h, lo, c, pred, digest)
        opens = self._opens(t + tf, fresh, c)
        engine.open_phase(t + tf, opens)
        self.broker.place_stops(engine)
        self.summary.cycles += 1
        self.summary.last_candle_ms = t
        log.info(
            "candle %s: equity %.2f, %d open position(s), decided in %.1f ms",
            t,
            engine.equity,
            len(engine.held()),
            (time.perf_counter() - t0) * 1000,
        )
        if self.candidates is not None:  # after the live orders; never raises
            self.candidates.cycle(t, self._ohlc, opens, self.history, signals, self._fill_store)
            log.debug("candidates: %.1f ms", self.candidates.last_ms)

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
            new = startup.load_model(self.cfg, self.model_dir)
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
        self._check_judged()
        return fresh

    def _check_judged(self) -> None:
        """Told, not refused: a smaller stake on the Pi can be a choice, but the user must
        know the gate judged other settings."""
        diff = startup.unjudged(self.cfg, self.model_dir)
        if diff:
            self._note(
                "warning",
                "config",
                "this config differs from the backtest the gate judged: " + "; ".join(diff),
            )
