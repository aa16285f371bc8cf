"""Decoding with PyAV: frame counts, order, resizing, frame step, corrupt input."""

from __future__ import annotations

import numpy as np
import pytest

from flowprep.errors import ConfigError, DecodeError
from flowprep.synth import moving_frames, write_video
from flowprep.video.decode import count_frames, iter_frames, target_size


def test_real_clip_frame_count(shared_data):
    assert count_frames(shared_data / "carphone_pristine.mp4") == 120
    data = (shared_data / "carphone_pristine.mp4").read_bytes()
    frames = list(iter_frames(data, short_side=72, frame_step=4))
    assert len(frames) == 30
    assert frames[0].shape == (72, 88, 3) and frames[0].dtype == np.uint8


def test_synthetic_clip_lossless_roundtrip(tmp_path):
    src = list(moving_frames(7, 32, 48, (1.0, 0.0), seed=3))
    path = tmp_path / "c.mkv"
    assert write_video(path, src, codec="ffv1") == 7
    out = list(iter_frames(path))
    assert len(out) == 7
    assert all(np.array_equal(a, b) for a, b in zip(src, out))  # in order, exact
    assert next(iter(iter_frames(path, size=(24, 16)))).shape == (16, 24, 3)


def test_target_size_rules():
    assert target_size(320, 240, short_side=120) == (160, 120)
    assert target_size(240, 320, short_side=120) == (120, 160)
    assert target_size(320, 240, size=(100, 50), short_side=10) == (100, 50)
    with pytest.raises(ConfigError):
        target_size(320, 240, size=(0, 5))


def test_corrupt_and_empty_inputs(tmp_path):
    with pytest.raises(DecodeError) as err:
        list(iter_frames(b"this is not a video" * 50, name="bad.avi"))
    assert str(err.value) == (
        "bad.avi: cannot open video: invalid data found when processing input (not a video, or truncated)"
    )
    with pytest.raises(DecodeError, match=r"^x.avi: cannot open video: empty file \(0 bytes\)$"):
        list(iter_frames(b"", name="x.avi"))
    with pytest.raises(DecodeError) as err:
        list(iter_frames(tmp_path / "gone.avi"))
    assert str(err.value) == f"{tmp_path / 'gone.avi'}: cannot open video: no such file or directory"
    bad = tmp_path / "trunc.avi"
    good = tmp_path / "good.avi"
    write_video(good, moving_frames(10, 32, 32, (1, 0), seed=0))
    bad.write_bytes(good.read_bytes()[:300])
    with pytest.raises(DecodeError) as err:
        list(iter_frames(bad))
    assert "Errno" not in str(err.value) and "'" not in str(err.value) and str(bad) in str(err.value)
    with pytest.raises(ConfigError):
        list(iter_frames(good, frame_step=0))


def test_ffmpeg_reason_drops_errno_and_placeholder_name():
    import av

    from flowprep.video.decode import _reason

    exc = av.error.InvalidDataError(1094995529, "Invalid data found when processing input", "<none>")
    assert "<none>" in str(exc) and "Errno" in str(exc)  # what PyAV shows, and what we must not
    assert _reason(exc) == "invalid data found when processing input (not a video, or truncated)"
    assert _reason(ValueError("[Errno 22] Invalid argument")) == "invalid argument"
    assert _reason(ValueError("EBML header parsing failed")) == "EBML header parsing failed"
