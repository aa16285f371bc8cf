"""``flowprep stats``: what the clip names of a release or a built dataset say, per class.

HMDB51 names carry tags: like the table of the ActionRecognitionNet model card, per class, how many
clips show the full or upper body, have camera motion, one or more people, which viewpoint, what
quality (:func:`tag_stats`). UCF101 names carry groups (``v_<action>_gNN_cNN``: the clips cut from
one long video): per class, clips, groups and clips per group (:func:`group_stats`).
:func:`name_stats` picks the one the names follow.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from flowprep.datasets.hmdb51 import TAGS, parse_clip_name
from flowprep.datasets.ucf101 import parse_ucf_name
from flowprep.layout.base import SIDES
from flowprep.layout.record import RECORD_NAME


def _names(source: Path, classes: list[str] | None) -> list[tuple[str, str]]:
    source = Path(source)
    rec_root = source if (source / RECORD_NAME).is_file() else None
    if rec_root is None and source.name in SIDES and (source.parent / RECORD_NAME).is_file():
        rec_root = source.parent
    if rec_root is not None:
        from flowprep.layout.record import read_record

        record = read_record(rec_root)
        side = source.name if source != rec_root else None
        return [(c.cls, c.source) for c in record.ok_clips(side) if classes is None or c.cls in classes]
    from flowprep.archive.reader import list_videos

    with tempfile.TemporaryDirectory(prefix="flowprep-stats-") as cache:
        return [(v.cls, v.name) for v in list_videos(source, Path(cache), classes)]


def name_stats(source: Path, classes: list[str] | None = None) -> dict[str, Any]:
    """:func:`group_stats` when most clip names are UCF101's, else :func:`tag_stats` (HMDB51's tags)."""
    names = _names(source, classes)
    ucf = sum(parse_ucf_name(n) is not None for _, n in names)
    if ucf and ucf >= sum(parse_clip_name(n, c) is not None for c, n in names):
        return group_stats(names)
    return _tag_stats(names)


def format_name_stats(stats: dict[str, Any]) -> str:
    """The text table of :func:`name_stats`' result."""
    return format_group_stats(stats) if stats.get("convention") == "ucf101" else format_stats(stats)


def group_stats(names: list[tuple[str, str]]) -> dict[str, Any]:
    """Groups of UCF101 clip names ``(class, file name)`` per class.

    Returns:
        ``{"convention": "ucf101", "classes": {cls: row}, "total": row}``, a row being ``{"clips": n,
        "groups": n, "clips_per_group": {"min": n, "mean": x, "max": n} or None, "unparsed": n}``
        (groups are per class: g01 of two classes are two groups).
    """
    per: dict[str, Counter] = {}
    unparsed: Counter = Counter()
    for cls, name in names:
        parsed = parse_ucf_name(name)
        per.setdefault(cls, Counter())
        if parsed is None:
            unparsed[cls] += 1
        else:
            per[cls][parsed.group] += 1

    def row(sizes: list[int], n_unparsed: int) -> dict[str, Any]:
        spread = {"min": min(sizes), "mean": round(sum(sizes) / len(sizes), 2), "max": max(sizes)} if sizes else None
        return {
            "clips": sum(sizes) + n_unparsed,
            "groups": len(sizes),
            "clips_per_group": spread,
            "unparsed": n_unparsed,
        }

    rows = {c: row(list(g.values()), unparsed[c]) for c, g in sorted(per.items())}
    total = row([n for g in per.values() for n in g.values()], sum(unparsed.values()))
    return {"convention": "ucf101", "classes": rows, "total": total}


def format_group_stats(stats: dict[str, Any]) -> str:
    """A text table of :func:`group_stats`: one row per class."""
    rows = list(stats["classes"].items()) + [("total", stats["total"])]
    width = max([5] + [len(c) for c, _ in rows])
    lines = [
        f"{'':<{width}}  {'':>5}  {'':>6}  clips per group",
        f"{'class':<{width}}  {'clips':>5}  {'groups':>6}  {'min':>4}  {'mean':>5}  {'max':>4}",
    ]
    for cls, r in rows:
        spread = r["clips_per_group"] or {}
        lines.append(
            f"{cls:<{width}}  {r['clips']:>5}  {r['groups']:>6}  {spread.get('min', '-'):>4}  "
            f"{spread.get('mean', '-'):>5}  {spread.get('max', '-'):>4}"
        )
    lines.append("UCF101 names v_<action>_gNN_cNN: a group is the clips cut from one long video")
    if stats["total"]["unparsed"]:
        lines.append(f"{stats['total']['unparsed']} clip name(s) are not UCF101 names")
    return "\n".join(lines)


def tag_stats(source: Path, classes: list[str] | None = None) -> dict[str, Any]:
    """Count HMDB51 tag values per class.

    Returns:
        ``{"classes": {cls: {"clips": n, "unparsed": n, "<tag>": {value: count}}}, "total": {...}}``,
        tags: body, camera, people, view, quality (values as in the clip names, e.g. ``"cm"``).
    """
    return _tag_stats(_names(source, classes))


def _tag_stats(names: list[tuple[str, str]]) -> dict[str, Any]:
    per: dict[str, dict[str, Any]] = {}
    total: dict[str, Any] = {"clips": 0, "unparsed": 0, **{t: Counter() for t in TAGS}}
    for cls, name in names:
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
