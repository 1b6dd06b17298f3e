"""The decision engine of ``run`` and ``run --replay``: one candle at a time through
``tradekit.policy`` and ``tradekit.risk`` (the backtest's compiled rules), fills booked by
``tradekit.accounting`` (the backtest's compiled bookkeeping), orders through a broker,
every step recorded in the ledger.

A candle ``t`` is two phases, in the order ``tradekit.policy`` documents and the backtest
kernel keeps: :meth:`Engine.open_phase` at the open of ``t`` (the UTC day rolls, pending exits
fill, then pending entries sized by the risk limits) and :meth:`Engine.close_phase` once ``t``
has closed (stops on its range, then targets, the trailing watermark, dip mode, the signal for
the next open, equity and the halts). A replay calls both per candle; the real-time loop calls
``close_phase(t)`` and ``open_phase(t + 1)`` together when ``t`` closes.

Crash safety is write-ahead, per order:

1. *decide*: the order row (status ``submitting``, keyed ``symbol|candle|action``, with the
   reference price and what booking needs) and the engine state that consumed the decision
   (the pending intent cleared) are committed in one transaction, before the request leaves;
2. *send* through the broker;
3. *book* (:meth:`Engine.book`): what the exchange reports beyond what is booked already
   becomes a fill row, the accounts and the engine state, in one transaction.

A crash between 1 and 3 leaves an order that :mod:`tradekit.live.recovery` finds on the
exchange (by ``userref``) and books through the same :meth:`Engine.book`, whenever the restart
comes; a decision is never taken twice, so nothing is sent twice. The close phase sends its
stop exits first and does its pure state updates after them, committed once, so repeating an
interrupted phase repeats nothing that already happened.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tradekit import accounting as ac
from tradekit import policy as pol
from tradekit import risk as rk
from tradekit.live import booking, state
from tradekit.live.orders import Broker, OrderRequest, OrderStatus

if TYPE_CHECKING:
    import sqlite3

    from numpy.typing import NDArray

    from tradekit.config import PolicyConfig, RiskConfig
    from tradekit.ledger import Ledger

log = logging.getLogger(__name__)


# risk event bit -> (level, halt, change, text); "change" as the backtest report's lifted_by.
_HALT_EVENTS = {
    rk.DAILY_ON: (
        "warning", "daily_loss", "start",
        "halted: daily_loss (no new entries until the next UTC day; exits go on)",
    ),
    rk.DAILY_OFF: ("info", "daily_loss", "new_day", "halt lifted (daily_loss): a new UTC day"),
    rk.DD_ON: ("warning", "drawdown", "start", "halted: drawdown (no new entries; exits go on)"),
    rk.DD_OFF: ("info", "drawdown", "recovered", "halt lifted (drawdown): equity recovered"),
    rk.DD_LIFT: (
        "info", "drawdown", "after_candles",
        "halt lifted (drawdown): its candles are over; the peak re-bases to equity",
    ),
    rk.MANUAL_LIFT: (
        "info", "all", "resume", "halts lifted by resume; the day and the peak re-base to equity",
    ),
}  # fmt: skip


class Engine:
    """Policy, risk and accounts for ``symbols``; ``ledger`` records, ``broker`` fills."""

    def __init__(
        self,
        symbols: list[str],
        policy: PolicyConfig,
        risk: RiskConfig,
        *,
        fee: float,
        slippage: float,
        cash: float,
        broker: Broker,
        ledger: Ledger,
        tf_ms: int,
        model_version: str = "",
    ) -> None:
        self.symbols = list(symbols)
        self.pp = pol.params(policy)
        self.rp, self.member = rk.params(risk, self.symbols)
        self.fee = fee
        self.slip = slippage
        self.broker = broker
        self.ledger = ledger
        self.tf_ms = tf_ms
        self.model_version = model_version
        self.ps, self.ring = pol.new_state(len(symbols), self.pp)
        self.rs = rk.new_state(cash)
        self.acct = ac.new_acct(len(symbols))
        self.wallet = ac.new_wallet(cash)
        self.risk_counts = np.zeros(rk.N_CODES, dtype=np.int64)
        self.last_candle_ms: int | None = None  # last candle whose close phase completed
        self.open_ms: int | None = None  # last candle whose open phase began
        self.open_done = True  # ... and completed
        self.paused = False
        # An unexplained ledger/exchange difference halts entries until `reconcile --adopt`.
        self.reconcile_halt: dict[str, Any] | None = None
        self._clus = np.zeros(self.member.shape[1])
        self._decisions: list[tuple[Any, ...]] = []
        self._input_hash = ""  # the features the model saw at the candle being closed

    # -- figures ---------------------------------------------------------------------------
    @property
    def cash(self) -> float:
        return float(self.wallet[0]["cash"])

    @property
    def equity(self) -> float:
        return float(self.wallet[0]["equity"])

    @property
    def fees_paid(self) -> float:
        return float(self.wallet[0]["fees"])

    def held(self) -> list[int]:
        return [s for s in range(len(self.symbols)) if self.acct[s]["qty"] > 0.0]

    def stop_price(self, s: int) -> float | None:
        """The resting stop's level (stop-loss or trailing, the higher) of a held position."""
        if self.acct[s]["qty"] <= 0.0:
            return None
        reason, level = pol.stop_level(self.ps[s], self.pp[0])
        return float(level) if reason != pol.NONE and level > 0 else None

    # -- state -----------------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return state.to_doc(self)

    def load_doc(self, doc: dict[str, Any]) -> list[str]:
        """Restore a saved state; returns the symbols held in it that are no longer configured
        (their positions are reported, never traded)."""
        return state.load_doc(self, doc)

    def book(self, row: sqlite3.Row, st: OrderStatus) -> OrderStatus:
        """Book what the exchange reports of an order (``tradekit.live.booking``)."""
        return booking.book(self, row, st)

    # -- decisions and commits -------------------------------------------------------------
    def decide(
        self,
        t_ms: int,
        s: int,
        phase: str,
        action: str,
        reason: str,
        pred: float | None = None,
        price: float | None = None,
        qty: float | None = None,
    ) -> None:
        self._decisions.append((t_ms, self.symbols[s], phase, action, reason, pred, price, qty))

    def commit(self) -> None:
        """Decisions so far, the positions and the engine state, in one transaction."""
        positions = []
        for s in self.held():
            a = self.acct[s]
            last = float(a["last_close"])
            positions.append(
                (
                    self.symbols[s],
                    float(a["qty"]),
                    float(a["entry_price"]),
                    int(a["entry_t"]),
                    float(a["cost"]),
                    float(a["entry_price"]) if math.isnan(last) else last,
                    self.stop_price(s),
                    booking.reason_name(int(a["entry_reason"])),
                )
            )
        with self.ledger.tx():
            self.ledger.decisions(
                [(*d, self.model_version, self._input_hash) for d in self._decisions]
            )
            self.ledger.set_positions(positions)
            self.ledger.save_engine(self.to_doc(), self.last_candle_ms)
        self._decisions.clear()

    # -- orders ----------------------------------------------------------------------------
    def place(
        self,
        req: OrderRequest,
        ref_price: float,
        t_ms: int,
        reason: str,
        *,
        sig_ms: int | None = None,
        steps: int = 0,
    ) -> OrderStatus | None:
        """Decide (write-ahead), send, book. A decision repeated after a crash finds its order
        already in the ledger: one still unsettled is left to recovery (never sent twice); one
        that never reached the exchange is sent again under a new key."""
        row = self.ledger.order(req.key)
        n = 1
        while row is not None:
            if row["status"] in ("submitting", "open") or float(row["filled"]) > 0.0:
                self.commit()
                return None
            n += 1
            req = OrderRequest(f"{req.key.split('#')[0]}#{n}", req.symbol, req.side, req.qty,
                               req.kind, req.stop_price)  # fmt: skip
            row = self.ledger.order(req.key)
        with self.ledger.tx():
            self.ledger.add_order(
                req.key, req.userref, req.symbol, req.side, req.kind, req.qty, req.stop_price,
                t_ms, reason, ref_price=ref_price, sig_ms=sig_ms, steps=steps,
                deadline_ms=self.broker.deadline_ms(),
            )  # fmt: skip
            self.commit()
        st = self.broker.execute(req, ref_price)
        row = self.ledger.order(req.key)
        assert row is not None
        return self.book(row, st)

    # -- the candle ------------------------------------------------------------------------
    def open_phase(self, t_ms: int, opens: NDArray[np.float64]) -> None:
        """At the open of candle ``t_ms``: ``opens[s]`` is NaN for a symbol without a candle
        (its pending orders wait for its next candle, as in the backtest). Resumable: after a
        crash it carries on with the intents not yet decided."""
        if self.open_ms is not None and (
            t_ms < self.open_ms or (t_ms == self.open_ms and self.open_done)
        ):
            return
        if self.open_ms != t_ms:
            self.open_ms, self.open_done = t_ms, False
            self._halt_events(rk.roll_day(self.rs[0], t_ms, self.equity), t_ms)
        valid = ~np.isnan(opens)
        for s in range(len(self.symbols)):
            a = self.acct[s]
            if valid[s] and a["pending"] != 0 and pol.is_exit(int(a["pending"])):
                self._exit_at_open(s, t_ms, float(opens[s]))
        for s in range(len(self.symbols)):
            a = self.acct[s]
            if valid[s] and a["pending"] != 0:
                self._entry_at_open(s, t_ms, opens, valid)
        self.open_done = True
        self.commit()

    def _exit_at_open(self, s: int, t_ms: int, open_: float) -> None:
        a = self.acct[s]
        reason, steps = int(a["pending"]), int(a["pend_steps"])
        a["pending"], a["pend_steps"] = 0, 0
        if a["qty"] <= 0.0:
            return
        name = pol.REASON_NAMES[reason]
        price = open_ * (1.0 - self.slip)
        qty, sold = float(a["qty"]), 0
        if reason == pol.PARTIAL_TP:
            qty, sold = rk.partial_qty(
                qty, self.pp[0]["pfrac"], steps, price, self.rp[0], self.risk_counts
            )
            for _ in range(steps):
                pol.on_partial(self.ps[s])
            if qty <= 0.0:
                self.decide(
                    t_ms, s, "open", "skip", rk.CODE_NAMES[rk.REJECT_MIN_ORDER], price=price
                )
                return
        self.decide(t_ms, s, "open", "exit", name, price=price, qty=qty)
        sym = self.symbols[s]
        req = OrderRequest(f"{sym}|{t_ms}|{name}", sym, "sell", qty)
        self.place(req, open_, t_ms, name, sig_ms=int(a["sig_t"]), steps=sold)

    def _entry_at_open(self, s: int, t_ms: int, opens: NDArray[np.float64], valid: Any) -> None:
        a = self.acct[s]
        reason, sig = int(a["pending"]), int(a["sig_t"])
        a["pending"] = 0
        if a["qty"] > 0.0:
            return
        if self.paused or self.reconcile_halt:
            why = "paused" if self.paused else "reconcile_difference"
            self.decide(t_ms, s, "open", "skip", why, price=float(opens[s]))
            return
        exposure, n_open = ac.open_exposure(
            self.acct, opens, valid.astype(np.uint8), self.member, self._clus
        )
        cash = self.cash
        equity = cash + exposure
        price = float(opens[s]) * (1.0 + self.slip)
        code = rk.halt_code(self.rs[0], equity, self.rp[0])
        qty = 0.0
        if code == rk.OK:
            qty, code = rk.size_entry(
                equity, cash, price, self.fee, n_open, exposure, self._clus, self.member[s],
                self.rp[0],
            )  # fmt: skip
        self.risk_counts[code] += 1
        if qty <= 0.0:
            self.decide(t_ms, s, "open", "skip", rk.CODE_NAMES[code], price=price)
            return
        self.decide(t_ms, s, "open", "enter", rk.CODE_NAMES[code], price=price, qty=qty)
        sym = self.symbols[s]
        req = OrderRequest(f"{sym}|{t_ms}|entry", sym, "buy", qty)
        self.place(req, float(opens[s]), t_ms, pol.REASON_NAMES[reason], sig_ms=sig)

    def expire_open(self, t_ms: int) -> None:
        """The open phase of ``t_ms`` can no longer happen at its price (a restart after that
        candle closed): its pending entries are dropped as stale; pending exits wait for the
        next open."""
        if self.open_ms is not None and (
            t_ms < self.open_ms or (t_ms == self.open_ms and self.open_done)
        ):
            return
        if self.open_ms != t_ms:
            self._halt_events(rk.roll_day(self.rs[0], t_ms, self.equity), t_ms)
        for s in range(len(self.symbols)):
            a = self.acct[s]
            if a["pending"] != 0 and not pol.is_exit(int(a["pending"])):
                a["pending"] = 0
                self.decide(t_ms, s, "open", "skip", "stale_signal")
        self.open_ms, self.open_done = t_ms, True
        self.commit()

    def close_phase(
        self,
        t_ms: int,
        o: NDArray[np.float64],
        h: NDArray[np.float64],
        lo: NDArray[np.float64],
        c: NDArray[np.float64],
        pred: NDArray[np.float64],
        input_hash: str = "",
    ) -> None:
        """After candle ``t_ms`` closed: arrays per symbol, NaN where a symbol has no candle;
        ``pred`` NaN = no prediction (no entry; the exit count holds)."""
        if self.last_candle_ms is not None and t_ms <= self.last_candle_ms:
            return
        self._input_hash = input_hash
        self.stops(t_ms, o, lo)
        pp = self.pp[0]
        dip = pp["dip"] != 0.0
        exposure = 0.0
        w = self.wallet[0]
        for s in range(len(self.symbols)):
            a = self.acct[s]
            if math.isnan(o[s]):
                if a["qty"] > 0.0:
                    exposure += a["qty"] * a["last_close"]
                continue
            row = self.ps[s]
            if a["qty"] > 0.0:
                ac.hold_bar(a, lo[s], h[s])
                pol.end_of_bar(row, h[s])
            a["last_close"] = c[s]
            if dip:
                pol.dip_update(row, self.ring[s], h[s], c[s], pp)
            intent, steps = pol.close_intent(row, pred[s], h[s], pp)
            p = None if math.isnan(pred[s]) else float(pred[s])
            if intent != pol.NONE:
                a["pending"], a["pend_steps"], a["sig_t"] = intent, steps, t_ms
                self.decide(t_ms, s, "close", "signal", pol.REASON_NAMES[intent], p, float(c[s]))
            else:
                action = "hold" if a["qty"] > 0 else "wait"
                self.decide(
                    t_ms,
                    s,
                    "close",
                    action,
                    "none" if p is not None else "no_prediction",
                    p,
                    float(c[s]),
                )
            if a["qty"] > 0.0:
                exposure += a["qty"] * c[s]
        equity = self.cash + exposure
        if exposure > 0.0:
            w["expo_bars"] += 1
            w["expo_sum"] += exposure / equity
        w["equity"] = equity
        self._halt_events(rk.note_equity(self.rs[0], equity, t_ms, self.rp[0]), t_ms)
        self.last_candle_ms = t_ms
        with self.ledger.tx():
            self.ledger.add_equity(t_ms, equity, self.cash, exposure, float(self.rs[0]["peak"]))
            self.commit()
        self._input_hash = ""

    def stops(self, t_ms: int, o: NDArray[np.float64], lo: NDArray[np.float64]) -> None:
        """Stops reached inside candle ``t_ms``: each position's stop-loss or trailing stop,
        sold at the level (at the open when the candle gapped through it)."""
        for s in self.held():
            if math.isnan(o[s]):
                continue
            reason, raw = pol.stop_event(self.ps[s], o[s], lo[s], self.pp[0])
            if reason == pol.NONE:
                continue
            name = pol.REASON_NAMES[reason]
            qty = float(self.acct[s]["qty"])
            self.decide(t_ms, s, "intrabar", "exit", name, price=raw * (1.0 - self.slip), qty=qty)
            sym = self.symbols[s]
            self.place(OrderRequest(f"{sym}|{t_ms}|{name}", sym, "sell", qty), raw, t_ms, name)

    def missed(self, t_ms: int, o: Any, h: Any, lo: Any, *, stops: bool) -> None:
        """A candle that closed while the loop was down: no signals, but held positions are
        managed on it: their stops (``stops``: the paper broker's own, as a resting exchange
        stop would have filled) and their watermark, MAE and MFE."""
        if stops:
            self.stops(t_ms, o, lo)
        for s in self.held():
            if not math.isnan(o[s]):
                ac.hold_bar(self.acct[s], lo[s], h[s])
                pol.end_of_bar(self.ps[s], h[s])
        self.commit()

    # -- halts -----------------------------------------------------------------------------
    def halts(self) -> dict[str, int | None]:
        """The halts in force and the candle each began at (None: since before a restart)."""
        rs = self.rs[0]
        out: dict[str, int | None] = {}
        if rs["halted"] != 0.0:
            out["daily_loss"] = int(rs["daily_since"])
        if rs["dd_count"] > 0:
            out["drawdown"] = int(rs["dd_since"])
        if self.reconcile_halt:
            out["reconcile"] = self.reconcile_halt.get("since_ms")
        return out

    def lift_halts(self) -> str:
        """``resume`` by hand: the risk halts lift, the day and the peak re-base to equity."""
        before = sorted(k for k in self.halts() if k != "reconcile")
        self._halt_events(rk.lift(self.rs[0], self.equity), self.last_candle_ms or 0)
        return ", ".join(before)

    def _halt_events(self, ev: int, t_ms: int) -> None:
        """Halt events as ledger events (the phone hears of each start and lift); ``data``
        names the halt, the change and how it lifted, as the backtest report's ``halts``."""
        for bit, (level, kind, change, text) in _HALT_EVENTS.items():
            if ev & bit:
                self.ledger.event(
                    level, "halt", text, candle_ms=t_ms, equity=self.equity, halt=kind,
                    change=change,
                )  # fmt: skip
                log.log(logging.WARNING if level == "warning" else logging.INFO, "%s", text)
