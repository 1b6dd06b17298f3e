"""``run --replay OHLCV --predictions P``: the live engine driven from files at full speed, with
the paper broker and the ``[backtest]`` fee, slippage and starting balance, so that its ledger
can be set beside ``tradekit backtest`` on the same inputs (the parity test does that)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tradekit.errors import InputError

if TYPE_CHECKING:
    from tradekit.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayResult:
    candles: int
    skipped: int  # candles already in the ledger (a resumed replay)
    symbols: list[str]
    trades: int
    open_positions: int
    final_equity: float
    fees_paid: float
    seconds: float

    def as_json(self) -> dict[str, object]:
        return {
            "mode": "replay",
            "candles": self.candles,
            "skipped": self.skipped,
            "symbols": self.symbols,
            "trades": self.trades,
            "open_positions": self.open_positions,
            "final_equity": self.final_equity,
            "fees_paid": self.fees_paid,
            "seconds": round(self.seconds, 3),
        }


def replay(
    cfg: Config, ohlcv: str | Path, predictions: str | Path, state: str | Path
) -> ReplayResult:
    import time

    from tradekit.data.market import load_market
    from tradekit.ledger import Ledger
    from tradekit.live.brokers import PaperBroker
    from tradekit.live.engine import Engine
    from tradekit.timeutil import timeframe_ms

    t0 = time.perf_counter()
    market = load_market(ohlcv, predictions)
    costs = cfg.backtest
    with Ledger(state) as ledger:
        meta = ledger.meta()
        if meta and meta.get("mode") != "replay":
            raise InputError(
                f"{state}: this ledger belongs to a {meta.get('mode')} run; give the replay "
                "its own --state file"
            )
        broker = PaperBroker(costs.fee, costs.slippage)
        engine = Engine(
            market.symbols,
            cfg.policy,
            cfg.risk,
            fee=costs.fee,
            slippage=costs.slippage,
            cash=costs.starting_balance,
            broker=broker,
            ledger=ledger,
            tf_ms=timeframe_ms(market.timeframe),
            model_version="replay",
        )
        doc = ledger.load_engine()
        if doc is None:
            ledger.init(engine.to_doc(), mode="replay", symbols=",".join(market.symbols))
        else:
            gone = engine.load_doc(doc)
            if gone:
                raise InputError(
                    f"{state}: holds positions in {', '.join(gone)}, not in the replay"
                )
        # The ledger is the replay's only output, and a replay killed midway is simply
        # resumed: orders a kill left unsettled are filled as the paper exchange would have.
        ledger.durable(False)
        for row in ledger.unsettled_orders():
            engine.book(row, broker.settle(row))
        ts = market.ts.tolist()
        skipped = 0
        op, hi, lo, cl, pr = market.open, market.high, market.low, market.close, market.pred
        for t, t_ms in enumerate(ts):
            if engine.last_candle_ms is not None and t_ms <= engine.last_candle_ms:
                skipped += 1
                continue
            engine.open_phase(t_ms, op[t])
            engine.close_phase(t_ms, op[t], hi[t], lo[t], cl[t], pr[t])
        return ReplayResult(
            candles=len(ts),
            skipped=skipped,
            symbols=list(market.symbols),
            trades=ledger.count("trades"),
            open_positions=len(engine.held()),
            final_equity=engine.equity,
            fees_paid=engine.fees_paid,
            seconds=time.perf_counter() - t0,
        )
