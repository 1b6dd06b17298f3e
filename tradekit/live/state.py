"""The engine's state as a document (the ledger's ``engine`` row) and back: policy and risk
records, accounts, the wallet, the candle and phase reached, the controls in force."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tradekit import accounting as ac
from tradekit import risk as rk
from tradekit.errors import InputError

if TYPE_CHECKING:
    from tradekit.live.parts import EngineParts

VERSION = 2


def to_doc(engine: EngineParts) -> dict[str, Any]:
    """The engine's state as one JSON document (the ledger's ``engine`` row)."""

    def recs(a: Any) -> list[dict[str, Any]]:
        # tolist() of a structured array: Python scalars, as .item() per field, at a tenth of
        # the cost (the loop writes this document at every decision).
        names = a.dtype.names
        return [dict(zip(names, row, strict=True)) for row in a.tolist()]

    return {
        "version": VERSION,
        "symbols": engine.symbols,
        "policy": [list(r) for r in engine.ps.tolist()],
        "ring": engine.ring.tolist(),
        "risk": recs(engine.rs)[0],
        "accounts": recs(engine.acct),
        "wallet": recs(engine.wallet)[0],
        "risk_counts": engine.risk_counts.tolist(),
        "last_candle_ms": engine.last_candle_ms,
        "open_ms": engine.open_ms,
        "open_done": engine.open_done,
        "paused": engine.paused,
        "reconcile_halt": engine.reconcile_halt,
    }


def load_doc(engine: EngineParts, doc: dict[str, Any]) -> list[str]:
    """Restore a saved state (version 1 documents are read too); returns the symbols held in
    it that are no longer configured (their positions are reported, never traded)."""

    if doc.get("version") == 1:
        doc = _v1_to_v2(doc)
    if doc.get("version") != VERSION:
        raise InputError(f"{engine.ledger.path}: engine state version {doc.get('version')}")
    gone = []
    for i, sym in enumerate(doc["symbols"]):
        saved = doc["accounts"][i]
        if sym not in engine.symbols:
            if saved.get("qty", 0.0) > 0:
                gone.append(sym)
            continue
        j = engine.symbols.index(sym)
        for name in ac.ACCT.names or ():
            if name in saved:
                engine.acct[j][name] = saved[name]
        engine.ps[j] = tuple(doc["policy"][i])
        ring = np.asarray(doc["ring"][i], dtype=np.float64)
        n = min(len(ring), engine.ring.shape[1])
        engine.ring[j, :n] = ring[:n]
    for name, value in doc["risk"].items():
        if name in (rk.STATE.names or ()):
            engine.rs[0][name] = value
    for name, value in doc["wallet"].items():
        engine.wallet[0][name] = value
    counts = doc.get("risk_counts") or []
    engine.risk_counts[: len(counts)] = counts[: rk.N_CODES]
    engine.last_candle_ms = doc["last_candle_ms"]
    engine.open_ms = doc["open_ms"]
    engine.open_done = bool(doc.get("open_done", True))
    engine.paused = bool(doc.get("paused", False))
    engine.reconcile_halt = doc.get("reconcile_halt")
    return gone


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """EngineParts state version 1 (before the shared accounting) in today's shape."""
    accounts = []
    for a in doc["accounts"]:
        b = dict(a)
        b["entry_t"] = b.pop("entry_ms", 0)
        b["sig_t"] = b.pop("sig_ms", 0)
        b.setdefault("mfe_high", b.get("entry_price", math.nan))
        accounts.append(b)
    day, day_end, day_start, peak, halted = doc["risk"]
    return {
        **doc,
        "version": 2,
        "accounts": accounts,
        "risk": {"day": day, "day_end_ms": day_end, "day_start": day_start, "peak": peak,
                 "halted": halted},
        "wallet": {"cash": doc["cash"], "fees": doc["fees_paid"], "equity": doc["equity"]},
        "open_done": True,
    }  # fmt: skip
