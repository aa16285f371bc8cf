"""flowprep.builder.job: a clip that fails or loses frames to decode errors is recorded, counted
and summed up in a few lines."""

from __future__ import annotations

import zipfile

from flowprep.layout.record import read_record
from flowprep.synth import moving_frames, write_video
from helpers import build_args, clip_bytes, few_lines, run_flowprep


def test_frames_lost_to_decode_errors_are_recorded_and_warned(tmp_path):
    rel = tmp_path / "rel"
    (rel / "walk").mkdir(parents=True)
    write_video(rel / "walk" / "good.avi", moving_frames(20, 64, 80, (1.0, 0.5), 3))
    data = bytearray((rel / "walk" / "good.avi").read_bytes())
    data[5500:5800] = bytes(300)  # zeros inside one frame's data: FFmpeg drops it without an error
    (rel / "walk" / "bad.avi").write_bytes(bytes(data))
    out = tmp_path / "out"
    r = run_flowprep(*build_args(rel, out))
    assert r.returncode == 0 and "decode_errors" in r.stderr and few_lines(r), r.stderr
    clips = {c.name: c for c in read_record(out).clips}
    assert clips["bad"].decode_errors == 20 - clips["bad"].frames > 0
    assert "decode_errors" not in clips["good"].to_dict()
    # A resumed build (nothing left to do) writes the same record: the note lives in .flowprep/.
    before = (out / "flowprep.json").read_bytes()
    assert run_flowprep(*build_args(rel, out)).returncode == 0
    assert (out / "flowprep.json").read_bytes() == before


def test_many_failed_clips_are_summed_up(tmp_path):
    src = tmp_path / "src"
    with zipfile.ZipFile(src.with_suffix(".zip"), "w") as z:
        z.writestr("walk/ok.avi", clip_bytes(0))
        for k in range(30):
            z.writestr(f"walk/bad{k:02d}.avi", b"not a video")
    r = run_flowprep(*build_args(src.with_suffix(".zip"), tmp_path / "out"))
    assert r.returncode == 1 and "30 clip(s) failed" in r.stderr and "and 10 more" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) <= 25
    failed = [c for c in read_record(tmp_path / "out").clips if c.status == "failed"]
    assert len(failed) == 30
