"""flowprep.fsio.paths: the one name validator, the confined deletion, printable names."""

from __future__ import annotations

import os

import pytest

from flowprep.errors import ConfigError
from flowprep.fsio.owned import remove_inside
from flowprep.fsio.paths import name_problem, printable


@pytest.mark.parametrize(
    "name", ["", ".", "..", "...", "a/b", "a\\b", "a\x00b", "tab\there", "x\x7f", "bad\udcff", "n" * 256]
)
def test_bad_names_are_refused(name):
    assert name_problem(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "walk",
        "Kiss_(1)_walk_f_cm_np1_fr_med_0",
        "#20_Rhythm_clap_u_nm_np1_fr_goo_0",
        "a&b!c'd",
        "v1.2.3",
        ".hidden",
        "ünïcode",
    ],
)
def test_hmdb_names_are_kept(name):
    assert name_problem(name) is None


def test_remove_inside_refuses_escapes(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "keep"
    (out / "train" / "c").mkdir(parents=True)
    outside.mkdir()
    (outside / "f").write_text("x")
    for rel in ("train/../..", "train/../../keep", "/etc", "labels.txt", "train/c/.."):
        with pytest.raises(ConfigError):
            remove_inside(out, rel, ("train",))
    (out / "val").symlink_to(outside)
    with pytest.raises(ConfigError, match="symlink"):
        remove_inside(out, "val/f", ("val",))
    (out / "train" / "c" / "link").symlink_to(outside)
    with pytest.raises(ConfigError, match="symlink"):
        remove_inside(out, "train/c/link", ("train",))
    assert (outside / "f").read_text() == "x"
    assert remove_inside(out, "train/c", ("train",)) and not (out / "train" / "c").exists()
    assert not remove_inside(out, "train/gone", ("train",))


def test_messages_are_printable_lines():
    assert printable(os.fsdecode(b"a\xffb") + "\nc", escape=True) == "a\\xffb\\nc"
    assert printable("x\ud800y", escape=True) == "x\\ud800y"
    assert printable(os.fsdecode(b"a\xffb") + "\nc") == "a\ufffdb\nc"  # messages and JSON
