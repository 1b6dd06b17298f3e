"""ExchangeBroker with the real ccxt Kraken client against the local Kraken simulator."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.kraken_sim import KrakenSim
from tradekit.data.exchange import RetryPolicy, open_exchange
from tradekit.errors import ConfigError, ExternalError
from tradekit.live.exchange_broker import ExchangeBroker
from tradekit.live.orders import MarketRules, OrderRequest, OrderStatus

NOW_MS = 1_654_041_600_000  # 2022-06-01 00:00 UTC, a candle boundary: BTC/USD opens at 31781.0
PRICE = 31781.0
HOUR_MS = 3_600_000
FEE = 0.0026
SECRET = base64.b64encode(b"test-secret").decode()
RETRY = RetryPolicy(retries=3, backoff_s=0.01)


def make_broker(sim: KrakenSim, api_key: str = "testkey") -> ExchangeBroker:
    ex = open_exchange(
        "kraken", api_url=sim.url, api_key=api_key, secret=SECRET, timeout_s=0.5, rate_limit=False
    )
    return ExchangeBroker(ex, RETRY, poll_s=0.01)


@pytest.fixture
def sim(shared_data: Path) -> Iterator[KrakenSim]:
    with KrakenSim(shared_data, NOW_MS, fee=FEE, hang_s=0.8) as s:
        yield s


@pytest.fixture
def broker(sim: KrakenSim) -> ExchangeBroker:
    return make_broker(sim)


def buy(key: str, qty: float = 0.01) -> OrderRequest:
    return OrderRequest(key=key, symbol="BTC/USD", side="buy", qty=qty)


def test_check_rules_and_market_buy_moves_balances(sim: KrakenSim, broker: ExchangeBroker) -> None:
    assert broker.check() == {"USD": 10000.0}
    assert broker.rules("BTC/USD") == MarketRules(
        min_qty=0.0001, qty_step=1e-8, min_cost=0.5, price_step=0.1
    )
    req = buy("BTC/USD|1654041600000|enter")
    st = broker.place(req)
    assert st.status == "closed" and st.done
    assert st.key == req.key and st.exchange_id == sim.orders[0].txid
    assert st.filled == pytest.approx(0.01)
    assert st.avg_price == pytest.approx(PRICE)
    assert st.fee == pytest.approx(0.01 * PRICE * FEE)
    assert st.extra["userref"] == str(req.userref)
    assert sim.orders[0].userref == req.userref
    bal = broker.balances()
    assert bal["BTC"] == pytest.approx(0.01)
    assert bal["USD"] == pytest.approx(10000.0 - 0.01 * PRICE * (1 + FEE))
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
    sim: KrakenSim, broker: ExchangeBroker, fault: str, sends: int
) -> None:
    req = buy(f"k-{fault}")
    sim.inject("AddOrder", fault)
    st = broker.place(req)
    mine = sim.orders_for(req.userref)
    assert len(mine) == 1
    assert sim.count("AddOrder") == sends
    assert st.exchange_id == mine[0].txid
    assert st.status == "closed" and st.filled == pytest.approx(0.01)
    assert st.avg_price == pytest.approx(PRICE)
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
    ("qty", "text"), [(1.0, "EOrder:Insufficient funds"), (0.00005, "EOrder:Order minimum not met")]
)
def test_rejected_order(sim: KrakenSim, broker: ExchangeBroker, qty: float, text: str) -> None:
    st = broker.place(buy("k-reject", qty))
    assert st.status == "rejected" and st.done
    assert text in st.message and st.exchange_id == ""
    assert sim.orders == [] and sim.count("AddOrder") == 1  # never retried
    assert sim.balances == {"ZUSD": 10000.0}


def test_stop_loss_rests_then_fills_when_crossed(sim: KrakenSim, broker: ExchangeBroker) -> None:
    broker.place(buy("k-entry"))
    stop = OrderRequest(
        key="k-stop", symbol="BTC/USD", side="sell", qty=0.01, kind="stop", stop_price=31500.0
    )
    st = broker.place(stop)
    assert st.status == "open" and st.filled == 0.0 and st.exchange_id
    sent = [p for path, p in sim.requests if path.endswith("/AddOrder")][-1]
    assert sent["ordertype"] == "stop-loss" and float(sent["price"]) == 31500.0
    assert sent["userref"] == str(stop.userref)
    listed = broker.open_orders()
    assert [(o.key, o.exchange_id, o.extra["userref"]) for o in listed] == [
        ("", st.exchange_id, str(stop.userref))
    ]
    sim.advance_to(NOW_MS + 2 * HOUR_MS)  # lows 31679.3, 31814.4: not reached
    assert broker.refresh(st).status == "open"
    sim.advance_to(NOW_MS + 5 * HOUR_MS)  # 04:00 candle opens 31615.0, trades down to 31332.7
    done = broker.refresh(st)
    assert done.status == "closed" and done.filled == pytest.approx(0.01)
    assert done.avg_price == pytest.approx(31500.0)
    assert sim.orders_for(stop.userref)[0].close_ms == NOW_MS + 4 * HOUR_MS
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
    assert [q["deadline"] for q in sent] == ["2022-06-01T00:00:30Z", "2022-06-01T00:00:31Z"]


def test_request_past_its_deadline_is_refused(sim: KrakenSim, broker: ExchangeBroker) -> None:
    st = broker.place(buy("k-late"), deadline=lambda: sim.now_ms - 1_000)
    assert st.status == "rejected" and "Deadline" in st.message
    assert sim.orders == []


def test_cancel_open_and_already_closed_orders(sim: KrakenSim, broker: ExchangeBroker) -> None:
    filled = broker.place(buy("k-entry"))
    st = broker.place(OrderRequest("k-c", "BTC/USD", "sell", 0.01, "stop", 30000.0))
    sim.inject("CancelOrder", "lost")  # canceled, answer lost: the retry sees Unknown order
    out = broker.cancel(st)
    assert out.status == "canceled" and out.exchange_id == st.exchange_id
    assert sim.count("CancelOrder") == 2
    again = broker.cancel(filled)  # closed already: refreshed, not an error
    assert again.status == "closed" and again.filled == pytest.approx(0.01)
    # Known only by userref (no txid in the ledger): Kraken cancels by userref.
    req = OrderRequest("k-c2", "BTC/USD", "sell", 0.005, "stop", 30000.0)
    placed = broker.place(req)
    by_ref = broker.cancel(OrderStatus(key=req.key, extra={"userref": str(req.userref)}))
    assert by_ref.status == "canceled" and by_ref.exchange_id == placed.exchange_id
    assert [o.status for o in sim.orders_for(req.userref)] == ["canceled"]


def test_partial_fill_is_reported(sim: KrakenSim, broker: ExchangeBroker) -> None:
    sim.partial_fill_frac = 0.5
    st = broker.place(buy("k-partial", 0.02))
    assert st.status == "canceled" and st.done
    assert st.filled == pytest.approx(0.01) and st.filled < 0.02
    assert st.avg_price == pytest.approx(PRICE)
    assert st.fee == pytest.approx(0.01 * PRICE * FEE)
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


def test_sim_public_data_and_protocol_checks(sim: KrakenSim, broker: ExchangeBroker) -> None:
    import ccxt

    ex = broker.ex
    ex.load_markets()
    assert {"BTC/USD", "ETH/USD", "BTC/USDT"} <= set(ex.markets)
    bars = ex.fetch_ohlcv("BTC/USD", "1h")
    assert len(bars) == 721 and bars[-1][0] == NOW_MS and bars[-1][1] == PRICE
    assert ex.fetch_ticker("BTC/USD")["last"] == PRICE
    assert ex.fetch_ticker("ETH/USD")["last"] == 1940.57
    assert ex.fetch_time() == NOW_MS
    ex.create_order("BTC/USD", "market", "buy", 0.01, None, {"validate": "true"})
    assert sim.orders == [] and sim.count("AddOrder") == 1
    with pytest.raises(ccxt.ExchangeError, match="Unknown asset pair"):
        ex.privatePostAddOrder({"pair": "NOPE", "type": "buy", "ordertype": "market"})
    ex.nonce = lambda: 1  # a nonce below the last one used by this key
    ex.options["lastNonce"] = 0
    with pytest.raises(ccxt.InvalidNonce):
        ex.fetch_balance()
