"""``tradekit trades``: closed trades from a ``trades/1`` Parquet file (``backtest --trades``) or
from a ledger (``run``, ``run --replay``), filtered by symbol, exit reason and exit time, in one
shape whichever the source.

A ledger is read through :class:`LedgerView` (stdlib); a Parquet file through pyarrow, imported
only for it (no pandas). The source is told by its first bytes, not its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradekit.errors import InputError
from tradekit.ledger import LedgerView

SCHEMA = "tradelist/1"
FIELDS = ("symbol", "entry_ms", "exit_ms", "entry_price", "exit_price", "qty", "fees", "pnl",
          "pnl_pct", "exit_reason", "entry_reason", "mae", "mfe")  # fmt: skip


@dataclass(frozen=True)
class TradeList:
    source: str
    kind: str  # "ledger" or "trades/1"
    rows: list[dict[str, Any]]  # oldest exit first, each with FIELDS (None where unknown)
    filters: dict[str, Any] = field(default_factory=dict)

    @property
    def wins(self) -> int:
        return sum(1 for r in self.rows if r["pnl"] > 0)

    @property
    def pnl(self) -> float:
        return sum(float(r["pnl"]) for r in self.rows)

    def by_reason(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for r in self.rows:
            d = out.setdefault(r["exit_reason"], {"trades": 0, "pnl": 0.0})
            d["trades"] += 1
            d["pnl"] += float(r["pnl"])
        return out

    def as_json(self) -> dict[str, Any]:
        n = len(self.rows)
        return {
            "schema": SCHEMA,
            "source": self.source,
            "kind": self.kind,
            "filters": self.filters,
            "count": n,
            "wins": self.wins,
            "win_rate": self.wins / n if n else None,
            "pnl": self.pnl,
            "per_exit_reason": self.by_reason(),
            "trades": self.rows,
        }


def kind_of(path: Path) -> str:
    """``ledger`` for an SQLite file, ``trades/1`` for Parquet; InputError otherwise."""
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if head.startswith(b"SQLite format 3\0"):
        return "ledger"
    if head.startswith(b"PAR1"):
        return "trades/1"
    raise InputError(
        f"{path}: neither a tradekit ledger (SQLite) nor a trades/1 Parquet file "
        "(backtest --trades writes one)"
    )


def load(
    source: str | Path,
    *,
    symbol: str | None = None,
    reason: str | None = None,
    since_ms: int | None = None,
    until_ms: int | None = None,
    limit: int | None = None,
) -> TradeList:
    """The closed trades of ``source`` with since < exit <= until, of ``symbol`` and exit
    ``reason`` when given; with ``limit``, the newest ``limit`` of them (still oldest first)."""
    path = Path(source)
    kind = kind_of(path)
    if kind == "ledger":
        with LedgerView(path) as view:
            raw = view.trades(
                start_ms=since_ms, end_ms=until_ms, symbol=symbol, reason=reason, limit=limit,
                newest_first=True,
            )[::-1]  # fmt: skip
        rows = [_row(r) for r in raw]
    else:
        rows = [
            r
            for r in _parquet(path)
            if (symbol is None or r["symbol"] == symbol)
            and (reason is None or r["exit_reason"] == reason)
            and (since_ms is None or r["exit_ms"] > since_ms)
            and (until_ms is None or r["exit_ms"] <= until_ms)
        ]
        rows.sort(key=lambda r: (r["exit_ms"], r["entry_ms"], r["symbol"]))
        if limit is not None:
            rows = rows[-limit:] if limit else []
    filters = {"symbol": symbol, "reason": reason, "since_ms": since_ms, "until_ms": until_ms,
               "limit": limit}  # fmt: skip
    return TradeList(str(path), kind, rows, {k: v for k, v in filters.items() if v is not None})


def _row(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r.get(k) for k in FIELDS}
    out["entry_ms"], out["exit_ms"] = int(r["entry_ms"]), int(r["exit_ms"])
    return out


def _parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow as pa

    from tradekit.contracts import TRADES, open_parquet

    pf, _meta = open_parquet(path, TRADES)
    try:
        table = pf.read()
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: not a readable Parquet file ({reason})") from None
    cols: dict[str, list[Any]] = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        cols[name] = col.to_pylist()
    n = table.num_rows
    rename = {"entry_time": "entry_ms", "exit_time": "exit_ms"}
    named = {rename.get(k, k): v for k, v in cols.items()}
    return [{k: (named[k][i] if k in named else None) for k in FIELDS} for i in range(n)]
