"""Where trials run: in this process, in a local process pool, or as Ray tasks.

Each executor takes a batch of tasks and hands back a handle; ``results(handle)`` blocks until
the whole batch is done and returns the records in task order. The driver decides what to run
and in which order; the executor only evaluates, so the same seed gives the same trials on any
executor (the records are the same functions of the same inputs).

Ray: the inputs are put in the object store once (``ray.put``: numpy arrays are read in
place by every worker on a node, copied once per node); each task is a plain remote function
call with the trial's number, parameters and seed. Ray is imported only here, only for
``--executor ray`` (the ``tradekit[ray]`` extra, never installed on the Pi).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from tradekit.errors import ExternalError, MissingDependency
from tradekit.sweep.evaluate import Inputs, Task, evaluate, init_worker, run_in_worker
from tradekit.threads import usable_cores

log = logging.getLogger("tradekit.sweep")


class Executor(Protocol):
    name: str
    workers: int

    def submit(self, tasks: Sequence[Task]) -> Any: ...

    def results(self, handle: Any) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class Inline:
    """Trials one after another in this process (``--jobs 1``)."""

    name = "local"
    workers = 1

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs

    def submit(self, tasks: Sequence[Task]) -> Any:
        return list(tasks)  # run when the results are asked for: one batch in flight at most

    def results(self, handle: Any) -> list[dict[str, Any]]:
        return [evaluate(self.inputs, t) for t in handle]

    def close(self) -> None:
        pass


class Pool:
    """A pool of ``workers`` processes (spawned, so no lock or thread of this process leaks
    into them); each receives the inputs once, at start."""

    name = "local"

    def __init__(self, inputs: Inputs, workers: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context("spawn"),
            initializer=init_worker,
            initargs=(inputs,),
        )

    def submit(self, tasks: Sequence[Task]) -> Any:
        return [self.pool.submit(run_in_worker, t) for t in tasks]

    def results(self, handle: Any) -> list[dict[str, Any]]:
        return [f.result() for f in handle]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Ray tasks on the cluster at ``address`` (None: a private local one)."""

    name = "ray"

    def __init__(self, inputs: Inputs, address: str | None) -> None:
        _loopback_env(address)
        try:
            import ray
        except ImportError:
            raise MissingDependency(
                "--executor ray needs Ray: pip install 'tradekit[ray]'"
            ) from None
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                    # The workers run this checkout's code, with the driver's thread limits.
                    runtime_env={"env_vars": _worker_env()},
                )
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = address or "a local cluster"
                first = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise ExternalError(f"ray: cannot connect to {where}: {first}") from None
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        self.workers = max(1, int(resources.get("CPU", 1)))
        self.ref = ray.put(inputs)
        self.remote = ray.remote(num_cpus=1, max_retries=2)(_ray_evaluate)
        log.info("ray: %d CPUs, inputs in the object store", self.workers)

    def submit(self, tasks: Sequence[Task]) -> Any:
        return [self.remote.remote(self.ref, t) for t in tasks]

    def results(self, handle: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.ray.get(handle)
        return out

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def _loopback_env(address: str | None) -> None:
    """Ray's environment, set before it is imported (it reads it then).

    Ray turns 127.0.0.1 into the machine's outward address, so a private cluster would listen
    on the network and a driver could not join a cluster started on the loopback; Ray's own
    switch for single-node clusters keeps both on the loopback. A cluster with token auth
    (Ray >= 2.5x makes ~/.ray/auth_token) needs the driver to send the token: say so."""
    host = (address or "127.0.0.1").rsplit(":", 1)[0]
    if host in ("127.0.0.1", "localhost", "::1", "[::1]"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    token = Path.home() / ".ray" / "auth_token"
    if address is not None and token.is_file():
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def _ray_evaluate(inputs: Inputs, task: Task) -> dict[str, Any]:
    return evaluate(inputs, task)


def _worker_env() -> dict[str, str]:
    keep = ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "PYTHONPATH", "NUMBA_CACHE_DIR")
    return {k: os.environ[k] for k in keep if k in os.environ}


def make_executor(kind: str, inputs: Inputs, jobs: int, address: str | None) -> Executor:
    if kind == "ray":
        return RayExecutor(inputs, address)
    workers = min(jobs, usable_cores())
    if workers <= 1:
        return Inline(inputs)
    return Pool(inputs, workers)
