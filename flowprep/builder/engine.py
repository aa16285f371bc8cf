"""Run clip jobs: in this process (``-j 1``), in local worker processes (joblib), or on Dask.

Engines only schedule: all the work and all the guarantees are in :func:`flowprep.builder.job.run_clip`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from joblib import Parallel, delayed
from joblib.externals.loky.process_executor import TerminatedWorkerError

from flowprep.builder.dask_engine import run_dask
from flowprep.builder.job import ClipResult, JobSettings, run_clip
from flowprep.builder.plan import ClipJob
from flowprep.errors import WorkerDiedError

log = logging.getLogger(__name__)

Progress = Callable[[ClipResult], None]


def _local_sequential(jobs: Sequence[ClipJob], settings: JobSettings) -> Iterator[ClipResult]:
    for job in jobs:
        yield run_clip(job, settings)


def _local_parallel(jobs: Sequence[ClipJob], settings: JobSettings, n_jobs: int) -> Iterator[ClipResult]:
    # loky processes, one clip per task: clips take 0.1 s to minutes each, so batching buys nothing
    # and would delay the progress bar. Results arrive in completion order.
    parallel = Parallel(
        n_jobs=n_jobs, backend="loky", batch_size=1, return_as="generator_unordered", pre_dispatch="2*n_jobs"
    )
    sent: list[str] = []
    done: set[str] = set()

    def tasks() -> Iterator[Any]:
        for job in jobs:
            sent.append(job.id)
            yield delayed(run_clip)(job, settings)

    try:
        for result in parallel(tasks()):
            done.add(result.id)
            yield result
    except TerminatedWorkerError:
        # joblib's 49-line message names no clip; the ones sent and not returned were in flight.
        flying = [i for i in sent if i not in done]
        raise WorkerDiedError(
            f"a worker process died (killed, or out of memory) while building "
            f"{'clip ' + flying[0] if len(flying) == 1 else 'one of ' + ', '.join(flying[:4])}"
            f"{' ...' if len(flying) > 4 else ''}; rerun the same command to resume (finished clips are kept)"
        ) from None


def run_jobs(
    jobs: Sequence[ClipJob],
    settings: JobSettings,
    n_jobs: int = 1,
    engine: str = "local",
    scheduler: str | None = None,
    on_result: Progress | None = None,
    max_retries: int = 2,
    scheduler_timeout: float = 30.0,
) -> list[ClipResult]:
    """Run every job and return their results (in completion order).

    Args:
        jobs: clip jobs (finished ones return at once with ``status="exists"``).
        settings: shared job settings.
        n_jobs: worker processes for the local engine.
        engine: ``"local"`` or ``"dask"``.
        scheduler: Dask scheduler address (``tcp://host:8786``); None starts nothing and uses the
            current default client (tests pass a LocalCluster address).
        on_result: called in this process after each clip.
        max_retries: Dask only: how often a clip whose worker died is retried.
        scheduler_timeout: Dask only: seconds to wait for the scheduler to answer.
    """
    if engine == "dask":
        results_iter: Iterable[ClipResult] = run_dask(
            jobs, settings, scheduler, max_retries=max_retries, timeout=scheduler_timeout
        )
    elif n_jobs <= 1 or len(jobs) <= 1:
        results_iter = _local_sequential(jobs, settings)
    else:
        results_iter = _local_parallel(jobs, settings, min(n_jobs, len(jobs)))
    results = []
    for result in results_iter:
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


class ProgressBar:
    """A tqdm bar over clips, showing frames per second of the clips built in this run."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit="clip", disable=not enabled, dynamic_ncols=True, leave=True)
        self._t0 = time.perf_counter()
        self._frames = 0
        self._failed = 0

    def __call__(self, result: ClipResult) -> None:
        if result.status == "done":
            self._frames += result.frames
        elif result.status == "failed":
            self._failed += 1
        dt = max(time.perf_counter() - self._t0, 1e-9)
        self._bar.set_postfix(fps=f"{self._frames / dt:.1f}", failed=self._failed, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
