"""Arrow columns to numpy and back without pandas.

``pyarrow``'s ``Array.to_numpy`` and ``pa.array(...)`` import pandas (to recognise pandas
objects), about 45 MB that training otherwise never needs: these go through the buffers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
