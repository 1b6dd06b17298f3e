"""One candle series' indicator state, carried forward a candle at a time (no pandas).

:class:`SeriesState` holds what the feature families of ``tradekit.features.block`` need to
produce the newest row: the state of every recursive smoothing (EMA, Wilder's RSI/ATR/ADX,
MACD) and the last few raw values of every windowed one. A new candle costs one step of each
recursion; a window's statistic is then read from its ring of the last ``p`` values.

Windows are summed afresh from their ``p`` values, left to right, on every row: O(p), not
O(1) running sums. That is what the batch kernels do (``indicators._window_kernel``), so the
values are bit-identical to theirs, and nothing drifts however long the stream runs (a running
sum carries rounding from the whole history). With the periods a spec uses (tens of candles)
it is a few microseconds.

Every operation is the batch code's, in the same order, on IEEE doubles: the recursions and
the guarded division are the very functions the batch kernels compile
(``tradekit.features.scalar``), logarithms and sines go through numpy's own functions (on x86
they are not the C library's, whose last bit can differ). :meth:`SeriesState.warm` takes
the state from the batch kernels over a whole history at once. ``tests/test_incremental.py``
proves warm + steps equal ``build_features`` bit for bit over random candle streams.
"""

from __future__ import annotations

import copy
import math
from functools import reduce
from operator import add
from typing import TYPE_CHECKING

import numpy as np

from tradekit.features.scalar import div1, ewm_step, max1
from tradekit.features.sets import WARMUP_TOL, FeatureSpec, family_columns, family_need

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[np.float64]

NAN = math.nan
DAY_MS = 86_400_000
_TWO_PI = 2 * np.pi  # the float the batch code multiplies by


def ewm_params(alpha: float) -> tuple[float, float, bool]:
    """(alpha, 1 - alpha, alpha == 0.5) as pandas derives them, through the centre of mass
    (``indicators._ewm_args`` without numpy)."""
    com = (1.0 - alpha) / alpha
    a = 1.0 / (1.0 + com)
    return a, 1.0 - a, com == 1.0


class Ewm:
    """One recursive smoothing: :func:`ewm_step`, a step at a time."""

    __slots__ = ("alpha", "half", "keep", "old", "w")

    def __init__(self, alpha: float) -> None:
        self.alpha, self.keep, self.half = ewm_params(alpha)
        self.w, self.old = NAN, 1.0

    def step(self, cur: float) -> float:
        self.w, self.old = ewm_step(self.w, self.old, cur, self.alpha, self.keep, self.half)
        return self.w

    def warm(self, x: Array, out: Array) -> float:
        """The state after the batch smoothing ``out`` of ``x``: its last value, and the old
        value's weight, 1 after a defined input and decayed over each later NaN one."""
        self.w, self.old = float(out[-1]) if len(out) else NAN, 1.0
        if self.w == self.w:
            defined = np.flatnonzero(~np.isnan(x))
            for _ in range(len(x) - 1 - int(defined[-1])):
                self.old *= self.keep
        return self.w


def _sum(w: list[float]) -> float:
    """Left to right from the first value, as the window kernel adds (``sum()`` starts at 0
    and, from Python 3.12, compensates)."""
    return reduce(add, w)


def _mean_std(w: list[float]) -> tuple[float, float]:
    p = len(w)
    mu = _sum(w) / p
    a = reduce(add, [(x - mu) * (x - mu) for x in w])
    return mu, math.sqrt(a / p)


class SeriesState:
    """The families' state over one series; :meth:`values` gives a family's newest row."""

    def __init__(self, spec: FeatureSpec, families: tuple[str, ...]) -> None:
        self.spec = spec
        self.families = families
        ps = spec.periods
        self.pmax = max(ps)
        self.keep = max(self.pmax, max(spec.return_horizons)) + 1
        self.need = {f: family_need(f, spec, WARMUP_TOL) for f in families}
        self.width = {f: len(family_columns(f, spec)) for f in families}
        self.n = 0  # rows seen
        self.ts = 0
        self.last = (NAN, NAN, NAN, NAN, NAN)  # open, high, low, close, volume
        # Raw values of the windowed families, the newest last (kept to ``keep`` values).
        self.close: list[float] = []
        self.high: list[float] = []
        self.low: list[float] = []
        self.lr: list[float] = []  # log return of the close
        self.sv: list[float] = []  # signed volume (OBV's step)
        self.sv_vol: list[float] = []  # volume + sv * 0: its divisor
        self.lv: list[float] = []  # log(1 + volume)
        has = set(families)
        self.ema = [Ewm(2.0 / (p + 1)) for p in ps] if "ma" in has else []
        self.gain = [Ewm(1.0 / p) for p in ps] if "rsi" in has else []
        self.loss = [Ewm(1.0 / p) for p in ps] if "rsi" in has else []
        self.rsi = [NAN] * len(self.gain)
        fast, slow, sig = spec.macd
        self.macd = [Ewm(2.0 / (fast + 1)), Ewm(2.0 / (slow + 1)), Ewm(2.0 / (sig + 1))]
        self.has_macd = "macd" in has
        self.line = NAN
        self.atr = [Ewm(1.0 / p) for p in ps] if "atr" in has else []
        adx = "adx" in has
        self.tr_s = [Ewm(1.0 / p) for p in ps] if adx else []
        self.pdm_s = [Ewm(1.0 / p) for p in ps] if adx else []
        self.mdm_s = [Ewm(1.0 / p) for p in ps] if adx else []
        self.adx_s = [Ewm(1.0 / p) for p in ps] if adx else []
        self.adx = [(NAN, NAN)] * len(self.adx_s)  # (ADX, +DI - -DI) per period
        self._cache: dict[str, list[float]] = {}

    def clone(self) -> SeriesState:
        """An independent copy (a higher-timeframe candle that may still be withdrawn)."""
        other = copy.copy(self)
        for name in ("close", "high", "low", "lr", "sv", "sv_vol", "lv", "rsi", "adx"):
            setattr(other, name, list(getattr(self, name)))
        for name in ("ema", "gain", "loss", "macd", "atr", "tr_s", "pdm_s", "mdm_s", "adx_s"):
            setattr(other, name, [copy.copy(e) for e in getattr(self, name)])
        other._cache = dict(self._cache)
        return other

    # -- a candle at a time --------------------------------------------------------------
    def step(self, ts: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        first = self.n == 0
        pc = NAN if first else self.close[-1]
        for e in self.ema:
            e.step(c)
        d = c - pc
        for i in range(len(self.gain)):
            g = self.gain[i].step((d if d > 0 else 0.0) + d * 0.0)
            ls = self.loss[i].step((-d if d < 0 else 0.0) + d * 0.0)
            self.rsi[i] = 100.0 * div1(g, g + ls, 0.5)
        if self.has_macd:
            f, s, sig = self.macd
            self.line = f.step(c) - s.step(c)
            sig.step(self.line)
        if self.atr or self.adx_s:
            tr = NAN if first else max1(h - lo, max1(abs(h - pc), abs(lo - pc)))
            for e in self.atr:
                e.step(tr)
            if self.adx_s:
                self._adx_step(h, lo, tr)
        self._push(self.close, c)
        self._push(self.high, h)
        self._push(self.low, lo)
        self._push(self.lr, NAN if first else float(np.log(c / pc)))
        sv = NAN if first else (v if d > 0 else (-v if d < 0 else 0.0))
        self._push(self.sv, sv)
        self._push(self.sv_vol, v + sv * 0)
        self._push(self.lv, float(np.log1p(v)))
        self.n += 1
        self.ts = ts
        self.last = (o, h, lo, c, v)
        self._cache.clear()

    def _adx_step(self, h: float, lo: float, tr: float) -> None:
        """``indicators._adx_kernel``'s step (its previous high and low are the buffers')."""
        ph = self.high[-1] if self.n else NAN
        pl = self.low[-1] if self.n else NAN
        up = h - ph
        down = -(lo - pl)
        pdm = (up if up > down and up > 0 else 0.0) + up * 0.0
        mdm = (down if down > up and down > 0 else 0.0) + down * 0.0
        for i in range(len(self.adx_s)):
            t = self.tr_s[i].step(tr)
            pdi = 100.0 * div1(self.pdm_s[i].step(pdm), t, 0.0)
            mdi = 100.0 * div1(self.mdm_s[i].step(mdm), t, 0.0)
            dx = 100.0 * div1(abs(pdi - mdi), pdi + mdi, 0.0)
            self.adx[i] = (self.adx_s[i].step(dx), pdi - mdi)

    def _push(self, buf: list[float], x: float) -> None:
        buf.append(x)
        if len(buf) > 2 * self.keep:  # trimmed now and then: amortized O(1)
            del buf[: -self.keep]

    # -- a whole history at once ---------------------------------------------------------
    def warm(
        self, ts: npt.NDArray[np.int64], o: Array, h: Array, lo: Array, c: Array, v: Array
    ) -> None:
        """The state after ``step`` over every row, from the batch kernels (one pass each)."""
        from tradekit.features import indicators as ind

        self.__init__(self.spec, self.families)  # type: ignore[misc]
        n = len(ts)
        if not n:
            return
        ps = self.spec.periods
        if self.ema:
            for e, out in zip(self.ema, ind.ema_many(c, ps), strict=True):
                e.warm(c, out)
        if self.gain:
            d = ind.diff(c)
            gain = np.where(d > 0, d, 0.0) + d * 0.0
            loss = np.where(d < 0, -d, 0.0) + d * 0.0
            for i, p in enumerate(ps):
                g = self.gain[i].warm(gain, ind.wilder(gain, p))
                ls = self.loss[i].warm(loss, ind.wilder(loss, p))
                self.rsi[i] = 100.0 * div1(g, g + ls, 0.5)
        if self.has_macd:
            fast, slow, sig = self.spec.macd
            ef, es = ind.ema_many(c, (fast, slow))
            line = ef - es
            self.line = self.macd[0].warm(c, ef) - self.macd[1].warm(c, es)
            self.macd[2].warm(line, ind.ema(line, sig))
        if self.atr or self.adx_s:
            tr = ind.true_range(h, lo, c)
            if self.atr:
                for e, out in zip(self.atr, ind.wilder_many(tr, ps), strict=True):
                    e.warm(tr, out)
            if self.adx_s:
                self._adx_warm(h, lo, tr)
        k = self.keep
        self.close, self.high, self.low = c[-k:].tolist(), h[-k:].tolist(), lo[-k:].tolist()
        tail = slice(max(n - k - 1, 0), n)  # one more row: each value needs the one before
        ct, vt = c[tail], v[tail]
        lr = np.log(ct / ind.shift(ct, 1))
        d = ind.diff(ct)
        sv = np.where(d > 0, vt, np.where(d < 0, -vt, 0.0))
        sv[:1] = np.nan
        if tail.start > 0:  # the first row of the tail is not the series' first
            lr, sv = lr[1:], sv[1:]
            vt = vt[1:]
        else:
            lr[:1] = np.nan
        self.lr, self.sv = lr.tolist(), sv.tolist()
        self.sv_vol = (vt + sv * 0).tolist()
        self.lv = np.log1p(v[-k:]).tolist()
        self.n = n
        self.ts = int(ts[-1])
        self.last = (float(o[-1]), float(h[-1]), float(lo[-1]), float(c[-1]), float(v[-1]))

    def _adx_warm(self, h: Array, lo: Array, tr: Array) -> None:
        from tradekit.features import indicators as ind

        up = ind.diff(h)
        down = -ind.diff(lo)
        pdm = np.where((up > down) & (up > 0), up, 0.0) + up * 0.0
        mdm = np.where((down > up) & (down > 0), down, 0.0) + down * 0.0
        for i, p in enumerate(self.spec.periods):
            ts_ = ind.wilder(tr, p)
            pp, mm = ind.wilder_many(pdm, [p])[0], ind.wilder_many(mdm, [p])[0]
            self.tr_s[i].warm(tr, ts_)
            self.pdm_s[i].warm(pdm, pp)
            self.mdm_s[i].warm(mdm, mm)
            pdi = 100.0 * ind._div(pp, ts_, 0.0)
            mdi = 100.0 * ind._div(mm, ts_, 0.0)
            dx = 100.0 * ind._div(np.abs(pdi - mdi), pdi + mdi, 0.0)
            self.adx[i] = (self.adx_s[i].warm(dx, ind.wilder(dx, p)), float(pdi[-1] - mdi[-1]))

    # -- the newest row ------------------------------------------------------------------
    def values(self, family: str) -> list[float]:
        """``family``'s columns at the newest row (NaN within its warm-up, as the batch)."""
        got = self._cache.get(family)
        if got is None:
            if self.n <= self.need[family]:
                got = [NAN] * self.width[family]
            else:
                got = self._compute(family)
            self._cache[family] = got
        return got

    def _compute(self, f: str) -> list[float]:
        spec, ps = self.spec, self.spec.periods
        c = self.close[-1]
        if f == "returns":
            return [c / self.close[-1 - k] - 1.0 for k in spec.return_horizons]
        if f == "ma":
            return [
                x
                for p, e in zip(ps, self.ema, strict=True)
                for x in (c / (_sum(self.close[-p:]) / p) - 1.0, c / e.w - 1.0)
            ]
        if f == "rsi":
            return list(self.rsi)
        if f == "macd":
            sig = self.macd[2].w
            return [self.line / c, sig / c, (self.line - sig) / c]
        if f == "atr":
            return [e.w / c for e in self.atr]
        if f == "bbands":
            out = []
            for p in ps:
                mid, sd = _mean_std(self.close[-p:])
                dev = spec.bb_std * sd
                out += [div1(c - mid, dev, 0.0), 2.0 * dev / mid]
            return out
        if f == "adx":
            return [x for pair in self.adx for x in pair]
        if f == "obv":
            return [div1(_sum(self.sv[-p:]), _sum(self.sv_vol[-p:]), 0.0) for p in ps]
        if f == "volatility":
            return [_mean_std(self.lr[-p:])[1] for p in ps]
        if f == "range":
            h, lo = self.last[1], self.last[2]
            return [h / lo - 1.0] + [max(self.high[-p:]) / min(self.low[-p:]) - 1.0 for p in ps]
        if f == "volume":
            lv = self.lv[-1]
            out = []
            for p in ps:
                mean, sd = _mean_std(self.lv[-p:])
                out.append(div1(lv - mean, sd, 0.0))
            return out
        if f == "time":
            t = self.ts
            day = (t // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
            tod = _TWO_PI * (t % DAY_MS) / DAY_MS
            dow = _TWO_PI * (day + (t % DAY_MS) / DAY_MS) / 7
            return [float(np.sin(tod)), float(np.cos(tod)), float(np.sin(dow)), float(np.cos(dow))]
        raise ValueError(f"unknown feature family {f!r}")
