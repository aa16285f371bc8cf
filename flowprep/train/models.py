"""ResNet-18 2D and 3D action-recognition networks with the input shapes of TAO's ActionRecognitionNet.

Inputs (without the batch dimension; ``T`` = frames, ``S`` = input size, 32 and 224 by default):

==========  ========================  ==============================
arch        rgb                       of (optical flow, u then v)
==========  ========================  ==============================
``3d``      ``(3, T, S, S)``          ``(2, T, S, S)``
``2d``      ``(3T, S, S)``            ``(2T, S, S)``
==========  ========================  ==============================

2D inputs stack channels channel-major: input channel ``c * T + t`` is channel ``c`` of frame ``t``
(so ``x2d = x3d.reshape(B, C * T, S, S)``), which is the order TAO uses. All inputs are ``float32``
normalised as ``(x / 255 - 0.5) / 0.5`` (range ``[-1, 1]``).

Outputs are logits ``(B, num_classes)``. A ``joint`` model holds an ``rgb`` and an ``of`` stream and
takes two tensors ``(rgb, of)``; it fuses by *averaging the two streams' logits* (late score
fusion, as the issue asks). TAO's own joint model instead concatenates the two streams' logits and
passes them through a small MLP (2C -> 64 -> C); the inputs, which are what DeepStream/Triton
configs depend on, are the same. Averaged logits train with a plain cross-entropy loss;
evaluation turns them into probabilities with a softmax.

Parameter names follow torchvision's ``resnet18`` (``conv1``, ``bn1``, ``layer1.0.conv1``, ...,
``fc``) so that an ImageNet ``state_dict`` loads by name (see :func:`init_from_imagenet`); joint
models prefix them with ``rgb.`` / ``of.``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from flowprep.errors import ConfigError
from flowprep.loader.spec import check_model as _check
from flowprep.loader.spec import stream_channels, streams
from flowprep.train.torchfile import load_torch_file

__all__ = ["BasicBlock", "JointModel", "ResNet18", "build_model", "init_from_imagenet"]


def _conv(dims: int, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> nn.Module:
    if dims == 2:
        return nn.Conv2d(cin, cout, k, stride, pad, bias=False)
    # 3D stages stride in space only (time is reduced by the stem), as TAO's resnet3d
    return nn.Conv3d(cin, cout, k, (1, stride, stride), pad, bias=False)


def _bn(dims: int, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block, in 2D or 3D (3x3 or 3x3x3 kernels)."""

    def __init__(self, dims: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv(dims, cin, cout, 3, stride, 1)
        self.bn1 = _bn(dims, cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(dims, cout, cout, 3, 1, 1)
        self.bn2 = _bn(dims, cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(dims, cin, cout, 1, stride), _bn(dims, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18, 2D (``(B, in_channels, H, W)``) or 3D (``(B, in_channels, T, H, W)``) -> logits.

    The 3D variant has the layout of TAO's ``resnet3d``: a 5x7x7 stem with stride 2 in time and
    space, a 1x3x3 max-pool with stride 2 (time too), and stages 2-4 that halve space only, so 32
    frames reach the head as 8. Global average pooling makes any ``T >= 1`` and ``H, W >= 32`` valid.
    """

    # made in a loop by setattr: declared for type checkers
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential

    def __init__(self, dims: int, in_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        if dims not in (2, 3):
            raise ConfigError(f"ResNet18 dims must be 2 or 3, got {dims}")
        self.dims = dims
        # the 2D and 3D layers are different classes with one role each
        self.conv1: nn.Module
        self.maxpool: nn.Module
        self.avgpool: nn.Module
        if dims == 2:
            self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
        else:
            self.conv1 = nn.Conv3d(in_channels, 64, (5, 7, 7), 2, (2, 3, 3), bias=False)
            self.maxpool = nn.MaxPool3d((1, 3, 3), 2, (0, 1, 1))
            self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.bn1 = _bn(dims, 64)
        self.relu = nn.ReLU(inplace=True)
        widths, cin = (64, 128, 256, 512), 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(dims, cin, w, stride), BasicBlock(dims, w, w, 1)))
            cin = w
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


class JointModel(nn.Module):
    """Two streams, ``rgb`` and ``of``; ``forward(rgb, of)`` returns the mean of their logits."""

    def __init__(self, rgb: nn.Module, of: nn.Module):
        super().__init__()
        self.rgb = rgb
        self.of = of

    def forward(self, rgb: torch.Tensor, of: torch.Tensor) -> torch.Tensor:
        return (self.rgb(rgb) + self.of(of)) * 0.5


def build_model(arch: str, modality: str, num_classes: int, frames: int = 32, dropout: float = 0.0) -> nn.Module:
    """A freshly initialised model (see the module docstring for inputs and outputs).

    Args:
        arch: ``"2d"`` or ``"3d"``.
        modality: ``"rgb"``, ``"of"`` or ``"joint"``.
        num_classes: output classes, >= 1.
        frames: T, frames per clip (2D models are tied to it through their channel count).
        dropout: dropout probability before the classifier (0 disables it).
    """
    _check(arch, modality)
    if num_classes < 1 or frames < 1:
        raise ConfigError(f"need num_classes >= 1 and frames >= 1, got {num_classes} and {frames}")
    dims = 2 if arch == "2d" else 3
    nets = {s: ResNet18(dims, stream_channels(arch, s, frames), num_classes, dropout) for s in streams(modality)}
    model = JointModel(nets["rgb"], nets["of"]) if modality == "joint" else nets[modality]
    # nn.Module's attribute typing knows only tensors and modules; this is a plain dict
    model.flowprep_meta = {
        "arch": arch,
        "modality": modality,
        "frames": frames,  # type: ignore[assignment]
        "num_classes": num_classes,
    }
    return model


def _adapt_stem(w: torch.Tensor, stream: str, arch: str, frames: int, kt: int) -> torch.Tensor:
    """ImageNet ``conv1.weight`` ``(64, 3, 7, 7)`` -> this stream's first-conv weight.

    RGB keeps its colour filters; flow uses the mean over RGB (the cross-modality init of TSN). The
    result is scaled so a constant input gives the same response as on ImageNet: 2D divides by T
    (T copies of each channel are summed), flow multiplies by 3/2 (3 RGB channels became 2), and 3D
    divides by the temporal kernel size (I3D inflation).
    """
    base = w if stream == "rgb" else w.mean(dim=1, keepdim=True).repeat(1, 2, 1, 1) * 1.5
    if arch == "2d":
        # channel-major: input channel c*T + t takes colour c's filter
        return base.repeat_interleave(frames, dim=1) / frames
    return base.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt


def init_from_imagenet(model: nn.Module, path: Path) -> list[str]:
    """Load an ImageNet ResNet-18 ``state_dict`` (torchvision names) into ``model``'s streams.

    2D: every layer but the stem and ``fc`` loads as is. 3D: kernels are inflated over time
    (repeated ``k_t`` times and divided by ``k_t``). The stem is adapted by :func:`_adapt_stem`;
    ``fc`` stays freshly initialised (other classes). Nothing is downloaded.

    Returns:
        Names (in ``model``) that were not initialised from the file.

    Raises:
        ConfigError: unreadable file, or not a ResNet-18 state_dict.
    """
    sd = load_torch_file(Path(path), ConfigError)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or "conv1.weight" not in sd or "layer4.1.bn2.weight" not in sd:
        raise ConfigError(f"{path} is not a torchvision ResNet-18 state_dict (no conv1/layer4 weights)")
    meta = cast("dict[str, Any]", model.flowprep_meta)
    prefixes = {"rgb": "rgb.", "of": "of."} if meta["modality"] == "joint" else {meta["modality"]: ""}
    target = model.state_dict()
    missing = []
    new = {}
    for stream, pre in prefixes.items():
        for name, cur in target.items():
            if not name.startswith(pre):
                continue
            key = name[len(pre) :]
            src = sd.get(key)
            if key.startswith("fc.") or src is None:
                missing.append(name)
                continue
            src = src.to(cur.dtype)
            if key == "conv1.weight":
                src = _adapt_stem(src, stream, meta["arch"], meta["frames"], cur.shape[2])
            elif src.dim() == 4 and cur.dim() == 5:
                src = src.unsqueeze(2).repeat(1, 1, cur.shape[2], 1, 1) / cur.shape[2]
            if tuple(src.shape) != tuple(cur.shape):
                raise ConfigError(
                    f"{path}: {key} has shape {tuple(src.shape)}, the model needs "
                    f"{tuple(cur.shape)}; is it a ResNet-18?"
                )
            new[name] = src
    model.load_state_dict(new, strict=False)
    return missing
