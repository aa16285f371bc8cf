"""The one gate between flowprep and the file system: every file it reads or writes passes here.

Reading
    Regular files only, opened non-blocking (a FIFO's ``open`` would wait forever for a writer) and
    checked with ``fstat`` on the open descriptor (a file swapped for a device after listing is
    caught too); at most a stated number of bytes per kind of file (``max_bytes``, checked on the
    size and again while reading, since ``/proc`` files and growing files lie about their size).
    JSON is also bounded in nesting depth (:func:`read_json`), and zip containers such as
    PyTorch's ``.pt`` files in their decompression ratio (:func:`check_zip_ratio`).

Symlinks (the one policy)
    A path the user names, and a file of an input flowprep did not write (a release, a model, an
    image folder), is read through symlinks: linking data in is ordinary, and whatever the link
    leads to must still be a regular file within the size limit. A file inside a folder flowprep
    wrote (a dataset's frames, its state and manifest files, ``owned=True`` here) is never read
    through a symlink, and nothing is ever written or deleted through one below an output folder:
    flowprep writes no symlinks, so one found there was put there by someone else and may lead out.

Every refusal is one line naming the file, raised as the ``error`` class the caller gives (a
:class:`~flowprep.errors.FlowprepError`), so each command reports it in its own terms.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

from flowprep.errors import FlowprepError

#: the largest JSON file read by default (manifests, state files, model records are kilobytes)
MAX_JSON_BYTES = 64 << 20
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


def shown(path: Path | str) -> str:
    """``path`` as text safe in a message or JSON (undecodable bytes as U+FFFD)."""
    text = os.fspath(path)
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that no byte decoded to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _strerror(exc: OSError) -> str:
    return exc.strerror or str(exc)


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
            or over ``max_bytes``. One line naming ``what`` and ``path``.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_NOFOLLOW if owned else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if owned and exc.errno == errno.ELOOP:
            raise error(f"{what} {shown(path)} is a symbolic link (flowprep writes none; not followed)") from None
        raise error(f"cannot read {what} {shown(path)}: {_strerror(exc)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise error(f"{what} {shown(path)} is {kind}, not a regular file; refused")
        if st.st_size > max_bytes:
            raise error(f"{what} {shown(path)}: {st.st_size} bytes, over the limit of {max_bytes}")
        chunks, left = [], max_bytes + 1
        while left > 0:  # a regular file may still grow, or lie about its size (/proc)
            chunk = os.read(fd, min(left, 16 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read {what} {shown(path)}: {_strerror(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{what} {shown(path)}: more than {max_bytes} bytes (the limit); refused")
    return data


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
        raise error(f"{what} {shown(path)} is not UTF-8 text (byte {exc.start})") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")


def json_depth_exceeds(text: str, max_depth: int) -> bool:
    """Whether JSON ``text`` nests arrays/objects deeper than ``max_depth`` levels.

    Linear time at C speed (no recursion): strings are blanked, everything but brackets dropped,
    then innermost ``[]``/``{}`` pairs are removed one level per pass, ``max_depth`` passes at most.
    Unbalanced text is left to the JSON parser to report (it fails at the mismatch, before going
    deeper than the brackets seen so far).
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False
    rest = _NOT_BRACKET.sub("", _JSON_STRING.sub('""', text))
    for _ in range(max_depth):
        if not rest:
            return False
        shorter = rest.replace("[]", "").replace("{}", "")
        if len(shorter) == len(rest):  # nothing matched: unbalanced, the parser says where
            return False
        rest = shorter
    # a pair still whole after max_depth passes holds max_depth levels: it is one level too deep
    # (what else is left is a mismatch, which the parser reports)
    return "[]" in rest or "{}" in rest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(
    text: str,
    *,
    where: str,
    max_depth: int = MAX_JSON_DEPTH,
    error: type[FlowprepError] = FlowprepError,
) -> Any:
    """``json.loads(text)`` for text from a file (``where`` names it in messages), refusing nesting
    deeper than ``max_depth`` and the non-JSON ``NaN``/``Infinity`` flowprep never writes.

    Raises:
        error: not JSON, or nested too deep. One line naming ``where``.
    """
    if json_depth_exceeds(text, max_depth):
        raise error(f"{where} nests deeper than {max_depth} levels; not a file flowprep wrote")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # unreachable after the depth check; kept so no parser path escapes
        raise error(f"{where} nests too deep; not a file flowprep wrote") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a number over 4300 digits
        raise error(f"{where} is not valid JSON: {' '.join(str(exc).split())}") from None


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
    return parse_json(text, where=f"{what} {shown(path)}", max_depth=max_depth, error=error)


def check_zip_ratio(
    path: Path | str,
    *,
    what: str,
    max_bytes: int,
    max_ratio: int = MAX_RATIO,
    error: type[FlowprepError] = FlowprepError,
) -> int:
    """Check the zip container ``path`` (a ``torch.save`` file, ...) before anything inflates it.

    From the central directory: every member over :data:`RATIO_FLOOR` bytes is at most ``max_ratio``
    times its compressed size, a stored (uncompressed) member is no bigger than its stored bytes,
    and the members add up to at most ``max_bytes``. Readers such as PyTorch's allocate what the
    directory declares and stop there, so a directory that lies gives a damaged file, not a bomb.

    Returns:
        The total uncompressed size in bytes.

    Raises:
        error: not a readable zip file, or over a bound. One line naming ``what`` and ``path``.
    """
    name = f"{what} {shown(path)}"
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise error(f"{name} is not a readable zip file: {' '.join(str(exc).split())}") from None
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
