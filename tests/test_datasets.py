"""HMDB51 names, tags, groups, official split files, and the train/val split."""

from __future__ import annotations

import pytest

from flowprep.datasets.base import stem
from flowprep.datasets.hmdb51 import group_key, official_sides, parse_clip_name, parse_split_files
from flowprep.datasets.split import split_all, split_class
from flowprep.errors import ConfigError


def test_parse_real_style_names():
    p = parse_clip_name("Bob's_#1_(take.2)&more!_walk_f_cm_np1_fr_med_0.avi", "walk")
    assert p.source == "Bob's_#1_(take.2)&more!"
    assert p.tags == {"body": "f", "camera": "cm", "people": "np1", "view": "fr", "quality": "med"}
    assert p.index == 0
    assert stem("a/b/x.y.avi") == "x.y"
    assert parse_clip_name("not_an_hmdb_name.avi") is None


def test_group_keys():
    assert group_key("Src_A_walk_f_cm_np1_fr_med_0.avi", "walk") == group_key(
        "Src_A_walk_u_nm_np2_le_bad_3.avi", "walk"
    )
    assert group_key("v_ApplyEyeMakeup_g08_c01.avi", "x") == "g08"
    assert group_key("whatever.mp4", "x") == "whatever"


def _names(n_sources, per_source, cls="walk"):
    return [f"Src{s}_{cls}_f_cm_np1_fr_med_{k}.avi" for s in range(n_sources) for k in range(per_source)]


@pytest.mark.parametrize("n_sources,per_source", [(20, 5), (7, 3), (2, 1), (40, 1)])
def test_split_ratio_and_minimum(n_sources, per_source):
    names = _names(n_sources, per_source)
    sides = split_class("walk", names, 0.1, seed=3)
    n_val = sum(s == "val" for s in sides.values())
    assert 1 <= n_val < len(names)
    assert abs(n_val - max(1, round(0.1 * len(names)))) <= per_source


def test_split_keeps_sources_together_and_is_reproducible():
    names = _names(30, 4)
    a = split_class("walk", names, 0.1, seed=7)
    b = split_class("walk", list(reversed(names)), 0.1, seed=7)
    assert a == b
    by_source = {}
    for name, side in a.items():
        by_source.setdefault(group_key(name, "walk"), set()).add(side)
    assert all(len(s) == 1 for s in by_source.values())
    c = split_class("walk", names, 0.1, seed=8)
    assert a != c


def test_split_by_clip_mixes_sources():
    names = _names(10, 10)
    sides = split_class("walk", names, 0.1, seed=0, split_by="clip")
    assert sum(s == "val" for s in sides.values()) == 10
    sources = {group_key(n, "walk") for n, s in sides.items() if s == "val"}
    assert len(sources) > 1


def test_single_source_falls_back_to_clip_split(caplog):
    sides = split_class("walk", _names(1, 10), 0.2, seed=0)
    assert sum(s == "val" for s in sides.values()) == 2
    assert "one source video" in caplog.text


def test_split_all_per_class_and_bad_options():
    out = split_all({"a": _names(10, 2, "a"), "b": _names(5, 2, "b")}, 0.1, 0)
    assert set(out) == {"a", "b"}
    with pytest.raises(ConfigError):
        split_class("a", _names(3, 1, "a"), 1.5)
    with pytest.raises(ConfigError):
        split_class("a", _names(3, 1, "a"), 0.1, split_by="nope")


def test_official_split_files():
    texts = {
        "walk_test_split1.txt": "A_walk_f_cm_np1_fr_med_0.avi 1 \nB_walk_f_cm_np1_fr_med_0.avi 2 \n"
        "C_walk_f_cm_np1_fr_med_0.avi 0\n",
        "walk_test_split2.txt": "A_walk_f_cm_np1_fr_med_0.avi 2\n",
        "README": "ignored",
    }
    table = parse_split_files(texts, 1)
    assert table == {
        "walk": {
            "A_walk_f_cm_np1_fr_med_0": "train",
            "B_walk_f_cm_np1_fr_med_0": "val",
            "C_walk_f_cm_np1_fr_med_0": "unused",
        }
    }
    sides = official_sides(
        {"walk": ["A_walk_f_cm_np1_fr_med_0.avi", "B_walk_f_cm_np1_fr_med_0.avi", "D_walk_f_cm_np1_fr_med_0.avi"]},
        table,
    )
    assert sides["walk"]["D_walk_f_cm_np1_fr_med_0.avi"] == "unlisted"
    with pytest.raises(ConfigError, match="split 3"):
        parse_split_files(texts, 3)
    with pytest.raises(ConfigError, match="expected"):
        parse_split_files({"walk_test_split1.txt": "garbage\n"}, 1)
    with pytest.raises(ConfigError, match="no entry for class"):
        official_sides({"run": ["x.avi"]}, table)
