"""Hostile and unlucky input (issue 9): names that would escape the layout, deletions confined to what
flowprep wrote, bounded input. Every CLI case runs ``flowprep`` in a subprocess and checks its exit
status, that stderr has no traceback and at most a few lines, and that nothing next to ``--out``
was created, changed or removed."""

from __future__ import annotations

import errno
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from flowprep.errors import ConfigError
from flowprep.fsio import name_problem, remove_inside
from flowprep.layout.record import read_record
from flowprep.synth import moving_frames, write_video
from helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]


def clip_bytes(seed: int = 0, frames: int = 6) -> bytes:
    """A small real mpeg4 AVI (``frames`` frames of 32x48), as bytes."""
    cache = Path(os.environ.get("TMPDIR", "/tmp")) / f"flowprep-test-clip-{seed}-{frames}-{os.getpid()}.avi"
    if not cache.is_file():
        write_video(cache, moving_frames(frames, 32, 48, (1.0, 0.5), seed))
    return cache.read_bytes()


def flowprep(*args: object, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess (this worktree's code) and check its stderr is a few clean lines."""
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
    return len([x for x in r.stderr.splitlines() if x.strip()]) <= n


def snapshot(parent: Path, out: Path) -> dict[str, bytes | None]:
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
    return ["build", src, "--out", out, "--flow", "dis", "-j", "1", "--no-progress", "--split-by", "clip", *extra]


@pytest.fixture()
def walk_release(tmp_path) -> Path:
    """``rel/walk/`` with three small clips."""
    rel = tmp_path / "rel"
    (rel / "walk").mkdir(parents=True)
    for k in range(3):
        (rel / "walk" / f"w{k}.avi").write_bytes(clip_bytes(k))
    return rel


# --- the validator and the confined deletion ------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", ".", "..", "...", "a/b", "a\\b", "a\x00b", "tab\there", "x\x7f", "bad\udcff", "n" * 256]
)
def test_bad_names_are_refused(name):
    assert name_problem(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "walk",
        "Kiss_(1)_walk_f_cm_np1_fr_med_0",
        "#20_Rhythm_clap_u_nm_np1_fr_goo_0",
        "a&b!c'd",
        "v1.2.3",
        ".hidden",
        "ünïcode",
    ],
)
def test_hmdb_names_are_kept(name):
    assert name_problem(name) is None


def test_remove_inside_refuses_escapes(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "keep"
    (out / "train" / "c").mkdir(parents=True)
    outside.mkdir()
    (outside / "f").write_text("x")
    for rel in ("train/../..", "train/../../keep", "/etc", "labels.txt", "train/c/.."):
        with pytest.raises(ConfigError):
            remove_inside(out, rel, ("train",))
    (out / "val").symlink_to(outside)
    with pytest.raises(ConfigError, match="symlink"):
        remove_inside(out, "val/f", ("val",))
    (out / "train" / "c" / "link").symlink_to(outside)
    with pytest.raises(ConfigError, match="symlink"):
        remove_inside(out, "train/c/link", ("train",))
    assert (outside / "f").read_text() == "x"
    assert remove_inside(out, "train/c", ("train",)) and not (out / "train" / "c").exists()
    assert not remove_inside(out, "train/gone", ("train",))


# --- issue 9 defect 1: names made of dots ---------------------------------------------------------


def _dots_zip(path: Path, members: list[str]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for k, m in enumerate(members):
            zf.writestr(m, clip_bytes(k))


def test_dots_archive_class_is_refused_and_force_deletes_nothing(walk_release, tmp_path):
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "sibling.txt").write_text("keep me")
    out = datasets / "out"
    _dots_zip(walk_release / "...zip", ["x/...avi", "x/a.avi", "x/b.avi"])
    before = snapshot(tmp_path, out)
    r = flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r) and "'..'" in r.stderr and "class" in r.stderr, r.stderr
    assert not out.exists()  # refused before --out was touched
    _dots_zip(walk_release / "...zip", ["x/c.avi", "x/d.avi"])
    before = snapshot(tmp_path, out)
    r = flowprep(*build_args(walk_release, out, "--force"))
    assert r.returncode == 1 and few_lines(r), r.stderr
    assert snapshot(tmp_path, out) == before
    assert not any(p.is_file() for p in (out / "train").glob("*")) if (out / "train").exists() else True
    # The good class alone still builds.
    r = flowprep(*build_args(walk_release, out, "--classes", "walk", "--force"))
    assert r.returncode == 0, r.stderr
    assert snapshot(tmp_path, out) == before


@pytest.mark.parametrize("bad", ["..avi", "...avi"])
def test_dot_clip_names_are_skipped_and_listed(walk_release, tmp_path, bad):
    (walk_release / "walk" / bad).write_bytes(clip_bytes(5))
    out = tmp_path / "datasets" / "out"
    out.parent.mkdir()
    before = snapshot(tmp_path, out)
    r = flowprep(*build_args(walk_release, out))
    assert r.returncode == 0 and "skipping clip" in r.stderr and few_lines(r), r.stderr
    assert "1 clip(s) left out" in r.stdout
    rec = read_record(out)
    assert len(rec.clips) == 3 and any(bad in e and "skipped" in e for e in rec.excluded)
    for side in ("train", "val"):
        for cls in (out / side).iterdir():
            assert all(sorted(os.listdir(c)) == ["rgb", "u", "v"] for c in cls.iterdir())  # no stray frames
    assert snapshot(tmp_path, out) == before


def test_tampered_plan_cannot_delete_outside(walk_release, tmp_path):
    datasets = tmp_path / "datasets"
    out = datasets / "out"
    datasets.mkdir()
    (datasets / "sibling.txt").write_text("keep me")
    assert flowprep(*build_args(walk_release, out)).returncode == 0
    (out / ".flowprep" / "plan.json").write_text('{"clips": ["val/../..", "train/walk/w0"]}')
    before = snapshot(tmp_path, out)
    r = flowprep(*build_args(walk_release, out, "--force"))
    assert r.returncode == 1 and few_lines(r) and "refusing to remove" in r.stderr, r.stderr
    assert snapshot(tmp_path, out) == before


# --- issue 9 defect 2: ownership --------------------------------------------------------------------


def test_force_refuses_a_users_file(walk_release, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.txt").write_text("my labels")
    r = flowprep(*build_args(walk_release, out, "--force"))
    assert r.returncode == 1 and few_lines(r) and "labels.txt" in r.stderr, r.stderr
    assert (out / "labels.txt").read_text() == "my labels"
    assert sorted(os.listdir(out)) == ["labels.txt"]  # nothing left behind


def test_force_keeps_what_flowprep_did_not_write(walk_release, tmp_path):
    out = tmp_path / "out"
    (out / "mmaction2").mkdir(parents=True)
    (out / "mmaction2" / "mine.py").write_text("x = 1")
    (out / "rawframes").mkdir()
    (out / "notes.md").write_text("notes")
    assert flowprep(*build_args(walk_release, out, "--force")).returncode == 0  # TAO: writes neither
    r = flowprep(*build_args(walk_release, out, "--force", "--seed", "3"))
    assert r.returncode == 0, r.stderr
    assert (out / "mmaction2" / "mine.py").read_text() == "x = 1" and (out / "rawframes").is_dir()
    assert (out / "notes.md").read_text() == "notes"
    # An mmaction2 build would replace them: refused, naming the folder.
    r = flowprep(*build_args(walk_release, out, "--force", "--layout", "mmaction2"))
    assert r.returncode == 1 and few_lines(r) and "not written by flowprep" in r.stderr, r.stderr
    assert (out / "mmaction2" / "mine.py").is_file() and (out / "train").is_dir()


def test_force_with_symlinked_train_is_one_line(walk_release, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert flowprep(*build_args(walk_release, out)).returncode == 0
    os.rename(out / "train", elsewhere)
    (out / "train").symlink_to(elsewhere)
    r = flowprep(*build_args(walk_release, out, "--force", "--seed", "5"))
    assert r.returncode == 1 and few_lines(r) and "symlink" in r.stderr, r.stderr
    assert (elsewhere / "walk").is_dir()
    # checked before anything was removed: the previous build is whole, record and lists included
    assert read_record(out).counts and (out / "train_list.txt").is_file() and (out / "labels.txt").is_file()


def test_concurrent_build_is_told_the_folder_is_held(walk_release, tmp_path):
    out = tmp_path / "out"
    assert flowprep(*build_args(walk_release, out)).returncode == 0
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".flowprep" / "lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname()}))
        r = flowprep(*build_args(walk_release, out))
        assert r.returncode == 1 and few_lines(r) and "another build" in r.stderr, r.stderr
    finally:
        holder.kill()
        holder.wait()
    r = flowprep(*build_args(walk_release, out))  # the holder is gone: its lock is stale
    assert r.returncode == 0, r.stderr
    assert not (out / ".flowprep" / "lock").exists()


@pytest.mark.parametrize(
    "text", ["garbage", '{"pid": 99999999999999999999, "host": "H"}', '{"pid": -1, "host": "H"}', "[1]"]
)
def test_a_damaged_lock_is_one_line(walk_release, tmp_path, text):
    out = tmp_path / "out"
    assert flowprep(*build_args(walk_release, out)).returncode == 0
    (out / ".flowprep" / "lock").write_text(text.replace("H", socket.gethostname()))
    r = flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r, 1) and "names no build" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "name,text",
    [
        ("owned.json", "[]"),
        ("owned.json", "null"),
        ("config.json", '{"settings": 5}'),
        ("plan.json", '{"clips": [[1]]}'),
    ],
)
def test_a_damaged_state_file_is_one_line(walk_release, tmp_path, name, text):
    out = tmp_path / "out"
    assert flowprep(*build_args(walk_release, out)).returncode == 0
    (out / ".flowprep" / name).write_text(text)
    r = flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r, 1) and "cannot read" in r.stderr, r.stderr
    assert f"{out / '.flowprep' / name}: " in r.stderr and "damaged or edited by hand" in r.stderr, r.stderr
    assert (out / "train" / "walk").is_dir()
    r = flowprep(*build_args(walk_release, out, "--force", "--seed", "7"))  # plan.json: pruned, then rebuilt
    assert r.returncode == (0 if name == "plan.json" else 1) and few_lines(r, 2), r.stderr


def test_out_is_not_the_source_and_the_source_not_inside_out(walk_release, tmp_path):
    before = snapshot(tmp_path, tmp_path / "none")
    r = flowprep(*build_args(walk_release, walk_release, "--force"))
    assert r.returncode == 1 and few_lines(r, 1) and "is the source folder" in r.stderr, r.stderr
    assert snapshot(tmp_path, tmp_path / "none") == before
    out = tmp_path / "out"
    shutil.copytree(walk_release, out / "train" / "rel")
    before = snapshot(tmp_path, tmp_path / "none")
    r = flowprep(*build_args(out / "train" / "rel", out, "--force"))
    assert r.returncode == 1 and few_lines(r, 1) and "lies inside" in r.stderr, r.stderr
    assert snapshot(tmp_path, tmp_path / "none") == before


@pytest.mark.parametrize("own", [".flowprep", ".flowprep-tmp"])
def test_a_symlinked_state_or_tmp_folder_is_refused(walk_release, tmp_path, own):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    assert flowprep(*build_args(walk_release, out)).returncode == 0
    shutil.rmtree(out / "train" / "walk")
    if (out / own).exists():
        os.rename(out / own, elsewhere)
    else:
        elsewhere.mkdir()
    (out / own).symlink_to(elsewhere)
    before = snapshot(tmp_path, out)
    r = flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r, 1) and "is a symlink" in r.stderr, r.stderr
    assert snapshot(tmp_path, out) == before


def test_a_fifo_or_device_source_or_splits_is_one_line_and_touches_nothing(walk_release, tmp_path):
    fifo, out = tmp_path / "fifo.zip", tmp_path / "out"
    os.mkfifo(fifo)
    for args in ((fifo,), ("/dev/zero",), (walk_release, "--splits", "/dev/zero", "--official-split", "1")):
        r = flowprep(*build_args(args[0], out, *args[1:]), timeout=30)  # opening the FIFO used to block
        assert r.returncode == 1 and few_lines(r, 1) and "not a folder or a regular file" in r.stderr, r.stderr
        assert not out.exists()


@pytest.mark.parametrize("target", ["missing/x", "self"])
def test_a_dangling_or_looping_out_symlink_is_one_line(walk_release, tmp_path, target):
    out = tmp_path / "out"
    out.symlink_to(tmp_path / target if target != "self" else out)
    r = flowprep(*build_args(walk_release, out))
    assert r.returncode == 1 and few_lines(r, 1) and "symlink to nothing" in r.stderr, r.stderr
    assert not (tmp_path / "missing").exists()


def test_a_build_refused_while_planning_leaves_nothing(walk_release, tmp_path):
    splits, out = tmp_path / "splits.zip", tmp_path / "out"
    with zipfile.ZipFile(splits, "w") as z:
        z.writestr("run_test_split1.txt", "w0.avi 1\n")  # no entry for class walk
    r = flowprep(*build_args(walk_release, out, "--splits", splits, "--official-split", "1"))
    assert r.returncode == 1 and few_lines(r, 1) and "no entry for class 'walk'" in r.stderr, r.stderr
    assert not out.exists()
    with zipfile.ZipFile(splits, "w") as z:  # fixed: another size, so another source identity
        z.writestr("walk_test_split1.txt", "w0.avi 1\nw1.avi 2\nw2.avi 1\n")
    r = flowprep(*build_args(walk_release, out, "--splits", splits, "--official-split", "1"))
    assert r.returncode == 0, r.stderr  # not "holds a build made with other settings"


def test_names_of_the_longest_allowed_length_build(tmp_path):
    src, cls = tmp_path / "src", "c" * 255  # the longest name the validator accepts
    for folder, names in ((cls, ["a", "n" * 251]), ("run", ["a", "b"])):
        (src / folder).mkdir(parents=True)
        for k, name in enumerate(names):
            (src / folder / f"{name}.avi").write_bytes(clip_bytes(k))
    r = flowprep(*build_args(src, tmp_path / "out"))
    assert r.returncode == 0, r.stderr  # the temporary clip folder's name stays under 255 bytes
    assert (tmp_path / "out" / "train" / cls).is_dir() or (tmp_path / "out" / "val" / cls).is_dir()


def test_many_failed_clips_are_summed_up(tmp_path):
    src = tmp_path / "src"
    with zipfile.ZipFile(src.with_suffix(".zip"), "w") as z:
        z.writestr("walk/ok.avi", clip_bytes(0))
        for k in range(30):
            z.writestr(f"walk/bad{k:02d}.avi", b"not a video")
    r = flowprep(*build_args(src.with_suffix(".zip"), tmp_path / "out"))
    assert r.returncode == 1 and "30 clip(s) failed" in r.stderr and "and 10 more" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) <= 25
    failed = [c for c in read_record(tmp_path / "out").clips if c.status == "failed"]
    assert len(failed) == 30


# --- issue 9 defect 3: bounded input ----------------------------------------------------------------


def _zeros_zip(path: Path, member: str, size: int, method: int = zipfile.ZIP_DEFLATED) -> None:
    """A zip holding ``size`` zero bytes as ``member`` (written in chunks: the test stays small in RAM)."""
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", compression=method) as zf, zf.open(member, "w", force_zip64=True) as fh:
        for _ in range(size >> 20):
            fh.write(chunk)


def _run_limited(code: str, limit_bytes: int, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``code`` in a Python subprocess whose address space is capped at ``limit_bytes``."""
    pre = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))\n"
    return subprocess.run(
        [sys.executable, "-c", pre + code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_compressed_bomb_and_devices_are_refused_in_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.zip"
    _zeros_zip(bomb, "walk/big.avi", 256 << 20)  # 256 MiB of zeros in about 250 KB
    assert bomb.stat().st_size < 2 << 20
    code = f"""
from flowprep.archive import MemberRef, read_member
from flowprep.errors import ArchiveError
for ref in [MemberRef({str(bomb)!r}, "walk/big.avi", {256 << 20}), MemberRef(None, "/dev/zero", 0)]:
    try:
        read_member(ref)
    except ArchiveError as exc:
        print("refused:", exc)
"""
    r = _run_limited(code, 160 << 20)  # less than the member: reading it whole would die
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "ratio" in lines[0] and "not a regular file" in lines[1], r.stdout


def test_fifo_and_dev_zero_clips_are_skipped_without_hanging(walk_release, tmp_path):
    (walk_release / "walk" / "zero.avi").symlink_to("/dev/zero")
    os.mkfifo(walk_release / "walk" / "pipe.avi")
    out = tmp_path / "out"
    r = flowprep(*build_args(walk_release, out), timeout=120)
    assert r.returncode == 0 and r.stderr.count("not a regular file") == 2 and few_lines(r), r.stderr
    record = read_record(out)
    assert len(record.clips) == 3
    # skipped inputs are counted in the summary and listed in the record, as the guide asks
    assert list(record.excluded) == [
        "walk/pipe.avi (skipped: not a regular file)",
        "walk/zero.avi (skipped: not a regular file)",
    ]
    assert "(2 clip(s) left out: 0 marked unused (0) by the split files, 0 not listed in them, 2 skipped" in r.stdout


def test_a_preview_written_into_the_release_is_not_a_class(walk_release, tmp_path):
    assert flowprep(*build_args(walk_release, tmp_path / "ds")).returncode == 0
    r = flowprep("preview", tmp_path / "ds", "--out", walk_release / "preview", "--no-progress")
    assert r.returncode == 0 and (walk_release / "preview" / "media" / "c0000.mp4").is_file(), r.stderr
    r = flowprep(*build_args(walk_release, tmp_path / "ds2"))
    assert r.returncode == 0 and "a folder flowprep wrote" in r.stderr, r.stderr
    assert list(read_record(tmp_path / "ds2").classes) == ["walk"]  # not also "media"


def test_clip_size_limit(walk_release, tmp_path):
    r = flowprep(*build_args(walk_release, tmp_path / "out", "--max-clip-bytes", "1000"))
    assert r.returncode == 1 and "over the per-clip limit of 1000" in r.stderr and few_lines(r, 6), r.stderr
    r = flowprep(*build_args(walk_release, tmp_path / "o2", "--max-clip-bytes", "0"))
    assert r.returncode == 2


def test_inner_archive_bomb_is_refused_before_unpacking(tmp_path):
    inner = tmp_path / "walk.zip"
    _zeros_zip(inner, "walk/a.avi", 40 << 20, zipfile.ZIP_STORED)  # stored: the outer zip squeezes it
    outer = tmp_path / "release.zip"
    with zipfile.ZipFile(outer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(inner, "walk.zip")
    inner.unlink()
    assert outer.stat().st_size < 1 << 20
    out = tmp_path / "out"
    r = flowprep(*build_args(outer, out))
    assert r.returncode == 1 and few_lines(r, 2) and "ratio" in r.stderr, r.stderr
    assert not list((out / ".flowprep").rglob("*.zip")) if out.exists() else True


def test_two_archives_for_one_class_are_ambiguous(walk_release, tmp_path):
    rel = tmp_path / "arch"
    rel.mkdir()
    for name in ("walk.zip", "walk.tar"):
        shutil.make_archive(str(rel / name.split(".")[0]) + "-tmp", name.split(".")[1], walk_release)
        os.rename(next(rel.glob("*-tmp.*")), rel / name)
    r = flowprep(*build_args(rel, tmp_path / "out"))
    assert r.returncode == 1 and few_lines(r, 2) and "two per-class archives" in r.stderr, r.stderr


def test_scheduler_address_and_timeout(walk_release, tmp_path):
    pytest.importorskip("distributed")
    args = build_args(walk_release, tmp_path / "out", "--engine", "dask")
    r = flowprep(*args, "--scheduler", "not an address")
    assert r.returncode == 2 and "--scheduler" in r.stderr
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        addr = f"tcp://127.0.0.1:{server.server_address[1]}"
        r = flowprep(*args, "--scheduler", addr, "--scheduler-timeout", "2", timeout=60)
    finally:
        server.shutdown()
    assert r.returncode == 1 and few_lines(r, 2) and "Dask scheduler" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


# --- worker processes: one dies, or the main process dies ---------------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture()
def slow_release(tmp_path) -> Path:
    rel = tmp_path / "slow"
    (rel / "walk").mkdir(parents=True)
    data = b""
    for k in range(8):
        path = rel / "walk" / f"s{k}.avi"
        if not data:
            write_video(path, moving_frames(40, 96, 128, (1.0, 0.5), k))
            data = path.read_bytes()
        path.write_bytes(data)
    return rel


def _start(slow_release: Path, out: Path) -> subprocess.Popen:
    """A 2-worker TV-L1 build; returns it and its worker processes once they are busy."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowprep",
            "build",
            str(slow_release),
            "--out",
            str(out),
            "--flow",
            "tvl1",
            "-j",
            "2",
            "--no-progress",
            "--split-by",
            "clip",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        tmp = out / ".flowprep-tmp"
        if tmp.is_dir() and len(os.listdir(tmp)) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the build finished before the test could act; make the input bigger"
    return proc


def _worker_pids(main: int) -> list[int]:
    """Processes under ``main`` that run clips (loky workers), found by their command line."""
    out = []
    for pid in _children(main):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"loky" in cmd and b"resource_tracker" not in cmd:
            out.append(pid)
    return out


def test_a_killed_worker_is_one_line_naming_the_clip(slow_release, tmp_path):
    proc = _start(slow_release, tmp_path / "out")
    workers = _worker_pids(proc.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert "worker process died" in err and "walk/s" in err and "rerun" in err and len(err.strip().splitlines()) <= 3


def test_workers_exit_soon_after_the_main_process_is_killed(slow_release, tmp_path):
    proc = _start(slow_release, tmp_path / "out")
    workers = _worker_pids(proc.pid)
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)


def test_symlinked_class_folder_is_followed_and_loops_end(walk_release, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "run"
    elsewhere.mkdir(parents=True)
    for k in range(2):
        (elsewhere / f"r{k}.avi").write_bytes(clip_bytes(k))
    (walk_release / "run").symlink_to(elsewhere)
    (walk_release / "loop").symlink_to(walk_release)
    (walk_release / "walk" / "everything").symlink_to("/")  # never walked
    r = flowprep(*build_args(walk_release, tmp_path / "out"), timeout=120)
    assert r.returncode == 0 and "symlink loop" in r.stderr and few_lines(r), r.stderr
    assert "a symlinked folder inside a class folder" in r.stderr
    assert list(read_record(tmp_path / "out").classes) == ["run", "walk"]


def test_frames_lost_to_decode_errors_are_recorded_and_warned(tmp_path):
    rel = tmp_path / "rel"
    (rel / "walk").mkdir(parents=True)
    write_video(rel / "walk" / "good.avi", moving_frames(20, 64, 80, (1.0, 0.5), 3))
    data = bytearray((rel / "walk" / "good.avi").read_bytes())
    data[5500:5800] = bytes(300)  # zeros inside one frame's data: FFmpeg drops it without an error
    (rel / "walk" / "bad.avi").write_bytes(bytes(data))
    out = tmp_path / "out"
    r = flowprep(*build_args(rel, out))
    assert r.returncode == 0 and "decode_errors" in r.stderr and few_lines(r), r.stderr
    clips = {c.name: c for c in read_record(out).clips}
    assert clips["bad"].decode_errors == 20 - clips["bad"].frames > 0
    assert "decode_errors" not in clips["good"].to_dict()
    # A resumed build (nothing left to do) writes the same record: the note lives in .flowprep/.
    before = (out / "flowprep.json").read_bytes()
    assert flowprep(*build_args(rel, out)).returncode == 0
    assert (out / "flowprep.json").read_bytes() == before


def test_non_utf8_names_folder_and_tar(walk_release, tmp_path):
    bad = os.fsdecode(b"bad\xffname.avi")
    (walk_release / "walk" / bad).write_bytes(clip_bytes(7))
    tar = tmp_path / "rel.tar"
    subprocess.run(["tar", "cf", str(tar), "-C", str(walk_release), "."], check=True)
    for src, out in ((walk_release, tmp_path / "o1"), (tar, tmp_path / "o2")):
        r = flowprep(*build_args(src, out))
        assert r.returncode == 0 and "not valid UTF-8" in r.stderr and few_lines(r), r.stderr
        assert len(read_record(out).clips) == 3
    os.rename(walk_release / "walk", walk_release / os.fsdecode(b"cl\xff"))
    r = flowprep(*build_args(walk_release, tmp_path / "o3"))
    assert r.returncode == 1 and few_lines(r, 2) and "cannot be a folder name" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "target", ["flowprep.builder.folder.write_text_atomic", "flowprep.builder.finalize.write_record"]
)
def test_a_full_or_read_only_output_is_one_line(walk_release, tmp_path, monkeypatch, target):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "x"))

    monkeypatch.setattr(target, full)
    r = run_cli(*build_args(walk_release, tmp_path / "out"))
    assert r.exit_code == 1 and "No space left on device" in r.output
    assert r.output.strip().splitlines()[-1].startswith("flowprep: error: cannot write into")


def test_force_on_a_folder_built_before_the_manifest(walk_release, tmp_path):
    out = tmp_path / "out"
    assert flowprep(*build_args(walk_release, out)).returncode == 0
    (out / ".flowprep" / "owned.json").unlink()  # as a build by an older flowprep left it
    (out / "rawframes").mkdir()  # the user's, beside a TAO build
    r = flowprep(*build_args(walk_release, out, "--force", "--seed", "9"))
    assert r.returncode == 0, r.stderr
    assert (out / "rawframes").is_dir() and json.loads((out / ".flowprep" / "owned.json").read_text())["entries"]
    # A lock whose pid now belongs to another process (reused) is stale too.
    (out / ".flowprep" / "lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "start": "1"})
    )
    assert flowprep(*build_args(walk_release, out, "--seed", "9")).returncode == 0


def test_force_removes_temporary_files_a_killed_write_left(walk_release, tmp_path):
    from flowprep.fsio import is_tmp_of, unique_tmp

    out = tmp_path / "out"
    assert flowprep(*build_args(walk_release, out)).returncode == 0
    left = unique_tmp(out / "labels.txt")  # what a kill -9 during the write of labels.txt leaves
    left.write_text("half")
    mine = out / ".labels.txt.mine.tmp"  # not of unique_tmp's shape: the user's, kept
    mine.write_text("mine")
    assert is_tmp_of(left.name, "labels.txt") and not is_tmp_of(mine.name, "labels.txt")
    assert not is_tmp_of(".flowprep.json.h-1-abcdef12.tmp", "labels.txt")
    r = flowprep(*build_args(walk_release, out, "--force", "--seed", "3"))
    assert r.returncode == 0, r.stderr
    assert not left.exists() and mine.read_text() == "mine"
