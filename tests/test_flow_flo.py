"""flowprep.flow.flo: ``.flo`` files are written atomically, never through a link at the name."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowprep.flow.flo import read_flo, write_flo


def test_write_flo_round_trips_and_replaces_a_link_not_its_target(tmp_path: Path):
    # before: Path.write_bytes followed a link planted at the name and overwrote its target
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"the user's file")
    (tmp_path / "gt.flo").symlink_to(outside)
    flow = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    write_flo(tmp_path / "gt.flo", flow)
    assert not (tmp_path / "gt.flo").is_symlink()
    assert outside.read_bytes() == b"the user's file"
    np.testing.assert_array_equal(read_flo(tmp_path / "gt.flo"), flow)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.flo", "outside.bin"]
