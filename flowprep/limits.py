"""Limits on numeric settings, shared by the CLI's parameter types and the config dataclasses, and
:func:`json_safe` for reports whose numbers may be missing (nan or inf).

Library callers get :class:`~flowprep.errors.ConfigError` from :func:`check_finite`; the CLI checks
the same limits earlier with :mod:`flowprep.commands.params` (a usage error, exit 2).
"""

from __future__ import annotations

import math
from typing import Any

from flowprep.errors import ConfigError

#: smallest frame side accepted for resizing: DIS needs 12 px, the other backends' pyramids want more
MIN_SIDE = 16
#: largest frame side accepted for resizing (8K); a typo such as 100000x100000 would ask for 30 GB a frame
MAX_SIDE = 8192
#: largest count accepted where a count has no natural limit (batches, frames, workers, ...)
MAX_COUNT = 1_000_000
#: largest random seed accepted (numpy's and DistributedSampler's seeds are 32-bit; torch's
#: per-epoch seed ``seed * 1_000_003 + ...`` then stays far inside its 64-bit range)
MAX_SEED = 2**32 - 1
#: largest byte count accepted for a size limit (1 TiB; 10**23 would overflow C's ssize_t in read())
MAX_BYTES = 1 << 40


def range_text(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    """``"in (0, 1)"``, ``">= 1"``, ... for messages."""
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return "(not nan or inf)"


def check_finite(
    name: str,
    value: object,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """``value`` as a float if it is finite and inside the range, else :class:`ConfigError` naming ``name``."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    bad = not math.isfinite(v)
    bad = bad or (lo is not None and (v <= lo if lo_open else v < lo))
    bad = bad or (hi is not None and (v >= hi if hi_open else v > hi))
    if bad:
        raise ConfigError(f"{name} must be a finite number {range_text(lo, hi, lo_open, hi_open)}, got {value!r}")
    return v


def check_count(name: str, value: object, lo: int = 1, hi: int = MAX_COUNT) -> int:
    """``value`` if it is an int in ``[lo, hi]``, else :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be a whole number in [{lo}, {hi}], got {value!r}")
    return value


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (a measurement that could not be made) as None, for
    reports that may legitimately lack a number; dump with ``allow_nan=False`` afterwards."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
