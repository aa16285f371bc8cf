"""Models (shapes, channel order, ImageNet init) and the checkpoint contract."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from flowprep.errors import CheckpointError, FlowprepError  # noqa: E402
from flowprep.loader.spec import input_shapes  # noqa: E402
from flowprep.loader.torchdata import to_model_inputs  # noqa: E402
from flowprep.train.checkpoint import (  # noqa: E402
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from flowprep.train.models import ResNet18, build_model, init_from_imagenet  # noqa: E402

# ActionRecognitionNet's input shapes (NGC model card): 3D RGB, 2D RGB, 3D OF, 2D OF
CARD = {
    ("3d", "rgb"): (3, 32, 224, 224),
    ("2d", "rgb"): (96, 224, 224),
    ("3d", "of"): (2, 32, 224, 224),
    ("2d", "of"): (64, 224, 224),
}


@pytest.mark.parametrize("arch,modality", list(CARD))
def test_card_shapes_forward(arch, modality):
    shapes = input_shapes(arch, modality)
    assert shapes == {f"input_{modality}": CARD[arch, modality]}
    model = build_model(arch, modality, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, *CARD[arch, modality]))
    assert out.shape == (1, 5)


@pytest.mark.parametrize("arch", ["2d", "3d"])
def test_joint_shapes(arch):
    shapes = input_shapes(arch, "joint", frames=8, size=64)
    assert list(shapes) == ["input_rgb", "input_of"]
    assert shapes["input_rgb"] == ((24, 64, 64) if arch == "2d" else (3, 8, 64, 64))
    assert shapes["input_of"] == ((16, 64, 64) if arch == "2d" else (2, 8, 64, 64))
    model = build_model(arch, "joint", num_classes=3, frames=8).eval()
    xs = [torch.randn(2, *s) for s in shapes.values()]
    with torch.no_grad():
        out = model(*xs)
        # joint = mean of the two streams' logits
        expect = (model.rgb(xs[0]) + model.of(xs[1])) / 2
    assert out.shape == (2, 3)
    assert torch.allclose(out, expect, atol=1e-6)
    assert input_shapes(arch, "joint")["input_rgb"] == CARD[arch, "rgb"]
    assert input_shapes(arch, "joint")["input_of"] == CARD[arch, "of"]


def test_2d_channel_order_is_channel_major():
    c, t = 2, 5
    x = torch.arange(c * t, dtype=torch.float32).reshape(1, c, t, 1, 1).expand(1, c, t, 4, 4)
    (x2d,) = to_model_inputs([x], "2d")
    assert x2d.shape == (1, c * t, 4, 4)
    for ci in range(c):
        for ti in range(t):
            assert torch.equal(x2d[0, ci * t + ti], x[0, ci, ti])
    (x3d,) = to_model_inputs([x], "3d")
    assert x3d is x


def test_bad_arch_or_modality():
    with pytest.raises(FlowprepError):
        build_model("4d", "rgb", 2)
    with pytest.raises(FlowprepError):
        input_shapes("2d", "depth")


def _imagenet_state_dict(path):
    """A random torchvision-style ResNet-18 ImageNet state_dict."""
    torch.manual_seed(1)
    net = ResNet18(2, 3, 1000)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    sd = net.state_dict()
    # torchvision's resnet18 has exactly these parameter counts and names
    assert sum(p.numel() for p in net.parameters()) == 11_689_512
    for name in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_mean",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ):
        assert name in sd
    torch.save(sd, path)
    return sd


def test_imagenet_init_2d(tmp_path):
    sd = _imagenet_state_dict(tmp_path / "r18.pth")
    t = 4
    rgb = build_model("2d", "rgb", 5, frames=t)
    missing = init_from_imagenet(rgb, tmp_path / "r18.pth")
    assert set(missing) == {"fc.weight", "fc.bias"}
    w = rgb.conv1.weight.detach()
    for c in range(3):
        for ti in range(t):
            assert torch.allclose(w[:, c * t + ti], sd["conv1.weight"][:, c] / t)
    assert torch.equal(rgb.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
    # a still clip gives the ImageNet stem response to its frame
    frame = torch.randn(1, 3, 16, 16)
    clip = frame.unsqueeze(2).expand(1, 3, t, 16, 16)
    (x2d,) = to_model_inputs([clip], "2d")
    ref = torch.nn.functional.conv2d(frame, sd["conv1.weight"], stride=2, padding=3)
    assert torch.allclose(rgb.conv1(x2d), ref, atol=1e-4)
    of = build_model("2d", "of", 5, frames=t)
    init_from_imagenet(of, tmp_path / "r18.pth")
    mean = sd["conv1.weight"].mean(1)
    assert torch.allclose(of.conv1.weight[:, 0], mean * 1.5 / t, atol=1e-6)
    assert torch.allclose(of.conv1.weight[:, 2 * t - 1], mean * 1.5 / t, atol=1e-6)


@pytest.mark.slow
def test_imagenet_init_3d_joint(tmp_path):
    sd = _imagenet_state_dict(tmp_path / "r18.pth")
    model = build_model("3d", "joint", 5, frames=8)
    missing = init_from_imagenet(model, tmp_path / "r18.pth")
    assert set(missing) == {"rgb.fc.weight", "rgb.fc.bias", "of.fc.weight", "of.fc.bias"}
    w3 = model.rgb.layer2[0].conv1.weight.detach()
    assert w3.shape[2] == 3
    assert torch.allclose(w3.sum(2), sd["layer2.0.conv1.weight"], atol=1e-6)  # inflation keeps the sum
    assert torch.allclose(model.rgb.conv1.weight.sum(2), sd["conv1.weight"], atol=1e-5)
    assert torch.allclose(model.of.conv1.weight.sum(2)[:, 0], sd["conv1.weight"].mean(1) * 1.5, atol=1e-5)
    assert torch.equal(model.of.bn1.running_var, sd["bn1.running_var"])


def test_imagenet_init_rejects_other_files(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "x.pth")
    with pytest.raises(FlowprepError, match="not a torchvision ResNet-18"):
        init_from_imagenet(build_model("2d", "rgb", 2, frames=2), tmp_path / "x.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(FlowprepError, match="is not a PyTorch file"):
        init_from_imagenet(build_model("2d", "rgb", 2, frames=2), tmp_path / "junk.pth")


def _ckpt(model, arch, modality, frames=4):
    return {
        "arch": arch,
        "modality": modality,
        "frames": frames,
        "sample_rate": 1,
        "input_size": 64,
        "classes": ["a", "b"],
        "state_dict": model.state_dict(),
        "dataset_record": {"encoding": None},
        "epoch": 1,
        "best_acc": 0.5,
        "optimizer": None,
        "scheduler": None,
        "rng_state": None,
        "args": {},
    }


def test_checkpoint_roundtrip_and_errors(tmp_path):
    model = build_model("2d", "of", 2, frames=4)
    path = save_checkpoint(tmp_path / "a.pt", _ckpt(model, "2d", "of"))
    ck = load_checkpoint(path)
    assert ck.version == 1 and ck.path == str(path) and ck.classes == ("a", "b")
    loaded = model_from_checkpoint(ck)
    assert not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    with pytest.raises(CheckpointError, match="3d"):
        model_from_checkpoint(ck, arch="3d")
    with pytest.raises(CheckpointError, match="modality"):
        model_from_checkpoint(ck, modality="rgb")
    # a record that claims 3D over 2D weights
    bad = save_checkpoint(tmp_path / "b.pt", _ckpt(model, "3d", "of"))
    with pytest.raises(CheckpointError, match="do not fit"):
        model_from_checkpoint(load_checkpoint(bad))
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a flowprep checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch file .*not a flowprep checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
