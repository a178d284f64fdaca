"""``--engine``, ``--workers`` and ``--scheduler``: where the audit's keyed bootstrap and permutations run
(agefair.fairness.engine.executor): in this process, or mapped over blocks of rows on a Dask cluster."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator

from agefair.cli.args import positive_int
from agefair.core.config import FairnessConfig
from agefair.core.errors import AgefairError
from agefair.fairness.engine.executor import ENGINES, InProcess, dask_engine, using


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="where the bootstrap and permutations run: local (this process, the default) or dask "
                             "(blocks of rows mapped on a Dask cluster, merged by addition: the same numbers)")
    parser.add_argument("--workers", type=positive_int, metavar="N",
                        help="--engine dask: worker processes of the local cluster (default 2)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="--engine dask: an existing Dask scheduler (tcp://HOST:8786) instead of a local cluster")


def engine_settings(args: argparse.Namespace, fair: FairnessConfig) -> FairnessConfig:
    """The fairness settings the engine needs: ``--engine dask`` maps keyed draws and ``--save-state`` writes
    mergeable (keyed) sums, so ``bootstrap: auto`` becomes ``poisson`` at any size (``vectorized``, the
    multinomial draw, cannot be split, and ``fairlearn`` keeps no state: an error)."""
    if args.engine != "dask":
        given = [f for f, v in (("--workers", args.workers), ("--scheduler", args.scheduler)) if v is not None]
        if given:
            raise AgefairError(f"{' and '.join(given)} go with --engine dask")
    elif args.workers is not None and args.scheduler is not None:
        raise AgefairError("--workers starts a local cluster, --scheduler uses an existing one: give one of them")
    needs = ("--engine dask" if args.engine == "dask" else "--state-only" if getattr(args, "state_only", False)
             else "--save-state" if getattr(args, "save_state", None) else None)
    if needs is None or getattr(args, "state", None):
        return fair
    if fair.bootstrap in ("vectorized", "fairlearn"):
        raise AgefairError(f"{needs} needs the keyed (Poisson) bootstrap, whose sums split over blocks of rows and "
                           f"merge; fairness.yaml's bootstrap: {fair.bootstrap} cannot: set bootstrap: auto or poisson")
    return fair.model_copy(update={"bootstrap": "poisson"})


@contextlib.contextmanager
def engine_from_args(args: argparse.Namespace) -> Iterator:
    """The executor of ``--engine`` for the length of the block."""
    if args.engine != "dask":
        with using(InProcess()) as ex:
            yield ex
        return
    with dask_engine(workers=args.workers or 2, scheduler=args.scheduler) as ex, using(ex):
        print(f"engine: {ex.describe()}")
        yield ex
