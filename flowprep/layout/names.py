"""Names that become path components: one validator for every class and clip name.

A class or clip name read from a source, a plan or a dataset record is joined to an output or
dataset path only after :func:`name_problem` found nothing wrong with it, so no name can climb out
of (``..``), collapse into (``.``, ``...``) or reach past (``/``, absolute) its folder.
"""

from __future__ import annotations

from flowprep.errors import ConfigError

#: the longest file name common file systems accept (bytes of UTF-8)
MAX_NAME_BYTES = 255


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one path component, or None if it can.

    Refused: not a string, empty, only dots (``.``, ``..``, ``...``), path separators, NUL and other
    control characters, undecodable bytes of a non-UTF-8 file name, names over 255 bytes.
    """
    if not isinstance(name, str):
        return f"not a string but {type(name).__name__}"
    if not name:
        return "empty name"
    if set(name) == {"."}:
        return "a name made only of dots"
    if "/" in name or "\\" in name:
        return "a path separator in the name"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "a control character in the name"
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        return "the name is not valid UTF-8"
    if len(encoded) > MAX_NAME_BYTES:
        return f"a name longer than {MAX_NAME_BYTES} bytes"
    return None


def validate_component(name: str, what: str, error: type[ConfigError] | type[Exception] = ConfigError) -> str:
    """``name`` if it is a safe path component, else ``error`` (a FlowprepError) naming ``what``
    (e.g. ``"class"``, ``"clip"`` or ``"flowprep.json: clip name"``)."""
    why = name_problem(name)
    if why is not None:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if isinstance(name, str) else name
        raise error(f"{what} {shown!r} cannot be a folder name ({why})")
    return name
