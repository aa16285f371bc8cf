"""flowprep.commands.params: out-of-range or non-finite numbers are usage errors (exit 2) that
create nothing, and the shared click types parse what they should."""

from __future__ import annotations

import pytest

from flowprep.commands.params import CommaList, Shard, Size, finite
from helpers import invoke_checked, tree_names

BAD_NUMBERS = [
    ["build", "SRC", "--out", "OUT", "--bound", "inf"],
    ["build", "SRC", "--out", "OUT", "--bound", "nan"],
    ["build", "SRC", "--out", "OUT", "--val-ratio", "nan"],
    ["build", "SRC", "--out", "OUT", "--size", "100000x100000"],
    ["build", "SRC", "--out", "OUT", "--size", "8x8"],
    ["build", "SRC", "--out", "OUT", "--short-side", "100000"],
    ["build", "SRC", "--out", "OUT", "--shard", "3/2"],
    ["build", "SRC", "--out", "OUT", "--flow-param", "finest_scale=nan"],
    ["build", "SRC", "--out", "OUT", "--classes", " , "],
    ["train", "SRC", "--out", "OUT", "--lr", "nan"],
    ["train", "SRC", "--out", "OUT", "--lr", "inf"],
    ["train", "SRC", "--out", "OUT", "--workers", "-1"],
    ["train", "SRC", "--out", "OUT", "--input-size", "100000"],
    ["train", "SRC", "--out", "OUT", "--lr-steps", "5,x"],
    ["train", "SRC", "--out", "OUT", "--dropout", "nan"],
    ["evaluate", "SRC/x.pt", "SRC", "--batch-size", "0"],
    ["bench-flow", "--magnitudes", "nan"],
    ["bench-flow", "--magnitudes", "2,-1"],
    ["bench-flow", "--bound", "inf"],
    ["bench-flow", "--size", "100000x100000"],
    ["infer", "x.mp4", "--model", "m.onnx", "--fps", "nan"],
    ["infer", "x.mp4", "--model", "m.onnx", "--stride", "0"],
    ["infer", "x.mp4", "--model", "m.onnx", "--top-k", "0"],
    ["infer", "x.mp4", "--model", "m.onnx", "--max-frames", "-1"],
    ["export", "x.pt", "--out", "OUT", "--max-batch", "0"],
    ["preview", "SRC", "--out", "OUT", "--fps", "nan"],
    ["preview", "SRC", "--out", "OUT", "--max-frames", "0"],
]


@pytest.mark.parametrize("args", BAD_NUMBERS, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_bad_numbers_are_usage_errors(args, tmp_path):
    (tmp_path / "SRC").mkdir()
    before = tree_names(tmp_path)
    out = invoke_checked(
        *[a.replace("SRC", str(tmp_path / "SRC")).replace("OUT", str(tmp_path / "o")) for a in args], code=2
    )
    assert "Invalid value" in out
    assert tree_names(tmp_path) == before


def test_parameter_types():
    assert Size().convert("320x240", None, None) == (320, 240)
    assert CommaList().convert(" a, b ,,", None, None) == ["a", "b"]
    assert CommaList(int).convert("15,25", None, None) == [15, 25]
    assert Shard().convert("2/3", None, None) == (2, 3)
    assert finite(0, 1, lo_open=True).convert("0.5", None, None) == 0.5
