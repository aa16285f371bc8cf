"""A clip's images checked against the record: names, whole containers, decodable, one size.

Shared by ``flowprep verify`` of a folder dataset (:mod:`flowprep.layout.verify`) and of a packed
one (:mod:`flowprep.layout.verify_packed`), which read the same bytes from files or tar members.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _expected_names(layout: str, kind: str, n: int, ext: str) -> list[str]:
    from flowprep.layout.paths import flow_names, rgb_name

    if kind == "rgb":
        return [rgb_name(layout, k, ext) for k in range(n)]
    return [flow_names(layout, k, ext)[0 if kind == "u" else 1] for k in range(n)]


def container_problem(data: bytes, ext: str) -> str | None:
    """Why the bytes of a ``.jpg``/``.png`` file are not a whole image, or None.

    Decoders forgive a lot: OpenCV returns a truncated JPEG with its missing rows grey (and a
    warning on stderr). So the file's structure is checked too, cheaply: a JPEG starts with SOI
    (``FFD8``) and ends with EOI (``FFD9``); a PNG is its signature and a chain of chunks, each
    CRC-checked, ending with ``IEND``.
    """
    if ext in ("jpg", "jpeg"):
        if not data.startswith(b"\xff\xd8"):
            return "not a JPEG file: no start marker"
        if not data.rstrip(b"\0").endswith(b"\xff\xd9"):
            return "truncated JPEG: no end-of-image marker"
        return None
    if ext == "png":
        return _png_problem(data)
    return None


def _png_problem(data: bytes) -> str | None:
    if not data.startswith(_PNG_SIGNATURE):
        return "not a PNG file: no signature"
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        end = pos + 12 + length
        if end > len(data):
            break
        kind = data[pos + 4 : pos + 8]
        if zlib.crc32(data[pos + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return f"damaged PNG: CRC mismatch in chunk {kind.decode('latin-1')!r}"
        if kind == b"IEND":
            return None
        pos = end
    return "truncated PNG: no IEND chunk"


def decode_bytes(data: bytes, ext: str) -> tuple[np.ndarray | None, str]:
    """Decode the bytes of a ``.jpg``/``.png`` image fully: ``(image, "")``, or ``(None, why)`` when
    truncated or damaged. The image is ``(H, W)`` or ``(H, W, C)`` ``uint8`` as stored."""
    import cv2

    damage = container_problem(data, ext)
    if damage:
        return None, damage
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None, "does not decode"
    return img, ""


@dataclass(frozen=True)
class ClipSpec:
    """What the record says one clip holds, and how much of it to decode."""

    layout: str
    frames: int
    flow_frames: int
    rgb: bool
    flow: bool
    rgb_ext: str
    flow_ext: str
    quick: bool


def image_problems(
    where: str, spec: ClipSpec, present: set[str], read: Callable[[str], tuple[np.ndarray | None, str]]
) -> tuple[list[str], int]:
    """Problems of one clip's images (``present``: their relative names; ``read`` decodes one), and
    how many images were decoded: names against the record's counts, every image (``quick``: the
    first and last of each stream) whole, decodable and of one size."""
    problems: list[str] = []
    wanted: list[str] = []
    if spec.rgb:
        wanted += _expected_names(spec.layout, "rgb", spec.frames, spec.rgb_ext)
    if spec.flow:
        wanted += _expected_names(spec.layout, "u", spec.flow_frames, spec.flow_ext)
        wanted += _expected_names(spec.layout, "v", spec.flow_frames, spec.flow_ext)
        if spec.rgb and spec.flow_frames != spec.frames - 1:
            problems.append(
                f"{where}: {spec.flow_frames} flow images for {spec.frames} frames (expected {spec.frames - 1})"
            )
    missing = sorted(set(wanted) - present)
    extra = sorted(present - set(wanted))
    if missing:
        problems.append(f"{where}: {len(missing)} file(s) missing, e.g. {missing[0]}")
    if extra:
        problems.append(f"{where}: {len(extra)} unexpected file(s), e.g. {extra[0]}")
    to_read = [n for n in wanted if n in present]
    if spec.quick:
        groups: dict[str, list[str]] = {}
        for n in to_read:
            groups.setdefault(n.split("/")[0] if "/" in n else n.split("_0")[0], []).append(n)
        to_read = sorted({x for g in groups.values() for x in (g[0], g[-1])})
    shape = None
    for n in to_read:
        img, why = read(n)
        if img is None:
            problems.append(f"{where}/{n}: unreadable image ({why})")
            continue
        if shape is None:
            shape = img.shape[:2]
        elif img.shape[:2] != shape:
            problems.append(
                f"{where}/{n}: size {img.shape[1]}x{img.shape[0]} differs from the clip's {shape[1]}x{shape[0]}"
            )
    return problems, len(to_read)
