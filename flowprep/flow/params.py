"""Flow-backend parameters as data: name, type, range or allowed values, default and meaning.

Each backend lists its parameters once, as :class:`Param` entries in its ``PARAMS`` (and any rule
between parameters in ``RULES``); :class:`~flowprep.flow.base.FlowBackend` checks every construction
against them (:func:`check`), so ``--flow-param``, a library caller's ``BuildConfig`` and the
parameters read back from a dataset record or a model's record all pass the same gate before OpenCV
or a driver sees a value. ``flowprep backends --params`` and the table in ``docs/flow.md``
(:func:`markdown_table`) are made from the same declarations.

The ranges are what the libraries survive, found by reading their sources and probing tiny frames
(docs/flow.md): outside them OpenCV crashes the process (DIS ``patch_size=0``: SIGFPE), returns NaN
(Farneback ``winsize=0``, TV-L1 ``theta=0``) or all-zero flow (``iterations=0``), or works for hours.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowprep.errors import ConfigError
from flowprep.limits import range_text

_KINDS = {int: "integer", float: "number", str: "string"}


class _SameAsDefault:
    """The :attr:`Param.absent` of a parameter a backend had from the start."""

    def __repr__(self) -> str:
        return "SAME_AS_DEFAULT"


#: see :attr:`Param.absent`
SAME_AS_DEFAULT: Any = _SameAsDefault()


@dataclass(frozen=True)
class Param:
    """One backend parameter.

    Attributes:
        name: the ``--flow-param`` name (and constructor keyword).
        kind: ``int``, ``float`` or ``str``; a ``float`` parameter also takes whole numbers.
        default: the value when not given; None means "set by another parameter" (e.g. DIS's preset),
            and None is then also accepted as a value.
        meaning: one line for ``flowprep backends --params`` and the docs.
        lo, hi: inclusive bounds (exclusive with ``lo_open``/``hi_open``); None: unbounded.
        choices: the allowed values, instead of a range.
        absent: for a parameter added after the backend was first released into records, the value
            that reproduces the flow from before it existed (a stage it turns on: "off"); a record
            without the parameter is recreated with it (:func:`with_absent`), not with
            ``default``, so inference computes the flow the model was trained on.
            :data:`SAME_AS_DEFAULT` (the default): the parameter was there from the start.
    """

    name: str
    kind: type
    default: Any
    meaning: str
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[Any, ...] | None = None
    absent: Any = SAME_AS_DEFAULT

    def allowed(self) -> str:
        """``"an integer in [1, 16]"``, ``"one of 'fast', 'medium'"``, ... for messages and tables."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) if isinstance(c, str) else f"{c:g}" for c in self.choices)
        else:
            article = "an" if self.kind is int else "a"
            bounds = (
                ""
                if self.lo is None and self.hi is None
                else " " + range_text(self.lo, self.hi, self.lo_open, self.hi_open)
            )
            text = f"{article} {_KINDS[self.kind]}{bounds}"
        return text + (" or null (the preset's value)" if self.default is None else "")

    def problem(self, value: Any) -> str | None:
        """None when ``value`` is allowed, else what is wrong with it (for :func:`check`)."""
        if value is None and self.default is None:
            return None
        if self.kind is str:
            ok = isinstance(value, str) and value in (self.choices or (value,))
        elif self.kind is int:
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and self._inside(int(value))
        else:
            ok = (
                isinstance(value, numbers.Real)
                and not isinstance(value, bool)
                and math.isfinite(float(value))
                and self._inside(float(value))
            )
        return None if ok else f"{self.name}={show(value)} is not allowed; {self.name} takes {self.allowed()}"

    def _inside(self, v: float) -> bool:
        if self.choices is not None:
            return v in self.choices
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))


@dataclass(frozen=True)
class Rule:
    """A constraint between parameters: ``check(params)`` returns what is wrong, or None.

    ``params`` holds every declared parameter (defaults filled in); ``text`` is the rule for tables.
    """

    text: str
    check: Callable[[dict[str, Any]], str | None]


def show(value: Any) -> str:
    """``repr(value)`` cut to 40 characters (an int of 10^5000 digits has no repr at all)."""
    try:
        text = repr(value)
    except ValueError:  # int too large to print (sys.set_int_max_str_digits)
        return f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= 40 else text[:37] + "..."


def check(backend: str, params: Sequence[Param], rules: Sequence[Rule], given: Any) -> dict[str, Any]:
    """Every parameter of ``backend``: the declared defaults updated with ``given``, checked.

    Raises:
        ConfigError: ``given`` is not a mapping of names, names an unknown parameter, holds a value
            of the wrong type or outside its range, or breaks a rule; one line naming the backend,
            the parameter, the value and what is allowed.
    """
    known = {p.name: p for p in params}
    check_names(backend, known, given)
    for name, value in given.items():
        problem = known[name].problem(value)
        if problem:
            raise ConfigError(f"flow backend {backend!r}: {problem}")
    full = {p.name: p.default for p in params} | dict(given)
    for rule in rules:
        problem = rule.check(full)
        if problem:
            raise ConfigError(f"flow backend {backend!r}: {problem}")
    return full


def with_absent(params: Sequence[Param], recorded: Mapping[str, Any]) -> dict[str, Any]:
    """``recorded`` (a dataset or model record's parameters) plus, for each declared parameter it
    lacks that has an :attr:`Param.absent` value, that value: the backend then computes the flow
    the record was made with, not the current defaults'. Not checked here (:func:`check` is)."""
    out = dict(recorded)
    for p in params:
        if p.name not in out and p.absent is not SAME_AS_DEFAULT:
            out[p.name] = p.absent
    return out


def check_names(backend: str, known: Iterable[str], given: Any) -> None:
    """:class:`ConfigError` unless ``given`` is a mapping whose keys are all in ``known``."""
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise ConfigError(
            f"flow backend {backend!r}: parameters must be a mapping of names to values, got {show(given)}"
        )
    names = set(known)
    unknown = sorted(set(given) - names)
    if unknown:
        what = "parameter" if len(unknown) == 1 else "parameters"
        raise ConfigError(
            f"flow backend {backend!r}: unknown {what} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(names)) or 'none'}"
        )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(backends: Sequence[tuple[str, Sequence[Param], Sequence[Rule]]]) -> str:
    """The parameter table of docs/flow.md: one row per parameter, rules under each backend."""
    lines = ["| backend | parameter | type | allowed | default | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    for name, params, rules in backends:
        for p in params:
            default = "preset's" if p.default is None else f"`{p.default!r}`"
            lines.append(
                f"| `{name}` | `{p.name}` | {_KINDS[p.kind]} | {_cell(p.allowed())} | {default} | {_cell(p.meaning)} |"
            )
        for rule in rules:
            lines.append(f"| `{name}` | (rule) | | {_cell(rule.text)} | | |")
    return "\n".join(lines) + "\n"


def text_table(name: str, params: Sequence[Param], rules: Sequence[Rule]) -> list[str]:
    """Lines for ``flowprep backends --params``: ``name  type  allowed  default  meaning`` per parameter."""
    if not params:
        return [f"{name}: no parameters"]
    width = max(len(p.name) for p in params)
    out = [f"{name}:"]
    for p in params:
        default = "preset's" if p.default is None else repr(p.default)
        out.append(f"  {p.name:<{width}}  {p.allowed()}; default {default}: {p.meaning}")
    out += [f"  rule: {r.text}" for r in rules]
    return out
