"""Compiled or interpreted: how the shared rules (``policy``, ``risk``, ``accounting``) run.

The backtest runs them compiled by numba, inlined into its kernel: millions of candles a
second. The trading loop calls them a few hundred times an hour; compiled, they cost it numba
and llvmlite (about 65 MB of a Pi's memory, and 0.5 s of start-up loading the cached machine
code). So ``run`` executes the very same functions as plain Python (``tradekit.entry`` turns
compilation off before they are imported): one decision path, the same source, two ways to
execute it. ``tests/test_live_parity.py`` holds the interpreted engine to the compiled one.

Interpreted, a numpy record read field by field needs ``np.recarray`` elements (numba reads the
plain structured ones); :func:`records` gives every rules array the right view.
``TRADEKIT_JIT=0`` or ``1`` in the environment overrides the choice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

F = TypeVar("F", bound=Callable[..., Any])

_env = os.environ.get("TRADEKIT_JIT")
ENABLED = _env != "0"
_imported = False  # a rules module read ENABLED: too late to change it


def configure(*, enabled: bool) -> None:
    """Choose before the rules are imported (the environment variable still wins)."""
    global ENABLED
    if _imported:
        return
    ENABLED = enabled if _env is None else _env != "0"


@overload
def njit(fn: F, /) -> F: ...


@overload
def njit(*, cache: bool = ..., inline: str = ...) -> Callable[[F], F]: ...


def njit(*args: Any, **kwargs: Any) -> Any:
    """``numba.njit`` when compiling, else the function itself."""
    global _imported
    _imported = True
    if ENABLED:
        from numba import njit as numba_njit

        return numba_njit(*args, **kwargs)
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f


def records(a: NDArray[np.void]) -> NDArray[np.void]:
    """A structured array the rules read as records in either mode."""
    import numpy as np

    return a if ENABLED else a.view(np.recarray)
