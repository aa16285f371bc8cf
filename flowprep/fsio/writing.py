"""Writing: every file appears whole or not at all, and no user file is replaced unasked.

Every file is written under a temporary sibling name unique to host, process and call, created
exclusively (``O_EXCL``: never through a link), then renamed into place (readers never see half a
file; a crash leaves a ``.<name>.<host>-<pid>-<hex>.tmp`` that :func:`is_tmp_of` recognises): whole
from memory (:func:`write_bytes_atomic`), streamed in pieces (:class:`AtomicFile`), or by a library
that takes a file name (:func:`atomic_path`). A file the user names as an output passes :func:`check_new_file`
first: an existing one is replaced only with ``--overwrite``, the command's own input never, and a
folder, FIFO or device never.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from flowprep.errors import ConfigError, OutputError
from flowprep.fsio.paths import check_path, printable


def unique_tmp(path: Path, keep_suffix: bool = False) -> Path:
    """A sibling of ``path`` no other process on any host will pick (shards on several nodes often
    share process ids, so the pid alone is not enough). ``keep_suffix``: end with ``path``'s suffix
    too, for writers that choose the format by it (OpenCV's ``VideoWriter``, ``imwrite``)."""
    path = Path(path)
    tail = path.suffix if keep_suffix else ""
    return path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{tail}")


def is_tmp_of(candidate: str, name: str) -> bool:
    """Whether ``candidate`` is a name :func:`unique_tmp` gives a temporary sibling of ``name``
    (one that a process killed mid-write leaves behind)."""
    return re.fullmatch(re.escape(f".{name}.") + r".+-\d+-[0-9a-f]{8}\.tmp(\.[^.]*)?", candidate) is not None


def _create_tmp(path: Path, keep_suffix: bool) -> tuple[Path, int]:
    """Create a new :func:`unique_tmp` sibling of ``path``: ``(its name, an fd open for writing)``.
    ``O_EXCL`` fails on any name that exists, a symlink planted there included, so nothing is ever
    written through one.

    Raises:
        OutputError: it cannot be created (read-only or full disk, no folder), naming ``path``.
    """
    tmp = unique_tmp(path, keep_suffix=keep_suffix)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return tmp, os.open(tmp, flags, 0o666)
    except OSError as exc:
        raise _output_error(path, exc) from exc


def _output_error(path: Path, exc: OSError) -> OutputError:
    # a full disk reports ENOSPC on write(), which names no file: say which one
    return OutputError(f"cannot write {printable(path)}: {exc.strerror or exc}")


class AtomicFile:
    """A file written in pieces under a new temporary sibling of ``path``, then renamed onto ``path``
    (:meth:`commit`) or removed (:meth:`discard`): readers of ``path`` never see a part of it, and a
    failed write leaves the old file as it was.

    The sibling is created exclusively (``O_EXCL``: a name that exists, a symlink included, is never
    opened). Used as a context manager, a body that ends normally commits (unless it called
    :meth:`discard`: a write probe) and any exception, ``KeyboardInterrupt`` included, discards; an
    OSError leaving the body becomes an :class:`OutputError` naming ``path``. Writers that keep the
    file across calls (a shard, an encoder) call :meth:`commit`/:meth:`discard` themselves, and must
    discard on every failure path. Nothing is fsynced (as before: a rename is atomic for readers,
    not durable across a power cut).

    Args:
        path: the final file; its folder must exist.
        keep_suffix: the temporary name ends with ``path``'s suffix too (FFmpeg, OpenCV, matplotlib
            choose the format by it).
        by_name: for a writer that opens the file by name (:attr:`tmp`) rather than taking
            :attr:`file`: the descriptor is closed at once, and the writer reopens the file this
            call created (it does not create one where a link could be).

    Attributes:
        file: the temporary file, open for binary writing (closed if ``by_name``).
        tmp: its name.

    Raises:
        OutputError: the temporary cannot be created, or :meth:`commit` fails (a full disk on the
            last flush, a rename refused), naming ``path``.
    """

    def __init__(self, path: Path, *, keep_suffix: bool = False, by_name: bool = False) -> None:
        self.path = Path(path)
        self.tmp, fd = _create_tmp(self.path, keep_suffix)
        self._state = "open"
        try:
            self.file: BinaryIO = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self._remove()
            raise
        if by_name:
            self.file.close()

    def commit(self) -> None:
        """Close the file and rename it onto ``path`` (replacing a file there); on failure it is
        removed. Nothing happens if it was committed already."""
        if self._state == "committed":
            return
        if self._state == "discarded":
            raise RuntimeError(f"{printable(self.tmp)} was discarded; nothing to commit")
        try:
            self.file.close()  # the last flush: a full disk may show only here
            os.replace(self.tmp, self.path)
        except BaseException as exc:
            self.discard()
            if isinstance(exc, OSError):
                raise _output_error(self.path, exc) from exc
            raise
        self._state = "committed"

    def discard(self) -> None:
        """Close and remove the temporary file; ``path`` is left as it was. Nothing happens after
        :meth:`commit`, and it never raises (it runs while another error is being reported)."""
        if self._state != "open":
            return
        self._state = "discarded"
        with contextlib.suppress(OSError):  # on a full disk, close() cannot flush: the file goes anyway
            self.file.close()
        self._remove()

    def _remove(self) -> None:
        with contextlib.suppress(OSError):  # on a read-only disk even this may fail
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if kind is None:
            if self._state != "discarded":  # a body may discard (a probe), or commit early
                self.commit()
            return
        self.discard()
        if isinstance(exc, OSError):
            raise _output_error(self.path, exc) from exc


@contextlib.contextmanager
def atomic_path(path: Path, keep_suffix: bool = True) -> Iterator[Path]:
    """Yield the name of a new temporary sibling of ``path`` (an :class:`AtomicFile` ``by_name``)
    for a writer that takes a file name (OpenCV, torch, matplotlib, FFmpeg); on success it is
    renamed to ``path``, on any failure removed.

    Raises:
        OutputError: an OSError while creating, writing or renaming (a full disk), naming ``path``.
    """
    with AtomicFile(path, keep_suffix=keep_suffix, by_name=True) as out:
        yield out.tmp


def write_bytes_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` (bytes, or a buffer such as ``BytesIO.getbuffer()``: no copy) to ``path`` via a
    uniquely named sibling and a rename.

    Raises:
        OutputError: the file cannot be written (read-only or full disk, permissions, no folder).
    """
    with AtomicFile(path) as out:
        out.file.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`write_bytes_atomic` of ``text`` as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


def dump_json(obj: Any) -> str:
    """JSON as flowprep writes it: sorted keys, 2-space indent, UTF-8, trailing newline.

    ``nan``/``inf`` raise ValueError instead of becoming ``NaN``/``Infinity``, which are not JSON
    (the config dataclasses refuse non-finite numbers, so a record never holds one).
    """
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON (see :func:`dump_json`) atomically."""
    write_text_atomic(path, dump_json(obj))


def create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` with ``text`` unless it exists; True if this call created it.

    The content is written aside and hard-linked into place: ``link`` fails if the name exists, so of
    N processes racing exactly one wins, and nobody ever reads a partial file.

    Raises:
        OutputError: the file cannot be written (a full or read-only disk), naming ``path``.
    """
    path = Path(path)
    out = AtomicFile(path)
    try:
        out.file.write(text.encode("utf-8"))
        out.file.close()
        os.link(out.tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise _output_error(path, exc) from exc
    finally:
        out.discard()  # the temporary name; the link stays


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_new_file(
    path: Path | str, *, option: str, overwrite: bool = False, inputs: Iterable[Path | str | None] = ()
) -> Path:
    """Check a file the user named as an output (``--output``, ``--json-out``, ``--plot``, ...).

    Args:
        path: the output file.
        option: its option name, for messages.
        overwrite: the user passed ``--overwrite``: an existing regular file may be replaced.
        inputs: the files the command reads (never replaced, even with ``overwrite``); None or a
            non-file (a camera index, a URL) is skipped.

    Returns:
        ``Path(path)``, to be written with :func:`atomic_path` or :func:`write_bytes_atomic`.

    Raises:
        ConfigError: an unusable path (:func:`~flowprep.fsio.paths.check_path`), the command's own
            input, an existing file without ``overwrite``, or a folder, FIFO or device.
    """
    path = check_path(path, option)
    for inp in inputs:
        if inp is not None and _same_file(path, Path(inp)):
            raise ConfigError(
                f"{option} {printable(path)} is the command's own input; flowprep never writes over "
                "what it reads (not even with --overwrite): choose another file"
            )
    try:
        st = os.stat(path)  # through a link: what a write would reach
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise ConfigError(f"{option} {printable(path)}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{option} {printable(path)} exists and is not a regular file; choose a file name")
    if not overwrite:
        raise ConfigError(
            f"{option} {printable(path)} already exists; flowprep does not replace a file it did not "
            "write: choose another name, or pass --overwrite to replace it"
        )
    return path
