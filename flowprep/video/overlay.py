"""Text drawn over video frames: the inference label (``flowprep infer --output``) and the preview's
panel captions share it."""

from __future__ import annotations

import numpy as np


def draw_label(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    """Write ``lines`` at the top left of an RGB frame (``uint8`` ``(H, W, 3)``, modified in place).

    White text on a dark outline so it reads on any background; the scale follows the frame width
    (0.4 at 176 px, 1.0 at 640 px and wider).
    """
    import cv2

    h, w = frame.shape[:2]
    scale = float(np.clip(w / 640.0, 0.35, 1.0))
    thick = max(1, int(round(2 * scale)))
    y = int(22 * scale) + 4
    for text in lines:
        cv2.putText(frame, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(frame, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
        y += int(26 * scale) + 4
    return frame
