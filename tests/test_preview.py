"""``flowprep preview``: the static page, its media, the one-clip video, and the page in a real browser."""

from __future__ import annotations

import dataclasses
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from flowprep.errors import ConfigError, DatasetError
from flowprep.flow.visualize import flow_to_color
from flowprep.layout.record import read_record
from flowprep.preview.api import preview, resolve_clip, select_clips
from flowprep.preview.config import PreviewConfig
from flowprep.preview.page import esc
from helpers import run_cli, unavailable

HOSTILE = "a<b>&'#1"  # a class name that must survive HTML as text
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# what the browser needs as root in a container, and nothing that reaches the network
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A built dataset: walk moves right, run left, HOSTILE down; one run clip is corrupt (failed)."""
    from flowprep.synth import make_release_folder

    rel = tmp_path_factory.mktemp("hostile") / "release"
    make_release_folder(
        rel,
        {"walk": (2.0, 0.0), "run": (-2.0, 0.0), HOSTILE: (0.0, 2.0)},
        sources_per_class=3,
        clips_per_source=2,
        frames=6,
        height=48,
        width=64,
        with_splits=False,
    )
    (rel / "run" / min(os.listdir(rel / "run"))).write_bytes(b"RIFF garbage" * 10)
    out = rel.parent / "ds"
    r = run_cli("build", rel, "--out", out, "--flow", "dis", "-j", "1", "--no-progress")
    assert r.exit_code == 1 and "1 failed" in r.output  # the corrupt clip, on purpose
    return out


def _frame(path: Path, k: int = 0) -> np.ndarray:
    """Frame ``k`` of a video as ``uint8`` ``(H, W, 3)`` RGB."""
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == k:
                return f.to_ndarray(format="rgb24")
    raise AssertionError(f"{path} has no frame {k}")


def _hue(rgb: np.ndarray) -> float:
    """OpenCV hue (0..180) of one RGB colour."""
    return float(cv2.cvtColor(np.uint8(rgb).reshape(1, 1, 3), cv2.COLOR_RGB2HSV)[0, 0, 0])


def _hue_close(a: float, b: float, tol: float = 8.0) -> bool:
    return min(abs(a - b), 180 - abs(a - b)) <= tol


class _Texts(HTMLParser):
    """All text of a page, and the attributes of every tag."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_page_summary_media_and_escaping(hostile, tmp_path):
    s = preview(PreviewConfig(hostile, out=tmp_path / "p", progress=False))
    rec = read_record(hostile)
    assert s.clips == 9 and s.index == tmp_path / "p" / "index.html" and s.media_bytes > 0
    assert sorted(os.listdir(tmp_path / "p" / "media")) == [f"c{i:04d}.mp4" for i in range(9)] + ["wheel.png"]
    page = s.index.read_text(encoding="utf-8")
    assert HOSTILE not in page and "<b>&'" not in page and esc(HOSTILE) in page
    parsed = _Texts()
    parsed.feed(page)
    text = "".join(parsed.text)
    assert all(f"{i} · {cls}" in text for i, cls in enumerate(rec.classes)) and HOSTILE in rec.classes
    failed = next(c for c in rec.clips if not c.ok)
    assert failed.id in text and "cannot open video" in text
    assert "tvl1" not in text and "dis" in text and "bound ±20.0 px" in text
    videos = [a for t, a in parsed.tags if t == "video"]
    assert len(videos) == 9 and all({"autoplay", "loop", "muted", "playsinline"} <= a.keys() for a in videos)
    assert not any("://" in (a.get("src") or "") for _, a in parsed.tags)  # nothing from the network
    # a second run replaces the media of the first (fewer clips now)
    s2 = preview(PreviewConfig(hostile, out=tmp_path / "p", per_class=1, progress=False))
    assert s2.clips == 3 and len(os.listdir(tmp_path / "p" / "media")) == 4


def test_clip_choice_is_deterministic_and_respects_side(hostile):
    rec = read_record(hostile)
    first = select_clips(rec, 3, "both")
    assert first == select_clips(dataclasses.replace(rec, clips=rec.clips[::-1]), 3, "both")
    assert [c.cls for c in first] == [cls for cls in rec.classes for _ in range(3)]  # label order
    assert {c.side for c in first} == {"train", "val"}
    assert all(c.side == "val" for c in select_clips(rec, 3, "val"))
    assert select_clips(rec, 0, "both") == []
    assert len(select_clips(rec, 100, "both")) == sum(c.ok for c in rec.clips)


def test_resolve_clip_by_id_or_name_and_its_errors(hostile):
    rec = read_record(hostile)
    ok = next(c for c in rec.clips if c.ok)
    assert resolve_clip(rec, ok.id) == ok == resolve_clip(rec, ok.name)
    with pytest.raises(ConfigError, match="no clip 'nope'"):
        resolve_clip(rec, "nope")
    with pytest.raises(DatasetError, match="failed at build time"):
        resolve_clip(rec, next(c.id for c in rec.clips if not c.ok))


def _flow_panel_colour(frame: np.ndarray, panels: int = 4) -> np.ndarray:
    """Median colour of the middle of the flow panel (the 2nd of ``panels`` equal-width panels)."""
    h, w = frame.shape[:2]
    pw = w // panels
    return np.median(frame[h // 4 : 3 * h // 4, pw + pw // 4 : pw + 3 * pw // 4].reshape(-1, 3), axis=0)


def test_rightward_flow_is_the_wheel_colour_of_angle_zero(hostile, tmp_path):
    rec = read_record(hostile)
    walk = next(c for c in rec.clips if c.cls == "walk" and c.ok)
    run = next(c for c in rec.clips if c.cls == "run" and c.ok)
    s = preview(PreviewConfig(hostile, out=tmp_path / "p", clips=(walk.id, run.id), progress=False))
    right = flow_to_color(np.array([[[1.0, 0.0]]], np.float32), max_flow=1.0)[0, 0]  # the wheel at angle 0
    left = flow_to_color(np.array([[[-1.0, 0.0]]], np.float32), max_flow=1.0)[0, 0]
    got_right = _flow_panel_colour(_frame(s.out / "media" / "c0000.mp4", 2))
    got_left = _flow_panel_colour(_frame(s.out / "media" / "c0001.mp4", 2))
    assert tuple(right) == (255, 0, 0)  # Middlebury: rightward motion is red
    assert _hue_close(_hue(got_right), _hue(right)) and got_right[0] > 180, got_right
    assert _hue_close(_hue(got_left), _hue(left)) and got_left[2] > 180, got_left


def test_one_clip_video_has_every_flow_frame_and_four_panels(hostile, tmp_path):
    rec = read_record(hostile)
    clip = next(c for c in rec.clips if c.cls == HOSTILE and c.ok)
    out = tmp_path / "one.mp4"
    r = run_cli("preview", hostile, "--clip", clip.name, "--video", out, "--height", "64")
    assert r.exit_code == 0, r.output
    assert f"video: {out}" in r.output
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == clip.flow_frames and frames[0].shape == (64, 4 * 86, 3)  # 64x48 frames -> 86x64


@pytest.mark.parametrize(
    "layout,modality,extra,panels",
    [
        ("tao", "rgb", [], 1),
        ("mmaction2", "flow", ["--encoding", "maxrad"], 3),
        ("mmaction2", "both", ["--flow-format", "png"], 4),
    ],
)
def test_layouts_and_modalities(tiny_release, tmp_path, layout, modality, extra, panels):
    ds = tmp_path / "ds"
    r = run_cli(
        "build",
        tiny_release,
        "--out",
        ds,
        "--classes",
        "walk",
        "--layout",
        layout,
        "--modality",
        modality,
        "--flow",
        "dis",
        "-j",
        "1",
        "--no-progress",
        *extra,
    )
    assert r.exit_code == 0, r.output
    s = preview(PreviewConfig(ds, per_class=2, progress=False))
    assert s.out == tmp_path / "ds-preview" and s.clips == 2
    frame = _frame(s.out / "media" / "c0000.mp4")
    assert frame.shape[1] == panels * (frame.shape[0] * 80 // 64)
    page = s.index.read_text(encoding="utf-8")
    assert ("wheel.png" in page) == (modality != "rgb")
    if modality == "rgb":
        assert "|flow|" not in page and "8 frames" in page
    if "maxrad" in extra:
        assert "× frame max" in page and "relative" in page


def test_damaged_clip_is_noted_and_the_others_shown(hostile, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(hostile, ds)
    rec = read_record(ds)
    label = rec.classes.index("walk")
    walk = select_clips(rec, 1, "both")[label]
    (ds / walk.side / "walk" / walk.name / "u" / "000001.jpg").unlink()
    r = run_cli("preview", ds, "--per-class", "1", "--no-progress")
    assert r.exit_code == 0, r.output
    assert f"note: {walk.id}: cannot read" in r.output and "3 clip(s)" not in r.output
    page = (tmp_path / "ds-preview" / "index.html").read_text(encoding="utf-8")
    assert 'id="notes"' in page and esc(walk.id) in page and page.count("<video") == 2
    assert sorted(os.listdir(tmp_path / "ds-preview" / "media")) == [
        f"c{i:04d}.mp4" for i in range(3) if i != label
    ] + ["wheel.png"]
    r = run_cli("preview", ds, "--clip", walk.id, "--video", tmp_path / "w.mp4")
    assert r.exit_code == 1 and "cannot read" in r.output and not (tmp_path / "w.mp4").exists()


def test_never_overwrites_what_it_did_not_write(hostile, tmp_path):
    user = tmp_path / "site"
    (user / "media").mkdir(parents=True)
    (user / "index.html").write_text("my page")
    r = run_cli("preview", hostile, "--out", user, "--no-progress")
    assert r.exit_code == 1 and "index.html was not written by flowprep preview" in r.output, r.output
    (user / "index.html").unlink()
    (user / "media" / "c0000.mp4").write_bytes(b"my video")
    r = run_cli("preview", hostile, "--out", user, "--no-progress")
    assert r.exit_code == 1 and "c0000.mp4 was not written by flowprep preview" in r.output, r.output
    assert (user / "media" / "c0000.mp4").read_bytes() == b"my video" and not (user / "index.html").exists()
    # its own earlier page (with the manifest, or an older page without one) is replaced
    (user / "media" / "c0000.mp4").unlink()
    for _ in range(2):
        assert run_cli("preview", hostile, "--out", user, "--per-class", "1", "--no-progress").exit_code == 0
        (user / ".flowprep-preview.json").unlink()
    assert run_cli("preview", hostile, "--out", user, "--per-class", "1", "--no-progress").exit_code == 0


def test_video_is_refused_in_the_frame_folders(hostile, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(hostile, ds)
    clip = select_clips(read_record(ds), 1, "both")[0]
    for target in (ds / clip.side / clip.cls / "x.mp4", ds / clip.id / "rgb" / "x.mp4"):
        r = run_cli("preview", ds, "--clip", clip.id, "--video", target)
        assert r.exit_code == 1 and "inside its frame folders" in r.output and not target.exists(), r.output
    assert run_cli("verify", ds).exit_code == 1  # only the failed clip: nothing stray was written
    assert "not a clip of the record" not in run_cli("verify", ds).output


def test_frames_are_read_only_as_regular_files(hostile, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(hostile, ds)
    clip = select_clips(read_record(ds), 1, "both")[0]
    frame = ds / clip.id / "u" / "000001.jpg"
    frame.unlink()
    frame.symlink_to("/dev/zero")  # read whole, it would exhaust memory
    r = run_cli("preview", ds, "--clip", clip.id, "--out", tmp_path / "p", "--no-progress")
    assert r.exit_code == 0 and "a symbolic link" in r.output, r.output
    # a clip folder that is a symlink out of the dataset is not read at all
    shutil.move(ds / clip.id, tmp_path / "elsewhere")
    (ds / clip.id).symlink_to(tmp_path / "elsewhere")
    r = run_cli("preview", ds, "--clip", clip.id, "--video", tmp_path / "v.mp4")
    assert r.exit_code == 1 and "leads outside the dataset" in r.output and not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--video", "x.mp4"],
        ["--height", "15"],
        ["--per-class", "-1"],
        ["--clip", "a", "--clip", "b", "--video", "x.mp4"],
        ["--side", "test"],
        ["--clip", "a", "--video", "x.gif"],
        ["--fps", "0.0004"],
    ],
)
def test_usage_errors_exit_2(hostile, args):
    assert run_cli("preview", hostile, *args).exit_code == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"per_class": 2.5},
        {"per_class": float("nan")},
        {"fps": float("nan")},
        {"fps": 0.0004},
        {"max_frames": 0},
        {"height": 17},
        {"height": 64.0},
    ],
)
def test_library_callers_get_the_cli_limits(hostile, bad):
    with pytest.raises(ConfigError):
        PreviewConfig(hostile, **bad)


def test_errors_are_one_line_exit_1(hostile, tmp_path):
    for args, message in [
        ((tmp_path / "nothing",), "is not a flowprep dataset"),
        ((hostile, "--clip", "nope"), "no clip 'nope'"),
        ((hostile, "--out", hostile / "train" / "x"), "inside its frame folders"),
        ((hostile, "--out", hostile / "labels.txt" / "p"), "cannot write the preview"),
    ]:
        r = run_cli("preview", *args, "--no-progress")
        assert r.exit_code == 1 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def _browser():
    """A Playwright context on Debian's chromium with a fresh profile, or skip saying what is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip package playwright not installed")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    return sync_api.sync_playwright()


_LOADED = (
    "[...document.images].every(i => i.complete && i.naturalWidth > 0) && "
    "[...document.querySelectorAll('video')].every(v => v.readyState >= 2 && v.videoWidth > 0)"
)


def test_page_in_a_real_browser(hostile, tmp_path, record_property):
    s = preview(PreviewConfig(hostile, out=tmp_path / "p", progress=False))
    rec = read_record(hostile)
    with _browser() as pw:
        try:
            ctx = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1280, "height": 900},
                offline=True,
            )
        except Exception as exc:  # e.g. Ubuntu's snap stub at /usr/bin/chromium: the machine, not the page
            unavailable(f"chromium at {CHROMIUM} does not start: {str(exc).splitlines()[0]}")
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.goto(s.index.as_uri())
            page.wait_for_function(_LOADED, timeout=20_000)
            media = page.evaluate(
                "[...document.querySelectorAll('img, video')].map(e => "
                "[e.tagName, e.naturalWidth || e.videoWidth, e.naturalHeight || e.videoHeight])"
            )
            counts = page.evaluate(
                "[...document.querySelectorAll('#counts tr[data-class]')].map(tr => "
                "[tr.dataset.class, [...tr.querySelectorAll('td[data-kind]')].map(td => "
                "[td.dataset.side, td.dataset.kind, +td.textContent])])"
            )
            headings = page.evaluate("[...document.querySelectorAll('section.cls h2')].map(h => h.textContent)")
            failed = page.evaluate("document.querySelector('#failed').textContent")
            shot = tmp_path / "preview.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
            record_property("screenshot", str(shot))
            walk = page.locator("section.cls").nth(rec.classes.index("walk")).locator("video").first
            # autoplay: Chromium starts muted looping videos once they are on screen
            walk.scroll_into_view_if_needed()
            page.wait_for_function("v => !v.paused && v.currentTime > 0", arg=walk.element_handle(), timeout=20_000)
            walk_png = cv2.cvtColor(
                cv2.imdecode(np.frombuffer(walk.screenshot(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB
            )
        finally:
            ctx.close()
    assert not errors, errors
    assert len(media) == 10 and all(w > 0 and h > 0 for _, w, h in media), media  # 9 videos + the wheel
    assert [c for c, _ in counts] == list(rec.classes)
    for cls, cells in counts:
        for side, kind, n in cells:
            want = {"planned": rec.split.counts, "built": rec.counts}.get(kind)
            assert n == (getattr(want[cls], side) if want else 3), (cls, side, kind)
    assert headings == [f"{i} · {c}" for i, c in enumerate(rec.classes)]
    assert next(c.id for c in rec.clips if not c.ok) in failed
    # the walk clip's flow panel, as the browser paints it: the wheel's colour for angle 0 (red)
    got = _flow_panel_colour(walk_png)
    assert _hue_close(_hue(got), _hue(np.array([255, 0, 0]))) and got[0] > 180, got


def test_a_symlinked_media_folder_is_never_written_through(hostile, tmp_path):
    out, outside = tmp_path / "site", tmp_path / "outside"
    outside.mkdir()
    (outside / "c0000.mp4").write_bytes(b"someone else's video")
    out.mkdir()
    (out / "media").symlink_to(outside)  # preview wrote and replaced files in here
    r = run_cli("preview", hostile, "--out", out, "--no-progress")
    assert r.exit_code == 1 and "media is a symlink" in r.output and len(r.output.strip().splitlines()) == 1
    assert sorted(p.name for p in outside.iterdir()) == ["c0000.mp4"]
    assert (outside / "c0000.mp4").read_bytes() == b"someone else's video"
    assert sorted(p.name for p in out.iterdir()) == ["media"]  # no page, manifest or lock left


def test_video_never_replaces_a_users_file_unless_asked(hostile, tmp_path):
    clip = select_clips(read_record(hostile), 1, "both")[0]
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"my video")
    r = run_cli("preview", hostile, "--clip", clip.id, "--video", mine)
    assert r.exit_code == 1 and "already exists" in r.output and mine.read_bytes() == b"my video", r.output
    r = run_cli("preview", hostile, "--clip", clip.id, "--video", mine, "--overwrite")
    assert r.exit_code == 0 and mine.read_bytes() != b"my video", r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.mp4"]  # no temporary left


def test_two_previews_into_one_folder_at_once_are_refused(hostile, tmp_path):
    from flowprep.fsio.lock import FolderLock
    from flowprep.preview.api import LOCK_NAME

    out = tmp_path / "site"
    out.mkdir()
    with FolderLock(out, LOCK_NAME, "preview"):
        r = run_cli("preview", hostile, "--out", out, "--no-progress")
    assert r.exit_code == 1 and "another preview (pid" in r.output, r.output
    assert list(out.iterdir()) == []
