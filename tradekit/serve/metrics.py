"""``/metrics``: the ledger as Prometheus metrics, read at each scrape (a custom collector, so
the numbers are the ledger's, never a copy that could go stale).

Names follow Prometheus' conventions: ``tradekit_`` prefix, base units (seconds, ratios; money
in the quote currency), ``_total`` on counters. ``tradekit_up`` is 0 when the ledger cannot
be read, so an alert can tell a dead bot from a quiet one.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from tradekit.errors import InputError
from tradekit.ledger import LedgerView
from tradekit.report.snapshot import Snapshot
from tradekit.serve.site import Site

HALT_KINDS = ("daily_loss", "drawdown", "reconcile")


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float("nan") if value is None else float(value))


class LedgerCollector(Collector):
    def __init__(self, site: Site) -> None:
        self.site = site

    def collect(self) -> Iterator[Metric]:
        from tradekit.report.snapshot import build

        try:
            view = LedgerView(self.site.ledger)
        except InputError:
            yield _gauge("tradekit_up", "1 when the ledger could be read", 0)
            return
        with view, view.snapshot():
            try:
                snap = build(view, ledger=str(self.site.ledger))
            except InputError:
                yield _gauge("tradekit_up", "1 when the ledger could be read", 0)
                return
            yield _gauge("tradekit_up", "1 when the ledger could be read", 1)
            yield from self._ledger(view, snap)
        yield from self._model(snap)

    def _ledger(self, view: LedgerView, snap: Snapshot) -> Iterator[Metric]:
        risk = self.site.risk
        equity = snap.equity
        exposure = snap.exposure
        yield _gauge("tradekit_equity", "equity at the last candle (quote currency)", equity)
        yield _gauge("tradekit_cash", "cash (quote currency)", snap.cash)
        yield _gauge(
            "tradekit_peak_equity", "peak equity the drawdown is measured from", snap.peak_equity
        )
        yield _gauge(
            "tradekit_drawdown_ratio", "fall of equity from its peak (0.1 = 10%)", snap.drawdown
        )
        yield _gauge("tradekit_open_positions", "open positions", len(snap.positions))
        yield _gauge(
            "tradekit_max_open_positions", "[risk] max_open_positions", risk.max_open_positions
        )
        yield _gauge("tradekit_exposure", "value of the open positions (quote currency)", exposure)
        yield _gauge(
            "tradekit_exposure_ratio",
            "open positions' value / equity",
            exposure / equity if equity else 0.0,
        )
        yield _gauge(
            "tradekit_exposure_cap_ratio", "[risk] max_exposure_frac", risk.max_exposure_frac
        )
        yield _gauge(
            "tradekit_realized_pnl", "realized P&L of all closed trades", snap.realized_pnl_total
        )
        yield _gauge(
            "tradekit_realized_pnl_today",
            "realized P&L of trades closed today (UTC)",
            snap.realized_pnl_today,
        )
        yield _gauge(
            "tradekit_unrealized_pnl",
            "unrealized P&L of the open positions",
            snap.unrealized_pnl,
        )
        yield _gauge("tradekit_fees_paid", "fees paid (quote currency)", snap.fees_paid)
        yield CounterMetricFamily(
            "tradekit_trades", "closed trades", value=float(snap.trades_total)
        )
        orders = GaugeMetricFamily("tradekit_orders", "orders by status", labels=["status"])
        for status, n in sorted(view.order_counts().items()):
            orders.add_metric([status], float(n))
        yield orders
        halted = GaugeMetricFamily("tradekit_halted", "1 while a halt is in force", labels=["kind"])
        held = {h.kind for h in snap.halts}
        for kind in HALT_KINDS:
            halted.add_metric([kind], 1.0 if kind in held else 0.0)
        yield halted
        yield _gauge("tradekit_paused", "1 while paused (no new entries)", snap.paused)
        yield _gauge("tradekit_running", "1 while the loop runs (fresh heartbeat)", snap.running)
        counts = view.event_counts()
        events = CounterMetricFamily("tradekit_events", "ledger events by kind", labels=["kind"])
        for kind, n in sorted(counts.items()):
            events.add_metric([kind], float(n))
        yield events
        yield CounterMetricFamily(
            "tradekit_exchange_errors",
            "exchange failures the loop retried at its next poll",
            value=float(counts.get("exchange", 0)),
        )
        yield CounterMetricFamily(
            "tradekit_halt_events", "halts started or lifted", value=float(counts.get("halt", 0))
        )
        hb = snap.heartbeat_ms
        yield _gauge(
            "tradekit_last_cycle_timestamp_seconds",
            "the loop's last iteration",
            hb / 1000 if hb is not None else None,
        )
        last = snap.last_candle_ms
        yield _gauge(
            "tradekit_last_candle_timestamp_seconds",
            "open time of the last candle",
            last / 1000 if last is not None else None,
        )
        newest = view.newest_decision()
        latency = None
        if newest is not None:  # from the candle's close to its first decision
            latency = (newest["created_ms"] - newest["candle_ms"] - self.site.tf_ms) / 1000
        yield _gauge(
            "tradekit_decision_latency_seconds",
            "newest candle: its close to its first decision",
            latency,
        )

    def _model(self, snap: Snapshot) -> Iterator[Metric]:
        from tradekit.serve.files import model_info

        info = model_info(self.site.model_dir)
        model = info["model"] or {}
        receipt = info["receipt"] or {}
        yield InfoMetricFamily(
            "tradekit_model",
            "the deployed model and the version the loop runs",
            value={
                "version": str(model.get("version") or ""),
                "kind": str(model.get("kind") or ""),
                "running_version": str(snap.model_version or ""),
                "gate": "passed" if receipt.get("deployable") else "not passed",
            },
        )


def registry(site: Site) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(LedgerCollector(site))
    return reg


def render(reg: CollectorRegistry) -> tuple[bytes, str]:
    from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(reg), CONTENT_TYPE_LATEST
