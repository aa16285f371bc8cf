"""The public loader: what `flowprep train` feeds its models, for users' code (flowprep.loader)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402

import flowprep  # noqa: E402
from flowprep.errors import DatasetError  # noqa: E402
from flowprep.loader import ClipDataset, list_clips, to_model_inputs  # noqa: E402
from flowprep.train.config import TrainConfig  # noqa: E402
from flowprep.train.prepare import open_loaders  # noqa: E402
from flowprep.train.synthdata import make_tao_dataset  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("loader") / "ds"
    make_tao_dataset(root, train_per_class=3, val_per_class=1, frames=7, height=36, width=44)
    return root


def test_import_flowprep_and_loader_do_not_import_torch():
    code = (
        "import sys, flowprep, flowprep.loader; "
        "assert 'torch' not in sys.modules and 'cv2' not in sys.modules, 'heavy import'; "
        "flowprep.ClipDataset; assert 'torch' in sys.modules; print('ok')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert flowprep.ClipDataset is ClipDataset
    with pytest.raises(AttributeError):
        flowprep.NoSuchThing  # noqa: B018


def _batches(loader):
    return [([x.clone() for x in xs], y.clone()) for xs, y in loader]


@pytest.mark.parametrize("modality", ["joint", "of"])
def test_loader_gives_the_tensors_train_feeds(ds, tmp_path, modality):
    """The public ClipDataset from a path, with the sampler train uses, gives train's batches bit for bit."""
    cfg = TrainConfig(
        dataset=ds,
        out=tmp_path / "run",
        arch="3d",
        modality=modality,
        frames=4,
        sample_rate=2,
        input_size=32,
        batch_size=3,
        crop="multiscale",
        hflip=0.5,
        workers=0,
        seed=5,
        progress=False,
    )
    info, train_clips = list_clips(ds, modality, "train")
    _, val_clips = list_clips(ds, modality, "val")
    run = open_loaders(cfg, info, train_clips, val_clips, 0, 1, torch.device("cpu"))
    mine = ClipDataset(ds, "train", modality, frames=4, sample_rate=2, size=32, crop="multiscale", hflip=0.5, seed=5)
    sampler = DistributedSampler(mine, num_replicas=1, rank=0, shuffle=True, seed=5)
    for epoch in (0, 1):
        run.sampler.set_epoch(epoch)
        run.train_ds.set_epoch(epoch)
        sampler.set_epoch(epoch)
        mine.set_epoch(epoch)
        theirs = _batches(run.train_dl)
        ours = _batches(DataLoader(mine, batch_size=3, sampler=sampler, drop_last=True))
        assert len(theirs) == len(ours) > 0
        for (a, la), (b, lb) in zip(theirs, ours):
            assert torch.equal(la, lb) and all(torch.equal(x, y) for x, y in zip(a, b))
    val = ClipDataset(ds, "val", modality, frames=4, sample_rate=2, size=32)
    assert not val.train
    for (a, la), (b, lb) in zip(_batches(run.val_dl), _batches(DataLoader(val, batch_size=3))):
        assert torch.equal(la, lb) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_sample_contract_and_2d_layout(ds):
    d3 = ClipDataset(ds, "train", "joint", frames=3, size=32, seed=1)
    d2 = ClipDataset(ds, "train", "joint", frames=3, size=32, seed=1, arch="2d")
    (rgb, flow), label = d3[4]
    assert rgb.shape == (3, 3, 32, 32) and flow.shape == (2, 3, 32, 32) and rgb.dtype == torch.float32
    assert -1 <= float(rgb.min()) and float(flow.max()) <= 1 and label == d3.clips[4].label
    assert d3.classes == list_clips(ds, "rgb", "train")[0].classes and len(d3) == 15
    (rgb2, flow2), _ = d2[4]
    assert rgb2.shape == (9, 32, 32)
    batched = to_model_inputs([rgb[None], flow[None]], "2d")
    assert torch.equal(batched[0][0], rgb2) and torch.equal(batched[1][0], flow2)


def test_bad_options_are_dataset_errors(ds):
    with pytest.raises(DatasetError, match="crop must be one of"):
        ClipDataset(ds, "train", "rgb", crop="diagonal")
    with pytest.raises(DatasetError, match="modality must be one of"):
        ClipDataset(ds, "train", "depth")
    with pytest.raises(DatasetError, match="arch must be one of"):
        ClipDataset(ds, "train", "rgb", arch="4d")
    with pytest.raises(DatasetError, match="labels for"):
        ClipDataset(ds, "train", "rgb", labels=[0])


def _docs_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "loader.md").read_text(), re.S)
    assert blocks, "docs/loader.md lost its example"
    return blocks[0]


def test_docs_example_trains(ds, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(_docs_example())
    assert len(_docs_example().splitlines()) <= 32
    r = subprocess.run(
        [sys.executable, str(script), str(ds)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 3 and "val top-1" in lines[-1]


# ---- packed datasets: ClipDataset through the index, ShardStream -------------------------------


@pytest.fixture(scope="module")
def packed_ds(ds, tmp_path_factory):
    from flowprep.builder.convert import pack_dataset

    out = tmp_path_factory.mktemp("loader") / "packed"
    s = pack_dataset(ds, out, shard_size=60_000)
    assert len(s.shards) > 4
    return out


def _key(sample):
    (x,), label = sample
    return label, x.numpy().tobytes()


def test_clip_dataset_reads_packed_like_folder(ds, packed_ds):
    kw = dict(frames=3, sample_rate=2, size=32, crop="multiscale", seed=4)
    a, b = ClipDataset(ds, "train", "joint", **kw), ClipDataset(packed_ds, "train", "joint", **kw)
    a.set_epoch(2), b.set_epoch(2)
    for i in range(len(a)):
        (x1, y1), l1 = a[i]
        (x2, y2), l2 = b[i]
        assert l1 == l2 and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert str(b.clips[0].path).endswith(".tar")


def test_shard_stream_yields_each_clip_once_with_the_datasets_tensors(packed_ds):
    from flowprep.loader import ShardStream

    kw = dict(frames=3, size=32, seed=1)
    ref = ClipDataset(packed_ds, "train", "of", **kw)
    stream = ShardStream(packed_ds, "train", "of", buffer=4, **kw)
    for epoch in (0, 1):
        ref.set_epoch(epoch), stream.set_epoch(epoch)
        want = sorted(_key(ref[i]) for i in range(len(ref)))
        got = [_key(s) for s in stream]
        assert sorted(got) == want and len(stream) == len(ref)
    orders = []
    for epoch in (0, 0, 1):
        stream.set_epoch(epoch)
        orders.append([lab for _, lab in stream])
    assert orders[0] == orders[1] and orders[0] != orders[2]  # reshuffled per epoch, repeatable


def test_shard_stream_splits_shards_among_ranks_and_workers(packed_ds):
    from flowprep.loader import ShardStream

    kw = dict(frames=2, size=32, seed=2, buffer=1, shuffle=False)
    whole = sorted(_key(s) for s in ShardStream(packed_ds, "train", "of", **kw))
    parts = []
    for rank in range(2):
        s = ShardStream(packed_ds, "train", "of", rank=rank, world=2, **kw)
        got = [_key(x) for x in DataLoader(s, batch_size=None, num_workers=2)]
        assert len(got) == len(s)
        parts.append(got)
    assert sorted(parts[0] + parts[1]) == whole and not set(parts[0]) & set(parts[1])
    # more slots than shards: every slot reads all shards and keeps every n-th clip
    many = [[_key(x) for x in ShardStream(packed_ds, "train", "of", rank=r, world=12, **kw)] for r in range(12)]
    assert sorted(k for m in many for k in m) == whole
    # equal steps under DDP: each rank yields exactly samples_per_rank, starting over when short
    for r in range(3):
        s = ShardStream(packed_ds, "train", "of", rank=r, world=3, samples_per_rank=7, **kw)
        assert len(list(s)) == 7 == len(s)


def test_shard_stream_needs_a_packed_dataset(ds):
    from flowprep.loader import ShardStream

    with pytest.raises(DatasetError, match="folder dataset"):
        ShardStream(ds, "train", "of")


def test_train_streams_a_packed_dataset(packed_ds, tmp_path):
    from helpers import run_cli

    r = run_cli(
        "train", packed_ds, "--out", tmp_path / "run", "--stream", "--modality", "of", "--frames", "2",
        "--input-size", "32", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--no-progress",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "best val top-1" in r.output


def test_train_stream_of_a_folder_dataset_is_one_line(ds, tmp_path):
    from helpers import run_cli

    r = run_cli("train", ds, "--out", tmp_path / "run", "--stream", "--modality", "of", "--no-progress")
    assert r.exit_code == 1 and "ShardStream reads packed ones" in r.output and "Traceback" not in r.output
