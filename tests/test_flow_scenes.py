"""Layered scenes with known flow (flowprep.flow.scenes): the flow is the motion that made frame 2."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flowprep.flow.scenes import HELD_OUT_FRAMES, TUNING_FRAMES, scene_pair, scene_pairs, video_frames, zoom_crop
from flowprep.synth import texture


def _gray(seed, h=96, w=128):
    return cv2.cvtColor(texture(h, w, seed=seed), cv2.COLOR_RGB2GRAY)


def test_scene_flow_explains_frame2_where_visible():
    bg, obj = _gray(1), _gray(2)
    p = scene_pair(bg, obj, 6.0, np.random.default_rng(0), "s")
    assert p.prev.shape == p.nxt.shape == (96, 128) and p.prev.dtype == p.nxt.dtype == np.uint8
    assert p.flow.dtype == np.float32 and p.flow.shape == (96, 128, 2)
    assert 0 < p.magnitude <= 6.0 + 1e-3 and p.valid.mean() > 0.8
    h, w = bg.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = cv2.remap(p.nxt.astype(np.float32), gx + p.flow[..., 0], gy + p.flow[..., 1], cv2.INTER_LINEAR)
    err = np.abs(back - p.prev.astype(np.float32))
    # most valid pixels are explained up to noise and gain; the rest are occluded (hidden in frame 2)
    assert np.median(err[p.valid]) < 4.0
    # a flow of zero explains frame 2 far worse: the motion is real
    assert np.median(np.abs(p.nxt.astype(np.float32) - p.prev.astype(np.float32))[p.valid]) > 2 * np.median(
        err[p.valid]
    )


def test_scene_has_a_discontinuity_and_occlusion():
    p = scene_pair(_gray(3), _gray(4), 10.0, np.random.default_rng(5), "s")
    # the object's motion differs from the background's: neighbouring vectors jump somewhere
    jump = np.sqrt((np.diff(p.flow, axis=1) ** 2).sum(-1)).max()
    assert jump > 1.0
    assert p.group == ""  # the caller groups


def test_scene_pairs_classes_names_groups_and_no_shared_frames(tmp_path):
    from flowprep.synth import moving_frames, write_video

    write_video(tmp_path / "v.avi", moving_frames(20, 48, 64, (1.0, 0.0), seed=0), codec="ffv1")
    pairs, src = scene_pairs(tmp_path / "v.avi", (80, 60), 2, seed=1, frame_range=TUNING_FRAMES)
    assert src.endswith("v.avi") and len(pairs) == 6
    assert [p.group for p in pairs] == ["scene 1-3"] * 2 + ["scene 3-8"] * 2 + ["scene 8-20"] * 2
    assert pairs[0].name == "scene-1-3px-0" and all(p.prev.shape == (60, 80) for p in pairs)
    for p in pairs:
        lo, hi = (float(x) for x in p.group.split()[1].split("-"))
        assert p.magnitude <= hi + 1e-3
    smooth, _ = scene_pairs(tmp_path / "v.avi", (80, 60), 1, seed=1, frame_range=HELD_OUT_FRAMES, layered=False)
    assert [p.group for p in smooth] == ["smooth 1-3", "smooth 3-8", "smooth 8-20"]
    assert TUNING_FRAMES[1] <= HELD_OUT_FRAMES[0]  # tuning and held-out never share a frame
    again, _ = scene_pairs(tmp_path / "v.avi", (80, 60), 2, seed=1, frame_range=TUNING_FRAMES)
    assert all(np.array_equal(a.nxt, b.nxt) for a, b in zip(pairs, again))  # seeded: reproducible


def test_video_frames_fallback_and_zoom_crop(tmp_path):
    frames, src = video_frames(tmp_path / "missing.mp4", limit=3)
    assert src == "flowprep.synth.texture" and len(frames) == 3 and frames[0].shape == (144, 176)
    crop = zoom_crop(frames[0], (320, 240), np.random.default_rng(0))
    assert crop.shape == (240, 320) and crop.dtype == np.uint8


@pytest.mark.parametrize("bad", [b"not a video"])
def test_unreadable_video_falls_back_to_texture(tmp_path, bad, caplog):
    (tmp_path / "v.mp4").write_bytes(bad)
    frames, src = video_frames(tmp_path / "v.mp4", limit=2)
    assert src == "flowprep.synth.texture" and "cannot decode" in caplog.text
