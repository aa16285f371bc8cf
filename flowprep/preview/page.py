"""The preview's ``index.html``: one static page, standard library only, no script, no network.

Every string that comes from the dataset (class and clip names, source file names, failure
reasons, backend parameters) goes through :func:`html.escape`: HMDB51's names hold ``'``, ``&``
and ``#``, and a release may hold anything a file system allows (``<`` included). Anchors use
label ids and media files are numbered, so no name ever ends up inside a URL.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from flowprep import __version__
from flowprep.layout.base import SIDES
from flowprep.layout.dataset_record import ClipEntry as RecordClip
from flowprep.layout.dataset_record import DatasetRecord
from flowprep.layout.provenance import SideCounts, SplitInfo
from flowprep.preview.media import ClipMedia

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:2px 0 0;color:#b8c0cf;font-size:13px;word-break:break-all}
main{padding:8px 24px 32px;max-width:1400px}
h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #d8dce3;padding-bottom:4px}
table{border-collapse:collapse;background:#fff;font-size:13px}
td,th{border:1px solid #dde1e7;padding:3px 9px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;background:#f8f9fb}.kv{max-width:680px}.kv th{width:110px}
code{font-size:12px;background:#eef0f4;padding:0 3px;border-radius:3px}
.row{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start}
.legend{display:flex;gap:14px;align-items:center;background:#fff;border:1px solid #dde1e7;padding:10px 14px;
flex:1 1 320px;max-width:560px}.row>div{min-width:0}.row>div:last-child{flex:1 1 300px}.legend p{margin:0 0 4px}
.clips{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
figure.clip{margin:0;background:#fff;border:1px solid #dde1e7;border-radius:4px;padding:6px;min-width:0}
.heads{display:grid;font-size:12px;color:#5a6272;text-align:center;margin-bottom:2px}
video{display:block;width:100%;height:auto;background:#000}
figcaption{font-size:12px;margin-top:4px;color:#3a4150}figcaption b{word-break:break-all;color:#1d2330}
.notes{background:#fff4e0;border:1px solid #f0c987;padding:6px 12px;margin:8px 0}.notes ul{margin:4px 0}
.muted{color:#6b7383}nav a{margin-right:12px}
"""


@dataclass
class ClipEntry:
    """One clip on the page: its record entry, what was rendered, and the video's relative URL."""

    clip: RecordClip
    media: ClipMedia
    src: str


def esc(value: Any) -> str:
    """``value`` as HTML text or attribute value (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def _split_text(split: SplitInfo) -> str:
    """The record's split in words: method, ratio and seed, or the lists/folders a given split came from."""
    given = split.lists or split.folders
    if given is not None:
        text = f"{split.method}" + (f" {split.official_split}" if split.official_split else "")
        text += f": train = {given.get('train')}, val = {given.get('val')}"
    else:
        text = f"{split.method}, val ratio {split.val_ratio}, seed {split.seed}" + (
            f", official split {split.official_split}" if split.official_split else ""
        )
    return text + (f"; classes from {split.classes_from}" if split.classes_from else "")


def _kv_rows(record: DatasetRecord) -> list[tuple[str, str]]:
    """(label, HTML) rows of the summary table."""
    src = record.source
    files = ", ".join(f"<code>{esc(f.name)}</code>" + (f" ({f.size:,} B)" if f.size else "") for f in src.files)
    split, dec = record.split, record.decode
    rows = [
        ("source", f"{esc(src.kind)}: {files or '<span class=muted>no files recorded</span>'}"),
        ("layout", esc(record.layout)),
        ("modality", esc(record.modality)),
        ("classes", f"{len(record.classes)} (label order below)"),
        ("split", esc(_split_text(split))),
        (
            "decode",
            esc(
                f"short side {dec.short_side or '-'}, size {list(dec.size) if dec.size else '-'}, "
                f"frame step {dec.frame_step}"
            ),
        ),
    ]
    if record.rgb:
        rows.append(("RGB frames", esc(record.rgb.image_format)))
    flow, enc = record.flow, record.encoding
    if flow:
        params = " ".join(f"<code>{esc(k)}={esc(v)}</code>" for k, v in sorted(flow.params.items()))
        rows.append(("flow", f"<b>{esc(flow.name)}</b> on {esc(flow.device)} {params}"))
        mode = enc.mode if enc else None
        detail = f"bound ±{enc.bound if enc else None} px" if mode == "fixed" else "per-frame max radius (TAO)"
        fmt = enc.image_format if enc else None
        quality = f" quality {enc.jpeg_quality}" if enc and fmt == "jpg" else ""
        rows.append(("encoding", esc(f"{mode}: {detail}; {fmt}{quality}")))
    if record.normalization.formula:
        rows.append(("network input", f"<code>{esc(record.normalization.formula)}</code>"))
    rows.append(("made by", esc(f"flowprep {record.flowprep_version}")))
    return rows


def _counts_table(record: DatasetRecord, shown: dict[str, int]) -> str:
    """Planned (``split.counts``) and built (``counts``) clips per class and side."""
    planned, built, none = record.split.counts, record.counts, SideCounts()
    head = "".join(f"<th>{s} planned</th><th>{s} built</th>" for s in SIDES)
    rows, totals = [], [0] * (2 * len(SIDES) + 1)
    for label, cls in enumerate(record.classes):
        nums = [n for s in SIDES for n in (getattr(planned.get(cls, none), s), getattr(built.get(cls, none), s))]
        nums.append(shown.get(cls, 0))
        totals = [a + b for a, b in zip(totals, nums)]
        kinds = [(s, k) for s in SIDES for k in ("planned", "built")] + [("all", "shown")]
        cells = "".join(f'<td class="n" data-side="{s}" data-kind="{k}">{n}</td>' for (s, k), n in zip(kinds, nums))
        rows.append(
            f'<tr data-class="{esc(cls)}"><td class="n">{label}</td>'
            f'<td><a href="#class-{label}">{esc(cls)}</a></td>{cells}</tr>'
        )
    total = "".join(f'<td class="n">{n}</td>' for n in totals)
    return (
        f'<table id="counts"><tr><th>label</th><th>class</th>{head}<th>shown</th></tr>{"".join(rows)}'
        f'<tr class="total"><td></td><td>total</td>{total}</tr></table>'
    )


def _failed(record: DatasetRecord) -> str:
    failed = [c for c in record.clips if not c.ok]
    if not failed:
        return '<p id="failed" class="muted">No clip failed.</p>'
    rows = "".join(f"<tr><td>{esc(c.id)}</td><td>{esc(c.error or '')}</td></tr>" for c in failed)
    return f'<table id="failed"><tr><th>clip ({len(failed)} failed)</th><th>reason</th></tr>{rows}</table>'


def _legend(record: DatasetRecord, legend: str | None) -> str:
    if legend is None:
        return ""
    enc = record.encoding
    if enc is not None and enc.mode == "fixed":
        uv = f"0 = −{enc.bound} px, 255 = +{enc.bound} px"
        mag = "Magnitudes are decoded pixels per frame."
    else:
        uv = "scaled per frame by its largest motion (TAO's max radius)"
        mag = "Magnitudes are relative: 1 = the frame's largest motion (the pixel scale is not stored)."
    return (
        f'<div class="legend"><img src="{esc(legend)}" alt="flow colour wheel" width="96" height="96">'
        f"<div><p><b>flow</b>: hue is the direction (Middlebury colour wheel: right red, down yellow, "
        f"left cyan, up blue-violet), saturation the speed (full at the clip's largest motion).</p>"
        f"<p><b>u</b> (x, right brighter) and <b>v</b> (y, down brighter): gray 128 = no motion, {esc(uv)}.</p>"
        f"<p>{esc(mag)}</p></div></div>"
    )


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return f'<div id="notes" class="notes"><b>Not shown</b><ul>{items}</ul></div>'


def _clip_figure(e: ClipEntry, unit: str) -> str:
    c, m = e.clip, e.media
    w, h = m.size
    heads = "".join(f"<span>{p}</span>" for p in m.panels)
    frames = f"{c.frames} frames" + (f" ({m.shown} shown)" if m.shown < m.available else "")
    flow = (
        f" · |flow| mean {m.mean_mag:.2f} / max {m.max_mag:.2f} {unit}"
        if m.mean_mag is not None and m.max_mag is not None
        else ""
    )
    return (
        f'<figure class="clip" data-clip="{esc(c.id)}">'
        f'<div class="heads" style="grid-template-columns:repeat({len(m.panels)},1fr)">{heads}</div>'
        f'<video src="{esc(e.src)}" width="{w}" height="{h}" autoplay loop muted playsinline></video>'
        f"<figcaption><b>{esc(c.name)}</b><br>{esc(c.side)} · {frames}{flow}</figcaption></figure>"
    )


def _class_sections(record: DatasetRecord, entries: list[ClipEntry], empty_note: str) -> str:
    unit = "px" if record.encoding is not None and record.encoding.mode == "fixed" else "× frame max"
    out = []
    for label, cls in enumerate(record.classes):
        figs = [_clip_figure(e, unit) for e in entries if e.clip.cls == cls]
        body = "".join(figs) if figs else f'<p class="muted">{esc(empty_note)}</p>'
        out.append(
            f'<section class="cls" id="class-{label}" data-class="{esc(cls)}">'
            f'<h2>{label} · {esc(cls)}</h2><div class="clips">{body}</div></section>'
        )
    return "".join(out)


def render_page(
    record: DatasetRecord,
    entries: list[ClipEntry],
    dataset: str,
    legend: str | None,
    chosen: bool,
    side: str,
    per_class: int,
    notes: list[str] | None = None,
) -> str:
    """The whole ``index.html``.

    Args:
        record: the dataset record.
        entries: the clips rendered, in page order.
        dataset: the dataset's path, shown in the header.
        legend: relative URL of the colour-wheel image (None without flow).
        chosen: the clips were picked by the user (``--clip``) rather than per class.
        side, per_class: how the clips were chosen (said on the page).
        notes: clips that could not be shown, and why.
    """
    shown: dict[str, int] = {}
    for e in entries:
        shown[e.clip.cls] = shown.get(e.clip.cls, 0) + 1
    how = (
        "clips chosen with --clip"
        if chosen
        else f"up to {per_class} built clip(s) per class from {'train and val' if side == 'both' else side}"
    )
    nav = "".join(f'<a href="#class-{i}">{esc(c)}</a>' for i, c in enumerate(record.classes))
    kv = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in _kv_rows(record))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>flowprep preview · {esc(dataset)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>flowprep preview</h1><p>{esc(dataset)}</p></header><main>"
        f'<h2>Dataset</h2><div class="row"><table class="kv" id="summary">{kv}</table>{_legend(record, legend)}</div>'
        f'<div class="row"><div><h2>Clips per class</h2>{_counts_table(record, shown)}</div>'
        f"<div><h2>Failed clips</h2>{_failed(record)}</div></div>"
        f'<h2>Clips</h2><p class="muted">{esc(how)}; the first frames of each, looping.</p><nav>{nav}</nav>'
        f"{_notes(notes or [])}{_class_sections(record, entries, 'no clip shown for this class')}"
        f'<p class="muted">written by flowprep {esc(__version__)} preview</p></main></body></html>\n'
    )
