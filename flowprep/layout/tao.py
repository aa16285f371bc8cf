"""The TAO layout (NVIDIA TAO ActionRecognitionNet), flowprep's default::

    <root>/<side>/<class>/<clip>/rgb/000000.png ...   N frames
    <root>/<side>/<class>/<clip>/u/000000.jpg ...     N-1 flow images (k: frames k -> k+1)
    <root>/<side>/<class>/<clip>/v/000000.jpg ...
    <root>/train_list.txt, val_list.txt                "<side>/<class>/<clip> <frames> <label>"
    <root>/tao_dataset_spec.yaml                       the experiment spec's dataset section

Only class folders, clip folders and frames live under ``train/`` and ``val/`` (TAO lists them with
``os.listdir``). A packed build (``--pack``) puts the same images into ``shards/``
(:mod:`flowprep.layout.packed`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flowprep.layout.base import SIDES, Layout, RecordView


class TaoLayout(Layout):
    name = "tao"
    # shards/: a packed build's (flowprep build --pack)
    tops = ("train", "val", "train_list.txt", "val_list.txt", "tao_dataset_spec.yaml", "shards")
    default_rgb_format = "png"
    trainable = True
    packable = True

    def side_top(self, side: str) -> str:
        return side

    def rgb_name(self, k: int, image_format: str = "png") -> str:
        return f"rgb/{k:06d}.{image_format}"

    def flow_names(self, k: int, image_format: str = "jpg") -> tuple[str, str]:
        return f"u/{k:06d}.{image_format}", f"v/{k:06d}.{image_format}"

    def subdirs(self, rgb: bool, flow: bool) -> list[str]:
        return (["rgb"] if rgb else []) + (["u", "v"] if flow else [])

    def clip_files(self, folder: Path, rgb: bool, flow: bool) -> tuple[set[str], list[str]]:
        present: set[str] = set()
        problems: list[str] = []
        allowed = self.subdirs(rgb, flow)
        for entry in sorted(os.listdir(folder)):
            # a symlinked rgb/u/v folder could lead anywhere: not followed
            if entry not in allowed or (folder / entry).is_symlink() or not (folder / entry).is_dir():
                problems.append(f"{folder}: unexpected entry {entry!r} (TAO lists clip folders by name)")
                continue
            present.update(f"{entry}/{n}" for n in os.listdir(folder / entry))
        return present, problems

    def count_frames(self, folder: Path) -> tuple[int, int]:
        def n(sub: str) -> int:
            d = folder / sub
            return len(os.listdir(d)) if d.is_dir() else 0

        return n("rgb"), n("u")

    def side_files(self, root: Path, record: RecordView) -> dict[str, str]:
        files = {
            f"{side}_list.txt": "".join(
                f"{side}/{c.cls}/{c.name} {c.frames} {c.label}\n" for c in record.ok_clips(side)
            )
            for side in SIDES
        }
        files["tao_dataset_spec.yaml"] = _spec_snippet(root, list(record.classes), record.modality)
        return files


def _spec_snippet(root: Path, classes: list[str], modality: str) -> str:
    lines = [
        "# TAO ActionRecognitionNet: paste (or merge) into the experiment spec.",
        "# Written by flowprep; label ids match labels.txt / label_map.json.",
        "dataset:",
        f"  train_dataset_dir: {json.dumps(str(root / 'train'))}",
        f"  val_dataset_dir: {json.dumps(str(root / 'val'))}",
        "  label_map:",
        *[f"    {json.dumps(c)}: {i}" for i, c in enumerate(classes)],
        f"# model: model_type {'rgb' if modality == 'rgb' else ('of' if modality == 'flow' else 'rgb, of or joint')}"
        f" fits the frames built here ({len(classes)} classes).",
    ]
    return "\n".join(lines) + "\n"
