"""``featurize``: an ohlcv/1 file to a features/2 file, a symbol at a time, without pandas.

The candles are read as Arrow columns into numpy (``tradekit.arrays``), each symbol's rows are
computed by the same code as ``build_features`` (``tradekit.features.block``), its warm-up is
dropped and it is written as one Parquet row group (a second thread writes while the next
symbol is computed). Feature columns are float32 (``features/2``): training and prediction
cast them to float32 anyway, and it halves the file and the time to write it. Labels stay
float64. Compression is LZ4: on 1M candles x 105 features it writes in 0.44 s (zstd: 0.68 s)
for a file 15 % larger, and reads back several times faster.

Peak memory is the input's columns plus two symbols' rows, not the whole table twice.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tradekit import __version__
from tradekit.arrays import KEYS, from_numpy, read_keys, stamp, to_numpy
from tradekit.contracts import (
    FEATURES,
    META_KEY,
    OHLCV,
    SCHEMA_KEY,
    file_hash,
    open_parquet,
)
from tradekit.errors import InputError, StdoutClosed
from tradekit.features.block import (
    Candles,
    first_complete_row,
    labels_into,
    reference,
    symbol_features,
)
from tradekit.features.sets import (
    FeatureSpec,
    feature_columns,
    higher_timeframes,
    label_columns,
    warmup_candles,
)
from tradekit.fsutil import atomic_path
from tradekit.threads import worker_threads
from tradekit.timeutil import timeframe_ms

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt
    import pyarrow as pa

    F64 = npt.NDArray[np.float64]

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
COMPRESSION: Literal["lz4"] = "lz4"


@dataclass
class FeaturizeResult:
    meta: dict[str, Any]
    rows_in: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        m = self.meta
        return {
            "schema": "featurize/1",
            "feature_set": m["feature_set"],
            "feature_set_hash": m["feature_set_hash"],
            "features": len(m["features"]),
            "labels": m["labels"],
            "rows_in": m["rows_in"],
            "rows_out": m["rows_out"],
            "symbols": m["symbols"],
            "dropped_symbols": m["dropped_symbols"],
            "warmup_dropped": m["warmup_dropped"],
            "seconds": round(self.seconds, 3),
        }


def check_prices(
    prices: dict[str, npt.NDArray[np.float64]],
    symbol_at: Any,
    time_at: Any,
    label: str,
) -> None:
    """InputError for empty (NaN) values or a non-positive price (volume may be zero);
    ``symbol_at(i)`` and ``time_at(i)`` name row ``i`` in the message."""
    for c in PRICE_COLUMNS:
        values = prices[c]
        bad = np.isnan(values)
        if bad.all():
            raise InputError(f"{label}: column {c} has no values (all empty/NaN)")
        if bad.any():
            i = int(bad.argmax())
            raise InputError(
                f"{label}: column {c} has {int(bad.sum())} empty values, first at "
                f"{symbol_at(i)} {time_at(i)}; run 'tradekit data check'"
            )
        if c != "volume" and (values <= 0).any():
            i = int((values <= 0).argmax())
            raise InputError(
                f"{label}: column {c} has a non-positive price at {symbol_at(i)} {time_at(i)}"
            )


def missing_references(spec: FeatureSpec, symbols: Any, label: str) -> None:
    missing = [s for s in spec.corr_symbols if s not in symbols]
    if missing:
        raise InputError(
            f"{label}: reference pair {missing[0]} is not in the input; add its candles "
            "or change [features] corr_symbols (or the feature set's corr_symbols)"
        )


def no_rows_left(spec: FeatureSpec, timeframe: str, longest: int, label: str) -> InputError:
    return InputError(
        f"{label}: no rows left after warm-up: the longest symbol has {longest} "
        f"candles and feature set {spec.name!r} needs about "
        f"{warmup_candles(spec, timeframe)} per symbol at {timeframe}; give more history, "
        'fewer/shorter [features] periods or include_timeframes, or set = "minimal"'
    )


def features_meta(
    spec: FeatureSpec,
    timeframe: str,
    cost: float,
    labels: bool,
    symbols: list[str],
    warmup: dict[str, int],
    dropped: list[str],
    rows_in: int,
    rows_out: int,
) -> dict[str, Any]:
    return {
        "timeframe": timeframe,
        "feature_set": spec.name,
        "feature_set_hash": spec.hash,
        "feature_spec": spec.to_dict(),
        "features": feature_columns(spec),
        "labels": label_columns() if labels else [],
        "label_horizon": spec.label_horizon,
        "label_cost": cost,
        "symbols": [s for s in symbols if s not in dropped],
        "dropped_symbols": dropped,
        "warmup_dropped": warmup,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "tradekit_version": __version__,
    }


def _schema(names: list[str], lnames: list[str]) -> pa.Schema:
    import pyarrow as pa

    fields: list[pa.Field[Any]] = [pa.field("symbol", pa.string())]
    fields.append(pa.field("timestamp", pa.timestamp("ms", "UTC")))
    fields += [pa.field(n, pa.float32()) for n in names]
    fields += [pa.field(n, pa.float64()) for n in lnames]
    return pa.schema(fields)


def _repeat(symbol: str, n: int) -> pa.Array[Any]:
    """A string column of ``n`` times ``symbol`` (from buffers: no pandas)."""
    import pyarrow as pa

    raw = symbol.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(raw)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets.data), pa.py_buffer(raw * n)]
    )


class _Writer:
    """Row groups to a Parquet file in a second thread, one batch ahead of the caller; the
    metadata (known only at the end) goes in at :meth:`close`."""

    def __init__(self, sink: Any, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self.schema = schema
        self.pq = pq.ParquetWriter(
            sink,
            schema,
            compression=COMPRESSION,
            use_dictionary=["symbol"],  # type: ignore[arg-type]  # floats are noise to one
            write_statistics=KEYS,
            store_schema=False,  # its copy of the metadata could not be completed at close
        )
        self.pool = ThreadPoolExecutor(1)
        self.pending: Future[None] | None = None

    def write(self, columns: list[pa.Array[Any]]) -> None:
        import pyarrow as pa

        batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        self.wait()
        self.pending = self.pool.submit(self.pq.write_batch, batch)

    def wait(self) -> None:
        if self.pending is not None:
            self.pending.result()
            self.pending = None

    def close(self, metadata: dict[str, str]) -> None:
        self.wait()
        self.pool.shutdown()
        self.pq.add_key_value_metadata(metadata)
        self.pq.close()

    def abort(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(Exception):  # the file is discarded anyway
            self.pq.close()


def _block(pool: dict[int, F64], n: int, width: int) -> F64:
    """An (n, width) float64 block for one symbol's features, kept per thread for its next
    symbol of the same length: glibc maps and unmaps blocks this large (80 MB for 100k
    candles), so a fresh block per symbol pays its page faults again (about 10 % of the
    command)."""
    key = threading.get_ident()
    block = pool.get(key)
    if block is None or block.shape != (n, width):
        pool.pop(key, None)  # the old block goes before the new one is made
        block = pool[key] = np.empty((n, width), order="F")
    return block


def _in_order(fn: Any, items: list[tuple[str, slice]], threads: int) -> Any:
    """``(item[0], fn(*item))`` for each item, in order, computed ``threads`` at a time (at
    most ``threads`` results waiting: each holds a symbol's columns)."""
    if threads < 2 or len(items) < 2:
        for item in items:
            yield item[0], fn(*item)
        return
    with ThreadPoolExecutor(threads) as pool:
        todo = iter(items)
        running = deque(
            (it[0], pool.submit(fn, it[0], it[1])) for it in itertools.islice(todo, threads)
        )
        while running:
            name, fut = running.popleft()
            result = fut.result()
            for it in itertools.islice(todo, 1):
                running.append((it[0], pool.submit(fn, it[0], it[1])))
            yield name, result


def featurize_file(
    path: str | Path,
    output: str | Path,
    spec: FeatureSpec,
    *,
    cost: float,
    labels: bool = True,
) -> FeaturizeResult:
    """Read ohlcv/1 at ``path`` (``-`` = stdin), write features/2 to ``output`` (``-`` =
    stdout). The same rows and values as ``build_features`` (features rounded to float32)."""
    import json

    t0 = time.perf_counter()
    label = "stdin" if str(path) == "-" else str(path)
    pf, in_meta = open_parquet(path, OHLCV)
    timeframe = in_meta.get("timeframe")
    if not isinstance(timeframe, str) or not timeframe:
        raise InputError(f"{label}: no timeframe in the ohlcv/1 metadata")
    table = pf.read(columns=[*KEYS, *PRICE_COLUMNS])
    if not table.num_rows:
        raise InputError(f"{label}: no candles (empty input)")
    codes, symbols, ts = read_keys(table, label)
    prices = {c: to_numpy(table.column(c), np.float64) for c in PRICE_COLUMNS}
    del table
    check_prices(prices, lambda i: symbols[codes[i]], lambda i: stamp(int(ts[i])), label)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    slices = {symbols[codes[a]]: slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)}
    missing_references(spec, slices, label)
    base_ms = timeframe_ms(timeframe)
    htfs = [(timeframe_ms(tf), ratio) for tf, ratio in higher_timeframes(spec, timeframe)]

    def candles(sl: slice) -> Candles:
        return Candles(ts[sl], *(prices[c][sl] for c in PRICE_COLUMNS))

    refs = {sym: reference(candles(slices[sym]), spec) for sym in spec.corr_symbols}
    names = feature_columns(spec)
    lnames = label_columns() if labels else []
    schema = _schema(names, lnames)
    to_stdout = str(output) == "-"
    sink: Any = io.BytesIO() if to_stdout else None
    warmup: dict[str, int] = {}
    rows_out = 0
    blocks: dict[int, F64] = {}

    def compute(sym: str, sl: slice) -> tuple[int, list[pa.Array[Any]] | None]:
        """(warm-up rows, the columns to write) of one symbol; runs on a worker thread (the
        kernels release the GIL)."""
        k = candles(sl)
        rows = _block(blocks, len(k), len(names))
        symbol_features(k, spec, base_ms, htfs, refs, rows)
        w = first_complete_row(rows)
        if w >= len(k):
            return w, None
        types = schema.types
        cols = [_repeat(sym, len(k) - w), from_numpy(k.ts[w:], types[1])]
        cols += [from_numpy(rows[w:, j], types[2]) for j in range(len(names))]
        del rows  # the columns are float32 copies: the block is free for the next symbol
        if labels:
            lab = np.empty((len(k), 3), order="F")
            labels_into(k, spec, base_ms, cost, lab)
            cols += [from_numpy(lab[w:, j], types[-1]) for j in range(3)]
        return w, cols

    with contextlib.nullcontext() if to_stdout else atomic_path(output) as tmp:
        writer = _Writer(sink if to_stdout else str(tmp), schema)
        try:
            for sym, (w, cols) in _in_order(compute, list(slices.items()), worker_threads()):
                warmup[sym] = w
                if cols is not None:
                    writer.write(cols)
                    rows_out += len(cols[0])
            if not rows_out:
                longest = max(sl.stop - sl.start for sl in slices.values())
                raise no_rows_left(spec, timeframe, longest, label)
            dropped = [s for s, sl in slices.items() if warmup[s] >= sl.stop - sl.start]
            meta = features_meta(
                spec, timeframe, cost, labels, list(slices), warmup, dropped, len(ts), rows_out
            )
            meta["exchange"] = in_meta.get("exchange")
            meta["source"] = None if label == "stdin" else file_hash(path)
            writer.close(
                {
                    SCHEMA_KEY.decode(): FEATURES.name,
                    META_KEY.decode(): json.dumps(meta, sort_keys=True),
                }
            )
        except BaseException:
            writer.abort()
            raise
    if to_stdout:
        try:
            sys.stdout.buffer.write(sink.getvalue())
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise StdoutClosed("stdout closed by its reader") from None
    rows_in = {s: sl.stop - sl.start for s, sl in slices.items()}
    return FeaturizeResult(meta, rows_in, time.perf_counter() - t0)
