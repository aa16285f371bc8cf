"""CLI commands of the flow stage: ``flowprep backends`` and ``flowprep bench-flow``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flowprep.commands.params import CommaList, SafePath, Size, count, positive
from flowprep.limits import json_safe


@click.command("backends")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--params", "show_params", is_flag=True, help="List each backend's parameters: type, range, default.")
@click.option("--markdown", is_flag=True, help="With --params: the Markdown table of docs/flow.md.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def backends_cmd(names: tuple[str, ...], show_params: bool, markdown: bool, as_json: bool) -> None:
    """List the optical-flow backends: available here or not, why, how to install, which device
    (or, with --params, the parameters each takes)."""
    from flowprep.flow.registry import BACKENDS, backend_status

    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise click.BadParameter(
            f"unknown flow backend {unknown[0]!r}; known: {', '.join(BACKENDS)}", param_hint="'NAME'"
        )
    if markdown and not show_params:
        raise click.UsageError("--markdown goes with --params")
    chosen = list(names) or list(BACKENDS)
    if show_params:
        _print_params(chosen, markdown, as_json)
        return
    rows = [backend_status(name) for name in chosen]
    if as_json:
        click.echo(json.dumps(rows, indent=2, allow_nan=False))
        return
    click.echo(f"{'backend':<10} {'available':<9}  {'device / why not':<}")
    for r in rows:
        if r["available"]:
            click.echo(f"{r['name']:<10} {'yes':<9}  {r['device']}")
        else:
            click.echo(f"{r['name']:<10} {'no':<9}  {r['why']}")
            click.echo(f"{'':<10} {'':<9}  install: {r['install_hint']}")
    click.echo("`--flow auto` takes the first available of: nvof, vpi, tvl1")


def _print_params(names: list[str], markdown: bool, as_json: bool) -> None:
    from flowprep.flow.params import markdown_table, text_table
    from flowprep.flow.registry import declared_params

    declared = [(name, *declared_params(name)) for name in names]
    if as_json:
        rows = {
            name: {
                "params": [
                    {
                        "name": p.name,
                        "type": p.kind.__name__,
                        "allowed": p.allowed(),
                        "lo": p.lo,
                        "hi": p.hi,
                        "lo_open": p.lo_open,
                        "hi_open": p.hi_open,
                        "choices": list(p.choices) if p.choices is not None else None,
                        "default": p.default,
                        "meaning": p.meaning,
                    }
                    for p in params
                ],
                "rules": [r.text for r in rules],
            }
            for name, params, rules in declared
        }
        click.echo(json.dumps(rows, indent=2, allow_nan=False))
    elif markdown:
        click.echo(markdown_table(declared), nl=False)
    else:
        for name, params, rules in declared:
            for line in text_table(name, params, rules):
                click.echo(line)


@click.command("bench-flow")
@click.option(
    "--flow",
    "flows",
    multiple=True,
    metavar="NAME",
    help="Backend to measure (repeatable); default every backend, those that cannot run are listed.",
)
@click.option(
    "--pair",
    "pairs",
    multiple=True,
    nargs=3,
    type=SafePath(exists=True, dir_okay=False, path_type=Path),
    metavar="FRAME1 FRAME2 GT.flo",
    help="A real pair with Middlebury ground truth (repeatable; reported under FRAME1's name, "
    "with its folders where two names are equal).",
)
@click.option(
    "--size",
    type=Size(),
    default="320x240",
    show_default=True,
    help="Synthetic pair size WxH (--pair images keep their own size).",
)
@click.option(
    "--magnitudes",
    type=CommaList(positive(1000)),
    default="2,5,10,20,30",
    show_default=True,
    help="Largest motion (px) of each level of synthetic pairs.",
)
@click.option("--pairs-per-magnitude", default=2, show_default=True, type=click.IntRange(0, 100))
@click.option(
    "--scenes",
    default=0,
    show_default=True,
    type=click.IntRange(0, 100),
    help="Also this many layered scenes (moving object, occlusion, noise) per motion class 1-3, 3-8, 8-20 px.",
)
@click.option(
    "--repeats",
    default=1,
    show_default=True,
    type=click.IntRange(1, 100),
    help="Timed passes over the pairs; pairs/s is the median.",
)
@click.option(
    "--video",
    type=SafePath(path_type=Path),
    default=None,
    help="Video whose first frames are warped (default: the carphone clip if present, else a texture).",
)
@click.option(
    "--bound",
    "bounds",
    multiple=True,
    type=positive(),
    default=(20.0,),
    show_default=True,
    help="Fixed-encoding bound (px) whose 8-bit error is reported (repeatable).",
)
@click.option("--jpeg-quality", default=95, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(0, 256),
    help="OpenCV threads while measuring (1 = what one build worker gets).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
@click.option("--plot", type=SafePath(dir_okay=False, path_type=Path), default=None, help="PNG: EPE vs pairs/s.")
@click.option(
    "--vis-dir",
    type=SafePath(file_okay=False, path_type=Path),
    default=None,
    help="Write one colour-wheel visualization per backend here.",
)
@click.option("--seed", default=0, show_default=True, type=count(0, 2**32 - 1))
@click.option("--overwrite", is_flag=True, help="Let --plot and --vis-dir replace existing files.")
def bench_flow_cmd(
    flows,
    pairs,
    size,
    magnitudes,
    pairs_per_magnitude,
    scenes,
    repeats,
    video,
    bounds,
    jpeg_quality,
    threads,
    as_json,
    plot,
    vis_dir,
    seed,
    overwrite,
) -> None:
    """Accuracy (end-point error) and speed of flow backends on pairs with known flow."""
    from flowprep.flow.bench import BenchConfig, bench
    from flowprep.flow.bench_report import format_table
    from flowprep.flow.pairs import DEFAULT_VIDEO

    cfg = BenchConfig(
        list(flows) or None,
        size=size,
        magnitudes=magnitudes if pairs_per_magnitude else (),
        per_magnitude=pairs_per_magnitude,
        extra_pairs=[tuple(p) for p in pairs],
        video=video if video is not None else DEFAULT_VIDEO,
        bounds=bounds,
        jpeg_quality=jpeg_quality,
        threads=threads,
        plot=plot,
        vis_dir=vis_dir,
        seed=seed,
        scenes=scenes,
        repeats=repeats,
        overwrite=overwrite,
    )
    result = bench(cfg)
    if as_json:
        click.echo(json.dumps(json_safe(result.to_dict()), indent=2, default=_json_default, allow_nan=False))
    else:
        click.echo(format_table(result))


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


COMMANDS = [backends_cmd, bench_flow_cmd]
