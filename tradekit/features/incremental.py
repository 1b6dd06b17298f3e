"""The live loop's features, updated a closed candle at a time: O(1) per symbol and candle.

:class:`IncrementalFeatures` keeps, per symbol, the state of every indicator family
(``tradekit.features.stream``), of each higher timeframe's candle being formed, and the newest
rows of each reference pair. After ``warm(symbol, history)`` and any number of
``update(symbol, candle)``, :meth:`IncrementalFeatures.matrix` equals the last row per symbol of
``build_features`` over the same candles (labels off, warm-up kept), bit for bit: the same
columns, NaN in the same places, the same merges without look-ahead:

- a higher-timeframe candle exists once its bucket holds all its base candles, and a base row
  sees it when it closes at or after the bucket does (``build.resample``). The newest bucket
  may still gain a candle (timestamps off the grid), so its candle is kept beside the committed
  state, not in it, until a candle of a later bucket arrives;
- a reference pair's columns on a row are the pair's own at its latest candle at or before the
  row's (the last :data:`REF_ROWS` of them are kept; a symbol further behind its reference
  gets NaN there).

No pandas: the live loop runs without it. Warming uses the numba kernels of the batch path.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from tradekit.errors import InputError
from tradekit.features.sets import (
    FeatureSpec,
    bucket_offset,
    family_columns,
    feature_columns,
    higher_timeframes,
)
from tradekit.features.stream import SeriesState
from tradekit.timeutil import timeframe_ms

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[np.float64]

NAN = math.nan
REF_ROWS = 256  # newest rows of a reference pair kept for symbols whose candle is older


def _width(families: tuple[str, ...], spec: FeatureSpec) -> int:
    return sum(len(family_columns(f, spec)) for f in families)


class _Higher:
    """One higher timeframe of one symbol: the committed complete candles' state and the
    bucket being formed."""

    def __init__(self, spec: FeatureSpec, tf_ms: int, ratio: int, base_ms: int) -> None:
        self.spec, self.tf_ms, self.ratio, self.base_ms = spec, tf_ms, ratio, base_ms
        self.offset = bucket_offset(tf_ms)
        self.committed = SeriesState(spec, spec.htf_indicators)
        self.width = _width(spec.htf_indicators, spec)
        self._reset_bucket(None)
        self.close_ms = 0  # close time of the newest base candle

    def _reset_bucket(self, bucket: int | None) -> None:
        self.bucket = bucket
        self.count = 0
        self.o = self.h = self.lo = self.c = NAN
        self.vols: list[float] = []
        self.tentative: SeriesState | None = None

    def add(self, ts: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        b = (ts - self.offset) // self.tf_ms * self.tf_ms + self.offset
        if b != self.bucket:
            if self.count == self.ratio:  # the finished bucket was complete: commit it
                if self.tentative is not None:
                    self.committed = self.tentative
                else:  # never looked at: step the committed state itself, no copy
                    self.committed.step(*self._candle())
            self._reset_bucket(b)
            self.o, self.h, self.lo = o, h, lo
        else:
            self.h, self.lo = max(self.h, h), min(self.lo, lo)
        self.c = c
        self.vols.append(v)
        self.count += 1
        self.close_ms = ts + self.base_ms
        self.tentative = None  # computed when first asked for (values), at most once

    def _candle(self) -> tuple[int, float, float, float, float, float]:
        """The current bucket's candle (its volume summed as ``np.add.reduceat`` sums it in
        ``resample``)."""
        assert self.bucket is not None
        vol = float(np.add.reduceat(np.asarray(self.vols), [0])[0])
        return self.bucket, self.o, self.h, self.lo, self.c, vol

    def _stepped(self) -> SeriesState:
        """The committed state plus the current bucket's candle."""
        state = self.committed.clone()
        state.step(*self._candle())
        return state

    def warm(
        self, ts: npt.NDArray[np.int64], o: Array, h: Array, lo: Array, c: Array, v: Array
    ) -> None:
        from tradekit.features.block import Candles, resample

        self.committed = SeriesState(self.spec, self.spec.htf_indicators)
        self._reset_bucket(None)
        if not len(ts):
            return
        buckets = (ts - self.offset) // self.tf_ms * self.tf_ms + self.offset
        cur = int(np.searchsorted(buckets, buckets[-1]))  # first row of the newest bucket
        hk, _ = resample(
            Candles(ts[:cur], o[:cur], h[:cur], lo[:cur], c[:cur], v[:cur]), self.tf_ms, self.ratio
        )
        self.committed.warm(hk.ts, hk.open, hk.high, hk.low, hk.close, hk.volume)
        for i in range(cur, len(ts)):
            self.add(int(ts[i]), float(o[i]), float(h[i]), float(lo[i]), float(c[i]), float(v[i]))

    def values(self) -> list[float]:
        """The columns of the newest complete candle that the newest base row can see."""
        if (
            self.count == self.ratio
            and self.bucket is not None
            and self.close_ms >= self.bucket + self.tf_ms
        ):
            if self.tentative is None:
                self.tentative = self._stepped()
            t = self.tentative
            return [x for f in self.spec.htf_indicators for x in t.values(f)]
        if self.committed.n:
            return [x for f in self.spec.htf_indicators for x in self.committed.values(f)]
        return [NAN] * self.width


class _Symbol:
    def __init__(self, spec: FeatureSpec, main: bool, ref: bool, htfs: list[_Higher]) -> None:
        families = tuple(
            f
            for f in dict.fromkeys((*spec.indicators, *spec.corr_indicators))
            if (main and f in spec.indicators) or (ref and f in spec.corr_indicators)
        )
        self.spec = spec
        self.base = SeriesState(spec, families)
        self.main, self.ref = main, ref
        self.htfs = htfs
        # (ts, reference columns) of the newest rows, for symbols that read this one.
        self.ref_rows: deque[tuple[int, list[float]]] = deque(maxlen=REF_ROWS)
        self.row: list[float] | None = None  # own columns (all but the references), cached

    def push_ref(self) -> None:
        b = self.base
        self.ref_rows.append((b.ts, [x for f in self.spec.corr_indicators for x in b.values(f)]))


class IncrementalFeatures:
    """Features of the newest candle per symbol, carried forward candle by candle.

    ``symbols`` are the rows of :meth:`matrix`; the spec's reference pairs are tracked too
    (warm and update them like the others). Candles are ``(ms, open, high, low, close,
    volume)``: ``ms`` the open time, each symbol's strictly increasing, gaps allowed."""

    def __init__(self, spec: FeatureSpec, timeframe: str, symbols: Sequence[str]) -> None:
        self.spec = spec
        self.timeframe = timeframe
        self.base_ms = timeframe_ms(timeframe)
        self.symbols = list(symbols)
        self.htfs = [(timeframe_ms(tf), ratio) for tf, ratio in higher_timeframes(spec, timeframe)]
        self.columns = feature_columns(spec)
        self._index = {c: i for i, c in enumerate(self.columns)}
        self._ref_width = _width(spec.corr_indicators, spec)
        self._state: dict[str, _Symbol] = {}
        for s in dict.fromkeys((*self.symbols, *spec.corr_symbols)):
            main, ref = s in self.symbols, s in spec.corr_symbols
            htfs = [_Higher(spec, ms, r, self.base_ms) for ms, r in self.htfs] if main else []
            self._state[s] = _Symbol(spec, main, ref, htfs)

    def _sym(self, symbol: str) -> _Symbol:
        try:
            return self._state[symbol]
        except KeyError:
            raise InputError(
                f"features: {symbol} is neither a symbol nor a reference pair of this feature set"
            ) from None

    def warm(self, symbol: str, rows: npt.ArrayLike) -> None:
        """Start ``symbol`` over from its history: rows of ``(ms, open, high, low, close,
        volume)``, oldest first (any length, none included)."""
        s = self._sym(symbol)
        a = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        ts = a[:, 0].astype(np.int64)
        o, h, lo, c, v = (np.ascontiguousarray(a[:, j]) for j in range(1, 6))
        _check(symbol, ts, a[:, 1:])
        s.base.warm(ts, o, h, lo, c, v)
        for higher in s.htfs:
            higher.warm(ts, o, h, lo, c, v)
        s.ref_rows.clear()
        if s.ref and len(ts):
            from tradekit.features.block import Candles, compute_block

            cols = compute_block(Candles(ts, o, h, lo, c, v), s.spec.corr_indicators, s.spec)
            for i in range(max(0, len(ts) - REF_ROWS), len(ts)):
                s.ref_rows.append((int(ts[i]), [float(col[i]) for col in cols]))
        s.row = None

    def update(self, symbol: str, row: Sequence[float]) -> None:
        """One new closed candle of ``symbol``: ``(ms, open, high, low, close, volume)``."""
        s = self._sym(symbol)
        if len(row) < 6:
            raise InputError(f"features: {symbol}: a candle needs 6 values, got {len(row)}")
        ts = int(row[0])
        o, h, lo, c, v = (float(x) for x in row[1:6])
        if s.base.n and ts <= s.base.ts:
            raise InputError(
                f"features: {symbol}: candle times must rise (one at {ts} after {s.base.ts})"
            )
        if not (o > 0 and h > 0 and lo > 0 and c > 0) or v != v:  # NaN fails both
            raise InputError(f"features: {symbol}: a candle has an empty or non-positive price")
        s.base.step(ts, o, h, lo, c, v)
        for higher in s.htfs:
            higher.add(ts, o, h, lo, c, v)
        if s.ref:
            s.push_ref()
        s.row = None

    def last_ms(self, symbol: str) -> int | None:
        """Open time of ``symbol``'s newest candle (None before any)."""
        b = self._sym(symbol).base
        return b.ts if b.n else None

    def row(self, symbol: str) -> list[float]:
        """Every feature column of ``symbol``'s newest candle, in ``feature_columns`` order."""
        s = self._sym(symbol)
        if not s.base.n:
            return [NAN] * len(self.columns)
        if s.row is None:
            own = [x for f in self.spec.indicators for x in s.base.values(f)]
            for higher in s.htfs:
                own += higher.values()
            s.row = own
        out = list(s.row)
        for ref in self.spec.corr_symbols:
            out += self._ref_values(ref, s.base.ts)
        return out

    def _ref_values(self, ref: str, t: int) -> list[float]:
        for ts, vals in reversed(self._state[ref].ref_rows):
            if ts <= t:
                return vals
        return [NAN] * self._ref_width

    def matrix(self, columns: Sequence[str] | None = None) -> Array:
        """symbols x ``columns`` (default: every feature column) of each symbol's newest
        candle, float64, NaN where undefined (warm-up, nothing visible yet, no candle)."""
        names = self.columns if columns is None else list(columns)
        try:
            idx = np.array([self._index[c] for c in names], dtype=np.intp)
        except KeyError as e:
            raise InputError(
                f"features: {e.args[0]} is not a column of feature set {self.spec.name!r}"
            ) from None
        full = np.array([self.row(s) for s in self.symbols], dtype=np.float64).reshape(
            len(self.symbols), len(self.columns)
        )
        return full[:, idx]


def _check(symbol: str, ts: npt.NDArray[np.int64], prices: Array) -> None:
    """InputError for what ``build_features`` rejects: times not rising, empty values,
    non-positive prices (volume may be zero)."""
    if (np.diff(ts) <= 0).any():
        raise InputError(f"features: {symbol}: candle times must rise")
    if np.isnan(prices).any() or (prices[:, :4] <= 0).any():
        raise InputError(f"features: {symbol}: a candle has an empty or non-positive price")
