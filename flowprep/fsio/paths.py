"""The one policy for path text: what a path given to flowprep, or a name joined to an output path,
may contain.

A path given by the user (an argument, an option, a library call's argument) is refused when it
holds bytes that are not UTF-8 or a control character: OpenCV passes paths to C++ as UTF-8
``std::string`` and crashes (SIGSEGV in ``cv2.imwrite``) on the surrogates Python uses for such bytes;
messages, JSON records and DeepStream/Triton configs cannot carry them either. A name that becomes
one path component (a class, a clip folder) must also be a plain name (:func:`name_problem`).
"""

from __future__ import annotations

import os
from pathlib import Path

from flowprep.errors import ConfigError

#: the longest file name common file systems accept (bytes of UTF-8)
MAX_NAME_BYTES = 255


def printable(text: str | os.PathLike[str], escape: bool = False) -> str:
    """``text`` safe to print and to store: undecodable bytes of a non-UTF-8 file name (which Python
    holds as surrogates, and which make a terminal's or JSON's encoder raise) as U+FFFD.

    ``escape=True`` shows them as ``\\xNN`` instead, and line breaks as ``\\n``: the CLI's one-line
    error message, where the exact bytes tell the user which file is meant.
    """
    text = os.fspath(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no byte decoded to
        raw = text.encode("utf-8", "backslashreplace")
    if not escape:
        return raw.decode("utf-8", "replace")
    return raw.decode("utf-8", "backslashreplace").replace("\n", "\\n")


def _control(text: str) -> bool:
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in text)


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be given to flowprep, or None if it can.

    Refused: empty, bytes that are not UTF-8 (Python holds them as lone surrogates), control
    characters (a newline would split a one-line message, a record line, a list file).
    """
    text = os.fspath(path)
    if not text:
        return "an empty path"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "bytes that are not UTF-8 (shown as \ufffd)"
    if _control(text):
        return "a control character"
    return None


def check_path(path: str | os.PathLike[str], what: str) -> Path:
    """``Path(path)`` if :func:`path_problem` finds nothing; else ConfigError naming ``what``.

    Raises:
        ConfigError: ``<what> <path>: the path holds ...; rename it or choose another``.
    """
    why = path_problem(path)
    if why is not None:
        raise ConfigError(
            f"{what} {printable(path)!r}: the path holds {why}; rename it or choose another "
            "(flowprep and OpenCV take UTF-8 paths only)"
        )
    return Path(path)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one path component, or None if it can.

    Refused: empty, only dots (``.``, ``..``, ``...`` collapse or climb on some systems), path
    separators, NUL and other control characters, text that is not valid Unicode (undecodable bytes
    of a non-UTF-8 file name) and names over 255 bytes. HMDB51's ``#``, ``(``, ``&``, ``!``, ``'``,
    inner and leading dots of other names are fine.
    """
    if not name:
        return "empty name"
    if set(name) == {"."}:
        return "a name made only of dots"
    if "/" in name or "\\" in name:
        return "a path separator in the name"
    if _control(name):
        return "a control character in the name"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if len(encoded) > MAX_NAME_BYTES:
        return f"a name longer than {MAX_NAME_BYTES} bytes"
    return None
