"""Helpers shared by several test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest
from click.testing import CliRunner

#: the worktree root: subprocesses run this checkout's flowprep (PYTHONPATH)
ROOT = Path(__file__).resolve().parents[1]
#: run-specific files a byte-for-byte comparison of two builds leaves out (timings, absolute paths)
IGNORED = {"build_report.json", "tao_dataset_spec.yaml"}


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a dataset except run-specific ones and the build state, by relative path."""
    out = {}
    for dirpath, _, files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] in (".flowprep", ".flowprep-tmp"):
            continue
        for f in files:
            rel = os.path.normpath(os.path.join(rel_dir, f))
            if rel not in IGNORED:
                out[rel] = Path(dirpath, f).read_bytes()
    return out


def run_cli(*args):
    """Invoke ``flowprep`` in-process; exceptions other than exits propagate (so tracebacks fail tests)."""
    from flowprep.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose tool is missing here, but fail it in CI (CI=true), which installs every tool
    (.ci/run): there a missing browser, Slurm or stand-in driver must not pass quietly as a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"CI should have this: {reason}")
    pytest.skip(reason)


#: values that break readers that trust their input: wrong types, huge and non-finite numbers,
#: unusable names, deep and empty containers (for the record readers' randomised tests)
ADVERSARIAL: list[object] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    -(2**63) - 1,
    10**30,
    1.5,
    float("nan"),
    float("inf"),
    -0.0,
    "",
    "x",
    "..",
    "a;b",
    "a,b",
    "le\nft",
    "a b",
    "\udcff",
    "/etc",
    "x" * 300,
    [],
    [1, 2],
    ["a", "a"],
    {},
    {"a": 1},
    {"train": -1, "val": "x"},
    [[[[[]]]]],
]


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON-like ``obj``, the root ``()`` included."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def mutate(obj: object, rng, values: list[object] | None = None) -> object:
    """A deep copy of JSON-like ``obj`` with one random change: a value replaced by one of ``values``
    (default :data:`ADVERSARIAL`), a key deleted, or a list item repeated. ``rng``: ``random.Random``."""
    import copy

    obj = copy.deepcopy(obj)
    values = ADVERSARIAL if values is None else values
    path = rng.choice(_paths(obj))
    if not path:
        return copy.deepcopy(rng.choice(values))
    parent = obj
    for key in path[:-1]:
        parent = parent[key]  # type: ignore[index]
    key = path[-1]
    action = rng.random()
    if action < 0.15 and isinstance(parent, dict):
        del parent[key]
    elif action < 0.25 and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    else:
        parent[key] = copy.deepcopy(rng.choice(values))  # type: ignore[index]
    return obj


#: a UCF101-shaped class list, in classInd.txt's (case-insensitive) order, which Python's sorted()
#: does not give (JumpRope < JumpingJack there); HandstandPushups' clips are v_HandStandPushups_* as in UCF101
UCF_CLASSES = ("ApplyEyeMakeup", "HandstandPushups", "JumpingJack", "JumpRope")
UCF_FILE_ACTION = {"HandstandPushups": "HandStandPushups"}


def ucf_clip(cls: str, group: int, clip: int) -> str:
    """``v_<Action>_gNN_cNN.avi`` as UCF101 names its clips."""
    return f"v_{UCF_FILE_ACTION.get(cls, cls)}_g{group:02d}_c{clip:02d}.avi"


def make_ucf101_release(root: Path, groups: int = 4, clips_per_group: int = 2, frames: int = 5) -> dict[str, Path]:
    """A tiny UCF101-shaped release, packed as UCF101 ships it.

    Writes ``root/unpacked/UCF-101/<Class>/v_<Action>_gNN_cNN.avi`` (32x40 px, ``frames`` frames), the
    stored RAR ``root/UCF101.rar`` of it and ``root/UCF101TrainTestSplits-RecognitionTask.zip`` holding
    ``ucfTrainTestlist/classInd.txt``, ``trainlist0{1,2,3}.txt`` (``<Class>/<clip> <id>``) and
    ``testlist0{1,2,3}.txt`` (``<Class>/<clip>``) with CRLF lines: split k tests group k (and k+3, ...).

    Returns:
        ``{"folder": UCF-101 folder, "rar": ..., "zip": ..., "lists": folder of the unpacked lists}``.
    """
    import zipfile

    from flowprep.archive.rar4 import write_rar4_from_folder
    from flowprep.synth import moving_frames, write_video

    root = Path(root)
    top = root / "unpacked" / "UCF-101"
    for ci, cls in enumerate(UCF_CLASSES):
        (top / cls).mkdir(parents=True, exist_ok=True)
        for g in range(1, groups + 1):
            for c in range(1, clips_per_group + 1):
                vel = (1.0 + ci, 0.5 * g)
                write_video(
                    top / cls / ucf_clip(cls, g, c), moving_frames(frames, 32, 40, vel, seed=100 * ci + 10 * g + c)
                )
    rar = write_rar4_from_folder(root / "UCF101.rar", top, arc_prefix="UCF-101")
    texts = {"classInd.txt": "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1))}
    for k in (1, 2, 3):
        train, test = [], []
        for ci, cls in enumerate(UCF_CLASSES, 1):
            for g in range(1, groups + 1):
                for c in range(1, clips_per_group + 1):
                    path = f"{cls}/{ucf_clip(cls, g, c)}"
                    if g % 3 == k % 3:
                        test.append(f"{path}\r\n")
                    else:
                        train.append(f"{path} {ci}\r\n")
        texts[f"trainlist0{k}.txt"], texts[f"testlist0{k}.txt"] = "".join(train), "".join(test)
    lists = root / "unpacked" / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    zpath = root / "UCF101TrainTestSplits-RecognitionTask.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, text in texts.items():
            (lists / name).write_bytes(text.encode())
            zf.writestr(f"ucfTrainTestlist/{name}", text.encode())
    return {"folder": top, "rar": rar, "zip": zpath, "lists": lists}


# ---- hostile and unlucky input (the I/O safety tests) ---------------------------------------------


def invoke_checked(*args, code: int) -> str:
    """Run ``flowprep ARGS`` in-process; check the status, no traceback, a short stderr."""
    from flowprep.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) <= 4, res.stderr
    return res.output


def tree_names(folder: Path) -> set[str]:
    """Every path under ``folder``, relative."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def first_clip(ds: Path) -> Path:
    """The folder of the first clip in the record of dataset ``ds``."""
    from flowprep.layout.record import read_record

    return ds / read_record(ds).clips[0].id


def clip_bytes(seed: int = 0, frames: int = 6) -> bytes:
    """A small real mpeg4 AVI (``frames`` frames of 32x48), as bytes."""
    from flowprep.synth import moving_frames, write_video

    cache = Path(os.environ.get("TMPDIR", "/tmp")) / f"flowprep-test-clip-{seed}-{frames}-{os.getpid()}.avi"
    if not cache.is_file():
        write_video(cache, moving_frames(frames, 32, 48, (1.0, 0.5), seed))
    return cache.read_bytes()


def run_flowprep(*args: object, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess (this worktree's code) and check its stderr has no traceback."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    r = subprocess.run(
        [sys.executable, "-m", "flowprep", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    assert "Traceback" not in r.stderr, r.stderr
    return r


def few_lines(r: subprocess.CompletedProcess, n: int = 4) -> bool:
    """Whether ``r``'s stderr has at most ``n`` non-blank lines."""
    return len([x for x in r.stderr.splitlines() if x.strip()]) <= n


def snapshot_outside(parent: Path, out: Path) -> dict[str, bytes | None]:
    """Every path under ``parent`` outside ``out`` (files with their bytes, folders and links as None)."""
    found: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(parent):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != out]
        for name in dirnames + filenames:
            p = here / name
            found[str(p.relative_to(parent))] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return found


def build_args(src: Path, out: Path, *extra: object) -> list[object]:
    """``flowprep build`` of ``src`` into ``out`` with DIS flow, one job, split by clip."""
    return ["build", src, "--out", out, "--flow", "dis", "-j", "1", "--no-progress", "--split-by", "clip", *extra]


def json_values(st):
    """A Hypothesis strategy for any JSON-like value (None, bools, ints, floats incl. NaN/inf, short
    strings, and lists/dicts of them nested a few levels): what a hostile record file can hold.
    ``st`` is ``hypothesis.strategies`` (imported by the caller, which skips without Hypothesis)."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=20,
    )
