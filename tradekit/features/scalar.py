"""The scalar steps of the indicators, as plain Python: the live loop's incremental features
(``tradekit.features.stream``) call them as they are, and the batch kernels
(``tradekit.features.indicators``) compile these very functions with numba, so both paths run
one source, operation for operation. Stdlib only: the loop never imports numba."""

from __future__ import annotations

import math

NAN = math.nan


def ewm_step(
    w: float, old: float, cur: float, alpha: float, keep: float, half: bool
) -> tuple[float, float]:
    """One step of pandas' ``ewm(adjust=False, ignore_na=False).mean()`` recursion, exactly:
    from ``w = NaN, old = 1`` the first defined input is the seed; the old value's weight
    decays over NaN gaps (``keep ** gap``); an input equal to the running value leaves it
    untouched; with ``alpha == 0.5`` (``half``) the new value weighs ``1 - old``, as in pandas."""
    if w == w:
        old *= keep
        new = 1.0 - old if half else alpha
        if cur == cur:
            if w != cur:
                w = old * w + new * cur
                w = w / (old + new)
            old = 1.0
    elif cur == cur:
        w = cur
    return w, old


def div1(a: float, b: float, neutral: float) -> float:
    """``a / b``, ``neutral`` for a zero ``b``, NaN stays NaN."""
    if a != a or b != b:
        return NAN
    if b == 0.0:
        return neutral
    return a / b


def max1(a: float, b: float) -> float:
    """``np.maximum`` of two scalars: NaN if either is NaN."""
    if a != a or b != b:
        return NAN
    return a if a >= b else b
