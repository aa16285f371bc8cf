"""Reading: regular files only, non-blocking, bounded in size; JSON bounded in depth; zip containers
bounded in their decompression ratio. See :mod:`flowprep.fsio` for the policy (symlinks included).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from flowprep.errors import FlowprepError
from flowprep.fsio.paths import printable

#: the largest JSON file read by default (manifests, state files, model records are kilobytes; the
#: parsed value may take up to about 50 times the file in memory, for adversarial input)
MAX_JSON_BYTES = 16 << 20
#: the deepest nesting accepted in JSON; flowprep's own files nest at most 5 levels. Python's
#: parser recurses per level and raises RecursionError near 1000, so the limit is checked first.
MAX_JSON_DEPTH = 64
#: the largest image file read as a frame (an 8192x8192 RGB PNG stored uncompressed is 201 MB)
MAX_FRAME_BYTES = 512 << 20
#: a compressed member (archive or zip container) larger than RATIO_FLOOR bytes that is more than
#: MAX_RATIO times its compressed size is refused (a "zip bomb"); real video and tensors barely compress
MAX_RATIO = 100
RATIO_FLOOR = 16 << 20

_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


class Refused(Exception):
    """Why a file cannot be read, without its name (the public readers add it)."""


def _read(path: Path | str, max_bytes: int, owned: bool) -> bytes:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if owned else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if owned and exc.errno == errno.ELOOP:
            raise Refused("a symbolic link (flowprep writes none; not followed)") from None
        raise Refused(exc.strerror or str(exc)) from None
    chunks: list[bytes] = []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{_FILE_KINDS.get(stat.S_IFMT(st.st_mode), 'a special file')}, not a regular file")
        if st.st_size > max_bytes:
            raise Refused(f"{st.st_size} bytes, over the limit of {max_bytes}")
        left = max_bytes + 1
        while left > 0:  # a regular file may still grow, or lie about its size (/proc)
            chunk = os.read(fd, min(left, 16 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise Refused(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise Refused(f"more than {max_bytes} bytes (the limit)")
    return data


def check_regular(
    path: Path | str,
    *,
    what: str,
    max_bytes: int | None,
    error: type[FlowprepError] = FlowprepError,
) -> int:
    """The size of ``path`` once it is known to be a regular file of at most ``max_bytes`` bytes
    (None: any size, for a video streamed frame by frame),
    checked on a non-blocking open without reading it: for a file a library then opens by name
    (``torch.load``, ONNX Runtime, PyAV), which would block forever on a FIFO.

    Raises:
        error: missing, unreadable, not a regular file, or too big: ``cannot read <what> <path>: <why>``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise error(f"cannot read {what} {printable(path)}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "a special file")
        raise error(f"cannot read {what} {printable(path)}: {kind}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(f"cannot read {what} {printable(path)}: {st.st_size} bytes, over the limit of {max_bytes}")
    return st.st_size


def open_regular(
    path: Path | str,
    *,
    what: str,
    owned: bool = False,
    max_bytes: int | None = None,
    error: type[FlowprepError] = FlowprepError,
) -> int:
    """A read-only descriptor of the regular file ``path`` (the caller closes it), for files read in
    parts (tar shards with ``os.pread``) or handed to a library as an open file (``torch.load``), so
    that what is read is what was checked. Opened non-blocking and checked like :func:`read_bytes`;
    ``max_bytes`` (None: any size) bounds its size at opening.

    Raises:
        error: missing, unreadable, not a regular file, a symlink where ``owned``, or over ``max_bytes``.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if owned else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        why = "a symbolic link (flowprep writes none; not followed)" if owned and exc.errno == errno.ELOOP else None
        raise error(f"cannot read {what} {printable(path)}: {why or exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "a special file")
        raise error(f"cannot read {what} {printable(path)}: {kind}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        os.close(fd)
        raise error(f"cannot read {what} {printable(path)}: {st.st_size} bytes, over the limit of {max_bytes}")
    return fd


def open_file(
    path: Path | str,
    *,
    what: str,
    owned: bool = False,
    max_bytes: int | None = None,
    buffering: int = -1,
    error: type[FlowprepError] = FlowprepError,
) -> BinaryIO:
    """:func:`open_regular` as a binary file object (the caller closes it): for files streamed in
    chunks (hashing a shard) or handed to a library that reads a file object (``torch.load``).

    Raises:
        error: as :func:`open_regular`.
    """
    fd = open_regular(path, what=what, owned=owned, max_bytes=max_bytes, error=error)
    return os.fdopen(fd, "rb", buffering=buffering)


def read_head(
    path: Path | str,
    size: int,
    *,
    what: str,
    owned: bool = False,
    error: type[FlowprepError] = FlowprepError,
) -> bytes:
    """The first ``size`` bytes of the regular file ``path`` (fewer if it is shorter): magic numbers,
    a tar header. Opened and checked like :func:`open_regular`.

    Raises:
        error: missing, unreadable, not a regular file, or a symlink where ``owned``.
    """
    fd = open_regular(path, what=what, owned=owned, error=error)
    try:
        return os.pread(fd, size, 0)
    except OSError as exc:
        raise error(f"cannot read {what} {printable(path)}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def try_read_bytes(path: Path | str, max_bytes: int, owned: bool = False) -> tuple[bytes | None, str]:
    """``(content, "")`` as :func:`read_bytes` reads it, or ``(None, why)``: for callers that report
    each unreadable file and go on (``flowprep verify``, preview's frames, a source's clips)."""
    try:
        return _read(path, max_bytes, owned), ""
    except Refused as exc:
        return None, str(exc)


def read_bytes(
    path: Path | str,
    *,
    what: str,
    max_bytes: int,
    owned: bool = False,
    error: type[FlowprepError] = FlowprepError,
) -> bytes:
    """The whole content of the regular file ``path``, at most ``max_bytes`` bytes.

    Args:
        path: the file.
        what: what the file is, for messages ("dataset record", "frame", "model").
        max_bytes: the size limit for this kind of file.
        owned: the file lies inside a folder flowprep wrote: a symlink there is refused, not followed.
        error: the exception class raised.

    Raises:
        error: missing or unreadable, a FIFO, device, socket or folder, a symlink where ``owned``,
            or over ``max_bytes``: ``cannot read <what> <path>: <why>``.
    """
    try:
        return _read(path, max_bytes, owned)
    except Refused as exc:
        raise error(f"cannot read {what} {printable(path)}: {exc}") from None


def read_text(
    path: Path | str,
    *,
    what: str,
    max_bytes: int,
    owned: bool = False,
    error: type[FlowprepError] = FlowprepError,
) -> str:
    """:func:`read_bytes` decoded as UTF-8; text that is not UTF-8 raises ``error`` too."""
    data = read_bytes(path, what=what, max_bytes=max_bytes, owned=owned, error=error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what} {printable(path)}: not UTF-8 text (byte {exc.start})") from None


def json_depth_exceeds(value: Any, max_depth: int) -> bool:
    """Whether the parsed JSON ``value`` nests arrays/objects deeper than ``max_depth`` levels
    (``[]`` is one level). Iterative, so it cannot overflow the stack; stops at the first too deep."""
    stack = [(value, 1)] if isinstance(value, (list, dict)) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (list, dict)):
                stack.append((child, depth + 1))
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(
    text: str,
    *,
    where: str,
    max_depth: int = MAX_JSON_DEPTH,
    error: type[FlowprepError] = FlowprepError,
) -> Any:
    """``json.loads(text)`` for text from a file (``where`` names it: ``"training log x.jsonl line 3"``),
    refusing nesting deeper than ``max_depth`` and the non-JSON ``NaN``/``Infinity`` flowprep never writes.

    Raises:
        error: not JSON, or nested too deep: ``cannot read <where>: <why>``.
    """
    try:
        # CPython's parser counts its recursion (Py_EnterRecursiveCall): input nested deeper than
        # about 1000 levels raises RecursionError, cleanly, before anything else happens
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise error(f"cannot read {where}: nested deeper than {max_depth} levels (not a file flowprep wrote)") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a number over 4300 digits
        raise error(f"cannot read {where}: not valid JSON ({' '.join(str(exc).split())})") from None
    if json_depth_exceeds(value, max_depth):  # readers that walk the value recursively stay far from the limit
        raise error(f"cannot read {where}: nested deeper than {max_depth} levels (not a file flowprep wrote)")
    return value


def read_json(
    path: Path | str,
    *,
    what: str,
    max_bytes: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    owned: bool = False,
    error: type[FlowprepError] = FlowprepError,
) -> Any:
    """The JSON value in file ``path``, read through :func:`read_text` and :func:`parse_json`.

    Args:
        path: the file.
        what: what the file is, for messages ("dataset record", "export manifest").
        max_bytes: the size limit (default :data:`MAX_JSON_BYTES`).
        max_depth: the nesting limit (default :data:`MAX_JSON_DEPTH`).
        owned: the file lies inside a folder flowprep wrote (a symlink is refused, see the module doc).
        error: the exception class raised.

    Returns:
        Any JSON value (dict, list, str, int, float, bool or None): the caller checks its shape.

    Raises:
        error: unreadable, not a regular file, too big, not UTF-8, not JSON, or nested too deep.
    """
    text = read_text(path, what=what, max_bytes=max_bytes, owned=owned, error=error)
    return parse_json(text, where=f"{what} {printable(path)}", max_depth=max_depth, error=error)


def _zip_infos(fh: BinaryIO, name: str, error: type[FlowprepError]) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(fh) as zf:  # closing it leaves ``fh`` open
            return zf.infolist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise error(f"cannot read {name}: not a readable zip file ({' '.join(str(exc).split())})") from None


def check_zip_ratio(
    path: Path | str,
    *,
    what: str,
    max_bytes: int,
    max_ratio: int = MAX_RATIO,
    fh: BinaryIO | None = None,
    error: type[FlowprepError] = FlowprepError,
) -> int:
    """Check the zip container ``path`` (a ``torch.save`` file, ...) before anything inflates it;
    ``fh``: its file, already opened by :func:`open_regular` (checked, and left at its start), for a
    caller that then hands that very file to the reader.

    From the central directory: every member over :data:`RATIO_FLOOR` bytes is at most ``max_ratio``
    times its compressed size, a stored (uncompressed) member is no bigger than its stored bytes,
    and the members add up to at most ``max_bytes``. Readers such as PyTorch's allocate what the
    directory declares and stop there, so a directory that lies gives a damaged file, not a bomb.

    Returns:
        The total uncompressed size in bytes.

    Raises:
        error: not a readable zip file, or over a bound. One line naming ``what`` and ``path``.
    """
    name = f"{what} {printable(path)}"
    if fh is not None:
        infos = _zip_infos(fh, name, error)
        fh.seek(0)
    else:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block
        except OSError as exc:
            raise error(f"cannot read {name}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as own:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise error(f"cannot read {name}: not a regular file")
            infos = _zip_infos(own, name, error)
    total = 0
    for info in infos:
        size, packed = info.file_size, info.compress_size
        if info.compress_type == zipfile.ZIP_STORED and size > packed:
            raise error(f"{name}: member {info.filename!r} claims {size} bytes stored in {packed}; damaged")
        if size > RATIO_FLOOR and size > max_ratio * max(packed, 1):
            raise error(
                f"{name}: member {info.filename!r} inflates {packed} bytes to {size} "
                f"(ratio {size // max(packed, 1)}:1, the limit is {max_ratio}:1); refused"
            )
        total += size
        if total > max_bytes:
            raise error(f"{name} unpacks to more than {max_bytes} bytes (the limit); refused")
    return total
