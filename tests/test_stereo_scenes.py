"""Stereo-like scenes with known flow (flowprep.flow.stereo_scenes): horizontal flow by depth layers,
occlusions at layer edges, the flow explains frame 2, seeded, disjoint frame ranges."""

from __future__ import annotations

import cv2
import numpy as np

from flowprep.flow.scenes import HELD_OUT_FRAMES, TUNING_FRAMES
from flowprep.flow.stereo_scenes import stereo_pair, stereo_pairs
from flowprep.synth import texture


def _gray(seed, h=96, w=128):
    return cv2.cvtColor(texture(h, w, seed=seed), cv2.COLOR_RGB2GRAY)


def _pair(seed=0, magnitude=8.0):
    return stereo_pair([_gray(s) for s in range(1, 6)], magnitude, np.random.default_rng(seed), "s")


def test_flow_is_horizontal_by_layers_with_a_small_constant_vertical_part():
    p = _pair()
    assert p.prev.shape == p.nxt.shape == (96, 128) and p.prev.dtype == p.nxt.dtype == np.uint8
    assert p.flow.dtype == np.float32 and p.flow.shape == (96, 128, 2)
    v = p.flow[..., 1]
    assert np.ptp(v) == 0 and abs(float(v[0, 0])) <= 0.25  # rectification error, the same everywhere
    u = p.flow[..., 0]
    assert np.all(u > 0) or np.all(u < 0)  # one direction per scene (left-to-right or right-to-left)
    # several layers: the disparity jumps at their edges (occlusion boundaries)
    assert np.abs(np.diff(u, axis=1)).max() > 1.0
    assert 0 < p.magnitude <= 8.0 * 1.1 + 0.25 and p.valid.mean() > 0.7


def test_flow_explains_frame2_where_visible_up_to_the_photometric_change():
    for seed in range(4):
        p = _pair(seed)
        h, w = p.prev.shape
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        back = cv2.remap(p.nxt.astype(np.float32), gx + p.flow[..., 0], gy + p.flow[..., 1], cv2.INTER_LINEAR)
        one = p.prev.astype(np.float32)[p.valid]
        # frame 2 has its own gain and offset: fit them before comparing
        gain, offset = np.polyfit(back[p.valid], one, 1)
        err = np.abs(gain * back[p.valid] + offset - one)
        still = np.abs(p.nxt.astype(np.float32)[p.valid] * gain + offset - one)
        # most pixels are explained up to noise, blur and JPEG; occluded ones are not; zero flow is worse
        assert np.median(err) < 5.0 and np.median(still) > 1.5 * np.median(err), seed


def test_stereo_pairs_classes_names_groups_seeded(tmp_path):
    from flowprep.synth import moving_frames, write_video

    write_video(tmp_path / "v.avi", moving_frames(24, 48, 64, (1.0, 0.0), seed=0), codec="ffv1")
    pairs, src = stereo_pairs(tmp_path / "v.avi", (80, 60), 2, seed=1, frame_range=TUNING_FRAMES)
    assert src.endswith("v.avi") and len(pairs) == 6
    assert [p.group for p in pairs] == ["stereo 1-3"] * 2 + ["stereo 3-8"] * 2 + ["stereo 8-20"] * 2
    assert pairs[0].name == "stereo-1-3px-0" and all(p.prev.shape == (60, 80) for p in pairs)
    for p in pairs:
        hi = float(p.group.split()[1].split("-")[1])
        assert p.magnitude <= hi * 1.1 + 0.25
    again, _ = stereo_pairs(tmp_path / "v.avi", (80, 60), 2, seed=1, frame_range=TUNING_FRAMES)
    assert all(np.array_equal(a.nxt, b.nxt) and np.array_equal(a.flow, b.flow) for a, b in zip(pairs, again))
    held, _ = stereo_pairs(tmp_path / "v.avi", (80, 60), 1, seed=1, frame_range=HELD_OUT_FRAMES)
    assert len(held) == 3 and not any(np.array_equal(a.prev, b.prev) for a in pairs for b in held)
