"""The decision engine of ``run``: one candle at a time through ``tradekit.policy`` and
``tradekit.risk`` (the same compiled rules as the backtest), orders through a broker, every
step recorded in the ledger.

A candle ``t`` is two phases, in the order ``tradekit.policy`` documents and the backtest
kernel keeps: :meth:`Engine.open_phase` at the open of ``t`` (the UTC day rolls, pending exits
fill, then pending entries sized by the risk limits) and :meth:`Engine.close_phase` once ``t``
has closed (stops, targets and partial steps on its range, the trailing watermark, dip mode,
the signal for the next open, equity). A replay calls both per candle; the real-time loop calls
``close_phase(t)`` and ``open_phase(t + 1)`` together when ``t`` closes.

The accounting repeats ``backtest.kernel`` line for line in Python (one decision path; the
kernel is compiled for the backtest's bulk loop, this is called once per candle and talks to
a broker). ``tests/test_live_parity.py`` holds the two to the same trades and equity.

Crash safety: every order is written to the ledger (status ``submitting``) before it is sent,
keyed by ``symbol|candle|action``. A phase's history and the engine state are committed
together at its end. A restart therefore repeats an interrupted phase from the last committed
state; the repeated decisions produce the same keys, and an order already in the ledger is
looked up (on the exchange when it may have been sent), never sent twice.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tradekit import policy as pol
from tradekit import risk as rk
from tradekit.live.orders import OrderRequest, OrderStatus

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from tradekit.config import PolicyConfig, RiskConfig
    from tradekit.live.ledger import Ledger

log = logging.getLogger(__name__)

STATE_VERSION = 1


class Broker(Protocol):
    """Where orders go. ``execute`` sends a market order and returns its final status;
    ``ref_price`` is the price the decision saw (the paper broker fills at it, with
    slippage; an exchange fills where the market is)."""

    live: bool

    def execute(self, req: OrderRequest, ref_price: float, *, maybe_sent: bool) -> OrderStatus: ...


class PaperBroker:
    """Fills like the backtest: at the reference price with ``slippage`` against the trader and
    ``fee`` per fill, wholly and at once (the reference price is the next open for signals and
    the stop/target level for intrabar exits, as in ``backtest.kernel``)."""

    live = False

    def __init__(self, fee: float, slippage: float) -> None:
        self.fee = fee
        self.slippage = slippage

    def execute(self, req: OrderRequest, ref_price: float, *, maybe_sent: bool) -> OrderStatus:
        sign = 1.0 if req.side == "buy" else -1.0
        price = ref_price * (1.0 + sign * self.slippage)
        fee = req.qty * price * self.fee
        return OrderStatus(req.key, f"paper-{req.userref}", "closed", req.qty, price, fee)


@dataclass
class Account:
    """One symbol's position: the fields of ``backtest.kernel.ACCT``, times in ms."""

    qty: float = 0.0
    entry_ms: int = 0
    entry_price: float = math.nan
    entry_qty: float = 0.0
    cost: float = 0.0
    proceeds: float = 0.0
    exit_qty: float = 0.0
    exit_value: float = 0.0
    fees: float = 0.0
    mae_low: float = math.nan
    n_partial: int = 0
    entry_reason: int = 0
    pending: int = 0  # policy reason code waiting for the next open
    sig_ms: int = 0  # candle whose close produced the pending intent
    last_close: float = math.nan


@dataclass
class Decision:
    candle_ms: int
    symbol: str
    phase: str  # open / intrabar / close
    action: str  # enter / skip / exit / hold / signal ...
    reason: str
    prediction: float | None
    price: float | None
    qty: float | None


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
        model_version: str = "",
    ) -> None:
        self.symbols = list(symbols)
        self.pp = pol.params(policy)
        self.rp, self.member = rk.params(risk, self.symbols)
        self.fee = fee
        self.slip = slippage
        self.broker = broker
        self.ledger = ledger
        self.model_version = model_version
        self.ps, self.ring = pol.new_state(len(symbols), self.pp)
        self.rs = rk.new_state(cash)
        self.acct = [Account() for _ in symbols]
        self.cash = cash
        self.equity = cash
        self.fees_paid = 0.0
        self.risk_counts = [0] * rk.N_CODES
        self.last_candle_ms: int | None = None  # last candle whose close phase ran
        self.open_ms: int | None = None  # last candle whose open phase ran
        self.paused = False
        self._decisions: list[Decision] = []
        self._trades: list[tuple[Any, ...]] = []
        self._fills: list[tuple[Any, ...]] = []
        self._equity_row: tuple[int, float, float, float, float] | None = None

    # -- state -------------------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "symbols": self.symbols,
            "policy": [list(r) for r in self.ps.tolist()],
            "ring": self.ring.tolist(),
            "risk": list(self.rs.tolist()[0]),
            "accounts": [asdict(a) for a in self.acct],
            "cash": self.cash,
            "equity": self.equity,
            "fees_paid": self.fees_paid,
            "risk_counts": self.risk_counts,
            "last_candle_ms": self.last_candle_ms,
            "open_ms": self.open_ms,
            "paused": self.paused,
        }

    def load_doc(self, doc: dict[str, Any]) -> list[str]:
        """Restore a saved state; returns the symbols held in it that are no longer configured
        (their positions are reported, never traded)."""
        from tradekit.errors import InputError

        if doc.get("version") != STATE_VERSION:
            raise InputError(f"{self.ledger.path}: engine state version {doc.get('version')}")
        saved = list(doc["symbols"])
        gone = []
        names = {f.name for f in fields(Account)}
        for i, sym in enumerate(saved):
            acct = Account(**{k: v for k, v in doc["accounts"][i].items() if k in names})
            if sym not in self.symbols:
                if acct.qty > 0:
                    gone.append(sym)
                continue
            j = self.symbols.index(sym)
            self.acct[j] = acct
            self.ps[j] = tuple(doc["policy"][i])
            ring = np.asarray(doc["ring"][i], dtype=np.float64)
            n = min(len(ring), self.ring.shape[1])
            self.ring[j, :n] = ring[:n]
        self.rs[0] = tuple(doc["risk"])
        self.cash = float(doc["cash"])
        self.equity = float(doc["equity"])
        self.fees_paid = float(doc["fees_paid"])
        self.risk_counts = list(doc["risk_counts"])
        self.last_candle_ms = doc["last_candle_ms"]
        self.open_ms = doc["open_ms"]
        self.paused = bool(doc.get("paused", False))
        return gone

    # -- orders ------------------------------------------------------------------------------
    def _execute(
        self, req: OrderRequest, ref_price: float, candle_ms: int, reason: str
    ) -> OrderStatus:
        row = self.ledger.order(req.key)
        if row is not None and row["status"] in ("closed", "canceled", "rejected"):
            # Done before a crash that lost the rest of this phase: reuse it, send nothing.
            avg = row["avg_price"]
            st = OrderStatus(
                req.key,
                row["exchange_id"],
                row["status"],
                float(row["filled"]),
                math.nan if avg is None else float(avg),
                float(row["fee"]),
                row["message"],
            )
        else:
            st = self._send(req, ref_price, candle_ms, reason, row)
        if st.filled > 0:
            self._fills.append(
                (req.key, req.symbol, req.side, st.filled, st.avg_price, st.fee, reason, candle_ms)
            )
        return st

    def _send(
        self, req: OrderRequest, ref_price: float, candle_ms: int, reason: str, row: Any
    ) -> OrderStatus:
        if row is None:
            self.ledger.add_order(
                req.key, req.userref, req.symbol, req.side, req.kind, req.qty,
                req.stop_price, candle_ms, reason,
            )  # fmt: skip
        st = self.broker.execute(req, ref_price, maybe_sent=row is not None)
        self.ledger.update_order(
            req.key,
            status=st.status,
            exchange_id=st.exchange_id,
            filled=st.filled,
            avg_price=None if math.isnan(st.avg_price) else st.avg_price,
            fee=st.fee,
            message=st.message,
        )
        return st

    def _sell(self, s: int, t_ms: int, qty: float, ref: float, reason: int, tag: str) -> float:
        """Sell ``qty`` of symbol ``s``; returns the quantity sold."""
        sym = self.symbols[s]
        req = OrderRequest(f"{sym}|{t_ms}|{tag}", sym, "sell", qty)
        st = self._execute(req, ref, t_ms, pol.REASON_NAMES[reason])
        if st.filled <= 0:
            self.ledger.event(
                "error", "order", f"{sym}: sell {qty:g} {st.status}: {st.message}", key=req.key
            )
            return 0.0
        self._book_sell(s, st.filled, st.avg_price, st.fee)
        return st.filled

    def _book_sell(
        self, s: int, qty: float, price: float, fee: float, *, dust: float = 1e-12
    ) -> None:
        """A sell fill in the account and the wallet (the kernel's ``_sell``); a remainder
        below ``dust`` of the entry quantity counts as flat."""
        a = self.acct[s]
        value = qty * price
        a.qty -= qty
        if a.qty < a.entry_qty * dust:
            a.qty = 0.0
        a.proceeds += value - fee
        a.exit_qty += qty
        a.exit_value += value
        a.fees += fee
        self.cash += value - fee
        self.fees_paid += fee

    def _close_trade(
        self, s: int, t_ms: int, reason: int, mae_arg: float, reason_name: str = ""
    ) -> None:
        """Record the closed trade; ``reason_name`` names an exit that is not a policy rule
        (a kill)."""
        a = self.acct[s]
        pnl = a.proceeds - a.cost
        low = min(a.mae_low, mae_arg)
        self._trades.append(
            (
                self.symbols[s],
                a.entry_ms,
                t_ms,
                a.entry_price,
                a.exit_value / a.exit_qty if a.exit_qty > 0 else math.nan,
                a.entry_qty,
                a.fees,
                pnl,
                pnl / a.cost,
                reason_name or pol.REASON_NAMES[reason],
                pol.REASON_NAMES[a.entry_reason],
                max(0.0, 1.0 - low / a.entry_price),
                a.n_partial,
            )
        )
        a.qty = 0.0

    def _decide(
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
        self._decisions.append(
            Decision(t_ms, self.symbols[s], phase, action, reason, pred, price, qty)
        )

    # -- the candle ----------------------------------------------------------------------------
    def open_phase(self, t_ms: int, opens: NDArray[np.float64]) -> None:
        """At the open of candle ``t_ms``: ``opens[s]`` is NaN for a symbol without a candle
        (its pending orders wait for its next candle, as in the backtest)."""
        if self.open_ms is not None and t_ms <= self.open_ms:
            return  # already done (a restart repeating the cycle)
        valid = [not math.isnan(o) for o in opens]
        rk.roll_day(self.rs[0], t_ms, self.equity)
        entries = False
        for s, a in enumerate(self.acct):
            if not valid[s] or a.pending == 0:
                continue
            if a.pending == pol.EXIT_SIGNAL:
                a.pending = 0
                if a.qty > 0.0:
                    self._decide(t_ms, s, "open", "exit", "exit_signal", price=opens[s], qty=a.qty)
                    sold = self._sell(s, t_ms, a.qty, opens[s], pol.EXIT_SIGNAL, "exit")
                    if sold > 0 and a.qty <= 0.0:
                        self._close_trade(s, t_ms, pol.EXIT_SIGNAL, math.inf)
                        pol.on_exit(self.ps[s])
            else:
                entries = True
        if entries:
            self._enter(t_ms, opens, valid)
        self.open_ms = t_ms
        self._commit(t_ms)

    def _enter(self, t_ms: int, opens: NDArray[np.float64], valid: list[bool]) -> None:
        exposure = 0.0
        n_open = 0
        clus = np.zeros(self.member.shape[1])
        for s, a in enumerate(self.acct):
            if a.qty > 0.0:
                mark = opens[s] if valid[s] else a.last_close
                exposure += a.qty * mark
                n_open += 1
                clus += a.qty * mark * self.member[s]
        rp = self.rp[0]
        rs = self.rs[0]
        for s, a in enumerate(self.acct):
            if not valid[s] or a.pending == 0:
                continue
            reason = a.pending
            a.pending = 0
            if a.qty > 0.0:
                continue
            if self.paused:
                self._decide(t_ms, s, "open", "skip", "paused", price=opens[s])
                continue
            cash = self.cash
            equity = cash + exposure
            price = opens[s] * (1.0 + self.slip)
            code = rk.halt_code(rs, equity, rp)
            qty = 0.0
            if code == rk.OK:
                qty, code = rk.size_entry(
                    equity, cash, price, self.fee, n_open, exposure, clus, self.member[s], rp
                )
            self.risk_counts[code] += 1
            if qty <= 0.0:
                self._decide(t_ms, s, "open", "skip", rk.CODE_NAMES[code], price=price)
                continue
            self._decide(t_ms, s, "open", "enter", rk.CODE_NAMES[code], price=price, qty=qty)
            sym = self.symbols[s]
            req = OrderRequest(f"{sym}|{t_ms}|entry", sym, "buy", qty)
            st = self._execute(req, opens[s], t_ms, pol.REASON_NAMES[reason])
            if st.filled <= 0:
                self.ledger.event(
                    "error", "order", f"{sym}: buy {qty:g} {st.status}: {st.message}", key=req.key
                )
                continue
            q = st.filled
            value = q * st.avg_price
            self.cash = max(cash - value - st.fee, 0.0)
            self.fees_paid += st.fee
            a.qty = q
            a.entry_ms = t_ms
            a.entry_price = st.avg_price
            a.entry_qty = q
            a.cost = value + st.fee
            a.proceeds = 0.0
            a.exit_qty = 0.0
            a.exit_value = 0.0
            a.fees = st.fee
            a.mae_low = st.avg_price
            a.n_partial = 0
            a.entry_reason = reason
            pol.on_entry(self.ps[s], st.avg_price)
            mark = q * opens[s]
            exposure += mark
            n_open += 1
            clus += mark * self.member[s]

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
        pp = self.pp[0]
        rp = self.rp[0]
        dip = pp["dip"] != 0.0
        exposure = 0.0
        for s, a in enumerate(self.acct):
            if math.isnan(o[s]):
                if a.qty > 0.0:
                    exposure += a.qty * a.last_close
                continue
            row = self.ps[s]
            if a.qty > 0.0:
                self._intrabar(t_ms, s, row, o[s], h[s], lo[s], pp, rp)
            a.last_close = c[s]
            if dip:
                pol.dip_update(row, self.ring[s], h[s], c[s], pp)
            intent = pol.on_close(row, pred[s], pp)
            p = None if math.isnan(pred[s]) else float(pred[s])
            if intent != pol.NONE:
                a.pending = intent
                a.sig_ms = t_ms
                self._decide(t_ms, s, "close", "signal", pol.REASON_NAMES[intent], p, c[s])
            else:
                self._decide(
                    t_ms, s, "close", "hold" if a.qty > 0 else "wait",
                    "no_prediction" if p is None else "none", p, c[s],
                )  # fmt: skip
            if a.qty > 0.0:
                exposure += a.qty * c[s]
        self.equity = self.cash + exposure
        rk.note_equity(self.rs[0], self.equity)
        self.last_candle_ms = t_ms
        self._equity_row = (t_ms, self.equity, self.cash, exposure, float(self.rs[0]["peak"]))
        self._commit(t_ms, input_hash)

    def _intrabar(
        self, t_ms: int, s: int, row: Any, o: float, h: float, low: float, pp: Any, rp: Any
    ) -> None:
        a = self.acct[s]
        k = 0
        while True:
            reason, raw, frac = pol.intrabar_event(row, o, h, low, pp)
            if reason == pol.NONE:
                a.mae_low = min(a.mae_low, low)
                pol.end_of_bar(row, h)
                return
            price = raw * (1.0 - self.slip)
            held = a.qty
            qty = held
            if frac < 1.0:
                qty, code = rk.exit_qty(held, frac, price, rp)
                if qty <= 0.0:
                    self.risk_counts[code] += 1
                    self._decide(t_ms, s, f"intrabar{k}", "skip", rk.CODE_NAMES[code], price=price)
                    k += 1
                    pol.on_partial(row)
                    continue
            name = pol.REASON_NAMES[reason]
            self._decide(t_ms, s, f"intrabar{k}", "exit", name, price=price, qty=qty)
            sold = self._sell(s, t_ms, qty, raw, reason, f"{name}{k}")
            k += 1
            if sold <= 0:
                return  # the order failed (logged); the position stays, the stop holds
            if a.qty <= 0.0:
                stop = reason in (pol.STOPLOSS, pol.TRAILING_STOP)
                self._close_trade(s, t_ms, reason, raw if stop else low)
                pol.on_exit(row)
                return
            pol.on_partial(row)
            a.n_partial += 1

    # -- persistence ---------------------------------------------------------------------------
    def _commit(self, t_ms: int, input_hash: str = "") -> None:
        """The phase's history and the engine state, in one transaction."""
        from tradekit.live.ledger import now_ms

        now = now_ms()
        with self.ledger.tx() as db:
            self.ledger.decisions(
                [
                    (
                        d.candle_ms, d.symbol, d.phase, d.action, d.reason, d.prediction,
                        d.price, d.qty, self.model_version, input_hash,
                    )
                    for d in self._decisions
                ]
            )  # fmt: skip
            if self._fills:
                db.executemany(
                    "INSERT OR IGNORE INTO fills (order_key, symbol, side, qty, price, fee, "
                    "reason, candle_ms, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(*f, now) for f in self._fills],
                )
            if self._trades:
                db.executemany(
                    "INSERT OR IGNORE INTO trades (symbol, entry_ms, exit_ms, entry_price, "
                    "exit_price, qty, fees, pnl, pnl_pct, exit_reason, entry_reason, mae, "
                    "partial_exits, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(*tr, now) for tr in self._trades],
                )
            if self._decisions or self._fills or self._trades or self._equity_row:
                self._write_positions(db, now)
            eq = self._equity_row
            if eq is not None:
                db.execute(
                    "INSERT OR IGNORE INTO equity (candle_ms, equity, cash, exposure, peak, "
                    "created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    (*eq, now),
                )
                self._equity_row = None
            self.ledger.save_engine(self.to_doc(), t_ms)
        self._decisions.clear()
        self._fills.clear()
        self._trades.clear()

    def _write_positions(self, db: Any, now: int) -> None:
        db.execute("DELETE FROM positions")
        rows = [
            (
                sym,
                a.qty,
                a.entry_price,
                a.entry_ms,
                a.cost,
                a.last_close if not math.isnan(a.last_close) else a.entry_price,
                self.stop_price(s),
                pol.REASON_NAMES[a.entry_reason],
                now,
            )
            for s, (sym, a) in enumerate(zip(self.symbols, self.acct, strict=True))
            if a.qty > 0.0
        ]
        db.executemany(
            "INSERT INTO positions (symbol, qty, entry_price, entry_ms, cost, last_price, "
            "stop_price, entry_reason, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def stop_price(self, s: int) -> float | None:
        """The stop level (stop-loss or trailing, the higher) of an open position."""
        a = self.acct[s]
        if a.qty <= 0.0:
            return None
        pp = self.pp[0]
        row = self.ps[s]
        stop = -1.0
        if pp["sl"] > 0.0:
            stop = float(row["entry"]) * (1.0 - float(pp["sl"]))
        if pp["trail"] > 0.0:
            stop = max(stop, float(row["high"]) * (1.0 - float(pp["trail"])))
        return stop if stop > 0 else None

    def positions_value(self) -> float:
        """Open positions marked at their last close."""
        return sum(a.qty * a.last_close for a in self.acct if a.qty > 0.0)
