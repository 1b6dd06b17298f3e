"""`tradekit data check`: every defect kind found and named, datacheck/1 JSON, golden report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradekit.contracts import OHLCV, to_table
from tradekit.data.check import PROBLEM_CHECKS, check_frame, infer_timeframe_ms
from tradekit.timeutil import fmt_ms

GOLDEN = Path(__file__).parent / "golden" / "datacheck.json"
HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
META = {"exchange": "kraken", "timeframe": "1h"}


def frame(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (symbol, ms, open, high, low, close, volume), kept in the given order."""
    sym, ts, o, h, lo, c, v = (list(x) for x in zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "symbol": pd.Series(sym, dtype="str"),
            "timestamp": pd.to_datetime(np.asarray(ts, dtype="int64"), unit="ms", utc=True).as_unit(
                "ms"
            ),
            "open": np.asarray(o, dtype="float64"),
            "high": np.asarray(h, dtype="float64"),
            "low": np.asarray(lo, dtype="float64"),
            "close": np.asarray(c, dtype="float64"),
            "volume": np.asarray(v, dtype="float64"),
        }
    )


def candle(symbol: str, i: int, **kw: float) -> tuple:
    """A valid hourly candle at T0 + i hours; keyword arguments override fields."""
    base = {
        "ts": T0 + i * HOUR,
        "open": 100.0 + i,
        "high": 110.0 + i,
        "low": 90.0 + i,
        "close": 105.0 + i,
        "volume": 1.0 + i,
    }
    base.update(kw)
    return (
        symbol,
        int(base["ts"]),
        base["open"],
        base["high"],
        base["low"],
        base["close"],
        base["volume"],
    )


def clean_rows(symbol: str = "BTC/USD", n: int = 6) -> list[tuple]:
    return [candle(symbol, i) for i in range(n)]


def write_raw(path: str | Path, df: pd.DataFrame, meta: dict | None = None) -> Path:
    """Write an ohlcv/1 file as it is, defects included (write_table would refuse duplicates
    and unsorted rows; a file from elsewhere can still hold them)."""
    pq.write_table(to_table(df, OHLCV, META if meta is None else meta), path)
    return Path(path)


def check_json(run_cli, path: str, *args: str):
    r = run_cli("data", "check", path, "--json", *args)
    assert "Traceback" not in r.err
    return r, json.loads(r.out)


# -- clean and defective files through the CLI -----------------------------------------------


def test_clean_file_passes(run_cli):
    write_raw("ok.parquet", frame(clean_rows("BTC/USD") + clean_rows("ETH/USD")))
    r, report = check_json(run_cli, "ok.parquet")
    assert r.code == 0, r.err
    assert report["schema"] == "datacheck/1"
    assert report["ok"] is True and report["problems"] == []
    assert report["rows"] == 12 and report["timeframe"] == "1h"
    assert report["exchange"] == "kraken"
    assert set(report["symbols"]) == {"BTC/USD", "ETH/USD"}
    assert report["symbols"]["BTC/USD"]["first"] == "2024-01-01 00:00"
    assert report["symbols"]["BTC/USD"]["last"] == "2024-01-01 05:00"
    assert "no problems in 12 candles" in r.err


def test_zero_volume_is_counted_not_a_problem(run_cli):
    rows = clean_rows()
    rows[2] = candle("BTC/USD", 2, volume=0.0)
    write_raw("z.parquet", frame(rows))
    r, report = check_json(run_cli, "z.parquet")
    assert r.code == 0
    assert report["symbols"]["BTC/USD"]["zero_volume"] == 1


def _dup(rows):
    return [*rows[:3], rows[2], *rows[3:]]


def _unsorted(rows):
    return [rows[0], rows[2], rows[1], *rows[3:]]


def _with(i, **kw):
    def f(rows):
        rows = list(rows)
        rows[i] = candle("BTC/USD", i, **kw)
        return rows

    return f


# (check, how to inject it into 8 clean hourly candles, the time reported as "first")
DEFECTS = [
    ("gaps", lambda rows: rows[:2] + rows[4:], T0 + 2 * HOUR),
    ("duplicates", _dup, T0 + 2 * HOUR),
    ("unsorted", _unsorted, T0 + 1 * HOUR),  # 02:00 then 01:00: the 01:00 row is out of order
    ("misaligned", _with(3, ts=T0 + 3 * HOUR + 60_000), T0 + 3 * HOUR + 60_000),
    ("nan", _with(3, close=float("nan")), T0 + 3 * HOUR),
    ("nan", _with(3, volume=float("inf")), T0 + 3 * HOUR),
    ("non_positive", _with(4, low=0.0), T0 + 4 * HOUR),
    ("non_positive", _with(4, low=-1.0), T0 + 4 * HOUR),
    ("negative_volume", _with(1, volume=-0.5), T0 + 1 * HOUR),
    ("high_below_low", _with(2, high=80.0, low=95.0), T0 + 2 * HOUR),
    ("outside_range", _with(5, open=200.0), T0 + 5 * HOUR),
    ("outside_range", _with(5, close=1.0), T0 + 5 * HOUR),
]


@pytest.mark.parametrize(
    ("check", "inject", "first"), DEFECTS, ids=[f"{d[0]}-{i}" for i, d in enumerate(DEFECTS)]
)
def test_each_defect_is_found_and_named(run_cli, check, inject, first):
    rows = inject(clean_rows("BTC/USD", 8)) + clean_rows("ETH/USD", 8)
    write_raw("bad.parquet", frame(rows))
    r, report = check_json(run_cli, "bad.parquet")
    assert r.code == 1, r.err
    assert report["schema"] == "datacheck/1" and report["ok"] is False
    checks = {(p["symbol"], p["check"]) for p in report["problems"]}
    expected = {("BTC/USD", check)} | ({("BTC/USD", "gaps")} if check == "misaligned" else set())
    assert checks == expected
    (p,) = [p for p in report["problems"] if p["check"] == check]
    assert p["count"] == 1
    assert p["first"] == fmt_ms(first)
    if check == "gaps":  # one hole of two candles
        assert p["missing_candles"] == 2
        assert p["largest"] == {"from": fmt_ms(first), "missing_candles": 2}
    assert report["symbols"]["ETH/USD"]["problems"] == {}
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("tradekit: error: bad.parquet:") and check in last


def test_misaligned_candle_with_its_slot_present_is_only_misaligned(run_cli):
    rows = clean_rows("BTC/USD", 6)
    rows.insert(4, candle("BTC/USD", 3, ts=T0 + 3 * HOUR + 1_800_000))
    write_raw("m.parquet", frame(rows))
    r, report = check_json(run_cli, "m.parquet")
    assert r.code == 1
    assert [(p["check"], p["count"], p["first"]) for p in report["problems"]] == [
        ("misaligned", 1, "2024-01-01 03:30")
    ]


def test_duplicate_first_is_right_in_an_unsorted_file(run_cli):
    rows = [
        candle("BTC/USD", 2),
        candle("BTC/USD", 1),
        candle("BTC/USD", 0),
        candle("BTC/USD", 1),
        candle("BTC/USD", 3),
    ]
    write_raw("u.parquet", frame(rows))
    r, report = check_json(run_cli, "u.parquet")
    assert r.code == 1
    found = {p["check"]: p for p in report["problems"]}
    assert set(found) == {"duplicates", "unsorted"}
    assert found["duplicates"]["count"] == 1
    assert found["duplicates"]["first"] == fmt_ms(T0 + HOUR)
    assert found["unsorted"]["count"] == 2
    assert found["unsorted"]["first"] == fmt_ms(T0 + HOUR)


@pytest.mark.parametrize(
    ("order", "first"),
    [
        (["ETH/USD"] * 3 + ["BTC/USD"] * 3, "2024-01-01 00:00"),  # symbols in the wrong order
        (["BTC/USD", "ETH/USD"] * 3, "2024-01-01 01:00"),  # interleaved
    ],
)
def test_rows_out_of_symbol_order_are_unsorted(run_cli, order, first):
    # Each symbol's own times are in order, but readers want the file sorted by symbol first.
    seen: dict[str, int] = {}
    rows = []
    for sym in order:
        rows.append(candle(sym, seen.get(sym, 0)))
        seen[sym] = seen.get(sym, 0) + 1
    write_raw("s.parquet", frame(rows))
    r, report = check_json(run_cli, "s.parquet")
    assert r.code == 1
    (p,) = report["problems"]
    assert (p["symbol"], p["check"], p["first"]) == ("BTC/USD", "unsorted", first)


def test_timeframe_option_overrides_the_metadata(run_cli):
    write_raw("h.parquet", frame(clean_rows("BTC/USD", 4)))
    r, report = check_json(run_cli, "h.parquet", "-t", "30m")
    assert r.code == 1
    assert report["timeframe"] == "30m"
    (p,) = report["problems"]
    assert (p["check"], p["count"], p["missing_candles"]) == ("gaps", 3, 3)
    r, report = check_json(run_cli, "h.parquet", "-t", "2h")  # 01:00 and 03:00 are off-grid
    assert r.code == 1
    assert [(p["check"], p["count"], p["first"]) for p in report["problems"]] == [
        ("misaligned", 2, "2024-01-01 01:00")
    ]


def test_bad_timeframe_option_is_a_usage_error(run_cli):
    write_raw("h.parquet", frame(clean_rows()))
    r = run_cli("data", "check", "h.parquet", "-t", "1x")
    assert r.code == 2 and "Traceback" not in r.err and "'1x'" in r.err


def test_bad_timeframe_in_the_metadata_is_bad_input(run_cli):
    write_raw("h.parquet", frame(clean_rows()), {"exchange": "kraken", "timeframe": "hourly"})
    r = run_cli("data", "check", "h.parquet")
    assert r.code == 3 and "Traceback" not in r.err
    assert r.err.strip().splitlines()[-1].startswith("tradekit: error: h.parquet: ")
    assert "'hourly'" in r.err


@pytest.mark.parametrize("column", ["symbol", "timestamp"])
def test_empty_key_values_are_bad_input(run_cli, column):
    table = to_table(frame(clean_rows()), OHLCV, META)
    i = table.schema.get_field_index(column)
    values = table.column(column).to_pylist()
    values[2] = None
    table = table.set_column(i, column, pa.array(values, type=table.schema.field(column).type))
    pq.write_table(table, "k.parquet")
    r = run_cli("data", "check", "k.parquet")
    assert r.code == 3 and "Traceback" not in r.err
    assert r.err.strip() == f"tradekit: error: k.parquet: 1 row(s) with an empty {column}"


def test_empty_file_has_no_problems(run_cli):
    write_raw("e.parquet", frame(clean_rows()).iloc[:0])
    r, report = check_json(run_cli, "e.parquet")
    assert r.code == 0 and report["rows"] == 0 and report["symbols"] == {}


def _features_file(p: Path) -> None:
    table = pa.table({"a": [1.0]})
    pq.write_table(table.replace_schema_metadata({b"tradekit.schema": b"features/1"}), p)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p.write_text("symbol,timestamp\nBTC/USD,0\n"), "not a readable Parquet"),
        (lambda p: pq.write_table(pa.table({"a": [1, 2]}), p), "no tradekit.schema"),
        (_features_file, "schema is features/1"),
        (lambda p: None, "no such file"),
    ],
)
def test_non_ohlcv_input_exits_3(run_cli, make, fragment):
    make(Path("x.parquet"))
    r = run_cli("data", "check", "x.parquet", "--json")
    assert r.code == 3, r.err
    assert "Traceback" not in r.err and r.out == ""
    line = r.err.strip()
    assert line.startswith("tradekit: error: x.parquet: ") and fragment in line
    assert "\n" not in line


# -- golden report ---------------------------------------------------------------------------


def golden_frame() -> pd.DataFrame:
    """Two symbols with every problem kind, in fixed places."""
    b, e = "BTC/USD", "ETH/USD"
    rows = [
        candle(b, 0),
        candle(b, 1),
        candle(b, 1),  # duplicate
        candle(b, 2, close=float("nan")),
        candle(b, 3, high=80.0, low=95.0),
        # hour 4 missing: a gap
        candle(b, 5),
        candle(b, 6),
        candle(b, 7, volume=0.0),
        candle(b, 10),  # hours 8 and 9 missing: the largest gap
        candle(e, 0),
        candle(e, 1, low=0.0),
        candle(e, 2, volume=-1.0),
        candle(e, 3),
        candle(e, 3, ts=T0 + 3 * HOUR + 1_800_000),  # misaligned
        candle(e, 4, open=200.0),  # outside [low, high]
        candle(e, 6),
        candle(e, 5),  # unsorted
    ]
    return frame(rows)


def test_golden_report(run_cli):
    write_raw("golden.parquet", golden_frame())
    r, report = check_json(run_cli, "golden.parquet")
    assert r.code == 1
    assert report["file"] == "golden.parquet"
    report["file"] = "<file>"
    if os.environ.get("TRADEKIT_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    assert GOLDEN.is_file(), "no golden file: run TRADEKIT_UPDATE_GOLDEN=1 make pytest"
    assert report == json.loads(GOLDEN.read_text(encoding="utf-8"))
    # Every problem kind is in the golden report, so a new or renamed one shows up here.
    assert {p["check"] for p in report["problems"]} == set(PROBLEM_CHECKS)


# -- the check itself, on random series ------------------------------------------------------

TIMEFRAMES = {"1m": 60_000, "5m": 300_000, "1h": HOUR, "4h": 4 * HOUR, "1d": 24 * HOUR}
KINDS = ["none", "duplicates", "nan", "high_below_low", "non_positive", "misaligned", "gaps"]


@st.composite
def series(draw, n_min: int = 3):
    tf = draw(st.sampled_from(sorted(TIMEFRAMES)))
    tf_ms = TIMEFRAMES[tf]
    n = draw(st.integers(min_value=n_min, max_value=40))
    start = draw(st.integers(min_value=0, max_value=2_000_000_000_000 // tf_ms)) * tf_ms
    pos = st.floats(min_value=1e-3, max_value=1e6)
    frac = st.floats(min_value=0.0, max_value=0.5)
    o = np.array(draw(st.lists(pos, min_size=n, max_size=n)))
    c = np.array(draw(st.lists(pos, min_size=n, max_size=n)))
    h = np.maximum(o, c) * (1 + np.array(draw(st.lists(frac, min_size=n, max_size=n))))
    lo = np.minimum(o, c) * (1 - np.array(draw(st.lists(frac, min_size=n, max_size=n))))
    v = np.array(draw(st.lists(st.floats(min_value=0.0, max_value=1e9), min_size=n, max_size=n)))
    ts = start + np.arange(n, dtype="int64") * tf_ms
    return tf, tf_ms, {"ts": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v}


def to_frame(symbol: str, s: dict) -> pd.DataFrame:
    n = len(s["ts"])
    return frame(
        [
            (
                symbol,
                int(s["ts"][i]),
                s["open"][i],
                s["high"][i],
                s["low"][i],
                s["close"][i],
                s["volume"][i],
            )
            for i in range(n)
        ]
    )


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), kind=st.sampled_from(KINDS))
def test_single_injected_defect_is_found_property(data, kind):
    tf, tf_ms, s = data.draw(series())
    n = len(s["ts"])
    other = to_frame("AAA/USD", s)  # a clean second symbol sorted before the defective one
    s = {k: v.copy() for k, v in s.items()}
    i = data.draw(st.integers(min_value=1, max_value=n - 2))  # an interior row
    at = int(s["ts"][i])
    expected: dict[str, int] = {}  # check -> the time reported as its first occurrence
    if kind == "duplicates":
        s = {k: np.insert(v, i + 1, v[i]) for k, v in s.items()}
        expected = {"duplicates": at}
    elif kind == "nan":
        col = data.draw(st.sampled_from(["open", "high", "low", "close", "volume"]))
        s[col][i] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        expected = {"nan": at}
    elif kind == "high_below_low":
        s["high"][i] = s["low"][i] * data.draw(st.floats(min_value=0.01, max_value=0.99))
        expected = {"high_below_low": at}
    elif kind == "non_positive":
        col = data.draw(st.sampled_from(["low", "open", "close"]))
        s[col][i] = -data.draw(st.floats(min_value=0.0, max_value=1e6))
        s["low"][i] = min(s["low"][i], s[col][i])  # keep open/close inside [low, high]
        expected = {"non_positive": at}
    elif kind == "misaligned":
        s["ts"][i] += data.draw(st.integers(min_value=1, max_value=tf_ms - 1))
        expected = {"misaligned": int(s["ts"][i]), "gaps": at}  # its grid slot is empty too
    elif kind == "gaps":
        s = {k: np.delete(v, i) for k, v in s.items()}
        expected = {"gaps": at}
    df = pd.concat([other, to_frame("BTC/USD", s)], ignore_index=True)
    report = check_frame(df, tf, "x.parquet", {"exchange": "x", "timeframe": tf})
    assert report["ok"] is (kind == "none")
    assert report["rows"] == len(df)
    assert report["symbols"]["AAA/USD"]["problems"] == {}
    got = {p["check"]: p for p in report["problems"]}
    assert all(p["symbol"] == "BTC/USD" for p in report["problems"])
    assert set(got) == set(expected)
    for check, first in expected.items():
        assert got[check]["count"] == 1
        assert got[check]["first"] == fmt_ms(first)
    if "gaps" in got:
        assert got["gaps"]["missing_candles"] == 1


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_clean_series_report_nothing_property(data):
    tf, _, s = data.draw(series(n_min=1))
    report = check_frame(to_frame("BTC/USD", s), None, "x", {"timeframe": tf})
    assert report["ok"] is True and report["problems"] == []
    assert report["symbols"]["BTC/USD"]["rows"] == len(s["ts"])


# -- timeframe inference ---------------------------------------------------------------------


def test_infer_timeframe_regular_series():
    df = frame(clean_rows("BTC/USD", 10))
    assert infer_timeframe_ms(df) == HOUR


def test_infer_timeframe_is_the_most_common_spacing():
    ts = [0, 5, 10, 15, 30, 35, 60, 65, 70]  # in minutes: mostly 5m, with gaps
    rows = [("BTC/USD", t * 60_000, 1.0, 1.0, 1.0, 1.0, 1.0) for t in ts]
    assert infer_timeframe_ms(frame(rows)) == 300_000


def test_infer_timeframe_per_symbol_unsorted_and_duplicates():
    # Each symbol on its own (the spacing between symbols does not count), order and
    # repeated times ignored.
    rows = [("ETH/USD", t * HOUR, 1.0, 1.0, 1.0, 1.0, 1.0) for t in (3, 1, 2, 2, 0)]
    rows += [("BTC/USD", 1000 * HOUR + t * HOUR, 1.0, 1.0, 1.0, 1.0, 1.0) for t in (0, 1)]
    assert infer_timeframe_ms(frame(rows)) == HOUR


@pytest.mark.parametrize("n", [0, 1])
def test_infer_timeframe_needs_two_times(n):
    assert infer_timeframe_ms(frame(clean_rows("BTC/USD", 1)).iloc[:n]) is None


def test_check_without_timeframe_infers_it():
    rows = [candle("BTC/USD", i) for i in (0, 1, 2, 3, 5, 6)]  # hourly with one hole
    report = check_frame(frame(rows), None, "x", {})
    assert report["timeframe"] == "1h"
    (p,) = report["problems"]
    assert (p["check"], p["count"], p["first"]) == ("gaps", 1, fmt_ms(T0 + 4 * HOUR))
