"""Candidate models paper-trading beside the live one, inside ``run``.

Each candidate installed in ``[run] candidates`` (``deploy MODEL_DIR --candidate NAME``) gets
its own paper account: an :class:`~tradekit.live.engine.Engine` with the paper broker, the
same policy, risk limits, fee and slippage as a paper run, ``[run] paper_balance`` to start
with, and its own ledger, ``state/candidates/NAME.db`` (same schema, mode ``candidate``).
The live ledger stays the exact copy of the exchange: no money query can mix a candidate in,
every reader works unchanged on a candidate's file, and removing a candidate is removing a
file. A candidate whose release changes (``deploy --candidate NAME`` again) or that is
removed (``--remove``, ``promote``) has its ledger moved to ``state/candidates/retired/``.

The loop calls :meth:`Candidates.cycle` after the live decisions of a candle (the live orders
have left); each candidate's close and open phases are one transaction of its ledger. A
candidate that fails to load, or whose cycle raises, is an event in the live ledger and is
skipped: the live loop goes on. A failed cycle drops the candidate's in-memory state, and the
next candle restores it from its ledger (the candle in between is managed as a missed one).
Features are computed once per candle for every model on the same feature set
(:class:`~tradekit.live.signals.ModelSignals` ``features_of``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit import evidence
from tradekit.errors import InputError, TradekitError
from tradekit.ledger import Ledger, now_ms
from tradekit.live.engine import Engine

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from tradekit.config import Config
    from tradekit.live.history import History
    from tradekit.live.signals import FileSignals, ModelSignals

log = logging.getLogger(__name__)

Ohlc = Callable[[int], tuple[Any, ...]]  # (open, high, low, close) per symbol
Note = Callable[..., None]  # (level, kind, message, **data): an event in the live ledger


@dataclass
class Slot:
    """One candidate being paper-traded."""

    name: str
    stamp: tuple[Any, ...]  # what it was loaded from (a change reloads it)
    release: str
    signals: ModelSignals
    engine: PaperAccount
    ledger: Ledger


def _stamp(c: evidence.Installed) -> tuple[Any, ...]:
    try:
        st = (c.target / "manifest.json").stat()
    except OSError:
        return (str(c.target), None)
    return (str(c.target), st.st_mtime_ns, st.st_size)


class Candidates:
    """The candidates of ``directory``, traded on the live loop's candles."""

    def __init__(
        self,
        cfg: Config,
        *,
        directory: Path,
        state: Path,
        tf_ms: int,
        note: Note,
        fetchable: Callable[[str], bool] = lambda symbol: True,
    ) -> None:
        self.cfg = cfg
        self.fetchable = fetchable  # whether the exchange lists a symbol (a reference pair)
        self.dir = directory
        self.state = state
        self.tf_ms = tf_ms
        self.note = note
        self.slots: dict[str, Slot] = {}
        self.refused: dict[str, tuple[Any, ...]] = {}  # name -> stamp that failed to load
        self.failing: set[str] = set()  # whose last candle failed (one event per streak)
        self.last_ms = 0.0  # the last cycle's cost, for the log and the benchmark

    # -- loading -------------------------------------------------------------------------------
    def scan(self, live: FileSignals | ModelSignals | None, history: History) -> bool:
        """Load new or changed candidates, drop removed ones; True when the history was
        widened for them (the caller fills it from the store)."""
        try:
            found = {c.name: c for c in evidence.installed(self.dir)}
        except TradekitError as e:
            log.warning("%s", e)
            return False
        for name in [n for n in self.slots if n not in found]:
            gone = self.slots.pop(name)
            gone.ledger.close()
            where = _retire(self.state, name, gone.release)
            self.note("info", "candidate", f"candidate {name} removed; its paper ledger kept "
                      f"as {where}", candidate=name)  # fmt: skip
        for name in [n for n in self.refused if n not in found]:
            del self.refused[name]
        widened = False
        for name, c in sorted(found.items()):
            stamp = _stamp(c)
            slot = self.slots.get(name)
            if (slot is not None and slot.stamp == stamp) or self.refused.get(name) == stamp:
                continue
            if slot is not None:
                del self.slots[name]
                slot.ledger.close()
            if len(self.slots) >= evidence.MAX_CANDIDATES:
                self._refuse(name, stamp, f"more than {evidence.MAX_CANDIDATES} candidates")
                continue
            try:
                new, wider = self._load(c, stamp, live, history)
            except (TradekitError, OSError) as e:
                self._refuse(name, stamp, str(e))
                continue
            except Exception as e:  # a bug in a candidate's model must not stop the loop
                log.debug("candidate %s", name, exc_info=True)
                self._refuse(name, stamp, f"internal error: {type(e).__name__}: {e}")
                continue
            self.refused.pop(name, None)
            self.slots[name] = new
            widened |= wider
            if name in self.failing:
                continue  # back after a failed candle: said once, when it trades again
            shared = " (features shared)" if new.signals.shares_features else ""
            self.note("info", "candidate", f"candidate {name} paper-trading model "
                      f"{new.signals.version}{shared}", candidate=name,
                      model_version=new.signals.version)  # fmt: skip
        return widened

    def _refuse(self, name: str, stamp: tuple[Any, ...], why: str) -> None:
        self.refused[name] = stamp
        self.note("warning", "candidate", f"candidate {name} not loaded: {why}; the live loop "
                  "goes on", candidate=name)  # fmt: skip

    def _load(
        self,
        c: evidence.Installed,
        stamp: tuple[Any, ...],
        live: FileSignals | ModelSignals | None,
        history: History,
    ) -> tuple[Slot, bool]:
        from tradekit.features.sets import tail_candles
        from tradekit.live import startup
        from tradekit.live.signals import ModelSignals

        cfg = self.cfg
        model = startup.load_model(cfg, c.link)
        symbols = list(cfg.exchange.symbols)
        source = next(
            (s for s in (live, *(x.signals for x in self.slots.values()))
             if isinstance(s, ModelSignals) and not s.shares_features
             and s.spec.hash == model.feature_set.get("hash")),
            None,
        )  # fmt: skip
        signals = ModelSignals(model, symbols, cfg.exchange.timeframe, features_of=source)
        # A reference pair the exchange does not list would fail every fetch of the live loop.
        unknown = [
            s
            for s in signals.spec.corr_symbols
            if s not in history.symbols and not self.fetchable(s)
        ]
        if unknown:
            raise InputError(f"its reference pair(s) {', '.join(unknown)} are not on the exchange")
        keep = cfg.run.history or tail_candles(signals.spec, cfg.exchange.timeframe)
        wider = history.widen({*symbols, *signals.spec.corr_symbols}, max(keep, 3))
        path = evidence.ledger_path(self.state, c.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        engine, ledger = self._open(path, c, signals)
        return Slot(c.name, stamp, c.release, signals, engine, ledger), wider

    def _open(
        self, path: Path, c: evidence.Installed, signals: ModelSignals
    ) -> tuple[PaperAccount, Ledger]:
        """The candidate's paper account from its ledger, or a fresh one (its first state
        and meta in one transaction, as a fresh live ledger's)."""
        from tradekit.live.brokers import BrokerContext, PaperLoopBroker

        cfg = self.cfg
        if path.exists():
            with Ledger(path) as old:
                meta = old.meta()
            if meta and (meta.get("mode") != "candidate" or meta.get("release") != c.release):
                _retire(self.state, c.name, meta.get("release") or "unknown")
        ledger = Ledger(path)
        try:
            broker = PaperLoopBroker(
                BrokerContext(ledger, exchange_now=now_ms),
                cfg.backtest.fee,
                cfg.backtest.slippage,
                cfg.run.paper_balance,
            )
            doc = ledger.load_engine()
            symbols = list(cfg.exchange.symbols)
            engine = _account(cfg, symbols, broker, ledger, self.tf_ms, signals.version,
                              fresh=doc is None)  # fmt: skip
            if doc is None:
                ledger.init(engine.to_doc(), mode="candidate", symbols=",".join(symbols),
                            created_ms=str(now_ms()), name=c.name, release=c.release,
                            model_dir=str(c.link), model_version=signals.version)  # fmt: skip
            else:
                for sym in engine.load_doc(doc):
                    log.warning("candidate %s holds %s, no longer configured", c.name, sym)
                # A crash between an order's write-ahead row and its booking: the paper
                # exchange fills it as it would have (as a resumed replay does).
                for row in ledger.unsettled_orders():
                    engine.book(row, broker.settle(row))
        except BaseException:
            ledger.close()
            raise
        return engine, ledger

    # -- the candle ------------------------------------------------------------------------------
    def cycle(
        self,
        t_ms: int,
        ohlc: Ohlc,
        opens_next: NDArray[np.float64],
        history: History,
        live: FileSignals | ModelSignals | None,
        refill: Callable[[], None],
    ) -> None:
        """Candle ``t_ms`` closed and the live decisions are done: every candidate decides on
        it and opens the next candle. Never raises."""
        t0 = time.perf_counter()
        try:
            if self.scan(live, history):
                refill()
        except Exception as e:  # a scan must not end the live loop either
            log.debug("candidates scan", exc_info=True)
            self.note("warning", "candidate", f"candidates: scan failed: {e}")
        for name in list(self.slots):
            slot = self.slots[name]
            try:
                self._step(slot, t_ms, ohlc, opens_next, history)
            except Exception as e:
                log.debug("candidate %s", name, exc_info=True)
                # Its in-memory state may be half a step ahead of its ledger: drop it; the
                # next candle loads it again from what its ledger committed.
                del self.slots[name]
                slot.ledger.close()
                if name not in self.failing:
                    self.note("warning", "candidate", f"candidate {name}: candle {t_ms} "
                              f"failed ({type(e).__name__}: {e}); the live loop goes on",
                              candidate=name)  # fmt: skip
                self.refused.pop(name, None)
                self.failing.add(name)
            else:
                if name in self.failing:
                    self.failing.discard(name)
                    self.note("info", "candidate", f"candidate {name} trading again",
                              candidate=name)  # fmt: skip
        self.last_ms = (time.perf_counter() - t0) * 1000

    def _step(
        self,
        slot: Slot,
        t: int,
        ohlc: Ohlc,
        opens_next: NDArray[np.float64],
        history: History,
    ) -> None:
        e, tf = slot.engine, self.tf_ms
        last = e.last_candle_ms
        if last is not None and t <= last:
            return
        pred, digest = slot.signals.predict(t, history)
        o, h, lo, c = ohlc(t)
        with slot.engine.batch():
            if last is None:
                e.open_phase(t, o)  # a fresh account: nothing pending yet
            else:
                e.expire_open(last + tf)  # as the live loop: no entry from a stale signal
                for m in range(last + tf, t, tf):
                    mo, mh, ml, _ = ohlc(m)
                    e.missed(m, mo, mh, ml, stops=True)
            e.close_phase(t, o, h, lo, c, pred, digest)
            e.open_phase(t + tf, opens_next)

    def close(self) -> None:
        for slot in self.slots.values():
            slot.ledger.close()
        self.slots.clear()


class PaperAccount(Engine):
    """A candidate's engine, whose candle is one transaction (:meth:`batch`): its state is
    written once, at the end, instead of after every decision. The write-ahead steps matter
    for an exchange; a paper broker has nothing to lose between them, and one transaction is
    all or nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch = False
        self._rows: list[tuple[Any, ...]] = []

    def commit(self) -> None:
        if not self._batch:
            super().commit()
            return
        # The decisions so far, tagged now (the close phase resets its input hash after).
        self._rows.extend((*d, self.model_version, self._input_hash) for d in self._decisions)
        self._decisions.clear()

    @contextmanager
    def batch(self) -> Iterator[None]:
        self._batch, self._rows = True, []
        try:
            with self.ledger.tx():
                yield
                self._batch = False
                self.ledger.decisions(self._rows)
                super().commit()
        finally:
            self._batch, self._rows = False, []


def _account(
    cfg: Config,
    symbols: list[str],
    broker: Any,
    ledger: Ledger,
    tf_ms: int,
    version: str,
    *,
    fresh: bool,
) -> PaperAccount:
    return PaperAccount(
        symbols, cfg.policy, cfg.risk, fee=cfg.backtest.fee, slippage=cfg.backtest.slippage,
        cash=cfg.run.paper_balance if fresh else 0.0, broker=broker, ledger=ledger, tf_ms=tf_ms,
        model_version=version,
    )  # fmt: skip


def _retire(state: Path, name: str, release: str) -> Path | None:
    """Move a candidate's ledger (and any WAL beside it) to ``retired/``; the new path."""
    src = evidence.ledger_path(state, name)
    if not src.exists():
        return None
    dst_dir = src.parent / evidence.RETIRED
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / f"{name}-{release}.db"
    n = 1
    while dst.exists():
        n += 1
        dst = dst_dir / f"{name}-{release}-{n}.db"
    for suffix in ("-wal", "-shm"):
        side = src.with_name(src.name + suffix)
        if side.exists():
            os.replace(side, dst.with_name(dst.name + suffix))
    os.replace(src, dst)
    return dst
