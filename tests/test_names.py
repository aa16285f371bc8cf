"""flowprep.layout.names: path components, class names that survive every label file, collisions."""

from __future__ import annotations

import logging
import os

import pytest

from flowprep.errors import ConfigError, FlowprepError
from flowprep.fsio.paths import name_problem
from flowprep.layout.names import (
    check_class_name,
    class_name_collisions,
    class_name_problem,
    collision_key,
    validate_component,
    warn_collisions,
)
from helpers import run_cli


@pytest.mark.parametrize("name", ["walk", "brush_hair", "sword_exercise", "Ärger", "a.b", "a#b", "x(1)&y!'z", "步行"])
def test_good_class_names(name):
    assert class_name_problem(name) is None and check_class_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("a;b", "a ';' in the name (DeepStream's labels_nvinfer.txt separates labels with ';')"),
        ("a,b", "a ',' in the name"),
        ("le\nft", "a control character in the name"),
        ("a b", "whitespace in the name"),
        ("a\tb", "a control character in the name"),
        ("a\u2028b", "whitespace in the name"),  # a line separator to str.splitlines()
        ("a\x85b", "whitespace in the name"),  # NEL, likewise
        ("a\u00a0b", "whitespace in the name"),  # a no-break space
        ("..", "a name made only of dots"),
        ("a/b", "a path separator in the name"),
        ("", "empty name"),
        ("x" * 256, "a name longer than 255 bytes"),
        (7, "not a string but int"),
        (None, "not a string but NoneType"),
    ],
)
def test_bad_class_names(name, why):
    assert why in class_name_problem(name)
    with pytest.raises(ConfigError) as err:
        check_class_name(name)
    assert "\n" not in str(err.value) and "cannot be a" in str(err.value)


def test_folder_names_stay_as_they_were():
    # only class names are held to the label files' rules; a clip folder may hold a ';' or a ','
    assert name_problem("a;b") is None and name_problem("a,b") is None and name_problem("a b") is None


def test_collisions_by_case_and_unicode_form():
    assert collision_key("Walk") == collision_key("WALK") == collision_key("ｗａｌｋ")
    assert collision_key("caf\u00e9") == collision_key("cafe\u0301")
    assert collision_key("Straße") == collision_key("STRASSE")
    assert class_name_collisions(["walk", "Walk", "run", "WALK", "caf\u00e9", "cafe\u0301", "jump"]) == [
        ("walk", "Walk", "WALK"),
        ("caf\u00e9", "cafe\u0301"),
    ]
    assert class_name_collisions(["walk", "run", "walk"]) == []


def test_collisions_warn(caplog):
    with caplog.at_level(logging.WARNING):
        assert warn_collisions(["Run", "run", "walk"], "build") == [("Run", "run")]
    assert "build: classes 'Run', 'run' differ only in case or Unicode form" in caplog.text


def test_build_refuses_a_class_name_that_would_shift_deepstream_labels(tmp_path):
    from flowprep.synth import moving_frames, write_video

    (tmp_path / "rel" / "a;b").mkdir(parents=True)
    (tmp_path / "rel" / "run").mkdir()
    write_video(tmp_path / "rel" / "a;b" / "c1.avi", moving_frames(4, 32, 48, (1.0, 0.5), 0))
    write_video(tmp_path / "rel" / "run" / "c2.avi", moving_frames(4, 32, 48, (1.0, 0.5), 1))
    res = run_cli("build", tmp_path / "rel", "--out", tmp_path / "out", "--flow", "dis", "-j", "1", "--no-progress")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines() == [
        "flowprep: error: class 'a;b' cannot be a class name (a ';' in the name (DeepStream's "
        "labels_nvinfer.txt separates labels with ';')); rename it in the source"
    ]
    assert not (tmp_path / "out" / "train").exists()


def test_property_name_checks_raise_only_config_errors():
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hypothesis.settings(max_examples=1000, deadline=None)
    @hypothesis.given(
        st.text() | st.none() | st.integers() | st.binary().map(lambda b: b.decode("utf-8", "surrogateescape"))
    )
    def check(name: object) -> None:
        why = class_name_problem(name)
        assert why is None or isinstance(why, str)
        try:
            assert check_class_name(name) == name  # type: ignore[arg-type]
        except ConfigError as exc:
            assert "\n" not in str(exc) and why is not None
        else:
            assert why is None and ";" not in name and not any(ch.isspace() for ch in name)  # type: ignore[union-attr]
        if isinstance(name, str):
            assert class_name_collisions([name, name]) == []

    check()


def test_random_names_raise_only_config_errors():
    import random

    rng = random.Random(16)
    alphabet = "ab;, .\n\t\u2028\u0085\udcff/\\\x00é\u0301Ｗ"
    for _ in range(5000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        why = class_name_problem(name)
        try:
            check_class_name(name)
        except ConfigError as exc:
            assert why is not None and "\n" not in str(exc)
        else:
            assert why is None
        assert collision_key(name) == collision_key(collision_key(name))


def test_validate_component():
    assert validate_component("run(fast)&more!", "clip") == "run(fast)&more!"
    for bad in ("..", ".", "", "a/b", "/etc", "a\0b", os.fsdecode(b"\xff")):
        with pytest.raises(FlowprepError):
            validate_component(bad, "clip")
