"""The ``flowprep`` command line: parses options, calls a stage function, reports.

Every command is a thin click wrapper over a typed function in its stage's package. Errors of the
:class:`~flowprep.errors.FlowprepError` family become one line on stderr and exit status 1; usage
errors (click's) exit 2. Commands live in the :mod:`flowprep.commands` package, one module per
subject, each defining ``COMMANDS`` (a list of click commands); this module imports them by name
(:data:`COMMAND_MODULES`) and registers them. They import their heavy dependencies (torch,
onnxruntime, ...) only inside the command body.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
from concurrent.futures import BrokenExecutor

import click

from flowprep.commands import build, dataset, doctor, export, flow, preview, serve, train
from flowprep.errors import FlowprepError, Terminated, interrupt_status
from flowprep.fsio.paths import printable

#: the command modules, each defining ``COMMANDS``
COMMAND_MODULES = (flow, build, dataset, train, export, serve, preview, doctor)


_RESUME_HINTS = {
    "build": "; re-run the same command to resume (finished clips are kept)",
    "build-hmdb5": "; re-run the same command to resume (finished clips are kept)",
    "build-ucf101": "; re-run the same command to resume (finished clips are kept)",
    "train": "; run it again with --resume to continue from the last finished epoch",
}


#: errno values that say something about the machine or the paths given (permissions, a full or
#: read-only disk, a missing folder), not about flowprep's code
_USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.ENOSPC,
    errno.EROFS,
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EEXIST,
    errno.ENAMETOOLONG,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EMFILE,
    errno.ENOTEMPTY,
    errno.EXDEV,
    errno.ELOOP,
    errno.EIO,
}

#: errno values that are about the disk whatever the file
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def os_error_line(exc: OSError) -> str | None:
    """One line for an OS error about a named file (``/x/report.json: Read-only file system``), or
    None when the error names no file or is of a kind that points at a bug rather than the machine."""
    if exc.filename is None and exc.errno in _DISK_ERRNOS:
        # write() and close() on a full disk name no file; these errors never come from a bug
        return (
            f"{exc.strerror or os.strerror(exc.errno)} while writing the output (free some space or choose "
            "another folder)"
        )
    if exc.filename is None or exc.errno not in _USER_ERRNOS:
        return None
    name = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes)) else str(exc.filename)
    what = exc.strerror or os.strerror(exc.errno)
    if exc.filename2 is not None:
        name += f" -> {os.fsdecode(exc.filename2)}"
    hint = " (free some space or choose another folder)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{printable(name, escape=True)}: {what}{hint}"


def one_line(exc: FlowprepError) -> str:
    """The message of ``exc``. torch's DataLoader re-raises a worker's exception in the main process
    with the worker's traceback folded into the message ("Caught DatasetError in DataLoader worker
    process 0. Original Traceback ... DatasetError: cannot read frame ..."): keep the original line."""
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
    return last.removeprefix(prefix)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FlowprepError as exc:
            click.echo(f"flowprep: error: {printable(one_line(exc), escape=True)}", err=True)
            ctx.exit(1)
        except OSError as exc:
            line = os_error_line(exc)
            if line is None:
                raise  # not about a file the user named: a bug, keep the traceback
            click.echo(f"flowprep: error: {line}", err=True)
            ctx.exit(1)
        except BrokenExecutor as exc:
            # a worker process died under a pool (kill -9, the kernel's OOM killer, a crash in native
            # code): joblib/loky raise TerminatedWorkerError with ~50 lines of context. The build
            # names its clips itself (WorkerDiedError); any other pool (verify -j) ends up here.
            hint = _RESUME_HINTS.get(ctx.invoked_subcommand or "", "")
            first = printable(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, escape=True)
            click.echo(f"flowprep: error: a worker process died ({first}){hint}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt as exc:
            hint = _RESUME_HINTS.get(ctx.invoked_subcommand or "", "")
            click.echo(f"flowprep: interrupted{hint}", err=True)
            ctx.exit(interrupt_status(exc))


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from flowprep.versions import version_text

    click.echo(version_text())
    ctx.exit(0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version, and those of the libraries that decide output bytes (OpenCV, PyAV/FFmpeg, numpy, "
    "torch), and exit.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="No warnings in the log, only errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Action-recognition video releases to training-ready RGB + optical-flow datasets, and on to
    trained, exported and deployed models."""
    # default: warnings; -v: what each stage decides (e.g. why --flow auto skipped a backend); -vv: debug
    level = logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


for _mod in COMMAND_MODULES:
    for _cmd in _mod.COMMANDS:
        cli.add_command(_cmd)


#: seconds the main thread has to start handling Ctrl-C or SIGTERM before the process stops without it
STUCK_GRACE = 2.5


class _SignalWatch:
    """Ctrl-C and SIGTERM answered within seconds, even when the main thread is inside a long C call.

    Python runs signal handlers between bytecodes, so a signal that arrives during one long OpenCV,
    numpy or driver call waits for that call to return (minutes for a large frame). The C-level
    handler still writes the signal number to a wakeup socket at once (:func:`signal.set_wakeup_fd`);
    a watcher thread reads it, and when the Python handler has not run within :data:`STUCK_GRACE`
    seconds it prints the same line as a handled interrupt and ends the process (exit 130 for
    Ctrl-C, 143 for SIGTERM). The normal path is unchanged: the handler raises KeyboardInterrupt, which
    stops workers and removes temporary folders (the CLI prints ``flowprep: interrupted``). SIGTERM
    (kill, Slurm's time limit, Kubernetes) takes the same path as Ctrl-C, raising
    :class:`~flowprep.errors.Terminated` (a KeyboardInterrupt) so that it exits 143.
    """

    def __init__(self) -> None:
        self.handled = threading.Event()

    def install(self) -> None:
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._sockets = (reader, writer)  # kept alive with the process
        signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        # a forked child (torch's DataLoader workers) must not write its signals into our socket
        os.register_at_fork(after_in_child=_no_wakeup_fd)
        threading.Thread(target=self._watch, args=(reader,), name="flowprep-signals", daemon=True).start()

    def _on_signal(self, signum, frame) -> None:
        self.handled.set()
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    def _watch(self, reader: socket.socket) -> None:
        wanted = {signal.SIGINT, signal.SIGTERM}
        while True:
            data = reader.recv(64)
            if not data:
                return
            got = [sig for sig in data if sig in wanted]
            if not got:
                continue  # SIGCHLD and the like, when a library installed a Python handler for them
            if self.handled.wait(STUCK_GRACE):
                self.handled.clear()
                continue
            os.write(2, b"flowprep: interrupted (stopped inside a long computation)\n")
            os._exit(143 if signal.SIGTERM in got else 130)


def _no_wakeup_fd() -> None:
    with contextlib.suppress(ValueError):  # not the main thread of the child: nothing was inherited there
        signal.set_wakeup_fd(-1)


_WATCH: list[_SignalWatch] = []  # installed once per process (flowprep.demo calls main() for each step)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    if not _WATCH and threading.current_thread() is threading.main_thread():
        _WATCH.append(_SignalWatch())
        _WATCH[0].install()
    cli.main(args=argv, prog_name="flowprep")


if __name__ == "__main__":
    main()
