"""The feature stage: no leakage, higher-timeframe and reference merges, labels, warm-up,
metadata, the live tail, bad inputs, and ``tradekit featurize`` end to end."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradekit.config import FeaturesConfig
from tradekit.contracts import FEATURES, file_hash, read_table, write_ohlcv
from tradekit.data import candles
from tradekit.errors import ConfigError, InputError
from tradekit.features import (
    FeatureSpec,
    build_features,
    feature_columns,
    label_columns,
    load_spec,
    tail_candles,
    warmup_candles,
)
from tradekit.features.sets import FAMILIES

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, on a 4h boundary
COST = 0.009

# Every family, small periods so that a few hundred candles cover the warm-up.
SMALL = FeatureSpec(
    name="small",
    periods=(3, 6),
    include_timeframes=("4h",),
    corr_symbols=("BTC/USD",),
    label_horizon=4,
    returns=(1, 2),
    macd=(3, 6, 3),
    barrier_vol_window=5,
)


def walk(symbol: str, n: int, start_ms: int = T0, seed: int = 0, drop: tuple[int, ...] = ()):
    """A random-walk candle series; ``drop`` removes candles (gaps)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    df = pd.DataFrame(
        {
            "symbol": symbol,
            "timestamp": start_ms + np.arange(n, dtype=np.int64) * HOUR,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.lognormal(3, 1, n),
        }
    )
    return df.drop(index=list(drop))


def frame(*parts: pd.DataFrame) -> pd.DataFrame:
    df = pd.concat(parts, ignore_index=True).sort_values(["symbol", "timestamp"])
    df = df.reset_index(drop=True).astype({"symbol": "str"})
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms", utc=True).dt.as_unit("ms")
    return df


@functools.cache
def leak_input() -> pd.DataFrame:
    # ETH starts 7 hours later (not on a 4h boundary) and misses a candle: partial and
    # incomplete 4h buckets, and reference rows to align across a gap.
    return frame(
        walk("BTC/USD", 420, seed=1, drop=(250,)), walk("ETH/USD", 400, T0 + 7 * HOUR, 2, (90,))
    )


@functools.cache
def leak_base() -> pd.DataFrame:
    return build_features(leak_input(), SMALL, "1h", cost=COST, drop_warmup=False)[0]


def assert_same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Bit-identical, NaN equal to NaN."""
    assert list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64))


# -- leakage ---------------------------------------------------------------------------------


def test_leak_fixture_covers_every_column():
    # Otherwise the property below could pass on columns that are NaN everywhere.
    base = leak_base()
    names = feature_columns(SMALL)
    assert SMALL.indicators == FAMILIES
    tail = base.groupby("symbol").tail(60)[names]
    assert not tail.isna().any().any()


@settings(max_examples=50, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=425),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_features_at_t_ignore_every_later_candle(cut, seed):
    df = leak_input().copy()
    t = pd.Timestamp(T0 + cut * HOUR, unit="ms", tz="UTC")
    later = (df["timestamp"] > t).to_numpy()
    rng = np.random.default_rng(seed)
    k = int(later.sum())
    for c in ("open", "high", "low", "close"):
        df.loc[later, c] = df.loc[later, c].to_numpy() * np.exp(rng.normal(0, 0.05, k))
    df.loc[later, "volume"] = rng.lognormal(2, 2, k)
    got = build_features(df, SMALL, "1h", cost=COST, drop_warmup=False)[0]
    base = leak_base()
    names = feature_columns(SMALL)
    early = (base["timestamp"] <= t).to_numpy()
    assert_same(got.loc[early, names], base.loc[early, names])
    if k:  # the perturbation is real: later features did change
        assert not np.array_equal(
            got.loc[~early, "ret_1"].to_numpy(), base.loc[~early, "ret_1"].to_numpy()
        )


def test_labels_do_look_ahead():
    # The same perturbation moves labels at t: the property above would notice a leak.
    df = leak_input().copy()
    later = (df["timestamp"] > pd.Timestamp(T0 + 300 * HOUR, unit="ms", tz="UTC")).to_numpy()
    df.loc[later, "close"] *= 1.5
    got = build_features(df, SMALL, "1h", cost=COST, drop_warmup=False)[0]
    at = (got["timestamp"] == pd.Timestamp(T0 + 298 * HOUR, unit="ms", tz="UTC")).to_numpy()
    assert not np.array_equal(got.loc[at, "label_return"], leak_base().loc[at, "label_return"])


def test_4h_candle_first_visible_on_the_row_that_closes_with_it():
    spec = FeatureSpec(
        name="htf",
        periods=(2,),
        returns=(1,),
        include_timeframes=("4h",),
        corr_symbols=(),
        indicators=("returns",),
        htf_indicators=("returns",),
    )
    df = frame(walk("BTC/USD", 48, drop=(13,)))  # the 4h bucket of rows 12..15 is incomplete
    got = build_features(df, spec, "1h", cost=COST, labels=False, drop_warmup=False)[0]
    ts = (df["timestamp"].astype("int64").to_numpy() - T0) // HOUR
    close = dict(zip(ts, df["close"], strict=True))
    complete = [b for b in range(12) if b != 3]  # bucket b holds hours 4b..4b+3
    htf_close = {b: close[4 * b + 3] for b in complete}
    want = []
    for hour in ts:
        visible = [b for b in complete if 4 * b + 4 <= hour + 1]  # closed by this row's close
        if len(visible) < 3:  # ret_2 needs two earlier complete 4h candles (warm-up)
            want.append(np.nan)
            continue
        b, prev = visible[-1], visible[-2]
        want.append(htf_close[b] / htf_close[prev] - 1)
    np.testing.assert_array_equal(got["tf4h_ret_1"].to_numpy(), np.array(want))
    # Spelled out: the row opening at 11:00 is the first to see the 08:00-12:00 candle; the
    # incomplete 12:00-16:00 bucket is never seen (15:00 and 18:00 still show 08:00-12:00),
    # and the 16:00-20:00 candle appears at 19:00.
    row = dict(zip(ts, got["tf4h_ret_1"], strict=True))
    assert np.isnan(row[10])
    assert row[11] == row[15] == row[18] == htf_close[2] / htf_close[1] - 1
    assert row[19] == htf_close[4] / htf_close[2] - 1


def test_reference_pair_aligned_by_timestamp_without_look_ahead():
    df = leak_input()
    got = build_features(df, SMALL, "1h", cost=COST, drop_warmup=False)[0]
    btc = got[got["symbol"] == "BTC/USD"].set_index("timestamp")
    eth = got[got["symbol"] == "ETH/USD"].set_index("timestamp")
    # BTC's own rows carry its own features as reference columns.
    np.testing.assert_array_equal(btc["ref_btc_usd_rsi_6"], btc["rsi_6"])
    # ETH rows: BTC's value at the latest BTC candle opened at or before the row's.
    where = btc.index.searchsorted(eth.index, side="right") - 1
    want = btc["rsi_6"].to_numpy()[where]
    np.testing.assert_array_equal(eth["ref_btc_usd_rsi_6"].to_numpy(), want)
    assert T0 + 250 * HOUR in set(eth.index.astype("int64"))  # BTC's gap is covered


# -- labels ----------------------------------------------------------------------------------


def slow_barrier(df: pd.DataFrame, h: int, width: float, vw: int) -> np.ndarray:
    """Triple-barrier label, one row at a time (the reference)."""
    hi, lo, c = (df[x].to_numpy() for x in ("high", "low", "close"))
    out = np.full(len(c), np.nan)
    for i in range(vw, len(c) - h):
        sigma = np.std([np.log(c[j] / c[j - 1]) for j in range(i - vw + 1, i + 1)])
        w = width * sigma * np.sqrt(h)
        label = 0.0
        for j in range(i + 1, i + h + 1):
            if lo[j] <= c[i] * (1 - w):  # a candle touching both counts as the stop first
                label = -1.0
                break
            if hi[j] >= c[i] * (1 + w):
                label = 1.0
                break
        out[i] = label
    return out


@pytest.mark.parametrize(("h", "width"), [(4, 2.0), (7, 0.5), (1, 1.0)])
def test_labels_against_slow_references(h, width):
    df = frame(walk("BTC/USD", 300, seed=3), walk("ETH/USD", 250, seed=4))
    spec = dataclasses.replace(SMALL, label_horizon=h, barrier_width=width, barrier_vol_window=8)
    got = build_features(df, spec, "1h", cost=COST, drop_warmup=False)[0]
    for sym, part in df.groupby("symbol"):
        rows = got["symbol"] == sym
        c = part["close"].reset_index(drop=True)
        want_ret = (c.shift(-h) / c - 1).to_numpy()
        ret = got.loc[rows, "label_return"].to_numpy()
        np.testing.assert_allclose(ret, want_ret, rtol=1e-14)
        assert np.isnan(ret[-h:]).all() and not np.isnan(ret[:-h]).any()
        cls = got.loc[rows, "label_class"].to_numpy()
        want_cls = np.select([want_ret > COST, want_ret < -COST], [1.0, -1.0], 0.0)
        want_cls[np.isnan(want_ret)] = np.nan
        np.testing.assert_array_equal(cls, want_cls)
        bar = got.loc[rows, "label_barrier"].to_numpy()
        np.testing.assert_array_equal(bar, slow_barrier(part, h, width, 8))
        assert {-1.0, 0.0, 1.0} <= set(bar[~np.isnan(bar)]) or h == 1


def test_label_class_uses_the_round_trip_cost_threshold():
    df = frame(walk("BTC/USD", 200, seed=5))
    spec = dataclasses.replace(SMALL, corr_symbols=(), include_timeframes=())
    wide = build_features(df, spec, "1h", cost=0.02, drop_warmup=False)[0]
    narrow = build_features(df, spec, "1h", cost=0.0, drop_warmup=False)[0]
    r = wide["label_return"]
    assert ((wide["label_class"] == 0) == (r.abs() <= 0.02))[r.notna()].all()
    assert (narrow["label_class"][r.notna()] != 0).all()  # zero cost: only the sign counts


def test_labels_are_nan_across_a_gap_and_rows_are_kept():
    df = frame(walk("BTC/USD", 120, seed=6, drop=(60,)))
    spec = dataclasses.replace(SMALL, corr_symbols=(), include_timeframes=())
    got = build_features(df, spec, "1h", cost=COST, drop_warmup=False)[0]
    hours = (got["timestamp"].astype("int64").to_numpy() - T0) // HOUR
    spans_gap = (hours < 60) & (hours + 4 > 60)
    assert got.loc[spans_gap, label_columns()].isna().all().all()
    assert len(got) == 119  # unknown labels are kept for the live loop and predict


# -- warm-up, columns, spec ------------------------------------------------------------------


def test_warmup_rule_and_short_symbols():
    df = frame(walk("BTC/USD", 2400, seed=7), walk("ETH/USD", 300, seed=8))
    spec = load_spec(FeaturesConfig())  # default: periods 10/20/50, 4h, BTC/USD
    got, meta = build_features(df, spec, "1h", cost=COST)
    need = warmup_candles(spec, "1h")
    assert need - 8 <= meta["warmup_dropped"]["BTC/USD"] <= need  # a close upper bound
    assert meta["dropped_symbols"] == ["ETH/USD"] and meta["symbols"] == ["BTC/USD"]
    assert (
        set(got["symbol"]) == {"BTC/USD"} and len(got) == 2400 - meta["warmup_dropped"]["BTC/USD"]
    )
    assert not got[meta["features"]].isna().any().any()
    assert list(got.columns) == ["symbol", "timestamp", *feature_columns(spec), *label_columns()]
    with pytest.raises(InputError, match="no rows left after warm-up"):
        build_features(frame(walk("BTC/USD", 300)), spec, "1h", cost=COST)


def test_spec_hash_changes_with_the_spec_and_only_then():
    cfg = FeaturesConfig()
    a, b = load_spec(cfg), load_spec(FeaturesConfig())
    assert a == b and a.hash == b.hash and a.hash.startswith("sha256:")
    variants = [
        load_spec(FeaturesConfig(periods=[10, 20])),
        load_spec(FeaturesConfig(include_timeframes=["1d"])),
        load_spec(FeaturesConfig(corr_symbols=["ETH/USD"])),
        load_spec(cfg, "minimal"),
        dataclasses.replace(a, label_horizon=6),
        dataclasses.replace(a, barrier_width=1.5),
    ]
    assert len({a.hash, *(v.hash for v in variants)}) == 1 + len(variants)
    assert json.loads(json.dumps(a.to_dict())) == a.to_dict()


def test_feature_set_file(tmp_path):
    f = tmp_path / "fast.toml"
    f.write_text('periods = [5, 10]\nindicators = ["rsi", "returns"]\ninclude_timeframes = []\n')
    spec = load_spec(FeaturesConfig(), str(f))
    assert spec.name == "fast" and spec.periods == (5, 10) and spec.indicators == ("returns", "rsi")
    assert spec.corr_symbols == ("BTC/USD",)  # from [features]
    assert feature_columns(spec)[:3] == ["ret_1", "ret_3", "ret_5"]
    f.write_text("periods = [5]\ncolour = 3\n")
    with pytest.raises(ConfigError, match=r"fast\.toml: unknown key 'colour'"):
        load_spec(FeaturesConfig(), str(f))
    f.write_text('indicators = ["rsi", "stochastic"]\n')
    with pytest.raises(ConfigError, match=r"fast\.toml: indicators: unknown .*'stochastic'"):
        load_spec(FeaturesConfig(), str(f))
    with pytest.raises(ConfigError, match="not a built-in set"):
        load_spec(FeaturesConfig(), "fancy")


def test_higher_timeframe_must_be_a_multiple_above_the_base():
    spec = dataclasses.replace(SMALL, include_timeframes=("90m",))
    with pytest.raises(ConfigError, match=r"include_timeframes: 90m"):
        build_features(leak_input(), spec, "1h", cost=COST)


# -- the live tail on real candles -----------------------------------------------------------


def real(real_hourly: Callable[[str], pd.DataFrame], coins: tuple[str, ...]) -> pd.DataFrame:
    """Real hourly candles (Binance's in shared/data, else the offline sample's)."""
    parts = []
    for coin in coins:
        d = real_hourly(coin).copy()
        d["timestamp"] = d["timestamp"].astype("int64")
        d.insert(0, "symbol", f"{coin}/USDT")
        parts.append(d)
    return frame(*parts)


def test_tail_candles_reproduce_the_last_row(real_hourly):
    df = real(real_hourly, ("BTC", "ETH"))
    spec = load_spec(FeaturesConfig(corr_symbols=["BTC/USDT"]))
    full, meta = build_features(df, spec, "1h", cost=COST, labels=False)
    names = meta["features"]

    def last_rows(n: int) -> pd.DataFrame:
        tail = df.groupby("symbol", sort=False).tail(n).reset_index(drop=True)
        got = build_features(tail, spec, "1h", cost=COST, labels=False)[0]
        return got.groupby("symbol").tail(1)[names]

    n = tail_candles(spec, "1h")
    assert n < 17_000  # shorter than the history, so the test means something
    want = full.groupby("symbol").tail(1)[names].to_numpy()
    np.testing.assert_allclose(last_rows(n).to_numpy(), want, rtol=1e-9, atol=1e-15)
    # Half of it is not enough: the bound is not slack for its own sake.
    half = last_rows(n // 2).to_numpy()
    assert np.max(np.abs(half - want) / np.maximum(np.abs(want), 1e-12)) > 1e-9


# -- the command -----------------------------------------------------------------------------


def write_walks(path: str, *parts: pd.DataFrame) -> None:
    write_ohlcv(frame(*parts), path, {"exchange": "test", "timeframe": "1h"})


def test_featurize_end_to_end(run_cli):
    r = run_cli(
        "fetch", "BTC/USD", "ETH/USD", "--exchange", "sample", "-t", "1h",
        "--since", "2018-01-01", "--until", "2018-05-01", "-o", "ohlcv.parquet",
    )  # fmt: skip
    assert r.code == 0, r.err
    r = run_cli("featurize", "ohlcv.parquet", "-o", "features.parquet", "--json")
    assert r.code == 0, r.err
    df, meta = read_table("features.parquet", FEATURES)
    spec = load_spec(FeaturesConfig())
    assert meta["feature_set"] == "default" and meta["feature_set_hash"] == spec.hash
    assert meta["features"] == feature_columns(spec) and meta["labels"] == label_columns()
    assert list(df.columns) == ["symbol", "timestamp", *meta["features"], *meta["labels"]]
    assert meta["timeframe"] == "1h" and meta["exchange"] == "sample"
    assert meta["source"] == file_hash("ohlcv.parquet") and meta["label_horizon"] == 12
    assert meta["label_cost"] == pytest.approx(2 * (0.004 + 0.0005))
    for sym in ("BTC/USD", "ETH/USD"):
        part = df[df["symbol"] == sym]
        assert len(part) == 2880 - meta["warmup_dropped"][sym] > 500
        assert not part[meta["features"]].isna().any().any()
        assert part["label_return"].isna().sum() == 12  # the last 12 rows, kept
    summary = json.loads(r.out)
    assert summary["schema"] == "featurize/1" and summary["rows_out"] == len(df)
    assert "warm-up dropped" in r.err and "105 features" in r.err


def test_output_is_deterministic_and_options_apply(run_cli):
    write_walks("in.parquet", walk("BTC/USD", 700, seed=1), walk("ETH/USD", 700, seed=2))
    args = ("--feature-set", "minimal", "--label-horizon", "6")
    assert run_cli("featurize", "in.parquet", "-o", "a.parquet", *args).code == 0
    assert run_cli("featurize", "in.parquet", "-o", "b.parquet", *args).code == 0
    assert Path("a.parquet").read_bytes() == Path("b.parquet").read_bytes()
    _, meta = read_table("a.parquet", FEATURES)
    want = dataclasses.replace(load_spec(FeaturesConfig(), "minimal"), label_horizon=6)
    assert meta["label_horizon"] == 6 and meta["feature_set_hash"] == want.hash
    r = run_cli("featurize", "in.parquet", "-o", "c.parquet", "--feature-set", "minimal",
                env={"TRADEKIT_BACKTEST__FEE": "0.01"})  # fmt: skip
    assert r.code == 0 and read_table("c.parquet", FEATURES)[1]["label_cost"] == pytest.approx(
        2 * (0.01 + 0.0005)
    )


def test_short_symbol_is_left_out_with_a_warning(run_cli):
    write_walks("in.parquet", walk("BTC/USD", 700, seed=1), walk("ETH/USD", 40, seed=2))
    r = run_cli("featurize", "in.parquet", "-o", "out.parquet", "--feature-set", "minimal")
    assert r.code == 0, r.err
    assert "left out: ETH/USD" in r.err
    df, meta = read_table("out.parquet", FEATURES)
    assert set(df["symbol"]) == {"BTC/USD"} and meta["warmup_dropped"]["ETH/USD"] == 40


def _bare_parquet(path: str, df: pd.DataFrame) -> None:
    """An ohlcv/1-labelled file that write_ohlcv would refuse to write (a missing column)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = {b"tradekit.schema": b"ohlcv/1", b"tradekit.meta": b'{"exchange":"t","timeframe":"1h"}'}
    pq.write_table(table.replace_schema_metadata(meta), path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_column", r"in\.parquet: missing column\(s\) volume"),
        ("empty", r"in\.parquet: no candles"),
        ("zero_bytes", r"in\.parquet: not a readable Parquet file"),
        ("nan_column", r"in\.parquet: column close has no values"),
        ("nan_values", r"in\.parquet: column high has 1 empty values, first at BTC/USD"),
        ("no_reference", r"in\.parquet: reference pair BTC/USD .*\[features\] corr_symbols"),
    ],
)
def test_bad_inputs_exit_3_and_write_nothing(run_cli, case, message):
    import re

    df = frame(walk("BTC/USD", 50))
    if case == "missing_column":
        _bare_parquet("in.parquet", df.drop(columns=["volume"]))
    elif case == "empty":
        write_ohlcv(candles.empty(), "in.parquet", {"exchange": "t", "timeframe": "1h"})
    elif case == "zero_bytes":
        Path("in.parquet").write_bytes(b"")
    elif case == "nan_column":
        write_walks("in.parquet", walk("BTC/USD", 50).assign(close=np.nan))
    elif case == "nan_values":
        write_walks("in.parquet", walk("BTC/USD", 50).assign(high=[np.nan, *[101.0] * 49]))
    else:
        write_walks("in.parquet", walk("ETH/USD", 50))
    r = run_cli("featurize", "in.parquet", "-o", "out.parquet")
    assert r.code == 3, r.err
    assert re.search(message, r.err), r.err
    assert "Traceback" not in r.err
    assert sorted(p.name for p in Path().iterdir()) == ["in.parquet"]


def test_usage_errors(run_cli):
    write_walks("in.parquet", walk("BTC/USD", 50))
    r = run_cli("featurize", "in.parquet")
    assert r.code == 2 and "-o" in r.err
    r = run_cli("featurize", "in.parquet", "-o", "out.parquet", "--feature-set", "nope")
    assert r.code == 3 and "nope" in r.err


# -- the live tail: only the last rows ---------------------------------------------------------


@functools.cache
def last_input() -> pd.DataFrame:
    # Symbols of different lengths and ends, gaps, starts off the 4h/1d boundaries, and two
    # short ones (fewer rows than some ``last`` below, one of them a single candle).
    return frame(
        walk("BTC/USD", 1500, seed=11, drop=(250, 900, 1497)),
        walk("ETH/USD", 1200, T0 + 7 * HOUR, 12, (90, 1100)),
        walk("SOL/USD", 30, T0 + 1400 * HOUR, 13, (5,)),
        walk("ADA/USD", 1, T0 + 100 * HOUR, 14),
        walk("XRP/USD", 900, T0 + 301 * HOUR, 15, (400,)),
    )


LAST_SPECS = {
    "default": load_spec(FeaturesConfig()),
    "minimal": load_spec(FeaturesConfig(), "minimal"),
    "two_htfs_two_refs": dataclasses.replace(
        SMALL, include_timeframes=("4h", "1d"), corr_symbols=("BTC/USD", "ETH/USD")
    ),
}


@pytest.mark.parametrize("which", list(LAST_SPECS))
def test_last_rows_equal_the_tail_of_the_full_output(which):
    spec, df = LAST_SPECS[which], last_input()
    full, full_meta = build_features(df, spec, "1h", cost=COST, labels=False, drop_warmup=False)
    names = feature_columns(spec)
    assert list(full.columns) == ["symbol", "timestamp", *names]
    for last in (1, 4, 37, 5000):
        got, meta = build_features(
            df, spec, "1h", cost=COST, labels=False, drop_warmup=False, last=last
        )
        want = full.groupby("symbol", sort=False).tail(last).reset_index(drop=True)
        assert list(got.columns) == list(full.columns)
        assert isinstance(got.index, pd.RangeIndex) and len(got) == len(want)
        assert got["symbol"].tolist() == want["symbol"].tolist()
        assert (got["timestamp"] == want["timestamp"]).all()
        assert got["timestamp"].dtype == full["timestamp"].dtype
        g, w = got[names].to_numpy(np.float64), want[names].to_numpy(np.float64)
        assert np.array_equal(g, w, equal_nan=True)
        # The comparison is not vacuous: the tail holds real values in every column group.
        assert not np.isnan(g[got["symbol"] == "BTC/USD"][-1]).all()
        assert meta["rows_out"] == len(got) and meta["rows_in"] == len(df)
        assert {k: v for k, v in meta.items() if k != "rows_out"} == {
            k: v for k, v in full_meta.items() if k != "rows_out"
        }
    # A ``last`` beyond every symbol's length is the whole frame.
    counts = got.groupby("symbol").size()
    assert counts["ADA/USD"] == 1 and counts["SOL/USD"] == 29 and len(got) == len(full)


def test_last_tail_values_are_defined_in_htf_and_reference_columns():
    # Real values (not NaN on both sides) in the columns the tail gathers separately.
    spec = LAST_SPECS["two_htfs_two_refs"]
    got = build_features(
        last_input(), spec, "1h", cost=COST, labels=False, drop_warmup=False, last=3
    )[0]
    row = got[got["symbol"] == "BTC/USD"].iloc[-1]
    for prefix in ("tf4h_", "tf1d_", "ref_btc_usd_", "ref_eth_usd_"):
        cols = [c for c in feature_columns(spec) if c.startswith(prefix)]
        assert cols and row[cols].notna().all(), prefix


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": True, "drop_warmup": False, "last": 1}, "labels=False"),
        ({"labels": False, "drop_warmup": True, "last": 1}, "drop_warmup=False"),
        ({"labels": False, "drop_warmup": False, "last": 0}, "at least 1"),
    ],
)
def test_last_needs_no_labels_no_warmup_drop_and_a_positive_count(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_features(last_input(), SMALL, "1h", cost=COST, **kwargs)
