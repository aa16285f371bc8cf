"""The Dask engine: each clip is one task on an existing ``dask.distributed`` cluster.

Nothing here makes a clip safe to run twice or to lose halfway: :func:`flowprep.builder.job.run_clip`
does (temporary folder, one rename). This module only submits, streams results as they complete,
and bounds retries:

* A worker that dies mid-clip leaves a temporary folder, never a finished clip. The scheduler
  re-runs the task elsewhere (up to ``distributed.scheduler.allowed-failures`` times, 3 by default),
  then gives up with ``KilledWorker``; this engine resubmits such a clip at most ``max_retries``
  more times under a new key, then reports it as failed with the reason.
* An exception raised by ``run_clip`` is an error of the environment (unwritable output, a flow
  backend that cannot start): it is retried the same bounded number of times, in case one node is
  broken, then raised, as the local engine does. Bad videos are not exceptions: they come back as
  ``status="failed"`` results.

Task keys are ``flowprep-clip-<run>-<attempt>-<clip id>``: unique per build run and attempt, so a
resubmitted clip is never merged with its dead predecessor, and two builds sharing a cluster never
share results.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flowprep.builder.job import ClipResult, JobSettings, run_clip
from flowprep.builder.plan import ClipJob
from flowprep.errors import ConfigError, FlowprepError

log = logging.getLogger(__name__)

_INSTALL = "pip install 'dask[distributed]'"


def connect(scheduler: str | None, timeout: float = 30.0) -> tuple[Any, bool]:
    """A ``distributed.Client`` for ``scheduler`` and whether the caller must close it.

    Args:
        scheduler: ``tcp://host:8786`` (or any address ``Client`` takes); None uses the client
            already created in this process (e.g. by a ``SLURMCluster`` recipe).

    Raises:
        ConfigError: distributed missing, no scheduler reachable, or no client to use.
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise ConfigError(f"--engine dask needs dask.distributed ({exc}); install it with {_INSTALL}") from exc
    if scheduler is None:
        try:
            return Client.current(allow_global=True), False
        except ValueError:
            raise ConfigError(
                "--engine dask needs --scheduler tcp://HOST:8786 (the address of a running "
                "dask scheduler), or a dask Client created in this process"
            ) from None
    _probe(scheduler, timeout)
    try:
        return Client(scheduler, timeout=timeout, set_as_default=False), True
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None


async def _identity(scheduler: str, timeout: float) -> Any:
    from distributed.comm import connect as comm_connect

    comm = await asyncio.wait_for(comm_connect(scheduler, timeout=timeout), timeout)
    try:
        await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), timeout)
        return await asyncio.wait_for(comm.read(), timeout)
    finally:
        comm.abort()


def _probe(scheduler: str, timeout: float) -> None:
    """Ask ``scheduler`` who it is, within ``timeout`` seconds in all.

    ``Client(timeout=...)`` bounds only the TCP connect: a peer that accepts and never answers
    Dask's handshake (an HTTP server, a wrong port) would hang it for ever.

    Raises:
        ConfigError: nothing answered in time, the connection failed, or the peer is no Dask scheduler.
    """
    try:
        reply = asyncio.run(asyncio.wait_for(_identity(scheduler, timeout), timeout + 1))
    except (asyncio.TimeoutError, TimeoutError):
        raise ConfigError(
            f"no Dask scheduler answered at {scheduler} within {timeout:g} s (is the address "
            "right, and is it a dask scheduler? --scheduler-timeout sets the wait)"
        ) from None
    except (OSError, ValueError, TypeError) as exc:  # distributed's CommClosedError is an OSError
        raise ConfigError(f"cannot talk to a Dask scheduler at {scheduler}: {' '.join(str(exc).split())}") from None
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        raise ConfigError(f"{scheduler} answered, but it is not a Dask scheduler")


def run_on_worker(scheduler: str | None, fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
    """Run ``fn(*args)`` once on some worker of the cluster and return its result.

    The build uses it to resolve and describe the flow backend where clips will run (the client may
    be a login node without a GPU). Exceptions raised by ``fn`` are re-raised here, types intact.
    """
    client, owned = connect(scheduler, timeout)
    try:
        return client.submit(fn, *args, pure=False, key=f"flowprep-probe-{uuid.uuid4().hex[:12]}").result()
    finally:
        if owned:
            client.close()


def _task_key(run: str, attempt: int, job: ClipJob) -> str:
    return f"flowprep-clip-{run}-{attempt}-{job.id}"


def _check_shared_output(client: Any, out: str) -> None:
    seen = client.submit(os.path.isdir, out, pure=False, key=f"flowprep-seeout-{uuid.uuid4().hex[:12]}").result()
    if not seen:
        raise ConfigError(
            f"the Dask workers do not see the output folder {out}: --out must be on a file "
            "system every worker mounts at the same path"
        )


def run_dask(
    jobs: Sequence[ClipJob], settings: JobSettings, scheduler: str | None, max_retries: int = 2, timeout: float = 30.0
) -> Iterator[ClipResult]:
    """Run every job as a task on the cluster; yield one result per job, in completion order.

    Args:
        jobs: clip jobs; ``settings.out`` and the jobs' paths must be absolute and visible to workers.
        settings: shared job settings.
        scheduler: scheduler address, or None for this process's current client.
        max_retries: resubmissions of a clip after ``KilledWorker`` or an exception (each on top of
            the scheduler's own ``allowed-failures``).
        timeout: seconds to wait for the scheduler to answer.

    Raises:
        ConfigError: no cluster; FlowprepError: an environment error raised by a task; any other
        exception a task keeps raising after the retries.
    """
    if max_retries < 0:
        raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
    if not jobs:
        return
    from distributed import KilledWorker, as_completed

    client, owned = connect(scheduler, timeout)
    run = uuid.uuid4().hex[:8]
    attempts: dict[str, int] = {job.id: 0 for job in jobs}
    pending: dict[str, tuple[ClipJob, Any]] = {}
    try:
        _check_shared_output(client, settings.out)
        ac = as_completed(_submit_all(client, run, jobs, settings, pending), loop=client.loop)
        for fut in ac:
            job, _ = pending.pop(fut.key)
            if fut.status == "finished":
                result = fut.result()
                fut.release()
                yield result
                continue
            exc = _task_error(fut)
            if isinstance(exc, FlowprepError):
                raise exc
            if attempts[job.id] < max_retries:
                attempts[job.id] += 1
                log.warning(
                    "clip %s: %s: %s; retry %d of %d", job.id, type(exc).__name__, exc, attempts[job.id], max_retries
                )
                retry = client.submit(run_clip, job, settings, key=_task_key(run, attempts[job.id], job), pure=False)
                pending[retry.key] = (job, retry)
                ac.add(retry)
            elif isinstance(exc, KilledWorker):
                yield _worker_died(job, attempts[job.id] + 1, exc)
            else:
                raise exc
    finally:
        if pending:
            # Ctrl-C or an error: stop the rest (a task already running finishes or leaves only a
            # temporary folder; both are safe).
            client.cancel([f for _, f in pending.values()], force=True)
        if owned:
            client.close()


def _submit_all(
    client: Any, run: str, jobs: Sequence[ClipJob], settings: JobSettings, pending: dict[str, tuple[ClipJob, Any]]
) -> list[Any]:
    """Submit one task per clip (first attempt) and note each in ``pending`` by task key; the futures."""
    keys = [_task_key(run, 0, job) for job in jobs]
    # One task per clip; the settings ride along with each (a few hundred bytes).
    futures = client.map(run_clip, list(jobs), settings=settings, key=keys, pure=False)
    for job, fut in zip(jobs, futures):
        pending[fut.key] = (job, fut)
    return list(futures)


def _task_error(fut: Any) -> BaseException:
    """The exception of a failed (or cancelled) task; the future is released."""
    try:
        exc = fut.exception()
    except (Exception, asyncio.CancelledError) as cancelled:  # someone cancelled the key
        # not BaseException: a Ctrl-C (KeyboardInterrupt) arriving here must stop the build
        exc = cancelled
    fut.release()
    return exc


def _worker_died(job: ClipJob, tries: int, exc: BaseException) -> ClipResult:
    """The failed result of a clip whose worker died on every attempt."""
    return ClipResult(
        job.id,
        "failed",
        error=f"its Dask worker died on each of {tries} attempt(s) "
        f"(out of memory, or a crash in decoding/flow?): {exc}",
    )
