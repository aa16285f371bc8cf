"""File names of the two layouts. Every writer and reader takes its names from here.

TAO (ActionRecognitionNet)::

    <root>/<side>/<class>/<clip>/rgb/000000.png ...   N frames
    <root>/<side>/<class>/<clip>/u/000000.jpg ...     N-1 flow images (k: frames k -> k+1)
    <root>/<side>/<class>/<clip>/v/000000.jpg ...

mmaction2 rawframes (``filename_tmpl`` defaults, ``start_index`` 1)::

    <root>/rawframes/<class>/<clip>/img_00001.jpg ...      N frames
    <root>/rawframes/<class>/<clip>/flow_x_00001.jpg ...   N-1
    <root>/rawframes/<class>/<clip>/flow_y_00001.jpg ...
    <root>/mmaction2/{train,val}_list_rawframes.txt         "<class>/<clip> <frames> <label>"

Only class folders, clip folders and frames live under ``train/``, ``val/`` and ``rawframes/``
(TAO lists them with ``os.listdir``); records, lists and temporary files live at the root.
"""

from __future__ import annotations

from pathlib import Path

LAYOUTS = ("tao", "mmaction2")
TMP_DIR = ".flowprep-tmp"  # clip jobs write here, then rename into place
STATE_DIR = ".flowprep"  # build config, failure notes, caches


def clip_dir(root: Path, layout: str, side: str, cls: str, clip: str) -> Path:
    """Final folder of one clip."""
    if layout == "tao":
        return Path(root) / side / cls / clip
    return Path(root) / "rawframes" / cls / clip


def rgb_name(layout: str, k: int, image_format: str = "png") -> str:
    """Relative file name of RGB frame ``k`` (0-based) inside the clip folder."""
    if layout == "tao":
        return f"rgb/{k:06d}.{image_format}"
    return f"img_{k + 1:05d}.{image_format}"


def flow_names(layout: str, k: int, image_format: str = "jpg") -> tuple[str, str]:
    """Relative file names ``(u, v)`` of flow image ``k`` (0-based, between frames k and k+1)."""
    if layout == "tao":
        return f"u/{k:06d}.{image_format}", f"v/{k:06d}.{image_format}"
    return f"flow_x_{k + 1:05d}.{image_format}", f"flow_y_{k + 1:05d}.{image_format}"


def subdirs(layout: str, rgb: bool, flow: bool) -> list[str]:
    """Folders to create inside a clip folder."""
    if layout != "tao":
        return []
    return (["rgb"] if rgb else []) + (["u", "v"] if flow else [])
