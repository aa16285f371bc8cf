"""Packed output: `flowprep build --pack webdataset`, `flowprep pack`/`unpack`, shards as plain tar."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from flowprep.builder.api import build
from flowprep.builder.config import BuildConfig
from flowprep.layout.record import read_record
from flowprep.layout.shard_format import parse_shard_name
from helpers import run_cli, tree_bytes

CLASSES = ["walk", "run"]  # 12 clips of 8 frames
SHARD = 150_000  # about two clips per shard


def config(release: Path, out: Path, **kw) -> BuildConfig:
    kw.setdefault("jobs", 2)
    return BuildConfig(source=release, out=out, classes=CLASSES, flow="dis", progress=False, **kw)


def shards_of(root: Path) -> dict[str, bytes]:
    """Every file of ``shards/`` (the tars and the index), by name."""
    return {p.name: p.read_bytes() for p in sorted((root / "shards").iterdir())}


@pytest.fixture(scope="module")
def folder(tiny_release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "folder"
    assert build(config(tiny_release, out)).ok
    return out


@pytest.fixture(scope="module")
def packed(tiny_release, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "packed"
    s = build(config(tiny_release, out, pack="webdataset", shard_size=SHARD))
    assert s.ok and len(s.shards_written) > 2
    return out


def test_packed_build_holds_shards_not_folders_and_verifies(packed):
    top = sorted(os.listdir(packed))
    assert top == [".flowprep", "build_report.json", "flowprep.json", "label_map.json", "labels.txt", "shards"]
    names = sorted(os.listdir(packed / "shards"))
    assert names[:2] == ["index.json", "train-000000.tar"]
    assert all(parse_shard_name(n) for n in names if n != "index.json")
    rec = read_record(packed)
    assert rec.packed is not None and rec.packed.to_dict() == {"format": "webdataset", "index": "shards/index.json"}
    r = run_cli("verify", packed)
    assert r.exit_code == 0 and r.output.strip().endswith("ok"), r.output
    assert "12 clip(s) checked" in r.output


def test_shards_are_plain_posix_tar_in_webdataset_naming(packed):
    index = json.loads((packed / "shards" / "index.json").read_text())
    for shard in index["shards"]:
        path = packed / "shards" / shard["name"]
        with tarfile.open(path) as tf:  # Python's reader
            members = tf.getmembers()
        assert all(m.isreg() and m.mtime == 0 and m.uid == m.gid == 0 and m.mode == 0o644 for m in members)
        assert all(m.uname == m.gname == "" for m in members)
        keys = [m.name.split(".", 1)[0] for m in members]
        assert all("." not in k and "/" not in k for k in keys)
        # one sample per clip: members of a key are consecutive, the .json entry first
        runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
        assert len(runs) == len(set(runs)) == shard["clips"]
        assert [m.name for m in members if m.name.endswith(".json")] == [f"{k}.json" for k in runs]
        listed = subprocess.run(["tar", "tf", str(path)], capture_output=True, text=True, check=True).stdout
        assert listed.split() == [m.name for m in members]  # GNU tar agrees
        assert path.stat().st_size % 10240 == 0


def test_members_are_the_folder_builds_bytes(folder, packed):
    """Each member holds exactly the bytes of the folder build's file of that name."""
    index = json.loads((packed / "shards" / "index.json").read_text())
    with tarfile.open(packed / "shards" / "train-000000.tar") as tf:
        for m in tf.getmembers():
            key, _, rest = m.name.partition(".")
            data = tf.extractfile(m).read()
            cid = next(c for c, e in index["clips"].items() if e["key"] == key)
            if rest == "json":
                entry = json.loads(data)
                assert entry == next(c.to_dict() for c in read_record(folder).clips if c.id == cid)
                continue
            kind, rel = rest.split(".", 1)
            assert data == (folder / cid / kind / rel).read_bytes()


def test_pack_and_unpack_round_trip_byte_identical(folder, packed, tmp_path):
    r = run_cli("pack", folder, "--out", tmp_path / "p", "--shard-size", str(SHARD))
    assert r.exit_code == 0, r.output
    assert shards_of(tmp_path / "p") == shards_of(packed)  # pack of a folder == a packed build
    assert tree_bytes(tmp_path / "p") == {k: v for k, v in tree_bytes(packed).items()}
    r = run_cli("unpack", packed, "--out", tmp_path / "u")
    assert r.exit_code == 0, r.output
    assert tree_bytes(tmp_path / "u") == tree_bytes(folder)
    assert run_cli("verify", tmp_path / "u").exit_code == 0


def test_same_config_gives_byte_identical_shards(tiny_release, packed, tmp_path):
    out = tmp_path / "again"
    assert build(config(tiny_release, out, pack="webdataset", shard_size=SHARD, jobs=1)).ok
    assert shards_of(out) == shards_of(packed)
    assert tree_bytes(out) == tree_bytes(packed)


@pytest.mark.slow
def test_kill_9_mid_pack_then_rerun_is_byte_identical(tiny_release, packed, tmp_path):
    out = tmp_path / "killed"
    # SIGKILL the build while it writes its 3rd shard: shards 0 and 1 are published, the 3rd is half written
    code = (
        "import os, signal; from flowprep.builder import pack;"
        "real = pack.ShardWriter.add\n"
        "def add(self, job):\n"
        "    if self.name == 'train-000002.tar' and self.clips: os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return real(self, job)\n"
        "pack.ShardWriter.add = add\n"
        "from flowprep.builder.api import build; from flowprep.builder.config import BuildConfig\n"
        f"build(BuildConfig(source={str(tiny_release)!r}, out={str(out)!r}, classes={CLASSES!r}, flow='dis',"
        f" progress=False, jobs=1, pack='webdataset', shard_size={SHARD}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = sorted(os.listdir(out / "shards"))
    assert [n for n in left if not n.startswith(".")] == ["train-000000.tar", "train-000001.tar"]
    assert any(n.endswith(".tmp") for n in left) and not (out / "flowprep.json").exists()
    s = build(config(tiny_release, out, pack="webdataset", shard_size=SHARD, jobs=1))
    assert s.ok and s.built == 0 and s.existing == 12
    assert shards_of(out) == shards_of(packed)
    assert tree_bytes(out) == tree_bytes(packed)
    assert not [n for n in os.listdir(out / "shards") if n.endswith(".tmp")]


def test_sharded_packed_build_each_job_writes_its_own_shards(tiny_release, tmp_path, monkeypatch):
    from flowprep.builder import api

    out = tmp_path / "parts"
    s1 = build(config(tiny_release, out, pack="webdataset", shard_size=SHARD, shard=(1, 3), jobs=1))
    assert s1.ok and not s1.record_written
    assert s1.shards_written and all("-k001of003-" in n for n in s1.shards_written)
    # job 2 is "killed" after building but before packing: its clips stay staged (one tar per clip)
    monkeypatch.setattr(api, "pack_own", lambda cfg, plan, folder: [])
    assert not build(
        config(tiny_release, out, pack="webdataset", shard_size=SHARD, shard=(2, 3), jobs=1)
    ).record_written
    monkeypatch.undo()
    assert (out / "train").is_dir()
    s3 = build(config(tiny_release, out, pack="webdataset", shard_size=SHARD, shard=(3, 3), jobs=1))
    assert s3.record_written  # the last job packs job 2's leftovers under job 2's name and writes the index
    names = sorted(n for n in os.listdir(out / "shards") if n.endswith(".tar"))
    parts = {parse_shard_name(n)[1] for n in names}
    assert parts == {(1, 3), (2, 3), (3, 3)} and not (out / "train").exists()
    r = run_cli("verify", out)
    assert r.exit_code == 0, r.output
    before = tree_bytes(out)
    (out / "flowprep.json").unlink()
    (out / "shards" / "index.json").unlink()
    r = run_cli("finalize", out)
    assert r.exit_code == 0 and "record written: 12 of 12" in r.output
    assert tree_bytes(out) == before


def test_force_on_a_changed_source_repacks(release_copy, tmp_path):
    out = tmp_path / "ds"
    assert build(config(release_copy, out, pack="webdataset", shard_size=SHARD)).ok
    gone = sorted((release_copy / "walk").iterdir())[0]
    gone.unlink()
    s = build(config(release_copy, out, pack="webdataset", shard_size=SHARD, force=True))
    assert s.ok and s.existing + s.built == 11 and s.existing > 0  # moved clips are rebuilt on their new side
    assert run_cli("verify", out).exit_code == 0
    assert len(read_record(out).clips) == 11


def test_verify_finds_damaged_missing_and_stray_shards(packed, tmp_path):
    out = tmp_path / "damaged"
    shutil.copytree(packed, out)
    shard = out / "shards" / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[3000] ^= 0xFF  # inside the first image of the shard's first sample
    shard.write_bytes(bytes(data))
    (out / "shards" / "val-000000.tar").unlink()
    (out / "shards" / "junk.tar").write_bytes(b"x")
    r = run_cli("verify", out)
    assert r.exit_code == 1
    assert "train-000001.tar: sha256 differs" in r.output
    assert "val-000000.tar: shard missing" in r.output
    assert "in no shard" in r.output and "junk.tar: not a shard of the index" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layout", "mmaction2"], "use it with --layout tao"),
    ],
)
def test_pack_option_errors_are_one_line(tiny_release, tmp_path, args, message):
    r = run_cli("build", tiny_release, "--out", tmp_path / "x", "--pack", "webdataset", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_pack_and_unpack_refuse_the_wrong_kind(folder, packed, tmp_path):
    r = run_cli("pack", packed, "--out", tmp_path / "a")
    assert r.exit_code == 1 and "is packed already" in r.output
    r = run_cli("unpack", folder, "--out", tmp_path / "b")
    assert r.exit_code == 1 and "is not packed" in r.output
    r = run_cli("pack", folder, "--out", folder / "inside")
    assert r.exit_code == 1 and "overlaps the dataset" in r.output
    r = run_cli("pack", folder, "--out", tmp_path / "c", "--shard-size", "lots")
    assert r.exit_code == 2 and "is not a size" in r.output


def test_webdataset_library_reads_the_shards(packed):
    wds = pytest.importorskip("webdataset")
    index = json.loads((packed / "shards" / "index.json").read_text())
    urls = [str(packed / "shards" / s["name"]) for s in index["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(samples) == 12
    s = samples[0]
    assert s["__key__"] == "train-000000" and s["json"]["id"] in index["clips"]
    assert s["rgb.000000.png"].shape[-1] == 3 and "u.000000.jpg" in s and "v.000000.jpg" in s


@pytest.mark.slow
def test_train_and_evaluate_give_the_same_numbers_on_packed_and_folder(folder, packed, tmp_path):
    pytest.importorskip("torch")
    from flowprep.train.api import evaluate, train
    from flowprep.train.config import EvalConfig, TrainConfig

    logs, tops = [], []
    for name, ds in (("folder", folder), ("packed", packed)):
        run = tmp_path / name
        cfg = TrainConfig(
            dataset=ds, out=run, arch="2d", modality="joint", frames=4, input_size=32, epochs=2, batch_size=4,
            lr_steps=[1], workers=0, progress=False, seed=3,
        )  # fmt: skip
        train(cfg)
        rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        logs.append([{k: v for k, v in r.items() if k != "train_clips_per_s"} for r in rows])
        tops.append(evaluate(EvalConfig(run / "last.pt", ds, mode="all", progress=False)).modes)
    assert logs[0] == logs[1]
    assert tops[0] == tops[1]


def test_preview_and_stats_read_a_packed_dataset(packed, tmp_path):
    r = run_cli("preview", packed, "--out", tmp_path / "prev", "--per-class", "1", "--no-progress")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "prev" / "index.html").is_file() and len(list((tmp_path / "prev" / "media").iterdir())) >= 2
    r = run_cli("stats", packed)
    assert r.exit_code == 0 and "total" in r.output
    r = run_cli("preview", packed, "--out", packed / "shards" / "p")
    assert r.exit_code == 1 and "shards" in r.output
