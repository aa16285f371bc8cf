"""Frame sampling, flow flip negation, dataset reading and the train/evaluate error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from flowprep.cli import cli  # noqa: E402
from flowprep.errors import DatasetError  # noqa: E402
from flowprep.flow.encoding import FlowEncoding, decode, encode  # noqa: E402
from flowprep.loader import sampling  # noqa: E402
from flowprep.loader.frames import flip_u, load_windows  # noqa: E402
from flowprep.loader.source import list_clips  # noqa: E402
from flowprep.loader.torchdata import ClipDataset  # noqa: E402
from flowprep.train.synthdata import make_tao_dataset  # noqa: E402

# ---- sampling ---------------------------------------------------------------------------------


def test_center_card_example():
    idx = sampling.center_indices(128, 32)
    assert idx.tolist() == list(range(48, 80))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_center_with_sample_rate_and_odd_counts():
    assert sampling.center_indices(10, 4, 2).tolist() == [1, 3, 5, 7]  # span 7, start 1
    assert sampling.center_indices(33, 32).tolist() == list(range(0, 32))
    assert sampling.center_indices(32, 32).tolist() == list(range(32))


def test_conv_windows_card_example():
    w = sampling.conv_indices(128, 32)
    assert w.shape == (10, 32)
    starts = w[:, 0].tolist()
    # segment centres 6, 19, 32, 44, 57, 70, 83, 96, 108, 121; window start = centre - 16, kept inside
    assert starts == [0, 3, 16, 28, 41, 54, 67, 80, 92, 96]
    assert (np.diff(w, axis=1) == 1).all()
    assert w.min() >= 0 and w.max() <= 127


def test_conv_short_clip_counts_every_segment_once():
    w = sampling.conv_indices(10, 32)
    assert w.shape == (10, 32)
    loop = [k % 10 for k in range(32)]
    assert all(row.tolist() == loop for row in w)
    w = sampling.conv_indices(40, 32)  # windows overlap: starts clamped to 0..8
    assert w.shape == (10, 32) and w[:, 0].min() == 0 and w[:, 0].max() == 8


def test_short_clip_loops():
    assert sampling.center_indices(5, 8).tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    assert sampling.window(5, 3, 4, 2).tolist() == [0, 2, 4, 1]  # span 7 > 5: loops from 0
    rng = np.random.default_rng(0)
    assert sampling.random_indices(3, 4, 1, rng).tolist() == [0, 1, 2, 0]


def test_random_indices_range_and_determinism():
    starts = set()
    for s in range(200):
        idx = sampling.random_indices(20, 4, 2, np.random.default_rng(s))
        assert idx.tolist() == list(range(idx[0], idx[0] + 8, 2))
        starts.add(int(idx[0]))
    assert starts == set(range(0, 14))  # 20 - span 7 + 1 possible starts
    a = sampling.random_indices(50, 8, 1, np.random.default_rng([1, 2, 3]))
    b = sampling.random_indices(50, 8, 1, np.random.default_rng([1, 2, 3]))
    assert a.tolist() == b.tolist()


# ---- flip negation --------------------------------------------------------------------------


@pytest.mark.parametrize("enc", [FlowEncoding("fixed", 20.0), FlowEncoding("fixed", 5.0), FlowEncoding("maxrad")])
def test_flip_u_negates_flow(enc):
    rng = np.random.default_rng(0)
    # zero flow stays 128
    u, _ = encode(np.zeros((4, 4, 2), np.float32), enc)
    assert (u == 128).all() and (flip_u(u) == 128).all()
    # anywhere: the code of -f is flip_u(q) or one below (exact on whole quantisation steps)
    f = rng.uniform(-0.9, 0.9, (64, 64, 2)).astype(np.float32) * (enc.bound if enc.mode == "fixed" else 1.0)
    f[0, 0] = (enc.bound if enc.mode == "fixed" else 1.0, 0)
    u, v = encode(f, enc)
    un, vn = encode(f * np.float32([-1, 1]), enc)
    diff = un.astype(int) - flip_u(u).astype(int)
    assert set(np.unique(diff[1:])) <= {0, -1} and np.array_equal(vn, v)
    # and decodes to the negated flow within one step
    mr = None if enc.mode == "fixed" else float(np.sqrt((f**2).sum(-1)).max())
    step = 2 * enc.bound / 255 if enc.mode == "fixed" else mr / 127.999
    back = decode(flip_u(u), v, enc, mr)[..., 0]
    assert np.abs(back + decode(u, v, enc, mr)[..., 0]).max() <= step * 1.0001


def test_flip_u_exact_on_the_lattice():
    # bound 255/16: one step is exactly 1/8 px, so k/8 px encodes to exactly 128 + k
    enc = FlowEncoding("fixed", 255 / 16)
    k = np.arange(-127, 128, dtype=np.float32)
    flow = np.stack([k / 8, np.zeros_like(k)], -1)[None]
    u, _ = encode(flow, enc)
    assert u[0].astype(int).tolist() == (128 + k.astype(int)).tolist()
    un, _ = encode(-flow, enc)
    assert np.array_equal(flip_u(u), un)


def test_flip_u_bounds():
    q = np.arange(256, dtype=np.uint8)
    f = flip_u(q)
    assert f[0] == 255 and f[128] == 128 and f[255] == 1 and f[1] == 255
    assert np.array_equal(flip_u(f[1:]), q[1:])  # an involution on 1..255


# ---- dataset reading ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def square_ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "square"
    make_tao_dataset(root, train_per_class=1, val_per_class=1, frames=6, height=40, width=40)
    return root


def test_list_clips_and_sides(square_ds):
    info, clips = list_clips(square_ds, "joint", "train")
    assert info.classes == sorted(info.classes) and len(clips) == 5
    assert all(c.frames == 6 and c.flow_frames == 5 for c in clips)
    _, val = list_clips(square_ds / "val", "of")
    assert all(c.id.startswith("val/") for c in val)


def test_loaded_clip_layout_and_flip(square_ds):
    import cv2

    info, clips = list_clips(square_ds, "joint", "train")
    clip = clips[0]
    win = np.array([[0, 2, 4]])
    plain = load_windows(info, clip, ["rgb", "of"], win, 40, "full")
    flipped = load_windows(info, clip, ["rgb", "of"], win, 40, "full", hflip=True)
    assert plain["rgb"].shape == (1, 3, 3, 40, 40) and plain["of"].shape == (1, 2, 3, 40, 40)
    assert plain["rgb"].dtype == np.float32 and -1 <= plain["rgb"].min() and plain["rgb"].max() <= 1
    # RGB in RGB order, normalised (x / 255 - 0.5) / 0.5
    bgr = cv2.imread(str(clip.path / "rgb" / "000002.png"))
    assert np.allclose(plain["rgb"][0, 0, 1], (bgr[..., 2] / 255.0 - 0.5) / 0.5, atol=1e-6)
    u = cv2.imread(str(clip.path / "u" / "000004.png"), cv2.IMREAD_GRAYSCALE)
    v = cv2.imread(str(clip.path / "v" / "000004.png"), cv2.IMREAD_GRAYSCALE)
    norm = lambda q: (q.astype(np.float32) / 255 - 0.5) / 0.5  # noqa: E731
    assert np.allclose(plain["of"][0, 0, 2], norm(u)) and np.allclose(plain["of"][0, 1, 2], norm(v))
    # flip: mirrored images, u negated, v kept
    assert np.allclose(flipped["rgb"][0, :, 1], plain["rgb"][0, :, 1, :, ::-1])
    assert np.allclose(flipped["of"][0, 0, 2], norm(flip_u(u[:, ::-1])))
    assert np.allclose(flipped["of"][0, 1, 2], norm(v[:, ::-1]))


def test_clip_dataset_is_deterministic(square_ds):
    info, clips = list_clips(square_ds, "of", "train")
    ds = ClipDataset((info, clips), modality="of", frames=3, size=32, train=True, crop="multiscale", seed=3)
    a, la = ds[2]
    b, lb = ds[2]
    assert la == lb and a[0].shape == (2, 3, 32, 32) and np.array_equal(a[0].numpy(), b[0].numpy())
    ds.set_epoch(1)
    c, _ = ds[2]
    assert not np.array_equal(a[0].numpy(), c[0].numpy())


def test_dataset_errors(tmp_path, square_ds):
    with pytest.raises(DatasetError, match="not a flowprep dataset"):
        list_clips(tmp_path, "rgb")
    rgb_only = tmp_path / "rgbonly"
    make_tao_dataset(rgb_only, train_per_class=1, val_per_class=1, frames=3, modality="rgb")
    with pytest.raises(DatasetError, match="modality 'rgb'"):
        list_clips(rgb_only, "of")
    with pytest.raises(DatasetError, match="modality 'rgb'"):
        list_clips(rgb_only, "joint")
    rec = json.loads((square_ds / "flowprep.json").read_text())
    rec["layout"] = "mmaction2"
    other = tmp_path / "mm"
    other.mkdir()
    (other / "flowprep.json").write_text(json.dumps(rec))
    with pytest.raises(DatasetError, match="TAO layout"):
        list_clips(other, "rgb")


def test_cli_errors_exit_1(tmp_path, square_ds):
    runner = CliRunner()
    res = runner.invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "run")])
    assert res.exit_code == 1 and "not a flowprep dataset" in res.output
    rgb_only = tmp_path / "rgbonly"
    make_tao_dataset(rgb_only, train_per_class=1, val_per_class=1, frames=3, modality="rgb")
    res = runner.invoke(cli, ["train", str(rgb_only), "--out", str(tmp_path / "run"), "--modality", "of"])
    assert res.exit_code == 1 and "rebuild it with --modality both" in res.output
    (tmp_path / "x.pt").write_text("not a checkpoint")
    res = runner.invoke(cli, ["evaluate", str(tmp_path / "x.pt"), str(square_ds / "val")])
    assert res.exit_code == 1 and "not a flowprep checkpoint" in res.output
    res = runner.invoke(cli, ["train", str(square_ds), "--out", str(tmp_path / "r"), "--arch", "5d"])
    assert res.exit_code == 2


def test_cli_evaluate_other_arch_and_missing_modality(tmp_path, square_ds):
    from flowprep.train.checkpoint import save_checkpoint
    from flowprep.train.models import build_model

    model = build_model("2d", "of", 5, frames=2)
    rec = json.loads((square_ds / "flowprep.json").read_text())
    save_checkpoint(
        tmp_path / "of2d.pt",
        {
            "arch": "2d",
            "modality": "of",
            "frames": 2,
            "sample_rate": 1,
            "input_size": 32,
            "classes": rec["classes"],
            "state_dict": model.state_dict(),
            "dataset_record": rec,
            "epoch": 0,
            "best_acc": 0.0,
            "optimizer": None,
            "scheduler": None,
            "rng_state": None,
            "args": {},
        },
    )
    runner = CliRunner()
    res = runner.invoke(cli, ["evaluate", str(tmp_path / "of2d.pt"), str(square_ds / "val"), "--arch", "3d"])
    assert res.exit_code == 1 and "is a 2d of model" in res.output
    rgb_only = tmp_path / "rgbonly"
    make_tao_dataset(rgb_only, train_per_class=1, val_per_class=1, frames=3, modality="rgb")
    res = runner.invoke(cli, ["evaluate", str(tmp_path / "of2d.pt"), str(rgb_only / "val")])
    assert res.exit_code == 1 and "modality 'rgb'" in res.output
    # and the happy path, conv mode on 5-flow-frame clips (shorter than 10 segments)
    res = runner.invoke(
        cli,
        [
            "evaluate",
            str(tmp_path / "of2d.pt"),
            str(square_ds / "val"),
            "--mode",
            "all",
            "--out",
            str(tmp_path / "ev"),
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert set(report["modes"]) == {"center", "conv"}
    assert all(p["windows"] == 10 for p in report["modes"]["conv"]["predictions"])
    assert (tmp_path / "ev" / "confusion_conv.png").stat().st_size > 0
    assert "true \\ predicted" in (tmp_path / "ev" / "confusion_center.txt").read_text()
