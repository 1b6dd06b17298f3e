"""CPU threads: OpenMP's wait policy and how many threads training uses. Stdlib only (``os``,
``math``): ``tradekit/__init__`` imports it.

LightGBM (the system's libgomp) and torch (its own bundled libgomp) run their parallel loops
on OpenMP. By default a libgomp thread that reaches a barrier first spins for a while (about
300,000 iterations) before it sleeps; on a machine whose cores are busy with other work, the
spinning threads take the CPU from the one they wait for, and a 24 s training took 11 min.
``OMP_WAIT_POLICY=PASSIVE`` makes them sleep at once (libgomp then sets its spin counts,
``GOMP_SPINCOUNT``'s, to 0, so that variable is not needed). libgomp reads the variable once,
when the library is loaded (``import lightgbm``, ``import torch``), so it is set when
``tradekit`` itself is imported (:func:`configure_openmp`, called by ``tradekit/__init__``):
the earliest point, before any of our code can load those libraries. A value the caller set
explicitly is kept.

:func:`training_threads` is the thread count of ``[model] threads = 0``: the cores this process
may run on, less the load the machine already carries (the 1-minute load average, rounded),
at least one. More threads than free cores only makes every OpenMP barrier wait for a thread
that is not running.
"""

from __future__ import annotations

import math
import os

CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def configure_openmp() -> None:
    """Passive OpenMP waiting for every library loaded after this call (see module doc)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota (a
    container's ``--cpus``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        with open(CGROUP_CPU_MAX, encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def training_threads(requested: int = 0) -> int:
    """``requested`` when set (> 0); else the usable cores less the current load, at least 1."""
    if requested > 0:
        return requested
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this system
        load = 0.0
    return max(1, min(cores, cores - round(load)))
