"""The ``flowprep`` command line: parses options, calls a stage function, reports.

Every command is a thin click wrapper over a typed function in its stage's package. Errors of the
:class:`~flowprep.errors.FlowprepError` family become one line on stderr and exit status 1; usage
errors (click's) exit 2. Commands live in the modules listed in :data:`COMMAND_MODULES`, each of
which defines ``COMMANDS`` (a list of click commands); they are imported when the CLI starts, and
import their heavy dependencies (torch, onnxruntime, ...) only inside the command body.
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys

import click

from flowprep import __version__
from flowprep.errors import FlowprepError

#: modules that define ``COMMANDS``
COMMAND_MODULES = [
    "flowprep.flow.commands",
    "flowprep.builder.commands",
    "flowprep.train.commands",
    "flowprep.export.commands",
    "flowprep.serve.commands",
    "flowprep.preview.commands",
    "flowprep.doctor.commands",
]


_RESUME_HINTS = {
    "build": "; re-run the same command to resume (finished clips are kept)",
    "build-hmdb5": "; re-run the same command to resume (finished clips are kept)",
    "train": "; run it again with --resume to continue from the last finished epoch",
}


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FlowprepError as exc:
            click.echo(f"flowprep: error: {exc}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            hint = _RESUME_HINTS.get(ctx.invoked_subcommand or "", "")
            click.echo(f"flowprep: interrupted{hint}", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="flowprep")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No warnings in the log, only errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Action-recognition video releases to training-ready RGB + optical-flow datasets, and on to
    trained, exported and deployed models."""
    # default: warnings; -v: what each stage decides (e.g. why --flow auto skipped a backend); -vv: debug
    level = logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


for _mod in COMMAND_MODULES:
    for _cmd in importlib.import_module(_mod).COMMANDS:
        cli.add_command(_cmd)


def _terminate(signum, frame) -> None:
    # SIGTERM (kill, Slurm's time limit, Kubernetes) takes the same path as Ctrl-C: worker processes
    # are stopped and temporary folders removed instead of orphaned workers racing a later resume.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    cli.main(args=argv, prog_name="flowprep")


if __name__ == "__main__":
    main()
