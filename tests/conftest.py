"""Shared fixtures: tiny synthetic HMDB51-shaped releases, a small built dataset and models, full and
read-only disks, and the real test data in ../shared/data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _gpu_missing() -> str | None:
    """Why ``gpu`` tests cannot run here, or None when an NVIDIA GPU is visible (nvidia-smi lists one)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "needs an NVIDIA GPU (no nvidia-smi on this machine)"
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"needs an NVIDIA GPU (nvidia-smi failed: {exc})"
    return None if "GPU" in out else "needs an NVIDIA GPU (nvidia-smi lists none)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``@pytest.mark.gpu`` tests, with the reason, on machines without an NVIDIA GPU."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    reason = _gpu_missing() if gpu_items else None
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> Path:
    """An unpacked HMDB51-shaped release: 5 classes x 3 sources x 2 clips, 8 frames of 64x80, + split files."""
    from flowprep.synth import make_release_folder

    root = tmp_path_factory.mktemp("release") / "hmdb51"
    make_release_folder(root, sources_per_class=3, clips_per_source=2, frames=8, height=64, width=80, seed=1)
    return root


@pytest.fixture(scope="session")
def ucf_release(tmp_path_factory) -> dict[str, Path]:
    """A UCF101-shaped release: 4 classes x 4 groups x 2 clips of 5 frames (32x40), as UCF101.rar and
    UCF101TrainTestSplits-RecognitionTask.zip (see :func:`helpers.make_ucf101_release`)."""
    from helpers import make_ucf101_release

    return make_ucf101_release(tmp_path_factory.mktemp("ucf101"))


@pytest.fixture()
def release_copy(tiny_release, tmp_path) -> Path:
    """A private copy of :func:`tiny_release` that a test may damage."""
    dst = tmp_path / "release"
    shutil.copytree(tiny_release, dst)
    return dst


@pytest.fixture()
def one_torch_thread():
    """One intra-op torch thread: on a busy 2-core machine OpenMP's spinning threads slow torch ~10x."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def walk_release(tmp_path) -> Path:
    """``rel/walk/`` with three small clips."""
    from helpers import clip_bytes

    rel = tmp_path / "rel"
    (rel / "walk").mkdir(parents=True)
    for k in range(3):
        (rel / "walk" / f"w{k}.avi").write_bytes(clip_bytes(k))
    return rel


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A 2-class TAO dataset (rgb + DIS flow, 6 frames of 64x80 a clip) built from ``<base>/rel``."""
    from flowprep.synth import make_release_folder
    from helpers import invoke_checked

    base = tmp_path_factory.mktemp("safety")
    make_release_folder(
        base / "rel",
        classes={"walk": (1.0, 0.0), "run": (0.0, 1.0)},
        sources_per_class=2,
        clips_per_source=1,
        frames=6,
        seed=1,
        with_splits=False,
    )
    invoke_checked(
        "build",
        base / "rel",
        "--out",
        base / "ds",
        "--flow",
        "dis",
        "-j",
        "1",
        "--no-progress",
        "--split-by",
        "clip",
        code=0,
    )
    return base / "ds"


@pytest.fixture()
def small_dataset_copy(small_dataset, tmp_path) -> Path:
    """A private copy of :func:`small_dataset` that a test may damage."""
    dst = tmp_path / "ds"
    shutil.copytree(small_dataset, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_models(small_dataset, tmp_path_factory) -> dict[str, Path]:
    """Untrained 2D checkpoints of :func:`small_dataset` (``"rgb"``, ``"of"``: 4 frames of 32 px) and
    the RGB one exported (``"onnx"``)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from flowprep.export.api import export_checkpoint
    from flowprep.layout.record import read_record
    from flowprep.train.checkpoint import save_checkpoint
    from flowprep.train.models import build_model

    d = tmp_path_factory.mktemp("models")
    rec = read_record(small_dataset).summary_dict()
    paths = {}
    for modality in ("rgb", "of"):
        torch.manual_seed(0)
        model = build_model("2d", modality, 2, frames=4)
        paths[modality] = save_checkpoint(
            d / f"{modality}.pt",
            {
                "arch": "2d",
                "modality": modality,
                "frames": 4,
                "sample_rate": 1,
                "input_size": 32,
                "classes": ["run", "walk"],
                "state_dict": model.state_dict(),
                "dataset_record": rec,
                "epoch": 1,
                "best_acc": 0.0,
            },
        )
    export_checkpoint(paths["rgb"], d / "deploy")
    paths["onnx"] = d / "deploy" / "model.onnx"
    return paths


def _mount(path: Path, options: str) -> Path:
    path.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({r.stderr.strip() or 'not permitted'}): root ignores file "
            "permissions, so read-only and full disks need a mount"
        )
    return path


@pytest.fixture()
def readonly_dir(tmp_path):
    """A read-only 64 KiB tmpfs (skipped where no tmpfs can be mounted)."""
    d = _mount(tmp_path / "ro", "ro,size=64k")
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: PyAV may leak a descriptor


@pytest.fixture()
def full_dir(tmp_path):
    """A full 64 KiB tmpfs: folders can still be made, files not written."""
    d = _mount(tmp_path / "full", "size=64k")
    with open(d / "pad", "wb") as fh:
        try:
            fh.write(b"\0" * 64 * 1024)
        except OSError:
            pass
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)  # lazy: PyAV may leak a descriptor
