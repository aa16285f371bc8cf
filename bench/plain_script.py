"""The baseline of ``make bench``: a plain single-process script doing what a build does, one clip at a time.

decode (PyAV) -> write RGB PNGs -> TV-L1 (OpenCV defaults) -> fixed-bound 8-bit -> write u/v JPEGs.
``--threads 1`` makes OpenCV single-threaded; without it OpenCV uses its default thread pool.
Prints one JSON line: {"frames": n, "seconds": s}.
"""

import argparse
import json
import os
import sys
import time

import av
import cv2
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("videos", nargs="+")
p.add_argument("--threads", type=int, default=None)
args = p.parse_args()
if args.threads is not None:
    cv2.setNumThreads(args.threads)
t0 = time.perf_counter()
frames = 0
tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
for i, video in enumerate(args.videos):
    d = os.path.join(args.out, f"clip{i}")
    for sub in ("rgb", "u", "v"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    prev = None
    with av.open(video) as c:
        for k, frame in enumerate(c.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")
            cv2.imwrite(os.path.join(d, "rgb", f"{k:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            if prev is not None:
                f = tvl1.calc(prev, gray, None)
                q = np.clip(np.floor((np.clip(f, -20, 20) + 20) * (255 / 40) + 0.5), 0, 255).astype(np.uint8)
                cv2.imwrite(os.path.join(d, "u", f"{k - 1:06d}.jpg"), q[..., 0], [cv2.IMWRITE_JPEG_QUALITY, 95])
                cv2.imwrite(os.path.join(d, "v", f"{k - 1:06d}.jpg"), q[..., 1], [cv2.IMWRITE_JPEG_QUALITY, 95])
            prev = gray
            frames += 1
print(json.dumps({"frames": frames, "seconds": time.perf_counter() - t0}))
sys.exit(0)
