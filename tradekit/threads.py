"""How many CPU threads training and ``featurize`` use. Stdlib only.

:func:`worker_threads` is the thread count of ``[model] threads = 0`` (and of ``featurize``,
which computes that many symbols at once): the cores this process
may run on, less the load the machine already carries (the 1-minute load average, rounded),
at least one. More threads than free cores only makes every OpenMP barrier wait for a thread
that is not running. (OpenMP's passive waiting, which matters more on a busy machine, is set
by ``tradekit.native`` when tradekit is imported.)
"""

from __future__ import annotations

import math
import os

CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


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


def worker_threads(requested: int = 0) -> int:
    """``requested`` when set (> 0); else the usable cores less the current load, at least 1."""
    if requested > 0:
        return requested
    cores = usable_cores()
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this system
        load = 0.0
    return max(1, min(cores, cores - round(load)))
