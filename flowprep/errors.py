"""One exception family. The CLI turns any :class:`FlowprepError` into a one-line message and exit 1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, Slurm's time limit, Kubernetes), raised where Ctrl-C raises KeyboardInterrupt:
    the same clean-up, then exit status 143 (128 + 15, what a shell reports for it) instead of 130."""


def interrupt_status(exc: BaseException) -> int:
    """The exit status for an interrupt: 143 for :class:`Terminated` (SIGTERM), else 130 (Ctrl-C)."""
    return 143 if isinstance(exc, Terminated) else 130


class FlowprepError(Exception):
    """A problem the user can fix (bad input, missing tool, wrong configuration).

    ``str(err)`` is the whole message shown to the user: one line, saying what is wrong and, where
    possible, how to fix it.
    """


class ConfigError(FlowprepError):
    """Options that contradict each other or the state of the output folder."""


class OptionError(ConfigError):
    """One option's value is not one it can take. ``option`` names it (``"--flow-param"``), or None
    when the message says which: the command line shows it as click shows a bad value (exit 2)."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class ArchiveError(FlowprepError):
    """An archive that is missing, not an archive, truncated, unsafe, or needs a missing tool."""


class DecodeError(FlowprepError):
    """A video that cannot be opened or decoded."""


class DatasetError(FlowprepError):
    """A dataset folder that is not a flowprep/TAO layout, or lacks what is asked of it."""


class ClipError(FlowprepError):
    """One clip cannot be built (too short for flow, ...): recorded as failed, the build goes on."""


class OutputError(FlowprepError):
    """The output cannot be written (disk full, permissions): the build stops."""


class FrameSizeError(FlowprepError, ValueError):
    """Frames too small for a flow backend. A ValueError too: the builder records the clip as failed."""


class FlowResultError(FlowprepError, ValueError):
    """A flow backend returned NaN or inf. A ValueError too: the builder records the clip as failed."""


class BackendUnavailableError(FlowprepError):
    """A flow backend whose software is installed but cannot run here (no device, no driver, ...)."""


class BackendNotInstalledError(FlowprepError):
    """A flow backend whose software is not installed. The message carries the install hint."""


class WorkerDiedError(FlowprepError):
    """A worker process died mid-build (killed, out of memory): the build stops; a rerun resumes it."""


class CheckpointError(FlowprepError):
    """A file that is not a flowprep checkpoint, or one that does not fit what is asked of it."""


class ExportError(FlowprepError):
    """An export that failed, or whose ONNX model does not reproduce the PyTorch model."""


@contextlib.contextmanager
def writing(path: Path) -> Iterator[Path]:
    """Run the body that writes ``path``; an OSError in it becomes :class:`OutputError` naming
    ``path`` (a full disk raises ENOSPC from ``write()``, which names no file, often deep inside
    matplotlib, PIL or torch)."""
    try:
        yield Path(path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
