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
    from tradekit.data.tail import read as read_tail

    return [[int(r[0]), *r[1:5]] for r in read_tail(path, exchange, timeframe, limit).tolist()]


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
