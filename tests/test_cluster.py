"""Cluster batch jobs: Dask engine, ``--shard K/N`` job arrays, ``flowprep finalize``, GPU slots.

The three ways to run a build (local processes, Dask, independent shards) must give byte-identical
datasets, and workers or shards that die must lose nothing.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from flowprep.builder.api import build, job_settings
from flowprep.builder.config import BuildConfig
from flowprep.builder.folder import BuildFolder
from flowprep.builder.plan import make_plan
from flowprep.builder.shard import select_shard, shard_of
from flowprep.errors import ConfigError
from flowprep.layout.record import read_record
from helpers import build_args, few_lines, run_cli, run_flowprep, tree_bytes

CLASSES = ["walk", "run"]  # 12 clips of 8 frames: enough for 3 shards and 2 workers, fast


def config(release: Path, out: Path, **kw) -> BuildConfig:
    return BuildConfig(source=release, out=out, classes=CLASSES, flow="dis", progress=False, **kw)


@pytest.fixture(scope="module")
def reference(tiny_release, tmp_path_factory) -> dict[str, bytes]:
    """The local engine's dataset (2 processes): what Dask and shards must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "ds"
    s = build(config(tiny_release, out, jobs=2))
    assert s.ok and s.built == 12
    return tree_bytes(out)


@pytest.fixture(scope="module")
def dask_client():
    """A 2-worker LocalCluster on loopback. allowed-failures 0: a worker death turns straight into
    KilledWorker, so the engine's own bounded retry loop is what recovers the clip."""
    dask = pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = distributed.LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, host="127.0.0.1"
        )
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


def _killer_plugin(marker_dir: str, only: str | None, once: bool):
    """A worker plugin that kills its worker process (``os._exit``) when a clip task starts.

    ``once``: only the first clip task of the whole cluster (a marker created with O_EXCL decides);
    otherwise every task whose clip id is ``only``. Each kill leaves a file in ``marker_dir``.
    """
    from distributed import WorkerPlugin

    class Killer(WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            if finish != "executing" or not str(key).startswith("flowprep-clip-"):
                return
            if only is not None and not str(key).endswith(only):
                return
            name = "kill-once" if once else f"kill-{time.time_ns()}"
            try:
                os.close(os.open(os.path.join(marker_dir, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return
            os._exit(1)

    return Killer()


@pytest.mark.slow
def test_dask_builds_the_same_bytes_as_local(tiny_release, tmp_path, reference, dask_client):
    out = tmp_path / "dask"
    s = build(config(tiny_release, out, engine="dask", scheduler=dask_client.scheduler.address))
    assert s.ok and s.built == 12 and s.record_written
    assert tree_bytes(out) == reference
    assert run_cli("verify", out).exit_code == 0
    # Re-running on Dask is a no-op; scheduler=None takes this process's current client.
    s2 = build(config(tiny_release, out, engine="dask"))
    assert s2.existing == 12 and s2.built == 0
    assert tree_bytes(out) == reference


@pytest.mark.slow
def test_dask_packed_build_equals_the_local_one(tiny_release, tmp_path, dask_client):
    """--pack on Dask: workers commit staged clips, the client packs them: the local build's bytes."""
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert build(config(tiny_release, local, jobs=2, pack="webdataset", shard_size=150_000)).ok
    s = build(
        config(
            tiny_release,
            remote,
            engine="dask",
            scheduler=dask_client.scheduler.address,
            pack="webdataset",
            shard_size=150_000,
        )
    )
    assert s.ok and s.built == 12 and s.record_written and s.shards_written
    assert tree_bytes(remote) == tree_bytes(local)
    assert run_cli("verify", remote).exit_code == 0


def test_dask_worker_killed_mid_build_loses_nothing(tiny_release, tmp_path, reference, dask_client, caplog):
    marks = tmp_path / "marks"
    marks.mkdir()
    dask_client.register_plugin(_killer_plugin(str(marks), None, once=True), name="killer-once")
    try:
        out = tmp_path / "killed"
        with caplog.at_level(logging.WARNING, logger="flowprep.builder.dask_engine"):
            s = build(config(tiny_release, out, engine="dask", scheduler=dask_client.scheduler.address))
    finally:
        dask_client.unregister_worker_plugin("killer-once")
    assert (marks / "kill-once").exists(), "no worker was killed: the test did not test anything"
    assert any("KilledWorker" in r.getMessage() and "retry 1" in r.getMessage() for r in caplog.records)
    assert s.ok and s.built + s.existing == 12
    assert tree_bytes(out) == reference
    assert not (out / ".flowprep-tmp").exists()


def test_dask_clip_that_keeps_killing_workers_is_reported_failed(tiny_release, tmp_path, dask_client):
    from flowprep.builder.dask_engine import run_dask

    out = tmp_path / "bad"
    cfg = config(tiny_release, out.resolve())
    out.mkdir()
    plan = make_plan(cfg, BuildFolder(cfg.out))
    job = plan.jobs[0]
    marks = tmp_path / "marks"
    marks.mkdir()
    dask_client.register_plugin(_killer_plugin(str(marks), job.id, once=False), name="killer-clip")
    try:
        results = list(
            run_dask(
                [job], job_settings(cfg, {"name": "dis", "params": {}}), dask_client.scheduler.address, max_retries=1
            )
        )
    finally:
        dask_client.unregister_worker_plugin("killer-clip")
    assert len(results) == 1 and results[0].status == "failed"
    assert "died on each of 2 attempt(s)" in results[0].error
    assert len(list(marks.iterdir())) == 2  # bounded: 1 try + 1 retry, not forever
    assert not any(out.rglob("rgb"))  # nothing that looks finished


def test_dask_without_scheduler_or_client_is_a_clear_error(monkeypatch):
    import distributed

    from flowprep.builder.dask_engine import connect

    def none(*a, **k):
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed.Client, "current", none)
    with pytest.raises(ConfigError, match="--scheduler"):
        connect(None)


def _shard_cmd(release: Path, out: Path, k: int, n: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "flowprep",
        "build",
        str(release),
        "--out",
        str(out),
        "--classes",
        ",".join(CLASSES),
        "--flow",
        "dis",
        "-j",
        "1",
        "--no-progress",
        "--shard",
        f"{k}/{n}",
    ]


@pytest.mark.slow
def test_cli_against_a_separate_dask_scheduler(tiny_release, tmp_path, reference):
    """The documented way: a scheduler and workers started apart, and `flowprep build --engine dask
    --scheduler ADDR` in its own process (no Client of its own making is the default there)."""
    pytest.importorskip("distributed")
    sched_file = tmp_path / "scheduler.json"
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                ":0",
                "--scheduler-file",
                str(sched_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    ]
    try:
        deadline = time.time() + 60
        while not sched_file.is_file() and time.time() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--no-dashboard",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        )
        out = tmp_path / "cli-dask"
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "flowprep",
                "build",
                str(tiny_release),
                "--out",
                str(out),
                "--classes",
                ",".join(CLASSES),
                "--flow",
                "dis",
                "--engine",
                "dask",
                "--scheduler",
                address,
                "--no-progress",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        assert tree_bytes(out) == reference
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_three_shard_processes_equal_one_build(tiny_release, tmp_path, reference):
    out = tmp_path / "sharded"
    # All three start at once on one empty folder, as a job array does.
    procs = [
        subprocess.Popen(
            _shard_cmd(tiny_release, out, k, 3), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for k in (1, 2, 3)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert any("dataset:" in o for o in outputs)  # the last to finish wrote the record
    assert tree_bytes(out) == reference
    v = run_cli("verify", out)
    assert v.exit_code == 0, v.output
    reports = sorted(p.name for p in (out / ".flowprep" / "reports").iterdir())
    assert reports == [f"shard-{k}-of-3.json" for k in (1, 2, 3)]


def test_missing_shard_is_named_then_finalize_completes(tiny_release, tmp_path, reference):
    out = tmp_path / "partial"
    for k in (1, 3):
        s = build(config(tiny_release, out, jobs=1, shard=(k, 3)))
        assert s.ok and not s.record_written and s.pending > 0
    assert not (out / "flowprep.json").exists()
    missing = {j.id for j in select_shard(make_plan(config(tiny_release, out), BuildFolder(out)).jobs, 2, 3)}
    for cmd in ("verify", "finalize"):
        r = run_cli(cmd, out)
        assert r.exit_code == 1, r.output
        assert f"{len(missing)} of 12 clip(s) not finished" in r.output
        assert all(f"{cid} [shard 2/3]: not built" in r.output for cid in missing)
        assert "re-run shard(s) 2/3" in r.output
    assert not (out / "flowprep.json").exists()
    # The missing part arrives: it is the last, so it writes the record.
    s = build(config(tiny_release, out, jobs=1, shard=(2, 3)))
    assert s.record_written and s.pending == 0
    assert tree_bytes(out) == reference
    # finalize again, twice at once from two processes: same bytes (idempotent, atomic writes).
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "flowprep", "finalize", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "record written: 12 of 12" in outs[0]
    assert tree_bytes(out) == reference


def test_finalize_allow_missing_records_failures(tiny_release, tmp_path):
    out = tmp_path / "allow"
    build(config(tiny_release, out, jobs=1, shard=(1, 2)))
    r = run_cli("finalize", out, "--allow-missing")
    assert r.exit_code == 1 and "record written: 6 of 12" in r.output
    rec = read_record(out)
    assert sum(c.status == "failed" for c in rec.clips) == 6
    v = run_cli("verify", out)
    assert v.exit_code == 1 and "failed at build time: not built" in v.output
    r = run_cli("finalize", tmp_path)
    assert r.exit_code == 1 and "no build state" in r.output


def test_finalize_uses_stored_state_and_checks_the_source(tiny_release, tmp_path, release_copy):
    out = tmp_path / "moved"
    build(config(tiny_release, out, jobs=1, shard=(1, 1)))
    state = json.loads((out / ".flowprep" / "build.json").read_text())
    assert state["config"]["source"] == str(tiny_release.resolve()) and state["flow"]["name"] == "dis"
    # The release mounted elsewhere on the finalizing node: --source.
    mounted = tmp_path / "mnt" / tiny_release.name
    mounted.parent.mkdir()
    release_copy.rename(mounted)
    r = run_cli("finalize", out, "--source", mounted)
    assert r.exit_code == 0, r.output
    r = run_cli("finalize", out, "--source", tmp_path / "nowhere")
    assert r.exit_code == 1 and "not reachable" in r.output
    other = tmp_path / "mnt" / "other"
    mounted.rename(other)
    r = run_cli("finalize", out, "--source", other)
    assert r.exit_code == 1 and "is not the release" in r.output


def test_shard_assignment_is_balanced_and_stable():
    rng = random.Random(3)
    ids = [f"{rng.choice(['train', 'val'])}/c{rng.randrange(50)}/v{i}_{rng.random():.6f}" for i in range(1001)]
    for n in (1, 2, 3, 7, 64):
        owner = shard_of(ids, n)
        sizes = [sum(1 for v in owner.values() if v == k) for k in range(1, n + 1)]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == len(ids)
        shuffled = ids[:]
        rng.shuffle(shuffled)
        assert shard_of(shuffled, n) == owner

    class J:
        def __init__(self, i):
            self.id = i

    jobs = [J(i) for i in ids]
    parts = [{j.id for j in select_shard(jobs, k, 5)} for k in range(1, 6)]
    assert set().union(*parts) == set(ids) and sum(map(len, parts)) == len(ids)
    assert {j.id for j in select_shard(jobs[::-1], 2, 5)} == parts[1]


def _claim(scope: str, root: str):
    from flowprep.builder.workers import worker_slot

    slot = worker_slot(scope, Path(root))
    time.sleep(0.3)  # hold it while the other worker claims
    return os.getpid(), slot, worker_slot(scope, Path(root))


def test_local_workers_get_distinct_slots(tmp_path):
    from joblib import Parallel, delayed

    from flowprep.builder.workers import worker_slot

    got = Parallel(n_jobs=2, backend="loky")(delayed(_claim)("scope-a", str(tmp_path)) for _ in range(4))
    by_pid = {}
    for pid, slot, again in got:
        assert slot == again
        assert by_pid.setdefault(pid, slot) == slot
    assert sorted(set(by_pid.values())) == [0, 1] and len(by_pid) == 2
    # A dead process's slot is free again (the kernel drops its flock).
    code = f"from flowprep.builder.workers import worker_slot; print(worker_slot('scope-b', {str(tmp_path)!r}))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "0"
    assert worker_slot("scope-b", tmp_path) == 0


def test_worker_gpu_choice(monkeypatch):
    from flowprep.builder import workers as cluster

    monkeypatch.setattr(cluster, "worker_slot", lambda scope, root=None: {"w0": 0, "w1": 1}[scope])
    # --gpus: round robin over the list by slot
    assert [cluster.worker_gpu((2, 3), s) for s in ("w0", "w1")] == [2, 3]
    assert cluster.worker_gpu((5,), "no-slot-needed") == 5

    # dask-cuda gives each worker the same devices rotated ("0,1" and "1,0"): slot k must still mean
    # one physical device, so slot 0 -> physical 0 and slot 1 -> physical 1, whatever the order.
    def physical(visible: str, scope: str) -> int:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
        return int(visible.split(",")[cluster.worker_gpu(None, scope)])

    assert [physical("0,1", "w0"), physical("1,0", "w1")] == [0, 1]
    assert [physical("1,0", "w0"), physical("0,1", "w1")] == [0, 1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    assert cluster.worker_gpu(None, "w1") == 0  # one device (a Slurm step per worker): its ordinal 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert cluster.worker_gpu(None, "w0") is None


def test_cpu_backends_ignore_gpus(tiny_release, tmp_path):
    from flowprep.builder.job import JobSettings, _backend

    backend = _backend(
        JobSettings(
            out=str(tmp_path),
            layout="tao",
            rgb=True,
            flow=True,
            flow_name="dis",
            flow_params={},
            encoding={},
            gpus=(0, 1),
        )
    )
    assert type(backend).__name__ == "DISBackend"
    r = run_cli(
        "build",
        tiny_release,
        "--out",
        tmp_path / "o",
        "--classes",
        "push",
        "--flow",
        "dis",
        "--gpus",
        "0,1",
        "-j",
        "2",
        "--no-progress",
    )
    assert r.exit_code == 0, r.output
    assert "gpu" not in read_record(tmp_path / "o").flow.params


def test_gpu_backend_gets_this_workers_gpu(monkeypatch, tmp_path):
    from flowprep.builder import job

    made = []
    monkeypatch.setattr(job, "create_backend", lambda name, **params: made.append((name, params)) or object())
    monkeypatch.setattr(job, "_BACKENDS", {})
    scope = f"test-{os.getpid()}-{time.time_ns()}"
    settings = job.JobSettings(
        out=str(tmp_path),
        layout="tao",
        rgb=True,
        flow=True,
        flow_name="nvof",
        flow_params={"preset": "fast"},
        encoding={},
        gpus=(2, 3),
        slot_scope=scope,
    )
    job._backend(settings)
    job._backend(settings)  # one backend per process
    assert made == [("nvof", {"preset": "fast", "gpu": 2})]  # slot 0 of a fresh scope -> first listed GPU


def test_scheduler_address_and_timeout(walk_release, tmp_path):
    pytest.importorskip("distributed")
    args = build_args(walk_release, tmp_path / "out", "--engine", "dask")
    r = run_flowprep(*args, "--scheduler", "not an address")
    assert r.returncode == 2 and "--scheduler" in r.stderr
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        addr = f"tcp://127.0.0.1:{server.server_address[1]}"
        r = run_flowprep(*args, "--scheduler", addr, "--scheduler-timeout", "2", timeout=60)
    finally:
        server.shutdown()
    assert r.returncode == 1 and few_lines(r, 2) and "Dask scheduler" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
