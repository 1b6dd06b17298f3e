"""ExchangeBroker with the real ccxt Kraken client against the local Kraken simulator.

Prices and times come from the simulator's candles (Kraken's in shared/data, or the offline
sample's; tests/servers/market.py): the moment is the first hour from the source's "now" at
which a resting stop is first missed, then crossed (see ``Moment``)."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest

from tests.conftest import OHLC_NOW_MS
from tests.servers.kraken_sim import KrakenSim
from tests.servers.market import Market
from tradekit.data.exchange import RetryPolicy, open_exchange
from tradekit.errors import ConfigError, ExternalError
from tradekit.live.exchange_broker import ExchangeBroker
from tradekit.live.orders import MarketRules, OrderRequest, OrderStatus

HOUR_MS = 3_600_000
FEE = 0.0026
SECRET = base64.b64encode(b"test-secret").decode()
RETRY = RetryPolicy(retries=3, backoff_s=0.01)


def make_broker(sim: KrakenSim, api_key: str = "testkey") -> ExchangeBroker:
    ex = open_exchange(
        "kraken", api_url=sim.url, api_key=api_key, secret=SECRET, timeout_s=0.5, rate_limit=False
    )
    return ExchangeBroker(ex, RETRY, poll_s=0.01)


@dataclass(frozen=True)
class Moment:
    """A candle boundary and what the candles say from there (Kraken: 2022-06-01 00:00, BTC/USD
    opens at 31781.0; its lows 31679.3 and 31814.4 miss a stop at 31506.0, the 04:00 candle
    opens at 31615.0 and trades down to 31332.7 through it)."""

    now_ms: int
    price: float  # BTC/USD's open: the price a market order fills at
    eth_price: float  # ETH/USD's open
    stop: float  # below the lows of the next two hours and the open after them...
    stop_hit_ms: int  # ...and reached by the candle that opens then
    stop_fill: float  # at the stop, or at that candle's open if it opened below


@pytest.fixture(scope="module")
def moment(market: Market) -> Moment:
    btc, eth = market.hourly("XXBTZUSD"), market.hourly("XETHZUSD")
    start = (OHLC_NOW_MS - OHLC_NOW_MS % HOUR_MS) // 1000
    for i in range(int(np.searchsorted(btc[:, 0], start)), len(btc) - 5):
        c = btc[i : i + 5]
        if not (np.diff(c[:, 0]) == 3600).all():
            continue
        missed = min(c[0, 3], c[1, 3], c[2, 1])  # what the first two hours trade down to
        if missed - c[2:5, 3].min() < 0.2:
            continue  # the next three hours go no lower: no room for the stop
        stop = math.floor((missed + c[2:5, 3].min()) / 2 * 10) / 10
        k = 2 + int(np.flatnonzero(c[2:5, 3] <= stop)[0])
        j = int(np.searchsorted(eth[:, 0], c[0, 0]))
        assert eth[j, 0] == c[0, 0], "ETH/USD has no candle at that hour"
        t = int(c[0, 0]) * 1000
        fill = min(float(c[k, 1]), stop)
        return Moment(t, float(c[0, 1]), float(eth[j, 1]), stop, t + k * HOUR_MS, fill)
    raise AssertionError("no hour in the data where a stop is first missed, then crossed")


@pytest.fixture
def sim(market: Market, moment: Moment) -> Iterator[KrakenSim]:
    with KrakenSim(market, moment.now_ms, fee=FEE, hang_s=0.8) as s:
        yield s


@pytest.fixture
def broker(sim: KrakenSim) -> ExchangeBroker:
    return make_broker(sim)


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def buy(key: str, qty: float = 0.01) -> OrderRequest:
    return OrderRequest(key=key, symbol="BTC/USD", side="buy", qty=qty)


def test_check_rules_and_market_buy_moves_balances(
    sim: KrakenSim, broker: ExchangeBroker, moment: Moment
) -> None:
    price = moment.price
    assert broker.check() == {"USD": 10000.0}
    assert broker.rules("BTC/USD") == MarketRules(
        min_qty=0.0001, qty_step=1e-8, min_cost=0.5, price_step=0.1
    )
    req = buy(f"BTC/USD|{moment.now_ms}|enter")
    st = broker.place(req)
    assert st.status == "closed" and st.done
    assert st.key == req.key and st.exchange_id == sim.orders[0].txid
    assert st.filled == pytest.approx(0.01)
    assert st.avg_price == pytest.approx(price)
    assert st.fee == pytest.approx(0.01 * price * FEE)
    assert st.extra["userref"] == str(req.userref)
    assert sim.orders[0].userref == req.userref
    bal = broker.balances()
    assert bal["BTC"] == pytest.approx(0.01)
    assert bal["USD"] == pytest.approx(10000.0 - 0.01 * price * (1 + FEE))
    assert sim.count("AddOrder") == 1


def test_market_order_reported_pending_is_polled_until_filled(
    sim: KrakenSim, broker: ExchangeBroker
) -> None:
    sim.fill_after_queries = 3
    st = broker.place(buy("k-pending"))
    assert st.status == "closed" and st.filled == pytest.approx(0.01)
    assert sim.count("QueryOrders") >= 3


@pytest.mark.parametrize(
    ("fault", "sends"),
    [
        ("500", 2),
        ("429", 2),
        ("ratelimit", 2),
        ("busy", 2),
        ("timeout", 2),  # never processed: looked up, not found, sent again
        ("lost", 1),  # processed, answer lost: found by userref, never sent again
        ("lost_slow", 1),
    ],
)
def test_fault_on_add_order_leaves_exactly_one_order(
    sim: KrakenSim, broker: ExchangeBroker, moment: Moment, fault: str, sends: int
) -> None:
    req = buy(f"k-{fault}")
    sim.inject("AddOrder", fault)
    st = broker.place(req)
    mine = sim.orders_for(req.userref)
    assert len(mine) == 1
    assert sim.count("AddOrder") == sends
    assert st.exchange_id == mine[0].txid
    assert st.status == "closed" and st.filled == pytest.approx(0.01)
    assert st.avg_price == pytest.approx(moment.price)
    assert sim.balances["XXBT"] == pytest.approx(0.01)  # filled once, not twice


def test_lost_answer_with_flaky_lookup_still_finds_the_order(
    sim: KrakenSim, broker: ExchangeBroker
) -> None:
    req = buy("k-lost-flaky")
    sim.inject("AddOrder", "lost")
    sim.inject("OpenOrders", "500", "timeout")
    sim.inject("ClosedOrders", "ratelimit")
    st = broker.place(req)
    assert st.status == "closed"
    assert len(sim.orders_for(req.userref)) == 1 and sim.count("AddOrder") == 1


def test_exchange_down_gives_up_without_placing(sim: KrakenSim, broker: ExchangeBroker) -> None:
    req = buy("k-down")
    sim.inject("AddOrder", *["500"] * (RETRY.retries + 1))
    with pytest.raises(ExternalError, match=r"failed after 4 attempts.*502"):
        broker.place(req)
    assert sim.orders == [] and sim.count("AddOrder") == RETRY.retries + 1


def test_maybe_sent_finds_the_order_and_sends_nothing(sim: KrakenSim) -> None:
    req = buy("k-restart")
    first = make_broker(sim).place(req)
    # A restarted process (new client) whose ledger says the order may have been sent.
    again = make_broker(sim).place(req, maybe_sent=True)
    assert sim.count("AddOrder") == 1 and len(sim.orders) == 1
    assert again.exchange_id == first.exchange_id and again.status == "closed"
    assert again.filled == pytest.approx(0.01) and again.fee == pytest.approx(first.fee)
    # Not on the exchange after all: it is sent, once.
    other = make_broker(sim).place(buy("k-never-sent"), maybe_sent=True)
    assert other.status == "closed" and sim.count("AddOrder") == 2


@pytest.mark.parametrize(
    ("qty", "text"),
    [(None, "EOrder:Insufficient funds"), (0.00005, "EOrder:Order minimum not met")],
    ids=["funds", "minimum"],
)
def test_rejected_order(
    sim: KrakenSim, broker: ExchangeBroker, moment: Moment, qty: float | None, text: str
) -> None:
    if qty is None:  # half as much again as the cash buys
        qty = round(1.5 * 10000.0 / moment.price, 4)
    st = broker.place(buy("k-reject", qty))
    assert st.status == "rejected" and st.done
    assert text in st.message and st.exchange_id == ""
    assert sim.orders == [] and sim.count("AddOrder") == 1  # never retried
    assert sim.balances == {"ZUSD": 10000.0}


def test_stop_loss_rests_then_fills_when_crossed(
    sim: KrakenSim, broker: ExchangeBroker, moment: Moment
) -> None:
    now = moment.now_ms
    broker.place(buy("k-entry"))
    # numpy numbers, as the kernels hand them over: ccxt ignores a float64 trigger
    # (safe_string gives None) and would have sent a plain market sell.
    stop = OrderRequest(
        key="k-stop",
        symbol="BTC/USD",
        side="sell",
        qty=np.float64(0.01),  # type: ignore[arg-type]
        kind="stop",
        stop_price=np.float64(moment.stop),  # type: ignore[arg-type]
    )
    st = broker.place(stop)
    assert st.status == "open" and st.filled == 0.0 and st.exchange_id
    sent = [p for path, p in sim.requests if path.endswith("/AddOrder")][-1]
    assert sent["ordertype"] == "stop-loss" and float(sent["price"]) == moment.stop
    assert sent["userref"] == str(stop.userref)
    listed = broker.open_orders()
    assert [(o.key, o.exchange_id, o.extra["userref"]) for o in listed] == [
        ("", st.exchange_id, str(stop.userref))
    ]
    sim.advance_to(now + 2 * HOUR_MS)  # two hours whose lows stay above the stop
    assert broker.refresh(st).status == "open"
    sim.advance_to(now + 5 * HOUR_MS)  # one of the next three trades through it
    done = broker.refresh(st)
    assert done.status == "closed" and done.filled == pytest.approx(0.01)
    assert done.avg_price == pytest.approx(moment.stop_fill)
    assert sim.orders_for(stop.userref)[0].close_ms == moment.stop_hit_ms
    assert sim.balances["XXBT"] == pytest.approx(0.0, abs=1e-12)
    assert broker.open_orders() == []


def test_deadline_travels_with_each_attempt(sim: KrakenSim, broker: ExchangeBroker) -> None:
    """Each AddOrder carries Kraken's deadline (RFC 3339, whole seconds, never earlier than
    asked); the hook is asked again for the retry after a fault."""
    asked: list[int] = []

    def deadline() -> int:
        asked.append(sim.now_ms + 30_000 + len(asked))
        return asked[-1]

    sim.inject("AddOrder", "500")
    broker.place(buy("k-deadline"), deadline=deadline)
    sent = [q for p, q in sim.requests if p.endswith("/AddOrder")]
    assert len(asked) == 2 == len(sent)
    # 30 s exactly, then 30.001 s rounded up to the next whole second.
    assert [q["deadline"] for q in sent] == [_rfc3339(sim.now_ms + s * 1000) for s in (30, 31)]


def test_request_past_its_deadline_is_refused(sim: KrakenSim, broker: ExchangeBroker) -> None:
    st = broker.place(buy("k-late"), deadline=lambda: sim.now_ms - 1_000)
    assert st.status == "rejected" and "Deadline" in st.message
    assert sim.orders == []


def test_cancel_open_and_already_closed_orders(
    sim: KrakenSim, broker: ExchangeBroker, moment: Moment
) -> None:
    far = round(moment.price * 0.9, 1)  # a stop the clock, standing still, never reaches
    filled = broker.place(buy("k-entry"))
    st = broker.place(OrderRequest("k-c", "BTC/USD", "sell", 0.01, "stop", far))
    sim.inject("CancelOrder", "lost")  # canceled, answer lost: the retry sees Unknown order
    out = broker.cancel(st)
    assert out.status == "canceled" and out.exchange_id == st.exchange_id
    assert sim.count("CancelOrder") == 2
    again = broker.cancel(filled)  # closed already: refreshed, not an error
    assert again.status == "closed" and again.filled == pytest.approx(0.01)
    # Known only by userref (no txid in the ledger): Kraken cancels by userref.
    req = OrderRequest("k-c2", "BTC/USD", "sell", 0.005, "stop", far)
    placed = broker.place(req)
    by_ref = broker.cancel(OrderStatus(key=req.key, extra={"userref": str(req.userref)}))
    assert by_ref.status == "canceled" and by_ref.exchange_id == placed.exchange_id
    assert [o.status for o in sim.orders_for(req.userref)] == ["canceled"]


def test_partial_fill_is_reported(sim: KrakenSim, broker: ExchangeBroker, moment: Moment) -> None:
    price = moment.price
    sim.partial_fill_frac = 0.5
    st = broker.place(buy("k-partial", 0.02))
    assert st.status == "canceled" and st.done
    assert st.filled == pytest.approx(0.01) and st.filled < 0.02
    assert st.avg_price == pytest.approx(price)
    assert st.fee == pytest.approx(0.01 * price * FEE)
    assert sim.balances["XXBT"] == pytest.approx(0.01)


def test_unfilled_order_has_nan_average(sim: KrakenSim, broker: ExchangeBroker) -> None:
    sim.partial_fill_frac = 0.0
    st = broker.place(buy("k-none"))
    assert st.status == "canceled" and st.filled == 0.0 and math.isnan(st.avg_price)


def test_wrong_api_key_is_a_config_error(sim: KrakenSim) -> None:
    with pytest.raises(ConfigError, match="API key was refused") as err:
        make_broker(sim, api_key="wrong").check()
    text = str(err.value)
    assert "Query Funds" in text and "Cancel/Close Orders" in text and "never Withdraw" in text
    assert "\n" not in text


def test_sim_public_data_and_protocol_checks(
    sim: KrakenSim, broker: ExchangeBroker, moment: Moment
) -> None:
    import ccxt

    now, price = moment.now_ms, moment.price
    ex = broker.ex
    ex.load_markets()
    assert {"BTC/USD", "ETH/USD", "BTC/USDT"} <= set(ex.markets)
    bars = ex.fetch_ohlcv("BTC/USD", "1h")
    assert len(bars) == 721 and bars[-1][0] == now and bars[-1][1] == price
    assert ex.fetch_ticker("BTC/USD")["last"] == price
    assert ex.fetch_ticker("ETH/USD")["last"] == moment.eth_price
    assert ex.fetch_time() == now
    ex.create_order("BTC/USD", "market", "buy", 0.01, None, {"validate": "true"})
    assert sim.orders == [] and sim.count("AddOrder") == 1
    with pytest.raises(ccxt.ExchangeError, match="Unknown asset pair"):
        ex.privatePostAddOrder({"pair": "NOPE", "type": "buy", "ordertype": "market"})
    ex.nonce = lambda: 1  # a nonce below the last one used by this key
    ex.options["lastNonce"] = 0
    with pytest.raises(ccxt.InvalidNonce):
        ex.fetch_balance()
