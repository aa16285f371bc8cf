"""What the build commands print: the plan (``--dry-run``) and a build's summary."""

from __future__ import annotations

from collections import Counter

import click

from flowprep.layout.record import RECORD_NAME

#: failed clips listed on the console (all are in the record)
MAX_FAILED_SHOWN = 20


def print_plan(plan) -> None:
    """Print the plan's clips per class and side, the split it follows and the clips it leaves out."""
    counts = plan.counts()
    width = max([5] + [len(c) for c in counts])
    click.echo(f"{'class':<{width}}  {'train':>5}  {'val':>5}")
    for cls in plan.classes:
        click.echo(f"{cls:<{width}}  {counts[cls]['train']:>5}  {counts[cls]['val']:>5}")
    click.echo(
        f"{'total':<{width}}  {sum(c['train'] for c in counts.values()):>5}  "
        f"{sum(c['val'] for c in counts.values()):>5}"
    )
    method = plan.split.get("method")
    if method in ("lists", "folders") or plan.split.get("convention"):
        where = plan.split.get("lists") or plan.split.get("folders") or {}
        click.echo(f"split: as given, train = {where.get('train')}, val = {where.get('val')}")
    if plan.split.get("classes_from"):
        click.echo(f"label order: {plan.split['classes_from']}")
    if not plan.excluded:
        return
    skipped = sum("(skipped: " in e for e in plan.excluded)
    named = f"{skipped} skipped: unreadable or with a name that cannot be a folder"
    reasons = Counter(e.rpartition(" (")[2].rstrip(")") for e in plan.excluded if "(skipped: " not in e)
    if not set(reasons) <= {"code 0 in the split file", "not in the split file"}:
        parts = [f"{n} {r}" for r, n in sorted(reasons.items())]
        parts += [named] if skipped else []
        click.echo(f"({len(plan.excluded)} clip(s) left out: {', '.join(parts)})")
        return
    unused = reasons["code 0 in the split file"]
    click.echo(
        f"({len(plan.excluded)} clip(s) left out: {unused} marked unused (0) by the split files, "
        f"{len(plan.excluded) - unused - skipped} not listed in them, {named})"
    )


def print_summary(summary) -> None:
    """Print what a build did (clips built, failed, decode errors, where the record is); exit 1 when
    clips failed."""
    click.echo(
        f"{summary.built} clip(s) built, {summary.existing} already done, {len(summary.failed)} failed; "
        f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s)"
    )
    if summary.flow:
        click.echo(f"flow: {summary.flow['name']} on {summary.flow['device']}")
    if summary.shards_written:
        click.echo(f"packed into {len(summary.shards_written)} new shard(s) in {summary.pack_seconds:.1f} s")
    if not summary.record_written:
        k, n = summary.shard
        click.echo(
            f"shard {k}/{n} done; {summary.pending} clip(s) of the dataset are not finished yet. "
            f"The record is written when all parts are in (by the last shard to finish, or "
            f"`flowprep finalize {summary.out}`)"
        )
    else:
        click.echo(f"dataset: {summary.out}")
    if summary.empty_sides:
        click.echo(f"warning: no clip built for {', '.join(summary.empty_sides)}", err=True)
    if summary.decode_errors:
        shown = ", ".join(f"{cid} ({n} lost)" for cid, n in summary.decode_errors[:5])
        more = f" and {len(summary.decode_errors) - 5} more" if len(summary.decode_errors) > 5 else ""
        click.echo(
            f"warning: {len(summary.decode_errors)} clip(s) kept only the frames that could be decoded "
            f"(recorded as decode_errors): {shown}{more}",
            err=True,
        )
    if summary.failed:
        click.echo(f"{len(summary.failed)} clip(s) failed:", err=True)
        for cid, why in summary.failed[:MAX_FAILED_SHOWN]:
            click.echo(f"  {cid}: {why}", err=True)
        if len(summary.failed) > MAX_FAILED_SHOWN:
            # 10,000 broken members would bury the summary; the record keeps every reason
            click.echo(
                f"  ... and {len(summary.failed) - MAX_FAILED_SHOWN} more (the record, "
                f"{summary.out}/{RECORD_NAME}, lists each with its reason)",
                err=True,
            )
        raise click.exceptions.Exit(1)
