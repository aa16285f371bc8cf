"""Video decoding (PyAV) into RGB frames."""

from flowprep.video.decode import count_frames, iter_frames, resize_frame, target_size

__all__ = ["count_frames", "iter_frames", "resize_frame", "target_size"]
