"""Turn real image pairs with ground truth into the ``FRAME1 FRAME2 FLOW.flo`` triplets that
``--pair`` (``flowprep bench-flow``, ``bench/bench_flow.py``) and ``--real`` / ``--check-real``
(``bench/tune_cpu_flow.py``) read. Frames are written gray (what every backend gets).

    python bench/real_pairs.py flow DIR OUT [--half]           # Middlebury: frame10/11.png, flow10.flo
    python bench/real_pairs.py stereo LEFT RIGHT DISP OUT [--disp-scale 0.25] [--resize 0.5]
    python bench/real_pairs.py kitti FRAME10 FRAME11 FLOW_PNG OUT [--half]

Each writes ``OUT/<name>.png``, ``OUT/<name>_2.png`` and ``OUT/<name>.flo`` (``<name>`` is OUT's
folder name, so every pair's label differs). A stereo pair becomes flow from the left view to the
right one: ``(-disparity, 0)``; disparity is the file's value times ``--disp-scale`` (Middlebury
2003 PNGs: 0.25; 2006 full-size ``*GT.png``: 1; a ``.npz``/``.npy`` float map: 1), unknown where
0 or not finite; ``--resize`` scales frames and disparity together. KITTI flow PNGs are 16-bit:
``u = (R - 2^15) / 64``, ``v = (G - 2^15) / 64``, known where B > 0. ``--half`` (flow, kitti)
halves frames and flow (:func:`halve`): Middlebury's 640x480 pairs become the 320x240 frames of
issue 20's goal, with half the motion. The pairs behind the third
``dis-fine`` search and where they came from: docs/flow.md, "The real pairs".
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from flowprep.flow.flo import UNKNOWN_FLOW, read_flo, write_flo


def _gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise SystemExit(f"cannot read image {path}")
    return img


def save(out: Path, prev: np.ndarray, nxt: np.ndarray, flow: np.ndarray) -> None:
    """Write the triplet and print its size, known share and motion range."""
    out.mkdir(parents=True, exist_ok=True)
    name = out.name
    cv2.imwrite(str(out / f"{name}.png"), prev)
    cv2.imwrite(str(out / f"{name}_2.png"), nxt)
    write_flo(out / f"{name}.flo", flow.astype(np.float32))
    known = (np.abs(flow) < 1e9).all(-1)
    speed = np.sqrt((np.where(known[..., None], flow, 0) ** 2).sum(-1))
    h, w = prev.shape
    print(
        f"{out}: {w}x{h}, known {known.mean():.1%}, motion up to {speed.max():.1f} px (mean {speed[known].mean():.2f})"
    )


def halve(prev: np.ndarray, nxt: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames and true flow at half the size: ``uint8`` frames averaged over 2x2 pixels; the flow
    ``float32`` ``(H // 2, W // 2, 2)``, px, each block's mean halved, unknown (``UNKNOWN_FLOW``)
    unless all four of its pixels were known (an odd last row or column is dropped)."""
    h, w = prev.shape[0] // 2, prev.shape[1] // 2

    def area(img: np.ndarray) -> np.ndarray:
        return cv2.resize(img[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)

    blocks = flow[: 2 * h, : 2 * w].reshape(h, 2, w, 2, 2)
    known = (np.abs(blocks) < 1e9).all(-1).all((1, 3))
    half = np.where(known[..., None], np.where(np.abs(blocks) < 1e9, blocks, 0).mean((1, 3)) / 2, UNKNOWN_FLOW)
    return area(prev), area(nxt), half.astype(np.float32)


def _halved(half: bool, prev: np.ndarray, nxt: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, ...]:
    return halve(prev, nxt, flow) if half else (prev, nxt, flow)


def from_flow(folder: Path, out: Path, half: bool = False) -> None:
    frames = _gray(folder / "frame10.png"), _gray(folder / "frame11.png"), read_flo(folder / "flow10.flo")
    save(out, *_halved(half, *frames))


def from_stereo(left: Path, right: Path, disp: Path, out: Path, disp_scale: float, resize: float) -> None:
    if disp.suffix in (".npz", ".npy"):
        loaded = np.load(disp)
        d = np.asarray(loaded[loaded.files[0]] if disp.suffix == ".npz" else loaded, np.float32)
    else:
        d = cv2.imread(str(disp), cv2.IMREAD_UNCHANGED).astype(np.float32) * disp_scale
    known = np.isfinite(d) & (d > 0)
    prev, nxt = _gray(left), _gray(right)
    h, w = prev.shape
    size = (round(w * resize), round(h * resize))
    if resize != 1:
        prev = cv2.resize(prev, size, interpolation=cv2.INTER_AREA)
        nxt = cv2.resize(nxt, size, interpolation=cv2.INTER_AREA)
        # nearest: averaging disparities across a depth edge would invent surfaces
        d = cv2.resize(np.where(known, d, 0), size, interpolation=cv2.INTER_NEAREST) * resize
        known = cv2.resize(known.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    flow = np.zeros((size[1], size[0], 2), np.float32)
    flow[..., 0] = -d
    flow[~known] = UNKNOWN_FLOW
    save(out, prev, nxt, flow)


def from_kitti(frame10: Path, frame11: Path, gt: Path, out: Path, half: bool = False) -> None:
    png = cv2.imread(str(gt), cv2.IMREAD_UNCHANGED)
    if png is None or png.dtype != np.uint16 or png.ndim != 3:
        raise SystemExit(f"{gt}: not a 16-bit KITTI flow PNG")
    bgr = png.astype(np.float32)
    flow = np.dstack([(bgr[..., 2] - 2**15) / 64, (bgr[..., 1] - 2**15) / 64])
    flow[png[..., 0] == 0] = UNKNOWN_FLOW
    save(out, *_halved(half, _gray(frame10), _gray(frame11), flow))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="kind", required=True)
    f = sub.add_parser("flow")
    f.add_argument("dir", type=Path)
    f.add_argument("out", type=Path)
    f.add_argument("--half", action="store_true")
    s = sub.add_parser("stereo")
    for name in ("left", "right", "disp", "out"):
        s.add_argument(name, type=Path)
    s.add_argument("--disp-scale", type=float, default=1.0)
    s.add_argument("--resize", type=float, default=1.0)
    k = sub.add_parser("kitti")
    for name in ("frame10", "frame11", "gt", "out"):
        k.add_argument(name, type=Path)
    k.add_argument("--half", action="store_true")
    args = ap.parse_args(argv)
    if args.kind == "flow":
        from_flow(args.dir, args.out, args.half)
    elif args.kind == "stereo":
        from_stereo(args.left, args.right, args.disp, args.out, args.disp_scale, args.resize)
    else:
        from_kitti(args.frame10, args.frame11, args.gt, args.out, args.half)


if __name__ == "__main__":
    main()
