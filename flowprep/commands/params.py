"""Click parameter types shared by every command: numbers, sizes, lists, shards, GPU lists, paths.

Every numeric option goes through one of these, so a bad value (``nan``, ``inf``, out of range,
``100000x100000``) is a usage error (exit 2, click's ``Invalid value for '--x'`` line) before any
work starts, and every command says the same thing for the same mistake. The config dataclasses
check the same limits again for library callers (raising :class:`~flowprep.errors.ConfigError`),
using :mod:`flowprep.limits`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import click

from flowprep.errors import ConfigError
from flowprep.flow.gpus import parse_gpus
from flowprep.fsio.paths import path_problem, printable
from flowprep.limits import MAX_BYTES, MAX_COUNT, MAX_SEED, MAX_SIDE, MIN_SIDE


class FiniteFloat(click.FloatRange):
    """A float range that also refuses ``nan`` and ``±inf`` (click's own range lets ``nan`` through:
    every comparison with it is false)."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        v = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(v, param, ctx)


def finite(
    lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False
) -> FiniteFloat:
    """A :class:`FiniteFloat` with the given (closed unless ``*_open``) bounds."""
    return FiniteFloat(min=lo, max=hi, min_open=lo_open, max_open=hi_open)


def positive(hi: float | None = None) -> FiniteFloat:
    """A finite float > 0 (and <= ``hi``)."""
    return finite(0, hi, lo_open=True)


def count(lo: int = 1, hi: int = MAX_COUNT) -> click.IntRange:
    """An int in ``[lo, hi]`` (``hi`` keeps a typo such as 100000 from allocating for an hour)."""
    return click.IntRange(lo, hi)


def seed() -> click.IntRange:
    """A random seed: an int in ``[0, MAX_SEED]`` (``-1`` or ``10**23`` would fail inside numpy or torch)."""
    return click.IntRange(0, MAX_SEED)


def byte_count(lo: int = 1, hi: int = MAX_BYTES) -> click.IntRange:
    """A size in bytes in ``[lo, hi]`` (``10**23`` would overflow C's ``ssize_t`` when reading)."""
    return click.IntRange(lo, hi)


class Size(click.ParamType):
    """``WxH`` (e.g. ``320x240``) to ``(w, h)``, each side in ``[MIN_SIDE, MAX_SIDE]`` pixels."""

    name = "WxH"

    def __init__(self, min_side: int = MIN_SIDE, max_side: int = MAX_SIDE) -> None:
        self.min_side, self.max_side = min_side, max_side

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            w, h = (int(x) for x in str(value).lower().split("x"))
        except ValueError:
            self.fail(f"expected WIDTHxHEIGHT, e.g. 320x240, got {value!r}", param, ctx)
        if min(w, h) < self.min_side or max(w, h) > self.max_side:
            self.fail(f"each side must be {self.min_side} to {self.max_side} pixels, got {w}x{h}", param, ctx)
        return w, h


class SafePath(click.Path):
    """``click.Path`` that also refuses a path flowprep cannot use (:func:`flowprep.fsio.paths.path_problem`:
    bytes that are not UTF-8, control characters) as a usage error, before OpenCV ever sees it
    (``cv2.imwrite`` crashed with SIGSEGV on a non-UTF-8 byte)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        why = path_problem(os.fsdecode(value)) if isinstance(value, (str, bytes, os.PathLike)) else None
        if why is not None:
            self.fail(
                f"{printable(os.fsdecode(value))!r}: the path holds {why}; rename it or choose another", param, ctx
            )
        return super().convert(value, param, ctx)


def split_list(text: str) -> list[str]:
    """Comma-separated items, stripped, empty items dropped (``"a, b,"`` -> ``["a", "b"]``)."""
    return [item.strip() for item in text.split(",") if item.strip()]


class CommaList(click.ParamType):
    """A comma-separated list; each item converted by ``item`` (a click type or a callable).

    ``a, b,`` gives ``[a, b]``; an empty string gives ``[]`` unless ``nonempty``.
    """

    name = "LIST"

    def __init__(self, item: click.ParamType | Callable[[str], Any] = str, nonempty: bool = False) -> None:
        self.item = item
        self.nonempty = nonempty

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        items = split_list(str(value))
        if self.nonempty and not items:
            self.fail(f"expected a comma-separated list, got {value!r}", param, ctx)
        if isinstance(self.item, click.ParamType):
            return [self.item.convert(x, param, ctx) for x in items]
        try:
            return [self.item(x) for x in items]
        except ValueError:
            self.fail(
                f"expected a comma-separated list of {getattr(self.item, '__name__', 'values')}, got {value!r}",
                param,
                ctx,
            )


class Shard(click.ParamType):
    """``K/N`` to ``(k, n)`` with ``1 <= K <= N``."""

    name = "K/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            k, n = (int(x) for x in str(value).split("/"))
        except ValueError:
            self.fail(f"expected K/N, e.g. 3/10, got {value!r}", param, ctx)
        if not 1 <= k <= n <= MAX_COUNT:
            self.fail(f"K/N needs 1 <= K <= N, got {value!r}", param, ctx)
        return k, n


class GpuList(click.ParamType):
    """``all`` or ``0,1,2,3`` to device ordinals (checked against the visible GPUs)."""

    name = "GPUS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, list):
            return value
        try:
            return parse_gpus(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


class ByteSize(click.ParamType):
    """A byte count: a whole number, optionally with a binary suffix K, M, G or T (``1G``, ``500M``)."""

    name = "size"
    _UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

    def __init__(self, lo: int = 1, hi: int = MAX_BYTES) -> None:
        self.lo, self.hi = lo, hi

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            n = value
        else:
            text = str(value).strip().upper().removesuffix("B").removesuffix("I")
            unit = text[-1:] if text[-1:] in self._UNITS and text[-1:] else ""
            digits = text[: len(text) - len(unit)]
            if not digits.isdigit():
                self.fail(f"{value!r} is not a size like 1G, 500M or 1000000.", param, ctx)
            n = int(digits) * self._UNITS[unit]
        if not self.lo <= n <= self.hi:
            self.fail(f"{value!r} is outside {self.lo}..{self.hi} bytes.", param, ctx)
        return n
