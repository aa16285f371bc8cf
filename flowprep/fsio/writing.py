"""Writing: every file appears whole or not at all, and no user file is replaced unasked.

Every file is written under a temporary sibling name unique to host, process and call, then renamed
into place (readers never see half a file; a crash leaves a ``.<name>.<host>-<pid>-<hex>.tmp`` that
:func:`is_tmp_of` recognises). A file the user names as an output passes :func:`check_new_file`
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
from typing import Any

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


@contextlib.contextmanager
def atomic_path(path: Path, keep_suffix: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` for a writer that takes a file name (OpenCV, torch,
    matplotlib); on success it is renamed to ``path``, on any failure removed.

    Raises:
        OutputError: an OSError while writing or renaming (a full disk), naming ``path``.
    """
    path = Path(path)
    tmp = unique_tmp(path, keep_suffix=keep_suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # on a read-only disk even this may fail
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            # a full disk reports ENOSPC on write(), which names no file: say which one
            raise OutputError(f"cannot write {printable(path)}: {exc.strerror or exc}") from exc
        raise


def write_bytes_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write ``data`` (bytes, or a buffer such as ``BytesIO.getbuffer()``: no copy) to ``path`` via a
    uniquely named sibling and a rename.

    Raises:
        OutputError: the file cannot be written (read-only or full disk, permissions, no folder).
    """
    with atomic_path(path, keep_suffix=False) as tmp:
        tmp.write_bytes(data)


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
    tmp = unique_tmp(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:  # ENOSPC from write() names no file
        raise OutputError(f"cannot write {printable(path)}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


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
