"""File contracts: the schemas of every table that crosses a stage, and their read/write.

Each Parquet file carries ``tradekit.schema`` (e.g. ``ohlcv/1``) and ``tradekit.meta`` (a JSON
object: exchange, timeframe, hashes, ...) in its key-value metadata. Writes are atomic;
reads check the schema name, the columns and their types, and the key order, and fail with
one line naming the file and the problem (exit 3).

Later stages register their schemas here with :func:`register`.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError, StdoutClosed
from tradekit.fsutil import atomic_path

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

SCHEMA_KEY = b"tradekit.schema"
META_KEY = b"tradekit.meta"


@dataclass(frozen=True)
class Schema:
    """A versioned table contract. ``columns`` maps required names to a kind:
    'str', 'ts' (UTC timestamp, ms), 'float', 'int'."""

    name: str
    columns: Mapping[str, str]
    key: tuple[str, ...] = ()  # unique and sorted by these
    extra_columns: bool = False  # may carry more columns than the required ones
    extra_kind: str = "float"  # kind of any extra column not named in ``optional``
    required_meta: tuple[str, ...] = field(default=())
    optional: Mapping[str, str] = field(default_factory=dict)  # may be present, with this kind
    reads: tuple[str, ...] = ()  # older versions its readers still accept


REGISTRY: dict[str, Schema] = {}


def register(schema: Schema) -> Schema:
    REGISTRY[schema.name] = schema
    return schema


OHLCV = register(
    Schema(
        name="ohlcv/1",
        columns={
            "symbol": "str",
            "timestamp": "ts",
            "open": "float",
            "high": "float",
            "low": "float",
            "close": "float",
            "volume": "float",
        },
        key=("symbol", "timestamp"),
        required_meta=("exchange", "timeframe"),
    )
)

OHLCV_COLUMNS = list(OHLCV.columns)

# features/2: symbol, timestamp, feature columns (float32), label columns (``label_`` prefix,
# float64). ``features`` and ``labels`` in the metadata list the columns of each kind, in
# order. features/1 (float64 features) is still read: training and prediction cast features
# to float32 either way, so both give the same models and predictions.
FEATURES = register(
    Schema(
        name="features/2",
        columns={"symbol": "str", "timestamp": "ts"},
        key=("symbol", "timestamp"),
        extra_columns=True,
        extra_kind="float32",
        optional={"label_return": "float", "label_class": "float", "label_barrier": "float"},
        reads=("features/1",),
        required_meta=(
            "timeframe",
            "feature_set",
            "feature_set_hash",
            "features",
            "labels",
            "label_horizon",
        ),
    )
)
LABEL_PREFIX = "label_"

# predictions/1: a prediction made with data up to the close of the candle at ``timestamp``
# (candle open time, like ohlcv/1). ``fold`` marks walk-forward output; only OOS rows.
PREDICTIONS = register(
    Schema(
        name="predictions/1",
        columns={"symbol": "str", "timestamp": "ts", "prediction": "float"},
        key=("symbol", "timestamp"),
        extra_columns=True,
        extra_kind="float",
        optional={"fold": "int"},
    )
)

# trades/1: one row per closed trade (a position from its entry to its last exit).
TRADES = register(
    Schema(
        name="trades/1",
        columns={
            "symbol": "str",
            "entry_time": "ts",
            "exit_time": "ts",
            "entry_price": "float",
            "exit_price": "float",
            "qty": "float",
            "fees": "float",
            "pnl": "float",
            "pnl_pct": "float",
            "exit_reason": "str",
            "mae": "float",
        },
        extra_columns=True,
        extra_kind="float",
        optional={"partial_exits": "int", "entry_reason": "str"},
    )
)

# trials/1: one row per trial of a sweep (``tradekit sweep``): ``trial`` number, objective
# ``value`` (null: undefined), ``feasible``, ``seed``, ``duration_s``; then a column per searched
# key named as in SPACE.toml (``policy.stoploss``, in the key's own type), the trial's metrics
# (as in backtest/1), ``candles``/``sharpe_per_candle``/``skewness``/``kurtosis`` (what DSR
# reads), ``violation.<constraint>`` (<= 0: met), ``<input>_sha256``, ``predictions`` (model
# trials: their out-of-sample file) and ``daily_returns`` (a list per trial: the PBO matrix).
TRIALS = register(
    Schema(
        name="trials/1",
        columns={
            "trial": "int",
            "value": "float",
            "feasible": "bool",
            "seed": "int",
            "duration_s": "float",
        },
        key=("trial",),
        extra_columns=True,
        extra_kind="float",
    )
)

# JSON contracts: a top-level "schema" field holds one of these.
MODEL_SCHEMA = "model/1"
BACKTEST_SCHEMA = "backtest/1"
GATE_SCHEMA = "gate/1"
SWEEP_SCHEMA = "sweep/1"


def _arrow_type(kind: str) -> pa.DataType:
    import pyarrow as pa

    types: dict[str, pa.DataType] = {
        "str": pa.string(),
        "ts": pa.timestamp("ms", tz="UTC"),
        "float": pa.float64(),
        "float32": pa.float32(),
        "int": pa.int64(),
        "bool": pa.bool_(),
    }
    return types[kind]


def _kind_ok(kind: str, t: pa.DataType) -> bool:
    import pyarrow.types as pt

    if kind == "str":
        return bool(pt.is_string(t) or pt.is_large_string(t) or pt.is_dictionary(t))
    if kind == "ts":
        return bool(pt.is_timestamp(t) and t.tz in ("UTC", "+00:00", "Etc/UTC"))
    if kind in ("float", "float32"):
        return bool(pt.is_floating(t))
    if kind == "int":
        return bool(pt.is_integer(t))
    if kind == "bool":
        return bool(pt.is_boolean(t))
    return False


def to_table(df: pd.DataFrame, schema: Schema, meta: Mapping[str, Any]) -> pa.Table:
    """A frame as an Arrow table with the contract's types and metadata attached."""
    import pyarrow as pa

    missing = [c for c in schema.columns if c not in df.columns]
    if missing:
        raise InputError(f"{schema.name}: missing column(s) {', '.join(missing)}")
    missing_meta = [k for k in schema.required_meta if meta.get(k) in (None, "")]
    if missing_meta:
        raise InputError(f"{schema.name}: missing metadata {', '.join(missing_meta)}")
    names = list(schema.columns)
    if schema.extra_columns:
        names += [c for c in df.columns if c not in schema.columns]
    arrays = []
    for name in names:
        kind = schema.columns.get(name) or schema.optional.get(name, schema.extra_kind)
        col = df[name]
        if kind == "ts":
            col = col.dt.tz_convert("UTC").dt.as_unit("ms")
        arrays.append(pa.Array.from_pandas(col, type=_arrow_type(kind)))
    table = pa.Table.from_arrays(arrays, names=names)
    return table.replace_schema_metadata(table_metadata(schema, meta))


def table_metadata(schema: Schema, meta: Mapping[str, Any]) -> dict[bytes, bytes]:
    """The Parquet key-value metadata of a file under ``schema``."""
    return {
        SCHEMA_KEY: schema.name.encode(),
        META_KEY: json.dumps(dict(meta), sort_keys=True).encode(),
    }


def write_table(
    df: pd.DataFrame, path: str | Path, schema: Schema, meta: Mapping[str, Any]
) -> None:
    """Write ``df`` under ``schema``, atomically; ``-`` writes the Parquet bytes to stdout."""
    validate_frame(df, schema, str(path))
    write_arrow(to_table(df, schema, meta), path)


def write_arrow(table: pa.Table, path: str | Path) -> None:
    """Write an Arrow table that already carries its contract's types and metadata
    (:func:`table_metadata`) and sorted, unique keys, without pandas: as ``write_table``."""
    import pyarrow.parquet as pq

    if str(path) == "-":
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd")
        try:
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise StdoutClosed("stdout closed by its reader") from None
        return
    try:
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
    except OSError as e:  # disk full, file too large, I/O error: the old file stays
        reason = e.strerror or str(e).splitlines()[0]
        raise InputError(f"{path}: cannot write: {reason}") from None


def read_table(
    path: str | Path, schema: Schema | None, *, strict: bool = True
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a tradekit Parquet file, check it against ``schema``, return (frame, meta).

    ``path`` may be ``-`` for stdin. With ``strict=False`` the key order and uniqueness are
    not checked (for ``data check``, which reports them instead).
    """
    import pyarrow as pa

    pf, meta = open_parquet(path, schema)
    label = _label(path)
    try:
        table = pf.read()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{label}: not a readable Parquet file ({reason})") from None
    df = table.to_pandas()
    if schema is not None:
        for c in (c for c, k in schema.columns.items() if k == "ts"):
            df[c] = df[c].dt.as_unit("ms")
        if strict:
            validate_frame(df, schema, label)
    return df, meta


def _label(path: str | Path) -> str:
    return "stdin" if str(path) == "-" else str(path)


def open_parquet(
    path: str | Path, schema: Schema | None, **kwargs: Any
) -> tuple[pq.ParquetFile, dict[str, Any]]:
    """Open a tradekit Parquet file (``-`` = stdin) without decoding its rows and without
    pandas: checks its schema name, columns and types (none with ``schema=None``); returns
    the file and its ``tradekit.meta``. ``read_table`` and the column-by-column readers of
    training and the backtest share it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    label = _label(path)
    source: Any
    if str(path) == "-":
        source = pa.BufferReader(sys.stdin.buffer.read())
    else:
        source = Path(path)
        if not source.exists():
            raise InputError(f"{label}: no such file")
        if source.is_dir():
            raise InputError(f"{label}: is a directory, expected a Parquet file")
    try:
        pf = pq.ParquetFile(source, **kwargs)
        arrow_schema = pf.schema_arrow
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{label}: not a readable Parquet file ({reason})") from None
    md = arrow_schema.metadata or {}
    try:
        meta = json.loads(md.get(META_KEY, b"{}"))
    except ValueError:
        raise InputError(f"{label}: tradekit.meta metadata is not valid JSON") from None
    if schema is not None:
        found = md.get(SCHEMA_KEY, b"").decode(errors="replace")
        if not found:
            raise InputError(
                f"{label}: no tradekit.schema metadata, so not a tradekit {schema.name} file "
                "(CSV files come in through 'tradekit data import')"
            )
        if found != schema.name and found not in schema.reads:
            raise InputError(f"{label}: schema is {found}, expected {schema.name}")
        check_arrow_schema(arrow_schema, schema, label)
    return pf, meta


def check_arrow_schema(arrow_schema: pa.Schema, schema: Schema, label: str) -> None:
    names = arrow_schema.names
    missing = [c for c in schema.columns if c not in names]
    if missing:
        raise InputError(f"{label}: missing column(s) {', '.join(missing)} for {schema.name}")
    for c, kind in schema.columns.items():
        t = arrow_schema.field(c).type
        if not _kind_ok(kind, t):
            want = {
                "str": "text",
                "ts": "a UTC timestamp",
                "float": "floats",
                "int": "integers",
                "bool": "true/false",
            }
            raise InputError(f"{label}: column {c} is {t}, expected {want[kind]}")
    for c, kind in schema.optional.items():
        if c in names and not _kind_ok(kind, arrow_schema.field(c).type):
            raise InputError(
                f"{label}: column {c} is {arrow_schema.field(c).type}, expected {kind}"
            )
    if not schema.extra_columns:
        extra = [c for c in names if c not in schema.columns and c not in schema.optional]
        if extra:
            raise InputError(f"{label}: unexpected column(s) {', '.join(extra)} in {schema.name}")


def validate_frame(df: pd.DataFrame, schema: Schema, label: str) -> None:
    """Key columns present, non-null, sorted and unique."""
    if not schema.key:
        return
    key = list(schema.key)
    missing = [c for c in key if c not in df.columns]
    if missing:
        raise InputError(f"{label}: missing column(s) {', '.join(missing)}")
    if df[key].isna().any().any():
        bad = [c for c in key if df[c].isna().any()]
        raise InputError(f"{label}: empty values in key column(s) {', '.join(bad)}")
    if len(df) < 2:
        return
    keys = df[key].reset_index(drop=True)
    dup = keys.duplicated()
    if dup.any():
        row = keys.iloc[int(dup.to_numpy().argmax())].tolist()
        raise InputError(f"{label}: duplicate rows for {tuple(map(str, row))}")
    if not keys.sort_values(key, kind="stable").index.equals(keys.index):
        raise InputError(f"{label}: rows are not sorted by {', '.join(key)}")


def file_hash(path: str | Path) -> str:
    """sha256 of a file's bytes, for lineage in manifests and reports."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def read_ohlcv(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    return read_table(path, OHLCV)


def write_ohlcv(df: pd.DataFrame, path: str | Path, meta: Mapping[str, Any]) -> None:
    write_table(df, path, OHLCV, meta)


def read_json(path: str | Path, schema: str) -> dict[str, Any]:
    """A JSON contract file (``-`` = stdin), checked for its top-level ``schema`` field.

    Errors are one line naming the file (exit 3): missing, unreadable, not JSON, not an
    object, wrong or missing schema."""
    label = "stdin" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory, expected a {schema} JSON file") from None
    except UnicodeDecodeError:
        raise InputError(f"{label}: not a text file, expected a {schema} JSON document") from None
    except OSError as e:
        raise InputError(f"{label}: cannot read: {e.strerror or e}") from None
    if not text.strip():
        raise InputError(f"{label}: empty file, expected a {schema} JSON document")
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InputError(f"{label}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise InputError(f'{label}: expected a JSON object with "schema": "{schema}"')
    found = doc.get("schema")
    if found != schema:
        what = f"schema is {found!r}" if found else 'no "schema" field'
        raise InputError(f"{label}: {what}, expected {schema!r}")
    return doc


def finite(x: Any) -> Any:
    """``x`` with every NaN or infinity (JSON has none) replaced by None, at any depth."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x


def write_json(doc: Mapping[str, Any], path: str | Path) -> None:
    """A JSON report (with its top-level ``schema`` field), atomically, sorted keys."""
    if "schema" not in doc:
        raise ValueError("JSON contracts carry a top-level 'schema' field")
    text = json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n"
    if str(path) == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:
            raise StdoutClosed("stdout closed by its reader") from None
        return
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
