"""``flowprep stats``: HMDB51 tag statistics of a release or a built dataset.

Like the table of the ActionRecognitionNet model card: per class, how many clips show the full or
upper body, have camera motion, one or more people, which viewpoint, what quality.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from flowprep.datasets.hmdb51 import TAGS, parse_clip_name
from flowprep.layout.record import RECORD_NAME


def _names(source: Path, classes: list[str] | None) -> list[tuple[str, str]]:
    source = Path(source)
    rec_root = source if (source / RECORD_NAME).is_file() else None
    if rec_root is None and source.name in ("train", "val") and (source.parent / RECORD_NAME).is_file():
        rec_root = source.parent
    if rec_root is not None:
        from flowprep.layout.record import read_record

        record = read_record(rec_root)
        side = source.name if source != rec_root else None
        return [(c.cls, c.source) for c in record.ok_clips(side) if classes is None or c.cls in classes]
    from flowprep.archive import list_videos

    with tempfile.TemporaryDirectory(prefix="flowprep-stats-") as cache:
        return [(v.cls, v.name) for v in list_videos(source, Path(cache), classes)]


def tag_stats(source: Path, classes: list[str] | None = None) -> dict[str, Any]:
    """Count tag values per class.

    Returns:
        ``{"classes": {cls: {"clips": n, "unparsed": n, "<tag>": {value: count}}}, "total": {...}}``,
        tags: body, camera, people, view, quality (values as in the clip names, e.g. ``"cm"``).
    """
    per: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {"clips": 0, "unparsed": 0, **{t: Counter() for t in TAGS}}
    for cls, name in _names(source, classes):
        row = per.setdefault(cls, {"clips": 0, "unparsed": 0, **{t: Counter() for t in TAGS}})
        row["clips"] += 1
        total["clips"] += 1
        parsed = parse_clip_name(name, cls)
        if parsed is None:
            row["unparsed"] += 1
            total["unparsed"] += 1
            continue
        for tag, value in parsed.tags.items():
            row[tag][value] += 1
            total[tag][value] += 1

    def plain(row: dict[str, Any]) -> dict[str, Any]:
        return {k: (dict(sorted(v.items())) if isinstance(v, Counter) else v) for k, v in row.items()}

    return {"classes": {c: plain(r) for c, r in sorted(per.items())}, "total": plain(total)}


def format_stats(stats: dict[str, Any]) -> str:
    """A text table: one row per class, one column per tag value (counts)."""
    cols = [(tag, value) for tag, (_, values) in TAGS.items() for value in values]
    rows = list(stats["classes"].items()) + [("total", stats["total"])]
    width = max([5] + [len(c) for c, _ in rows])

    def tag_head(t: str) -> str:  # the tag name over its value columns (4 wide, 2 apart), cut to fit
        w = 4 * len(TAGS[t][1]) + 2 * (len(TAGS[t][1]) - 1)
        return f"{TAGS[t][0][:w]:<{w}}"

    head1 = f"{'':<{width}}  {'clips':>5}  " + "  ".join(tag_head(t) for t in TAGS)
    head2 = f"{'class':<{width}}  {'':>5}  " + "  ".join(f"{v:>4}" for _, v in cols)
    lines = [head1.rstrip(), head2]
    for cls, r in rows:
        lines.append(f"{cls:<{width}}  {r['clips']:>5}  " + "  ".join(f"{r[t].get(v, 0):>4}" for t, v in cols))
    unparsed = stats["total"]["unparsed"]
    legend = "; ".join(f"{TAGS[t][0]}: " + ", ".join(f"{v}={m}" for v, m in TAGS[t][1].items()) for t in TAGS)
    lines.append(legend)
    if unparsed:
        lines.append(f"{unparsed} clip name(s) carry no HMDB51 tags")
    return "\n".join(lines)
