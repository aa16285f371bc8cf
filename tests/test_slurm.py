"""The Slurm recipes on a real (single-node) Slurm: ``examples/slurm_array.sh`` and
``examples/dask_slurm.py`` must build the same bytes as a local ``flowprep build``, also when an
array task is cancelled while it runs and then re-submitted.

``tests/slurm/single_node_slurm.sh`` starts a throwaway munged + slurmctld + slurmd for the session
(root only; it installs Debian's slurm-wlm and munge when missing) and stops them by PID at the end.
The jobs run this checkout: PYTHONPATH and PATH are in the environment sbatch exports to them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from flowprep.archive.rar4 import make_hmdb51_rars
from flowprep.builder.shard import shard_of
from flowprep.synth import DEMO_CLASSES, make_release_folder
from helpers import tree_bytes, unavailable

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SLURM_UP = ROOT / "tests" / "slurm" / "single_node_slurm.sh"
GATED_FLOWPREP = ROOT / "tests" / "slurm" / "gated_flowprep.sh"
SKIP = 77  # single_node_slurm.sh: this machine cannot run Slurm
CLASSES = "push,fall_floor,walk,run,ride_bike"  # HMDB5: the release's other two classes stay packed
N_CLIPS = 20  # 5 classes x 2 sources x 2 clips
JOB_TIMEOUT = 240.0  # seconds; a job normally ends in a few


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A running single-node Slurm; yields the environment for its commands and jobs."""
    if os.geteuid() != 0:
        unavailable("a single-node Slurm needs root (slurmd runs jobs as their user)")
    folder = tmp_path_factory.mktemp("slurm")
    try:
        up = subprocess.run(["bash", str(SLURM_UP), "up", str(folder)], capture_output=True, text=True, timeout=500)
        if up.returncode == SKIP:
            unavailable(up.stderr.strip())
        logs = "".join(p.read_text(errors="replace")[-3000:] for p in sorted((folder / "log").glob("*.log")))
        assert up.returncode == 0, f"single-node Slurm did not start: {up.stderr}\n{logs}"
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        yield dict(
            os.environ,
            SLURM_CONF=str(folder / "slurm.conf"),
            PATH=path,
            PYTHONPATH=pythonpath,
            FLOWPREP_PYTHON=sys.executable,
            FLOWPREP=str(GATED_FLOWPREP),
        )
    finally:
        if (folder / "slurm.conf").exists():  # up got as far as writing its config: stop what it started
            down = subprocess.run(
                ["bash", str(SLURM_UP), "down", str(folder)], capture_output=True, text=True, timeout=300
            )
            assert down.returncode == 0, f"single-node Slurm did not stop: {down.stderr}"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A demo-like release: ``hmdb51_org.rar`` of per-class RARs, 7 classes x 4 clips of 8 frames."""
    root = tmp_path_factory.mktemp("slurm-release")
    make_release_folder(
        root / "unpacked", DEMO_CLASSES, sources_per_class=2, clips_per_source=2, frames=8, height=48, width=64, seed=12
    )
    outer, _ = make_hmdb51_rars(root / "unpacked", root)
    return outer


def _build_args(release: Path, out: Path) -> list[str]:
    return ["build", str(release), "--out", str(out), "--classes", CLASSES, "--flow", "dis", "--no-progress"]


@pytest.fixture(scope="module")
def reference(release, tmp_path_factory) -> tuple[dict[str, bytes], list[str]]:
    """The local build the cluster runs must reproduce: its files and its clip ids."""
    out = tmp_path_factory.mktemp("slurm-ref") / "ds"
    r = subprocess.run(
        [sys.executable, "-m", "flowprep", *_build_args(release, out), "-j", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    clips = [c["id"] for c in json.loads((out / "flowprep.json").read_text())["clips"]]
    assert len(clips) == N_CLIPS
    return tree_bytes(out), clips


def submit_array(env: dict[str, str], release: Path, out: Path, tasks: str | None = None) -> tuple[str, str]:
    """Run examples/slurm_array.sh with 3 tasks of 1 CPU; return (array job id, finalize job id)."""
    extra = {"FLOW": "dis", "CPUS_PER_TASK": "1", "MEM_PER_CPU": "500M", "EXTRA": f"--classes {CLASSES}"}
    if tasks:
        extra["TASKS"] = tasks
    r = subprocess.run(
        ["bash", str(ROOT / "examples" / "slurm_array.sh"), str(release), str(out), "3"],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    build_id = re.search(r"submitted build array (\d+)", r.stdout)
    final_id = re.search(r"submitted finalize \+ verify job (\d+)", r.stdout)
    assert build_id and final_id, r.stdout
    return build_id.group(1), final_id.group(1)


def job_states(env: dict[str, str], job_id: str) -> dict[str, tuple[str, str]]:
    """``scontrol`` view of a job (every task of an array): task id or job id -> (state, exit code)."""
    r = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    states = {}
    for line in r.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        states[fields.get("ArrayTaskId", fields["JobId"])] = (fields["JobState"], fields["ExitCode"])
    return states


def wait_until(check: Callable[[], object], what: str, timeout: float = JOB_TIMEOUT) -> object:
    """Poll ``check()`` until it returns something true (a deadline against hangs, not a timing test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_done(env: dict[str, str], *job_ids: str) -> None:
    def gone() -> bool:
        r = subprocess.run(
            ["squeue", "-h", "-o", "%i %T", "-j", ",".join(job_ids)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return r.returncode == 0 and not r.stdout.strip()

    wait_until(gone, f"Slurm jobs {', '.join(job_ids)} to end")


def test_slurm_array_equals_local_build(slurm, release, reference, tmp_path):
    # sbatch --wrap runs /bin/sh: a quote and a space must survive it; --output reads % as a pattern
    out = tmp_path / "it's a 100%x ds"
    build_id, final_id = submit_array(slurm, release, out)
    wait_done(slurm, build_id, final_id)
    assert job_states(slurm, build_id) == {k: ("COMPLETED", "0:0") for k in ("1", "2", "3")}
    assert job_states(slurm, final_id) == {final_id: ("COMPLETED", "0:0")}
    log = (tmp_path / "it's a 100%x ds.logs" / f"finalize-{final_id}.log").read_text()
    assert f"record written: {N_CLIPS} of {N_CLIPS} clip(s) finished" in log
    assert log.rstrip().endswith("ok"), log  # flowprep verify
    assert tree_bytes(out) == reference[0]
    reports = sorted(p.name for p in (out / ".flowprep" / "reports").iterdir())
    assert reports == [f"shard-{k}-of-3.json" for k in (1, 2, 3)]


def test_cancelled_array_task_is_named_then_resubmitted(slurm, release, reference, tmp_path):
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**slurm, "GATE_TASK": "2", "GATE_DIR": str(gate)}
    out = tmp_path / "ds"
    build_id, final_id = submit_array(env, release, out)
    # Task 2 has committed one clip and holds the next one's commit (tests/slurm/gate): cancel it there.
    wait_until(lambda: (gate / "running-2").exists(), "array task 2 to reach its second clip")
    assert job_states(slurm, build_id)["2"][0] == "RUNNING"
    subprocess.run(["scancel", f"{build_id}_2"], env=slurm, check=True, timeout=30)
    wait_done(slurm, build_id, final_id)
    states = job_states(slurm, build_id)
    assert states["2"][0] == "CANCELLED" and states["1"][0] == states["3"][0] == "COMPLETED", states
    # scancel's SIGTERM reached flowprep mid-clip: it removed that clip's temporary folder and said so.
    log = (tmp_path / "ds.logs" / f"build-{build_id}_2.log").read_text()
    assert "CANCELLED" in log and "interrupted; re-run the same command to resume" in log, log
    assert not any((out / ".flowprep-tmp").iterdir())
    shard2 = {cid for cid, k in shard_of(reference[1], 3).items() if k == 2}
    missing = sorted(cid for cid in reference[1] if not (out / cid).is_dir())
    assert set(missing) < shard2 and len(missing) == len(shard2) - 1  # one clip of shard 2 got done
    # afterany: the finalize job ran anyway, and failed naming what is missing, as does finalize here.
    assert job_states(slurm, final_id)[final_id] == ("FAILED", "1:0")
    log = (tmp_path / "ds.logs" / f"finalize-{final_id}.log").read_text()
    r = subprocess.run(
        [sys.executable, "-m", "flowprep", "finalize", str(out)], env=slurm, capture_output=True, text=True, timeout=120
    )
    for text in (log, r.stderr):
        assert f"{len(missing)} of {N_CLIPS} clip(s) not finished" in text, text
        assert all(f"{cid} [shard 2/3]: not built" in text for cid in missing), text
        assert "re-run shard(s) 2/3" in text
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert not (out / "flowprep.json").exists()
    # Re-submit only the cancelled task (no gate this time): it completes the dataset.
    build_id, final_id = submit_array(slurm, release, out, tasks="2")
    wait_done(slurm, build_id, final_id)
    assert job_states(slurm, build_id) == {"2": ("COMPLETED", "0:0")}
    assert job_states(slurm, final_id) == {final_id: ("COMPLETED", "0:0")}
    log = (tmp_path / "ds.logs" / f"build-{build_id}_2.log").read_text()
    assert f"{len(missing)} clip(s) built, 1 already done, 0 failed" in log, log
    assert tree_bytes(out) == reference[0]
    assert not (out / ".flowprep-tmp").exists()


def test_dask_slurm_example_equals_local_build(slurm, release, reference, tmp_path):
    pytest.importorskip("dask_jobqueue", reason="examples/dask_slurm.py needs dask-jobqueue (flowprep[cluster])")
    out = tmp_path / "ds"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "dask_slurm.py"),
            str(release),
            str(out),
            "--classes",
            CLASSES,
            "--flow",
            "dis",
            "--jobs",
            "2",
            "--cores",
            "1",
            "--memory",
            "1GB",
            "--walltime",
            "00:10:00",
        ],
        env=slurm,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{N_CLIPS} built" in r.stdout, r.stdout
    assert "#SBATCH" in r.stdout  # the worker job script it submitted
    assert tree_bytes(out) == reference[0]
    # The workers ran as Slurm jobs (their logs), and closing the cluster cancelled them.
    assert list((tmp_path / "ds.dask-logs").glob("*.err")), "no worker job wrote a log"
    wait_until(
        lambda: (
            not subprocess.run(
                ["squeue", "-h", "-n", "dask-worker"], env=slurm, capture_output=True, text=True, timeout=30
            ).stdout.strip()
        ),
        "the worker jobs to end",
    )


def test_make_test_fast_leaves_out_the_slow_tests():
    # the target was once only declared .PHONY: `make test-fast` then did nothing and said so quietly
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on PATH")
    r = subprocess.run([make, "-n", "test-fast"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0 and '-m "not slow"' in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("n", ["0", "abc", "-3"])
def test_array_script_refuses_a_bad_task_count(n, tmp_path):
    # checked before anything is submitted or created (sbatch would get --array=1-0)
    r = subprocess.run(
        ["bash", str(ROOT / "examples" / "slurm_array.sh"), str(tmp_path), str(tmp_path / "out"), n],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "N_TASKS must be a whole number" in r.stderr, r.stderr
    assert not (tmp_path / "out.logs").exists()
