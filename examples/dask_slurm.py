"""Build a dataset on a Slurm cluster with Dask: dask-jobqueue starts workers as Slurm jobs, flowprep
submits one task per clip to them.

    pip install 'flowprep[cluster]'    # dask.distributed + dask-jobqueue
    python examples/dask_slurm.py /shared/releases/hmdb51_org.rar /shared/datasets/hmdb51 \\
        --jobs 8 --cores 16 --flow tvl1 --queue cpu --account myproj

    # GPU nodes (NVIDIA Optical Flow): one worker process per GPU, each binds its own GPU
    python examples/dask_slurm.py SRC OUT --jobs 4 --cores 8 --gpus-per-job 4 --flow nvof --queue gpu

Run it on a login node (or in a small Slurm job) that stays up for the whole build: the scheduler
lives in this process. SOURCE and OUT must be on a file system every node mounts at the same path.
If the script dies, run it again: finished clips are kept and only the rest is built. Each worker
job runs ``python -m distributed.cli.dask_worker`` with this script's Python and environment (sbatch
exports it), so activate the same environment on the nodes or give ``--prologue``.

Tested on a single-node Slurm (tests/test_slurm.py: 2 worker jobs of 1 core build the same bytes as a
local ``flowprep build``); not yet on several nodes or with GPUs.

The same build without this script, with a scheduler started by other means (``dask scheduler`` +
``dask worker`` in sbatch scripts, dask-gateway, Kubernetes):

    flowprep build SRC --out OUT --engine dask --scheduler tcp://HOST:8786
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def make_cluster(args: argparse.Namespace, out: Path):
    """A SLURMCluster with ``args.jobs`` Slurm jobs of ``args.cores`` cores each.

    CPU flow: one worker process per core, one thread each (a clip job is single-threaded, so
    processes, not threads, fill a node). GPU flow: one worker process per GPU; Slurm gives the job
    its GPUs in CUDA_VISIBLE_DEVICES and each worker process takes a different one of them.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        sys.exit("this recipe needs dask-jobqueue: pip install dask-jobqueue (or pip install 'flowprep[cluster]')")
    gpu = args.gpus_per_job > 0
    processes = args.gpus_per_job if gpu else args.cores
    directives = [f"--gres=gpu:{args.gpus_per_job}"] if gpu else []
    return SLURMCluster(
        queue=args.queue,
        account=args.account,
        walltime=args.walltime,
        cores=args.cores,
        processes=processes,
        memory=args.memory,
        job_extra_directives=directives,
        # A worker that dies mid-clip is replaced by the nanny; its clip is retried elsewhere.
        worker_extra_args=["--nthreads", "1"],
        job_script_prologue=args.prologue,
        # beside the dataset (inside it, the build would refuse a folder it did not make); ``out`` is
        # resolved: ``.`` has no name to put a suffix on
        log_directory=str(out.parent / f"{out.name}.dask-logs"),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="release folder or archive (same path on every node)")
    ap.add_argument("out", type=Path, help="output dataset folder (shared file system)")
    ap.add_argument("--flow", default="tvl1", help="flow backend [tvl1]")
    ap.add_argument("--classes", default=None, help="comma-separated classes [all]")
    ap.add_argument("--jobs", type=int, default=4, help="Slurm jobs (nodes or node slices) [4]")
    ap.add_argument("--cores", type=int, default=16, help="cores per Slurm job [16]")
    ap.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per Slurm job, for --flow nvof [0]")
    ap.add_argument("--memory", default="32GB", help="memory per Slurm job [32GB]")
    ap.add_argument("--queue", default=None, help="Slurm partition")
    ap.add_argument("--account", default=None, help="Slurm account")
    ap.add_argument("--walltime", default="04:00:00")
    ap.add_argument(
        "--prologue",
        action="append",
        default=[],
        help="shell line run before each worker starts, e.g. 'source /shared/venv/bin/activate'",
    )
    args = ap.parse_args(argv)

    import dataclasses

    from distributed import Client

    import flowprep

    try:  # checked before any Slurm job is submitted: a bad path or option is one line
        base = flowprep.BuildConfig(
            source=args.source.resolve(),
            out=args.out.resolve(),
            flow=args.flow,
            classes=[c for c in args.classes.split(",")] if args.classes else None,
            # --gpus is left out on purpose: each worker binds the GPU Slurm gives it.
        )
    except flowprep.FlowprepError as exc:
        print(f"flowprep: error: {exc}", file=sys.stderr)
        return 2
    cluster = make_cluster(args, base.out)
    print(cluster.job_script())
    cluster.scale(jobs=args.jobs)
    # Adaptive alternative: cluster.adapt(minimum_jobs=1, maximum_jobs=args.jobs)
    # close() cancels the worker jobs: also on an error, or they would hold nodes until walltime.
    try:
        with Client(cluster) as client:
            try:
                summary = flowprep.build(dataclasses.replace(base, engine="dask", scheduler=client.scheduler.address))
            except flowprep.FlowprepError as exc:
                print(f"flowprep: error: {exc}", file=sys.stderr)
                return 1
    finally:
        cluster.close()
    print(
        f"{summary.built} built, {summary.existing} already there, {len(summary.failed)} failed, "
        f"{summary.fps:.1f} frames/s over the cluster; dataset: {summary.out}"
    )
    for cid, why in summary.failed:
        print(f"  failed: {cid}: {why}", file=sys.stderr)
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
