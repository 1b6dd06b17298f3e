"""Settings that native libraries read once, when they load; set when ``tradekit`` is imported
(``tradekit/__init__``), before any of our code can load them. A value the caller set in the
environment is kept. Stdlib only.

- ``OMP_WAIT_POLICY=PASSIVE``: LightGBM (the system's libgomp) and torch (its bundled libgomp)
  run parallel loops on OpenMP. By default a libgomp thread that reaches a barrier first spins
  for a while (``GOMP_SPINCOUNT`` 300,000) before it sleeps; on a machine whose cores are busy
  with other work the spinning threads take the CPU from the one they wait for, and a 24 s
  training took 11 min. Passive, they sleep at once (libgomp then sets the spin counts to 0,
  so ``GOMP_SPINCOUNT`` itself is not needed). libgomp reads it when the library loads
  (``import lightgbm``, ``import torch``).
- ``ARROW_DEFAULT_MEMORY_POOL=system``: pyarrow's default allocator, mimalloc, keeps freed
  buffers: reading the demo's features file peaks at 249 MB with it, 198 MB with the system
  allocator (and training the FreqAI-shaped benchmark at 215 MB instead of 199 MB). pyarrow
  reads it when it loads. jemalloc does as well but is not built into every platform's wheel.
"""

from __future__ import annotations

import os

DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "ARROW_DEFAULT_MEMORY_POOL": "system"}


def configure() -> None:
    """The settings above, for every library loaded after this call."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
