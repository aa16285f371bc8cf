"""Helpers shared by several test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest
from click.testing import CliRunner

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
