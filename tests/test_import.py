"""`tradekit data import`: Kraken's OHLCVT CSV archive into ohlcv/1, on real files and bad ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tradekit.contracts import read_ohlcv
from tradekit.data.importer import read_kraken_csv

NEEDS_SHARED_DATA = (
    "it imports Kraken's own OHLCVT archive files (with and without a header, 15m and 1d, "
    "hours without trades)"
)

HOUR_MS = 3_600_000


def load_csv(path: Path) -> np.ndarray:
    """The independent truth: the CSV's numbers as floats, the header (if any) skipped."""
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    skip = 0 if first.split(",")[0].strip().isdigit() else 1
    return np.loadtxt(path, delimiter=",", skiprows=skip, dtype="float64", ndmin=2)


def data_lines(path: Path) -> int:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return len(lines) - (0 if lines[0].split(",")[0].isdigit() else 1)


def assert_same_as_csv(df, symbol: str, csv: Path) -> None:
    want = load_csv(csv)
    want = want[np.argsort(want[:, 0], kind="stable")]
    got = df[df["symbol"] == symbol]
    assert len(got) == len(want) == data_lines(csv)
    assert (got["timestamp"].astype("int64").to_numpy() == want[:, 0].astype("int64") * 1000).all()
    for i, c in enumerate(["open", "high", "low", "close", "volume"], start=1):
        assert np.array_equal(got[c].to_numpy(), want[:, i]), c


def assert_clean_failure(r, code: int, *fragments: str) -> str:
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("tradekit: error: "), r.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def assert_nothing_written(directory: Path) -> None:
    assert not (directory / "out.parquet").exists()
    assert not list(directory.glob(".*.tmp"))


def table_row(err: str, symbol: str) -> list[str]:
    """The cells of one row of the summary table drawn on stderr."""
    for line in err.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 2 and cells[1] == symbol:
            return cells[1:-1]
    raise AssertionError(f"no row for {symbol} in:\n{err}")


# -- real archive files ----------------------------------------------------------------------


@pytest.fixture
def h1(shared_data: Path) -> Path:
    return shared_data / "kraken-ohlcvt-1h"


def test_import_real_hourly_files(run_cli, h1):
    usd, usdt = h1 / "XBTUSD_60.csv", h1 / "XBTUSDT_60.csv"
    assert not usd.read_text(encoding="utf-8")[:1].isalpha()  # no header
    assert usdt.read_text(encoding="utf-8").startswith("datetime,")  # a header
    r = run_cli("data", "import", str(usd), str(usdt), "-o", "out.parquet")
    assert r.code == 0, r.err
    df, meta = read_ohlcv("out.parquet")
    assert meta["exchange"] == "kraken" and meta["timeframe"] == "1h"
    assert sorted(set(df["symbol"])) == ["BTC/USD", "BTC/USDT"]
    assert len(df) == data_lines(usd) + data_lines(usdt)
    assert_same_as_csv(df, "BTC/USD", usd)
    assert_same_as_csv(df, "BTC/USDT", usdt)
    assert table_row(r.err, "BTC/USD")[1:3] == ["1h", str(data_lines(usd))]
    assert table_row(r.err, "BTC/USDT")[1:3] == ["1h", str(data_lines(usdt))]


def test_store_import_twice_adds_nothing_the_second_time(run_cli, h1):
    files = [str(h1 / "XBTUSD_60.csv"), str(h1 / "XBTUSDT_60.csv")]
    r = run_cli("data", "import", *files, "--store", "st")
    assert r.code == 0, r.err
    stored = Path("st/kraken/1h/BTC_USD.parquet")
    before = stored.read_bytes()
    assert table_row(r.err, "BTC/USD")[3] == str(data_lines(h1 / "XBTUSD_60.csv"))
    r = run_cli("data", "import", *files, "--store", "st")
    assert r.code == 0, r.err
    assert table_row(r.err, "BTC/USD")[3] == "0"
    assert table_row(r.err, "BTC/USDT")[3] == "0"
    assert stored.read_bytes() == before
    df, meta = read_ohlcv(stored)
    assert meta["timeframe"] == "1h" and set(df["symbol"]) == {"BTC/USD"}
    assert_same_as_csv(df, "BTC/USD", h1 / "XBTUSD_60.csv")
    r = run_cli("data", "ls", "--store", "st", "--json")
    assert r.code == 0, r.err
    rows = {f["symbol"]: f["rows"] for f in json.loads(r.out)["files"]}
    assert rows == {
        "BTC/USD": data_lines(h1 / "XBTUSD_60.csv"),
        "BTC/USDT": data_lines(h1 / "XBTUSDT_60.csv"),
    }


def test_fill_gaps_makes_data_check_pass(run_cli, h1):
    usdt = h1 / "XBTUSDT_60.csv"
    r = run_cli("data", "import", str(usdt), "-o", "raw.parquet")
    assert r.code == 0, r.err
    r = run_cli("data", "check", "raw.parquet", "--json")
    assert r.code == 1  # Kraken writes no row for an hour without trades
    assert {p["check"] for p in json.loads(r.out)["problems"]} == {"gaps"}

    r = run_cli("data", "import", str(usdt), "--fill-gaps", "-o", "filled.parquet")
    assert r.code == 0, r.err
    raw, _ = read_ohlcv("raw.parquet")
    df, _ = read_ohlcv("filled.parquet")
    ts = df["timestamp"].astype("int64").to_numpy()
    assert (np.diff(ts) == HOUR_MS).all()
    added = len(df) - len(raw)
    assert added > 0
    assert table_row(r.err, "BTC/USDT")[4] == str(added)
    # Original candles untouched; filled ones flat at the previous close with no volume.
    merged = df.merge(raw, on=["symbol", "timestamp"], how="left", suffixes=("", "_raw"))
    orig = merged["close_raw"].notna()
    for c in ("open", "high", "low", "close", "volume"):
        assert (merged.loc[orig, c] == merged.loc[orig, f"{c}_raw"]).all()
    filled = df[~orig.to_numpy()]
    assert (filled["volume"] == 0).all()
    prev_close = df["close"].shift(1)[~orig.to_numpy()]
    for c in ("open", "high", "low", "close"):
        assert (filled[c] == prev_close).all()
    r = run_cli("data", "check", "filled.parquet", "--json")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    assert report["ok"] is True and report["problems"] == []
    assert report["symbols"]["BTC/USDT"]["zero_volume"] >= added


@pytest.mark.parametrize(
    ("name", "symbol", "timeframe", "step_ms"),
    [
        ("XBTUSDT_15.csv", "BTC/USDT", "15m", 900_000),
        ("XBTUSD_1440.csv", "BTC/USD", "1d", 86_400_000),
    ],
)
def test_import_2023q1_timeframes(run_cli, shared_data, name, symbol, timeframe, step_ms):
    csv = shared_data / "kraken-ohlcvt-2023q1" / name
    r = run_cli("data", "import", str(csv), "-o", "out.parquet")
    assert r.code == 0, r.err
    df, meta = read_ohlcv("out.parquet")
    assert meta["timeframe"] == timeframe
    assert set(df["symbol"]) == {symbol}
    assert_same_as_csv(df, symbol, csv)
    assert (df["timestamp"].astype("int64") % step_ms == 0).all()


def test_files_of_different_timeframes_cannot_share_one_output(run_cli, shared_data, tmp_path):
    q1 = shared_data / "kraken-ohlcvt-2023q1"
    r = run_cli(
        "data",
        "import",
        str(q1 / "XBTUSDT_15.csv"),
        str(q1 / "XBTUSD_1440.csv"),
        "-o",
        "out.parquet",
    )
    assert_clean_failure(r, 2, "15m", "1d")
    assert_nothing_written(tmp_path)


# -- bad CSV files ---------------------------------------------------------------------------

ROW = "1672531200,16540.3,16540.3,16522.4,16522.4,0.2249508,12\n"
ROW2 = "1672534800,16523.1,16537.7,16522.0,16532.3,18.9353658,22\n"
HEADER = "time,open,high,low,close,volume,trades\n"

BAD_CSVS = [
    ("empty", "", ["XBTUSD_60.csv", "empty file"]),
    ("blank lines", "\n\n\n", ["XBTUSD_60.csv", "empty file"]),
    ("header only", HEADER, ["XBTUSD_60.csv", "no candle rows"]),
    (
        "five columns",
        "1672531200,1,1,1,1\n1672534800,1,1,1,1\n",
        ["XBTUSD_60.csv", "expected 6 or 7 columns", "got 5"],
    ),
    ("nine columns", "1,1,1,1,1,1,1,1,1\n", ["XBTUSD_60.csv", "got 9"]),
    ("ragged row", ROW + ROW2.strip() + ",99\n", ["XBTUSD_60.csv:2:", "7 columns", "got 8"]),
    (
        "ragged after header",
        HEADER + ROW + ROW2 + "1672538400,1,1,1,1,1,1,1\n",
        ["XBTUSD_60.csv:4:", "got 8"],
    ),
    (
        "non-numeric price",
        ROW + ROW2.replace("16537.7", "abc"),
        ["XBTUSD_60.csv:2:", "column high", "'abc'", "not a number"],
    ),
    (
        "non-numeric after header",
        HEADER + ROW + ROW2.replace("16532.3", "1.2.3"),
        ["XBTUSD_60.csv:3:", "column close", "'1.2.3'"],
    ),
    (
        "missing value",
        ROW + "1672534800,16523.1,,16522.0,16532.3,18.9,22\n",
        ["XBTUSD_60.csv:2:", "column high"],
    ),
    ("nan volume", ROW + ROW2.replace("18.9353658", "nan"), ["XBTUSD_60.csv:2:", "column volume"]),
    ("infinite price", ROW + ROW2.replace("16523.1", "inf"), ["XBTUSD_60.csv:2:", "column open"]),
    (
        "bad first time",
        ROW.replace("1672531200", "2023-01-01") + ROW2,
        ["XBTUSD_60.csv:1:", "column time", "'2023-01-01'"],
    ),
    (
        "fractional time",
        ROW + ROW2.replace("1672534800", "1672534800.5"),
        ["XBTUSD_60.csv:2:", "1672534800.5", "whole epoch seconds"],
    ),
    (
        "negative time",
        ROW + ROW2.replace("1672534800", "-3600"),
        ["XBTUSD_60.csv:2:", "-3600", "whole epoch seconds"],
    ),
    (
        "conflicting duplicate",
        ROW + ROW2 + ROW.replace("16522.4,0.2249508", "16522.4,9.9"),
        ["XBTUSD_60.csv:3:", "second, different row", "1672531200"],
    ),
    (
        "conflicting duplicate after header",
        HEADER + ROW2 + ROW2.replace(",22", ",23").replace("16532.3", "16532.4"),
        ["XBTUSD_60.csv:3:", "different row"],
    ),
    ("unterminated quote", ROW + '"' + ROW2, ["XBTUSD_60.csv", "not a Kraken OHLCVT CSV"]),
]


@pytest.mark.parametrize(("case", "text", "fragments"), BAD_CSVS, ids=[c[0] for c in BAD_CSVS])
def test_bad_csv_exits_3_and_writes_nothing(run_cli, tmp_path, case, text, fragments):
    Path("XBTUSD_60.csv").write_text(text, encoding="utf-8")
    r = run_cli("data", "import", "XBTUSD_60.csv", "-o", "out.parquet")
    assert_clean_failure(r, 3, *fragments)
    assert_nothing_written(tmp_path)
    assert r.out == ""


def test_binary_file_is_refused(run_cli, tmp_path):
    Path("XBTUSD_60.csv").write_bytes(b"\xff\xfe\x00\x01\x02PK\x03\x04")
    r = run_cli("data", "import", "XBTUSD_60.csv", "-o", "out.parquet")
    assert_clean_failure(r, 3, "XBTUSD_60.csv")
    assert_nothing_written(tmp_path)


def test_one_bad_file_among_good_ones_writes_nothing(run_cli, tmp_path):
    Path("XBTUSD_60.csv").write_text(ROW + ROW2, encoding="utf-8")
    Path("ETHUSD_60.csv").write_text(ROW + ROW2.replace("16537.7", "x"), encoding="utf-8")
    Path("st").mkdir()
    r = run_cli("data", "import", "XBTUSD_60.csv", "ETHUSD_60.csv", "--store", "st")
    assert_clean_failure(r, 3, "ETHUSD_60.csv:2:")
    assert list(Path("st").iterdir()) == []


def test_missing_file(run_cli, tmp_path):
    r = run_cli("data", "import", "XBTUSD_60.csv", "-o", "out.parquet")
    assert_clean_failure(r, 3, "XBTUSD_60.csv", "no such file")
    assert_nothing_written(tmp_path)


def test_file_name_without_a_pair_asks_for_symbol(run_cli, tmp_path):
    Path("data.csv").write_text(ROW + ROW2, encoding="utf-8")
    r = run_cli("data", "import", "data.csv", "-o", "out.parquet")
    assert_clean_failure(r, 2, "data.csv", "--symbol")
    assert_nothing_written(tmp_path)
    r = run_cli("data", "import", "data.csv", "--symbol", "BTC/EUR", "-o", "out.parquet")
    assert_clean_failure(r, 2, "data.csv", "--timeframe")
    r = run_cli(
        "data", "import", "data.csv", "--symbol", "BTC/EUR", "-t", "1h", "-o", "out.parquet"
    )
    assert r.code == 0, r.err
    df, meta = read_ohlcv("out.parquet")
    assert set(df["symbol"]) == {"BTC/EUR"} and meta["timeframe"] == "1h" and len(df) == 2


@pytest.mark.parametrize(
    ("name", "symbol", "timeframe"),
    [
        ("XBTUSD_60.csv", "BTC/USD", "1h"),
        ("XXBTZEUR_240.csv", "BTC/EUR", "4h"),
        ("ETHXBT_1440.csv", "ETH/BTC", "1d"),
        ("xdgusd_5.csv", "DOGE/USD", "5m"),
        ("SOLUSDC_10080.csv", "SOL/USDC", "1w"),
        ("XBTUSDT_60.csv.gz", "BTC/USDT", "1h"),
    ],
)
def test_symbol_and_timeframe_from_the_file_name(tmp_path, name, symbol, timeframe):
    p = tmp_path / name
    if name.endswith(".gz"):
        import gzip

        p.write_bytes(gzip.compress((ROW + ROW2).encode()))
    else:
        p.write_text(ROW + ROW2, encoding="utf-8")
    got = read_kraken_csv(p)
    assert (got.symbol, got.timeframe) == (symbol, timeframe)
    assert set(got.frame["symbol"]) == {symbol} and got.rows == 2


def test_identical_duplicate_rows_are_dropped_and_counted(run_cli):
    rows = ROW2 + ROW + ROW2 + ROW + ROW  # unsorted, and with exact repeats
    Path("XBTUSD_60.csv").write_text(rows, encoding="utf-8")
    r = run_cli("data", "import", "XBTUSD_60.csv", "-o", "out.parquet")
    assert r.code == 0, r.err
    df, _ = read_ohlcv("out.parquet")
    assert df["timestamp"].astype("int64").tolist() == [1672531200_000, 1672534800_000]
    assert df["close"].tolist() == [16522.4, 16532.3]
    cells = table_row(r.err, "BTC/USD")
    assert cells[2] == "2" and cells[5] == "3"  # rows, duplicates dropped
    assert read_kraken_csv("XBTUSD_60.csv").dropped_duplicates == 3


def test_nothing_to_write_is_a_usage_error(run_cli, tmp_path):
    Path("XBTUSD_60.csv").write_text(ROW, encoding="utf-8")
    r = run_cli("data", "import", "XBTUSD_60.csv")
    assert_clean_failure(r, 2, "-o")
    assert [p.name for p in tmp_path.iterdir()] == ["XBTUSD_60.csv"]
