"""Typed reading of JSON-like data, field by field, for the record readers.

Each of flowprep's records (the dataset record, a checkpoint's metadata, the exported model record)
is read into a dataclass by one reader built on :class:`Fields`: every getter checks the type and
range of one field and, when it does not fit, raises :class:`FieldError` whose message names the
field by its dotted path (``clips[3].frames must be a whole number in [0, 1080000], got 'x'``).
The reader adds the file's name and raises its own :class:`~flowprep.errors.FlowprepError`, so the
user sees one line naming the file and the field. Nothing here raises anything else on any input:
the values come from ``json.loads`` or ``torch.load(weights_only=True)``, and both can hold any mix
of containers and scalars.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from flowprep.fsio.paths import printable

#: marks a field without a default: its absence is an error
REQUIRED: Any = object()
_ABSENT: Any = object()
#: the longest free-text field accepted (versions, backend and device names, messages)
MAX_TEXT = 4096
#: the most items accepted in a list whose length has no natural limit (clips, excluded names)
MAX_ITEMS = 10_000_000


class FieldError(ValueError):
    """One field that does not follow its schema; ``str()`` is ``"<field> must be <what>, got <value>"``
    (``"<field> is missing"`` when ``value`` is :data:`REQUIRED`, i.e. absent)."""

    def __init__(self, where: str, what: str, value: Any = REQUIRED) -> None:
        self.where = where or "the top level"
        if value is REQUIRED:
            super().__init__(f"{self.where} is missing" + ("" if what == "present" else f" (it must be {what})"))
        else:
            super().__init__(f"{self.where} must be {what}, got {shown(value)}")


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, undecodable bytes of a string as U+FFFD."""
    if isinstance(value, str):
        text = repr(printable(value))
    elif isinstance(value, (dict, list, tuple)) and len(value) > 16:
        text = f"<{type(value).__name__} of {len(value)} items>"  # its repr may be megabytes
    elif isinstance(value, (dict, list, tuple, int, float, bool)) or value is None:
        try:
            text = repr(value)
        except (RecursionError, ValueError):  # a deep container, or an int over 4300 digits
            text = f"<{type(value).__name__}>"
    else:
        text = f"<{type(value).__name__}>"  # a tensor or other object: its repr may be huge
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def want_int(v: Any, where: str, lo: int, hi: int) -> int:
    """``v`` if it is an int (not a bool) in ``[lo, hi]``."""
    if not (_is_int(v) and lo <= v <= hi):
        raise FieldError(where, f"a whole number in [{lo}, {hi}]", v)
    return int(v)


def want_number(v: Any, where: str, lo: float, hi: float, lo_open: bool = False) -> float:
    """``v`` as a float if it is a finite int or float (not a bool) in ``[lo, hi]`` (``(lo, hi]``)."""
    # math.isfinite() of an int over ~1e308 raises OverflowError: ints are finite, only floats are checked
    ok = (_is_int(v) or (isinstance(v, float) and math.isfinite(v))) and lo <= v <= hi and not (lo_open and v == lo)
    if not ok:
        raise FieldError(where, f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]", v)
    return float(v)


def want_str(v: Any, where: str, choices: Collection[str] | None = None, max_len: int = MAX_TEXT) -> str:
    """``v`` if it is a string of at most ``max_len`` characters (and one of ``choices``)."""
    if choices is not None:
        if not (isinstance(v, str) and v in choices):
            raise FieldError(where, f"one of {tuple(choices)}", v)
        return v
    if not (isinstance(v, str) and len(v) <= max_len):
        raise FieldError(where, f"a string of at most {max_len} characters", v)
    return v


def want_bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise FieldError(where, "true or false", v)
    return v


def want_list(v: Any, where: str, max_len: int = MAX_ITEMS) -> list[Any]:
    """``v`` if it is a list (a tuple is accepted: torch files may hold one) of at most ``max_len`` items."""
    if not (isinstance(v, (list, tuple)) and len(v) <= max_len):
        raise FieldError(where, f"a list of at most {max_len} items", v)
    return list(v)


def want_name(v: Any, where: str, problem: Callable[[Any], str | None]) -> str:
    """``v`` if ``problem(v)`` (e.g. :func:`~flowprep.layout.names.class_name_problem`) finds nothing."""
    why = problem(v) if isinstance(v, str) else f"not a string but {type(v).__name__}"
    if why is not None:
        raise FieldError(where, f"a usable name ({why})", v)
    return str(v)


def want_json(v: Any, where: str, depth: int = 32) -> Any:
    """``v`` if it is plain JSON data: dicts with string keys, lists, strings, whole or finite
    numbers, booleans and None, nested at most ``depth`` levels (a checkpoint may hold tensors or
    other objects where JSON is expected; they are refused, not carried into a JSON file)."""
    if v is None or isinstance(v, (str, bool)) or _is_int(v):
        return v
    if isinstance(v, float):
        if not math.isfinite(v):
            raise FieldError(where, "a finite number", v)
        return v
    if depth <= 0:
        raise FieldError(where, "JSON data nested at most 32 levels", v)
    if isinstance(v, (list, tuple)):
        return [want_json(x, f"{where}[{i}]", depth - 1) for i, x in enumerate(v)]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise FieldError(f"{where} keys", "strings", k)
            out[k] = want_json(x, f"{where}.{k}", depth - 1)
        return out
    raise FieldError(where, "JSON data (objects, lists, strings, numbers, true/false, null)", v)


class Fields:
    """One JSON object (a dict) read field by field; ``where`` is its dotted path ("" at the top).

    Every getter takes ``default``: the value when the key is absent (:data:`REQUIRED`: absence is
    an error); ``nullable=True`` lets an explicit ``null`` through as None.

    Raises:
        FieldError: ``value`` is not a dict (on creation), or a field does not fit (on reading).
    """

    def __init__(self, value: Any, where: str = "") -> None:
        if not isinstance(value, dict):
            raise FieldError(where, "an object", value)
        self.data: dict[Any, Any] = value
        self.where = where

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, default: Any, nullable: bool) -> tuple[bool, Any]:
        """``(done, value)``: done when the default or an allowed null is the answer."""
        if key not in self.data:
            if default is REQUIRED:
                raise FieldError(self.path(key), "present")
            return True, default
        value = self.data[key]
        if value is None and nullable:
            return True, None
        return False, value

    def whole(self, key: str, lo: int, hi: int, default: Any = REQUIRED, nullable: bool = False) -> Any:
        v = self.data.get(key, _ABSENT)
        if type(v) is int and lo <= v <= hi:  # the common case first: records hold 100,000s of these
            return v
        done, v = self._get(key, default, nullable)
        return v if done else want_int(v, self.path(key), lo, hi)

    def number(
        self, key: str, lo: float, hi: float, default: Any = REQUIRED, nullable: bool = False, lo_open: bool = False
    ) -> Any:
        done, v = self._get(key, default, nullable)
        return v if done else want_number(v, self.path(key), lo, hi, lo_open)

    def text(
        self,
        key: str,
        choices: Collection[str] | None = None,
        default: Any = REQUIRED,
        nullable: bool = False,
        max_len: int = MAX_TEXT,
    ) -> Any:
        v = self.data.get(key, _ABSENT)
        if type(v) is str and (v in choices if choices is not None else len(v) <= max_len):
            return v
        done, v = self._get(key, default, nullable)
        return v if done else want_str(v, self.path(key), choices, max_len)

    def flag(self, key: str, default: Any = REQUIRED) -> Any:
        done, v = self._get(key, default, False)
        return v if done else want_bool(v, self.path(key))

    def array(self, key: str, default: Any = REQUIRED, nullable: bool = False, max_len: int = MAX_ITEMS) -> Any:
        done, v = self._get(key, default, nullable)
        return v if done else want_list(v, self.path(key), max_len)

    def obj(self, key: str, default: Any = REQUIRED, nullable: bool = False) -> Any:
        """The nested object ``key`` as :class:`Fields` (or the default / None)."""
        done, v = self._get(key, default, nullable)
        return v if done else Fields(v, self.path(key))

    def json(self, key: str, default: Any = REQUIRED, nullable: bool = False) -> Any:
        """The value of ``key`` if it is plain JSON data (:func:`want_json`)."""
        done, v = self._get(key, default, nullable)
        return v if done else want_json(v, self.path(key))

    def name(self, key: str, problem: Callable[[Any], str | None], default: Any = REQUIRED) -> Any:
        done, v = self._get(key, default, False)
        return v if done else want_name(v, self.path(key), problem)
