"""Names that become path components: a class or clip name is checked before it is joined to an
output path (the rules are :func:`flowprep.fsio.name_problem`'s; deletion is
:func:`flowprep.fsio.remove_inside`'s).
"""

from __future__ import annotations

from flowprep.errors import ConfigError
from flowprep.fsio import name_problem, printable


def check_name(name: str, what: str) -> str:
    """``name`` if it is a safe path component; else ConfigError naming ``what`` (e.g. "class").

    Raises:
        ConfigError: see :func:`name_problem`.
    """
    why = name_problem(name)
    if why is not None:
        raise ConfigError(f"{what} {printable(name)!r} cannot be a folder name ({why}); rename it in the source")
    return name


def validate_component(name: str, what: str) -> str:
    """:func:`check_name` under the name the record checks and the tests use."""
    return check_name(name, what)
