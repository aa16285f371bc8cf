"""Shared fixtures: tiny synthetic HMDB51-shaped releases and the real test data in ../shared/data."""

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
