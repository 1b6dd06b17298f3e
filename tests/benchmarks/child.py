"""A measured child process: wall time, CPU time and its own peak RSS.

The peak RSS of a child started straight from the benchmark process is wrong: Linux starts a
child's ``ru_maxrss`` at the peak of the process it was forked from (the high-water mark of the
old memory map is kept through ``exec``; ``subprocess`` forks with vfork), and the benchmark
process holds candles and frames of hundreds of MB. So the command is started by a small
launcher process (about 10 MB), which forks it and reports its ``wait4`` usage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

_LAUNCHER = """
import json, os, signal, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
signal.signal(signal.SIGALRM, lambda *a: os.kill(pid, signal.SIGKILL))
signal.setitimer(signal.ITIMER_REAL, float(sys.argv[1]))
_, status, ru = os.wait4(pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), time.perf_counter() - t, ru.ru_maxrss,
                  ru.ru_utime + ru.ru_stime]), file=sys.stderr)
"""


@dataclass
class Usage:
    code: int
    wall_s: float  # inf when stopped at the timeout
    rss_mb: float
    cpu_s: float
    stderr: str


def measure(args: list[str], env: dict[str, str] | None = None, timeout_s: float = 3600) -> Usage:
    """Run ``args`` through the launcher; raise if it fails (not if it is stopped)."""
    t = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, str(timeout_s), *args],
        env=env if env is not None else dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = run.stderr.rstrip().splitlines()
    if not lines:
        raise RuntimeError(f"{args[:4]}: launcher said nothing ({time.perf_counter() - t:.1f} s)")
    code, wall, rss_kb, cpu = json.loads(lines[-1])
    err = "\n".join(lines[:-1])
    if code == -9:
        return Usage(code, float("inf"), rss_kb / 1024, cpu, err)
    if code != 0:
        raise RuntimeError(f"{args[:4]} failed ({code}):\n{err[-2000:]}")
    return Usage(code, wall, rss_kb / 1024, cpu, err)
