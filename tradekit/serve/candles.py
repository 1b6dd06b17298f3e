"""``python -m tradekit.serve.candles FILE EXCHANGE TIMEFRAME LIMIT``: the newest LIMIT candles
of one candle-store file as a JSON list of [ms, open, high, low, close] on stdout.

Run by the dashboard as a child process, so that pyarrow (about 60 MB) is loaded only for the
moment a file is read, never for the life of the server. Reads with pyarrow alone (no pandas).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tradekit.errors import InputError


def read(path: Path, exchange: str, timeframe: str, limit: int) -> list[list[float]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        meta = json.loads((pf.schema_arrow.metadata or {}).get(b"tradekit.meta", b"{}"))
        table = pf.read(columns=["timestamp", "open", "high", "low", "close"])
    except (OSError, pa.ArrowException, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable candle file ({e})") from None
    if meta.get("exchange") != exchange or meta.get("timeframe") != timeframe:
        raise InputError(
            f"{path}: holds {meta.get('exchange')}/{meta.get('timeframe')} candles, "
            f"expected {exchange}/{timeframe}"
        )
    table = table.slice(max(0, table.num_rows - limit))
    ts = table.column("timestamp").cast(pa.int64()).to_pylist()
    cols = [table.column(c).to_pylist() for c in ("open", "high", "low", "close")]
    return [[t, *v] for t, *v in zip(ts, *cols, strict=True)]


def main(argv: list[str]) -> int:
    path, exchange, timeframe, limit = argv
    try:
        rows = read(Path(path), exchange, timeframe, int(limit))
    except InputError as e:
        sys.stderr.write(f"tradekit: error: {e}\n")
        return 3
    sys.stdout.write(json.dumps(rows, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
