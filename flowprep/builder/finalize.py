"""Finish a build: the dataset record, label map, split lists and the TAO / mmaction2 config snippets.

Everything here is derived from the plan and from what is on disk, never from timings, so a resumed
build writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from flowprep import __version__
from flowprep.builder.config import BuildConfig
from flowprep.builder.job import ClipResult, count_on_disk
from flowprep.builder.plan import Plan
from flowprep.layout.paths import TMP_DIR, clip_dir
from flowprep.layout.record import FORMAT, FORMAT_VERSION, write_json_atomic, write_record, write_text_atomic


def clip_entries(cfg: BuildConfig, plan: Plan, results: dict[str, ClipResult]) -> list[dict[str, Any]]:
    """Per-clip entries of the record, sorted by id: from disk for finished clips."""
    entries = []
    for job in plan.jobs:
        final = clip_dir(cfg.out, cfg.layout, job.side, job.cls, job.clip)
        e: dict[str, Any] = {"id": job.id, "side": job.side, "class": job.cls, "label": job.label,
                             "name": job.clip, "source": job.name}
        if final.is_dir():
            frames, flows = count_on_disk(final, cfg.layout, cfg.needs_rgb)
            e.update(status="ok", frames=frames, flow_frames=flows if cfg.needs_flow else 0)
        else:
            r = results.get(job.id)
            e.update(status="failed", frames=0, flow_frames=0,
                     error=(r.error if r is not None and r.error else "not built"))
        entries.append(e)
    return entries


def built_counts(classes: list[str], clips: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """class -> {"train": n, "val": n} of the clips that were built (``split.counts`` is the plan)."""
    out = {c: {"train": 0, "val": 0} for c in classes}
    for c in clips:
        if c["status"] == "ok":
            out[c["class"]][c["side"]] += 1
    return out


def make_record(cfg: BuildConfig, plan: Plan, flow_info: dict[str, Any] | None,
                clips: list[dict[str, Any]]) -> dict[str, Any]:
    """The dataset record (schema in :mod:`flowprep.layout.record`)."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "flowprep_version": __version__,
        "layout": cfg.layout, "modality": cfg.modality,
        "source": plan.source,
        "classes": plan.classes,
        "split": plan.split,
        "decode": {"short_side": cfg.short_side, "size": list(cfg.size) if cfg.size else None,
                   "frame_step": cfg.frame_step},
        "rgb": {"image_format": cfg.rgb_format, "jpeg_quality": cfg.rgb_quality if cfg.rgb_format == "jpg" else None}
        if cfg.needs_rgb else None,
        "flow": flow_info if cfg.needs_flow else None,
        "encoding": cfg.encoding.to_dict() if cfg.needs_flow else None,
        "normalization": {"formula": "(x / 255 - 0.5) / 0.5", "scale": 1 / 127.5, "offset": 127.5},
        "excluded": sorted(plan.excluded),
        "counts": built_counts(plan.classes, clips),
        "clips": clips,
    }


def _tao_snippet(root: Path, classes: list[str], modality: str) -> str:
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


def _mmaction2_snippet(root: Path, modality: str) -> str:
    ann = root / "mmaction2"
    lines = ["# mmaction2 RawframeDataset settings for this dataset (written by flowprep).",
             f"data_root = {str(root / 'rawframes')!r}"]
    if modality in ("rgb", "both"):
        lines += [f"ann_file_train = {str(ann / 'train_list_rawframes.txt')!r}",
                  f"ann_file_val = {str(ann / 'val_list_rawframes.txt')!r}",
                  "# RGB: filename_tmpl='img_{:05}.jpg' (the default), start_index=1"]
    if modality in ("flow", "both"):
        lines += [f"ann_file_train_flow = {str(ann / 'train_list_rawframes_flow.txt')!r}",
                  f"ann_file_val_flow = {str(ann / 'val_list_rawframes_flow.txt')!r}",
                  "# flow: modality='Flow', filename_tmpl='flow_{}_{:05d}.jpg', start_index=1"]
    return "\n".join(lines) + "\n"


def finalize(cfg: BuildConfig, plan: Plan, flow_info: dict[str, Any] | None,
             results: dict[str, ClipResult]) -> dict[str, Any]:
    """Write the record and side files; returns the record. Removes stale temporary folders."""
    out = cfg.out
    clips = clip_entries(cfg, plan, results)
    record = make_record(cfg, plan, flow_info, clips)
    write_record(out, record)
    write_text_atomic(out / "labels.txt", "".join(f"{c}\n" for c in plan.classes))
    write_json_atomic(out / "label_map.json", {c: i for i, c in enumerate(plan.classes)})
    ok = [c for c in clips if c["status"] == "ok"]
    for side in ("train", "val"):
        rows = [c for c in ok if c["side"] == side]
        if cfg.layout == "tao":
            write_text_atomic(out / f"{side}_list.txt",
                        "".join(f"{side}/{c['class']}/{c['name']} {c['frames']} {c['label']}\n" for c in rows))
        else:
            (out / "mmaction2").mkdir(exist_ok=True)
            if cfg.needs_rgb:
                write_text_atomic(out / "mmaction2" / f"{side}_list_rawframes.txt",
                            "".join(f"{c['class']}/{c['name']} {c['frames']} {c['label']}\n" for c in rows))
            if cfg.needs_flow:
                write_text_atomic(out / "mmaction2" / f"{side}_list_rawframes_flow.txt",
                            "".join(f"{c['class']}/{c['name']} {c['flow_frames']} {c['label']}\n" for c in rows))
    root = out.resolve()
    if cfg.layout == "tao":
        write_text_atomic(out / "tao_dataset_spec.yaml", _tao_snippet(root, plan.classes, cfg.modality))
    else:
        write_text_atomic(out / "mmaction2" / "dataset_settings.py", _mmaction2_snippet(root, cfg.modality))
    tmp = out / TMP_DIR
    if tmp.is_dir() and all(c["status"] == "ok" for c in clips):
        shutil.rmtree(tmp, ignore_errors=True)
    return record
