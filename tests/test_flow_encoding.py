"""Flow <-> 8-bit encodings: round trips, zero, clipping, TAO's max-radius mode, image formats."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flowprep.errors import ConfigError
from flowprep.flow.encoding import FlowEncoding, decode, encode, max_radius, normalize_uint8


def _field(h=40, w=50, scale=15.0, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-scale, scale, (h, w, 2))).astype(np.float32)


def test_fixed_zero_maps_to_128_and_roundtrip_within_half_step():
    enc = FlowEncoding(bound=20)
    u, v = encode(np.zeros((4, 5, 2), np.float32), enc)
    assert u.dtype == np.uint8 and u.shape == (4, 5) and (u == 128).all() and (v == 128).all()
    f = _field(scale=19.9)
    back = decode(*encode(f, enc), enc)
    assert np.abs(back - f).max() <= 20 / 255 + 1e-5


def test_fixed_clips_at_bound():
    enc = FlowEncoding(bound=5)
    f = np.array([[[100.0, -100.0]]], np.float32)
    u, v = encode(f, enc)
    assert u[0, 0] == 255 and v[0, 0] == 0
    assert np.allclose(decode(u, v, enc)[0, 0], [5, -5])


def test_maxrad_matches_tao_formula_and_inverts_with_scale():
    enc = FlowEncoding(mode="maxrad")
    f = _field(scale=7)
    m = max_radius(f)
    assert m == pytest.approx(float(np.sqrt((f**2).sum(-1)).max()), rel=1e-6)
    u, v = encode(f, enc)
    expected_u = np.floor(f[..., 0] / m * 127.999 + 128).astype(np.uint8)
    assert (u == expected_u).all()
    back = decode(u, v, enc, max_rad=m)
    assert np.abs(back - f).max() <= m / 127.999 * 0.5 + 1e-4
    # Small motion: max_rad is at least 1 px, so sub-pixel flow is not blown up to full range.
    small = np.full((3, 3, 2), 0.25, np.float32)
    assert max_radius(small) == 1.0
    assert encode(small, enc)[0][0, 0] == np.floor(0.25 * 127.999 + 128)


def test_jpeg_adds_bounded_error():
    enc = FlowEncoding(bound=20, image_format="jpg", jpeg_quality=95)
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    f = np.stack([np.sin(x / 9) * 8, np.cos(y / 7) * 6], -1).astype(np.float32)
    u, v = encode(f, enc)
    ok, buf = cv2.imencode(".jpg", u, [cv2.IMWRITE_JPEG_QUALITY, 95])
    u2 = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    err = np.abs(decode(u2, v, enc)[..., 0] - f[..., 0])
    assert err.mean() < 0.2


def test_normalize_and_bad_settings():
    x = np.array([0, 128, 255], np.uint8)
    assert np.allclose(normalize_uint8(x), [-1, 128 / 127.5 - 1, 1], atol=1e-6)
    for bad in (dict(mode="log"), dict(bound=0), dict(image_format="bmp"), dict(jpeg_quality=0)):
        with pytest.raises(ConfigError):
            FlowEncoding(**bad)
    enc = FlowEncoding(mode="maxrad", bound=3, image_format="png", jpeg_quality=80)
    assert FlowEncoding.from_dict(enc.to_dict()) == enc
