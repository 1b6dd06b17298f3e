"""Arrow columns to numpy and back without pandas, and the key checks of a table.

``pyarrow``'s ``Array.to_numpy`` and ``pa.array(...)`` import pandas (to recognise pandas
objects), about 45 MB that ``train`` and ``featurize`` otherwise never need: these go through
the buffers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa


def to_numpy(column: Any, dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """A fixed-width Arrow column (array or chunked) as a new numpy array of ``dtype``; nulls
    become NaN (floats only: a null in another type is an error here)."""
    import numpy as np
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_timestamp(arr.type):
        arr = arr.cast(pa.int64())
    width = arr.type.bit_width // 8
    bitmap, data = arr.buffers()[:2]
    assert data is not None
    raw = np.frombuffer(
        memoryview(data),
        dtype=arr.type.to_pandas_dtype(),
        count=len(arr),
        offset=arr.offset * width,
    )
    out = raw.astype(dtype)  # a copy: it owns its memory
    if arr.null_count:
        if not pa.types.is_floating(arr.type):
            raise ValueError(f"nulls in a {arr.type} column")
        assert bitmap is not None
        bits = np.frombuffer(memoryview(bitmap), dtype=np.uint8)
        valid = np.unpackbits(bits, bitorder="little")[arr.offset : arr.offset + len(arr)]
        out[valid == 0] = np.nan
    return out


def from_numpy(values: npt.NDArray[Any], type_: pa.DataType) -> pa.Array[Any]:
    """A fixed-width Arrow array over ``values`` (no nulls)."""
    import numpy as np
    import pyarrow as pa

    storage = pa.int64() if pa.types.is_timestamp(type_) else type_
    data = np.ascontiguousarray(values, dtype=storage.to_pandas_dtype())
    return pa.Array.from_buffers(type_, len(data), [None, pa.py_buffer(data.data)])


def strings(values: list[str]) -> pa.Array[Any]:
    """A string array of ``values`` (no nulls)."""
    import numpy as np
    import pyarrow as pa

    encoded = [v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return pa.Array.from_buffers(
        pa.string(),
        len(encoded),
        [None, pa.py_buffer(offsets.data), pa.py_buffer(b"".join(encoded))],
    )


def take_strings(names: list[str], codes: npt.NDArray[np.int64]) -> pa.Array[Any]:
    """``names[codes]`` as a plain string array."""
    import pyarrow as pa

    dictionary = pa.DictionaryArray.from_arrays(from_numpy(codes, pa.int64()), strings(names))
    return dictionary.cast(pa.string())


KEYS = ["symbol", "timestamp"]


def stamp(ms: int) -> str:
    """A time in ms as pandas prints a UTC timestamp (for messages)."""
    return str(datetime.fromtimestamp(ms / 1000, UTC))


def read_keys(
    table: pa.Table, label: str
) -> tuple[npt.NDArray[np.int64], list[str], npt.NDArray[np.int64]]:
    """(symbol code per row, symbols in order of appearance, times in ms) of a table's
    ``symbol`` and ``timestamp`` columns, checked as ``contracts.validate_frame`` checks them
    (with its messages): no empty key, no duplicate, rows sorted by symbol then time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not table.num_rows:
        raise InputError(f"{label}: no rows")
    empty = [c for c in KEYS if table.column(c).null_count]
    if empty:
        raise InputError(f"{label}: empty values in key column(s) {', '.join(empty)}")
    enc: Any = pc.dictionary_encode(table.column("symbol").combine_chunks().cast(pa.string()))
    codes = to_numpy(enc.indices, np.int64)
    symbols = [str(s) for s in enc.dictionary.to_pylist()]
    times = table.column("timestamp").combine_chunks()
    ts = to_numpy(times.cast(pa.timestamp("ms", tz="UTC"), safe=False), np.int64)
    rank = np.empty(len(symbols), dtype=np.int64)
    rank[np.argsort(np.asarray(symbols, dtype=object), kind="stable")] = np.arange(len(symbols))
    r = rank[codes]
    dr, dt = np.diff(r), np.diff(ts)
    if ((dr > 0) | ((dr == 0) & (dt > 0))).all():  # plainly sorted: no duplicate either
        return codes, symbols, ts
    order = np.lexsort((ts, r))
    same = (r[order][1:] == r[order][:-1]) & (ts[order][1:] == ts[order][:-1])
    if same.any():  # the first row that repeats an earlier one, as validate_frame names it
        i = int(order[1:][same].min())
        raise InputError(f"{label}: duplicate rows for {(symbols[codes[i]], stamp(ts[i]))}")
    raise InputError(f"{label}: rows are not sorted by symbol, timestamp")
