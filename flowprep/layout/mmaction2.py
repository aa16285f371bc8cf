"""The mmaction2 layout (``RawframeDataset``, ``filename_tmpl`` defaults, ``start_index`` 1)::

    <root>/rawframes/<class>/<clip>/img_00001.jpg ...      N frames
    <root>/rawframes/<class>/<clip>/flow_x_00001.jpg ...   N-1
    <root>/rawframes/<class>/<clip>/flow_y_00001.jpg ...
    <root>/mmaction2/{train,val}_list_rawframes.txt         "<class>/<clip> <frames> <label>"
    <root>/mmaction2/{train,val}_list_rawframes_flow.txt    the same with flow image counts
    <root>/mmaction2/dataset_settings.py                    data_root and ann_file settings

Both sides share ``rawframes/``; the lists say which clip is on which side.
"""

from __future__ import annotations

import os
from pathlib import Path

from flowprep.layout.base import SIDES, Layout, RecordView

FRAMES_DIR = "rawframes"
LISTS_DIR = "mmaction2"


class Mmaction2Layout(Layout):
    name = "mmaction2"
    tops = (FRAMES_DIR, LISTS_DIR)
    default_rgb_format = "jpg"

    def side_top(self, side: str) -> str:
        return FRAMES_DIR

    def rgb_name(self, k: int, image_format: str = "png") -> str:
        return f"img_{k + 1:05d}.{image_format}"

    def flow_names(self, k: int, image_format: str = "jpg") -> tuple[str, str]:
        return f"flow_x_{k + 1:05d}.{image_format}", f"flow_y_{k + 1:05d}.{image_format}"

    def count_frames(self, folder: Path) -> tuple[int, int]:
        names = os.listdir(folder)
        return sum(1 for x in names if x.startswith("img_")), sum(1 for x in names if x.startswith("flow_x_"))

    def side_files(self, root: Path, record: RecordView) -> dict[str, str]:
        files = {}
        for side in SIDES:
            rows = record.ok_clips(side)
            if record.has_rgb:
                files[f"{LISTS_DIR}/{side}_list_rawframes.txt"] = "".join(
                    f"{c.cls}/{c.name} {c.frames} {c.label}\n" for c in rows
                )
            if record.has_flow:
                files[f"{LISTS_DIR}/{side}_list_rawframes_flow.txt"] = "".join(
                    f"{c.cls}/{c.name} {c.flow_frames} {c.label}\n" for c in rows
                )
        files[f"{LISTS_DIR}/dataset_settings.py"] = _settings_snippet(root, record.modality)
        return files

    def required_files(self, record: RecordView) -> list[str]:
        flow_only = not record.has_rgb
        return [f"{LISTS_DIR}/{side}_list_rawframes{'_flow' if flow_only else ''}.txt" for side in SIDES]


def _settings_snippet(root: Path, modality: str) -> str:
    ann = root / LISTS_DIR
    lines = [
        "# mmaction2 RawframeDataset settings for this dataset (written by flowprep).",
        f"data_root = {str(root / FRAMES_DIR)!r}",
    ]
    if modality in ("rgb", "both"):
        lines += [
            f"ann_file_train = {str(ann / 'train_list_rawframes.txt')!r}",
            f"ann_file_val = {str(ann / 'val_list_rawframes.txt')!r}",
            "# RGB: filename_tmpl='img_{:05}.jpg' (the default), start_index=1",
        ]
    if modality in ("flow", "both"):
        lines += [
            f"ann_file_train_flow = {str(ann / 'train_list_rawframes_flow.txt')!r}",
            f"ann_file_val_flow = {str(ann / 'val_list_rawframes_flow.txt')!r}",
            "# flow: modality='Flow', filename_tmpl='flow_{}_{:05d}.jpg', start_index=1",
        ]
    return "\n".join(lines) + "\n"
