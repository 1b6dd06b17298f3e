"""The newest candles of a candle-store file as a numpy array, read by a child process.

``python -m tradekit.data.tail EXCHANGE TIMEFRAME LIMIT FILE...`` writes the newest LIMIT
candles of each store file as an ``.npz`` of ``[ms, open, high, low, close, volume]`` arrays
(``f0``, ``f1``, ... in the order given) on stdout.
The trading loop and the dashboard read the store through it so that pyarrow (about 40 MB)
is loaded for the moment a file is read, never for the life of a long-running process. Reads
with pyarrow alone (no pandas).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tradekit.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


def read(path: Path, exchange: str, timeframe: str, limit: int) -> NDArray[np.float64]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        meta = json.loads((pf.schema_arrow.metadata or {}).get(b"tradekit.meta", b"{}"))
        table = pf.read(columns=list(COLUMNS))
    except (OSError, pa.ArrowException, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable candle file ({e})") from None
    if meta.get("exchange") != exchange or meta.get("timeframe") != timeframe:
        raise InputError(
            f"{path}: holds {meta.get('exchange')}/{meta.get('timeframe')} candles, "
            f"expected {exchange}/{timeframe}"
        )
    table = table.slice(max(0, table.num_rows - limit))
    out = np.empty((table.num_rows, len(COLUMNS)))
    out[:, 0] = table.column("timestamp").cast(pa.int64()).to_pylist()
    for j, c in enumerate(COLUMNS[1:], start=1):
        out[:, j] = [float("nan") if v is None else v for v in table.column(c).to_pylist()]
    return out


def read_in_child(
    paths: list[Path], exchange: str, timeframe: str, limit: int
) -> list[NDArray[np.float64]]:
    """:func:`read` of each file, in one child process (see the module doc); InputError as
    the child says."""
    import numpy as np

    if not paths:
        return []
    r = subprocess.run(
        [sys.executable, "-m", "tradekit.data.tail", exchange, timeframe, str(limit)]
        + [str(p) for p in paths],
        capture_output=True,
        timeout=300,
    )
    if r.returncode != 0:
        msg = r.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(msg[-1].removeprefix("tradekit: error: ") if msg else "store unreadable")
    with np.load(io.BytesIO(r.stdout), allow_pickle=False) as npz:
        return [np.asarray(npz[f"f{i}"]) for i in range(len(paths))]


def main(argv: list[str]) -> int:
    import numpy as np

    exchange, timeframe, limit, *paths = argv
    try:
        arrays: dict[str, Any] = {
            f"f{i}": read(Path(p), exchange, timeframe, int(limit)) for i, p in enumerate(paths)
        }
    except InputError as e:
        sys.stderr.write(f"tradekit: error: {e}\n")
        return 3
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    sys.stdout.buffer.write(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
