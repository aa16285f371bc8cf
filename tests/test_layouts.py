"""Dataset layouts (flowprep/layout/base.py, tao.py, mmaction2.py, registry.py): each layout's rules
agree with each other, and no code outside the layouts tests a layout's name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flowprep.errors import DatasetError
from flowprep.layout.base import SIDES
from flowprep.layout.dataset_record import ClipEntry, DatasetRecord
from flowprep.layout.provenance import SplitInfo
from flowprep.layout.registry import DEFAULT_LAYOUT, LAYOUT_NAMES, LAYOUTS, frame_tops, get_layout

ROOT = Path(__file__).resolve().parents[1] / "flowprep"


def _record(layout: str, modality: str = "both") -> DatasetRecord:
    clips = tuple(
        ClipEntry(s, "walk", 0, f"c{i}", f"c{i}.avi", "ok" if i else "failed", 3 if i else 0, 2 if i else 0)
        for s in SIDES
        for i in range(2)
    )
    return DatasetRecord(modality, ("walk",), clips, SplitInfo("clip"), layout=layout)


@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_a_layout_writes_what_it_owns_and_counts_what_it_writes(name, tmp_path):
    layout = get_layout(name)
    assert layout.name == name and set(layout.clip_tops) <= set(layout.tops)
    clip = layout.clip_dir(tmp_path, "val", "walk", "c1")
    assert clip.relative_to(layout.side_dir(tmp_path, "val")) == Path("walk/c1")
    for sub in layout.subdirs(True, True):
        (clip / sub).mkdir(parents=True)
    clip.mkdir(parents=True, exist_ok=True)
    names = [layout.rgb_name(k) for k in range(3)] + [n for k in range(2) for n in layout.flow_names(k)]
    assert len(set(names)) == 7  # 3 frames, 2 u and 2 v images
    for n in names:
        (clip / n).write_bytes(b"")
    assert layout.count_frames(clip) == (3, 2)
    present, problems = layout.clip_files(clip, True, True)
    assert present == set(names) and problems == []
    files = layout.side_files(tmp_path, _record(name))
    assert {Path(rel).parts[0] for rel in files} <= set(layout.tops)
    assert set(layout.required_files(_record(name))) <= set(files)
    # lists name built clips only
    assert not any("c0 " in text for rel, text in files.items() if "list" in rel)


def test_the_registry():
    assert LAYOUT_NAMES[0] == DEFAULT_LAYOUT == "tao" and set(LAYOUTS) == {"tao", "mmaction2"}
    assert frame_tops() == ("train", "val", "rawframes")
    assert get_layout("tao").trainable and get_layout("tao").packable
    assert not get_layout("mmaction2").trainable and not get_layout("mmaction2").packable
    with pytest.raises(DatasetError, match="unknown dataset layout 'x'"):
        get_layout("x")


def test_no_code_outside_the_layouts_tests_a_layout_name():
    own = {"base.py", "tao.py", "mmaction2.py", "registry.py"}
    pattern = re.compile(r"layout\S* *[!=]= *[\"']|[\"'](tao|mmaction2)[\"'] *[!=]= |\"rawframes\"")
    hits = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in sorted(ROOT.rglob("*.py"))
        if not (p.parent.name == "layout" and p.name in own)
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
