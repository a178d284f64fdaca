"""Where the map step of the keyed engine runs: in this process (the default) or on a Dask cluster.

The engine (agefair.fairness.engine.state) splits the units of every keyed bootstrap and permutation into
blocks, maps each block to its partial sums with one function, and merges the partial sums by addition in
block order. An executor runs that map: ``InProcess`` calls it block by block; ``DaskExecutor`` submits each
block to a ``distributed.Client`` (a ``LocalCluster`` of ``workers`` processes, or an existing scheduler) and
adds the results in block order as they arrive, so both give the same bits. A command picks one for the length
of an audit with ``using(executor)``; only blocks of per-unit sums and their partial sums travel.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agefair.core.errors import AgefairError

ENGINES = ("local", "dask")


class InProcess:
    """Runs every block here, one after the other."""

    def map(self, fn: Callable, blocks: Iterable[tuple], **kwargs) -> Iterator[Any]:
        for block in blocks:
            yield fn(*block, **kwargs)

    def describe(self) -> str:
        return "in-process"


@dataclass
class DaskExecutor:
    """Runs the blocks as tasks of a Dask client; a task that fails is retried (``retries``) before the audit
    stops with one line naming it."""

    client: Any
    retries: int = 2
    _where: str = field(default="")

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def map(self, fn: Callable, blocks: Iterable[tuple], **kwargs) -> Iterator[Any]:
        # each block travels inside its task, not scattered to one worker: the scheduler can run the task again
        # on another worker when a worker dies (scattered data would die with it)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sending large graph")
            futures = [self.client.submit(fn, *block, **kwargs, pure=False, retries=self.retries) for block in blocks]
        try:
            for k, fut in enumerate(futures):
                try:
                    yield fut.result()
                except Exception as e:  # noqa: BLE001 - a worker's failure becomes one line
                    raise AgefairError(f"dask: block {k + 1} of {len(futures)} failed after {self.retries} "
                                       f"retries ({type(e).__name__}: {e})") from None
        finally:
            for fut in futures:
                fut.release()

    def describe(self) -> str:
        return f"dask ({self._where}, {self.workers} workers)"


_CURRENT: contextvars.ContextVar = contextvars.ContextVar("agefair_executor", default=None)
_LOCAL = InProcess()


def current() -> InProcess | DaskExecutor:
    """The executor the engine maps its blocks with now (in-process unless a command chose another)."""
    return _CURRENT.get() or _LOCAL


@contextlib.contextmanager
def using(executor) -> Iterator:
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)


@contextlib.contextmanager
def dask_engine(*, workers: int = 2, scheduler: str | None = None) -> Iterator[DaskExecutor]:
    """A ``DaskExecutor`` for the length of the block: on the scheduler at ``scheduler`` (e.g.
    ``tcp://10.0.0.5:8786``), or on a LocalCluster of ``workers`` single-threaded worker processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - a dependency of agefair
        raise AgefairError("--engine dask: the 'distributed' package is not installed (pip install "
                           "'dask[distributed]')") from None
    import logging

    import dask

    with dask.config.set({"distributed.worker.daemon": False}):
        if scheduler:
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError, ValueError) as e:
                raise AgefairError(f"{scheduler}: no Dask scheduler answered ({e})") from None
            with client:
                yield DaskExecutor(client, _where=f"scheduler {scheduler}")
            return
        try:
            # loopback only: the scheduler, its workers and its HTTP routes listen on 127.0.0.1 (a free port)
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR,
                                   env={"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
        except (OSError, RuntimeError, TimeoutError) as e:
            raise AgefairError(f"--engine dask: the local cluster of {workers} workers did not start ({e})") from None
        with cluster, Client(cluster) as client:
            yield DaskExecutor(client, _where=f"LocalCluster of {workers}")
