"""The flow-backend plugin API, all in one place: what a backend implements and how it is found.

A backend is a :class:`FlowBackend` subclass in any module, listed in
:data:`flowprep.flow.registry.BACKENDS` as a :class:`~flowprep.flow.registry.BackendSpec`
(``module``, ``cls``, a one-line ``summary``, the ``install_hint`` shown when its import fails). The
registry imports the module only when the backend is asked for, so a backend may import CUDA, VPI
or other optional software at the top of its module.

Lifecycle, as the registry and the stages drive it:

1. ``cls.probe()`` (:meth:`FlowBackend.probe`): can it run here? Used by ``flowprep backends`` and
   ``--flow auto`` to choose without building anything expensive.
2. ``cls(**params)``: the constructor takes the parameters as keyword arguments, all with defaults,
   declared once in :attr:`FlowBackend.PARAMS` (:class:`~flowprep.flow.params.Param`: type, range or
   allowed values, default, meaning) and :attr:`FlowBackend.RULES` (constraints between them).
   Every construction is checked against them first (:meth:`FlowBackend.check_params`, called from
   ``__new__``), so no bad value reaches OpenCV or a driver whichever way the backend is made: the
   registry, ``--flow-param``, a dataset or model record read back, a direct ``cls(...)``. A backend
   without ``PARAMS`` gets only its parameter names checked (:attr:`FlowBackend.DEFAULTS`, else its
   constructor's named parameters).
3. :meth:`~FlowBackend.calc` per frame pair (every subclass's ``calc`` is wrapped so that a result
   holding NaN or inf raises :class:`~flowprep.errors.FlowResultError`, a failed clip, instead of
   being encoded as zero motion); :meth:`~FlowBackend.describe` (name, :meth:`~FlowBackend.params`,
   :meth:`~FlowBackend.device`) is written into the dataset record; ``type(b)(**b.params())`` must
   compute the same flow (build workers and ``flowprep infer`` re-create backends that way).
4. :meth:`~FlowBackend.close`.

Errors: the constructor and :meth:`~FlowBackend.probe` raise
:class:`~flowprep.errors.BackendUnavailableError` when the software is installed but cannot run here
(no GPU, no driver), with the fix in the message; an ``ImportError`` of a missing module is turned
into :class:`~flowprep.errors.BackendNotInstalledError` (with the install hint) by the registry;
bad parameter values raise :class:`~flowprep.errors.ConfigError`.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from flowprep.errors import FlowResultError, FrameSizeError
from flowprep.flow import params as _params
from flowprep.flow.params import Param, Rule


class FlowBackend(ABC):
    """Computes dense optical flow between two gray frames (see the module docstring for the lifecycle).

    Subclasses set :attr:`name` and implement :meth:`calc`; the other methods have defaults.
    A backend instance is used by one process at a time; worker processes each make their own.
    """

    #: registry name, e.g. ``"tvl1"``
    name: str = ""
    #: the parameters with type, range, default and meaning (None: undeclared, only names are checked)
    PARAMS: ClassVar[tuple[Param, ...] | None] = None
    #: constraints between parameters, checked after each value is
    RULES: ClassVar[tuple[Rule, ...]] = ()
    #: parameter name -> default; made from PARAMS when declared (None: the constructor's signature says)
    DEFAULTS: ClassVar[dict[str, Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "PARAMS" in cls.__dict__ and cls.PARAMS is not None:
            cls.DEFAULTS = {p.name: p.default for p in cls.PARAMS}
        calc = cls.__dict__.get("calc")
        if calc is not None and not getattr(calc, "__isabstractmethod__", False):
            cls.calc = _finite_result(calc)  # type: ignore[method-assign]

    def __new__(cls, *args: Any, **params: Any) -> FlowBackend:
        # the one place every construction passes (registry, build workers, infer, direct calls)
        if args:
            raise TypeError(f"{cls.__name__} takes its parameters as keyword arguments only")
        cls.check_params(params)
        return super().__new__(cls)

    @classmethod
    def check_params(cls, params: Any) -> dict[str, Any]:
        """Every parameter (defaults filled in) if ``params`` is allowed, else :class:`ConfigError`.

        The message names the backend, the parameter, the value and what is allowed. Backends
        without :attr:`PARAMS` get their names checked only (and the mapping returned as given).
        """
        if cls.PARAMS is not None:
            return _params.check(cls.name, cls.PARAMS, cls.RULES, params)
        known = parameter_names(cls)
        # a constructor taking **params without DEFAULTS checks the names itself
        _params.check_names(cls.name, known if known is not None else params, params)
        return dict(params)

    @classmethod
    def probe(cls) -> str:
        """Check that the backend can run here; return its device description (as :meth:`device`).

        Raises :class:`~flowprep.errors.BackendUnavailableError` (or ``ImportError``) with the fix.
        The default makes one instance with the default parameters; backends with an expensive
        constructor (GPU contexts) override it with cheap driver/device checks.
        """
        backend = cls()
        try:
            return backend.device()
        finally:
            backend.close()

    @abstractmethod
    def calc(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Flow from ``prev`` to ``nxt``.

        Args:
            prev: ``uint8`` array ``(H, W)``, gray levels 0..255.
            nxt: ``uint8`` array ``(H, W)``, same shape.

        Returns:
            ``float32`` array ``(H, W, 2)`` in pixels: ``[..., 0]`` is the horizontal (x, to the right)
            and ``[..., 1]`` the vertical (y, downwards) displacement such that
            ``prev[y, x] ~ nxt[y + fy, x + fx]``. Always at the full input resolution, even when the
            hardware computes on a coarser grid.
        """

    def params(self) -> dict[str, Any]:
        """The parameters that determine the output, JSON-serialisable, recorded with the dataset.

        Contract: ``type(self)(**self.params())`` makes a backend with the same output. Build workers
        and ``flowprep infer`` re-create backends from these recorded parameters.
        """
        return {}

    def device(self) -> str:
        """Where it runs, e.g. ``"cpu"``, ``"cuda:0 (NVIDIA A100-SXM4-40GB)"``."""
        return "cpu"

    def describe(self) -> dict[str, Any]:
        """Name, parameters and device, as written into the dataset record."""
        return {"name": self.name, "params": self.params(), "device": self.device()}

    def close(self) -> None:  # noqa: B027 -- an optional hook: nothing to release by default
        """Release device resources. Safe to call twice."""


def parameter_names(cls: type[FlowBackend]) -> list[str] | None:
    """The parameter names ``cls`` takes: its ``DEFAULTS`` keys, else its constructor's named parameters.

    None when neither says (a constructor taking only ``**params`` without ``DEFAULTS``): the
    constructor then checks its parameters itself.
    """
    if cls.DEFAULTS is not None:
        return sorted(cls.DEFAULTS)
    sig = inspect.signature(cls.__init__)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = [p.name for p in list(sig.parameters.values())[1:] if p.kind in kinds]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return sorted(named)


def _finite_result(calc):
    """``calc`` with its result checked: NaN or inf flow is an error, never silently encoded."""

    @functools.wraps(calc)
    def checked(self: FlowBackend, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        flow = calc(self, prev, nxt)
        check_finite_flow(flow, self.name)
        return flow

    return checked


def check_finite_flow(flow: np.ndarray, name: str = "") -> None:
    """Raise :class:`~flowprep.errors.FlowResultError` if ``flow`` holds NaN or inf.

    Args:
        flow: ``float32`` ``(H, W, 2)`` pixels, as :meth:`FlowBackend.calc` returns.
    """
    # one float64 sum is finite exactly when every float32 value is (a float32 sum could overflow)
    if np.isfinite(np.sum(flow, dtype=np.float64)):
        return
    bad = int(np.count_nonzero(~np.isfinite(flow)))
    h, w = flow.shape[:2]
    raise FlowResultError(
        f"flow backend {name or '?'} returned {bad} NaN/inf values of {flow.size} on a {w}x{h} pair "
        "(its parameters may be outside what it can compute; see `flowprep backends --params`)"
    )


def check_pair(prev: np.ndarray, nxt: np.ndarray, min_side: int = 1, name: str = "") -> None:
    """Raise ``ValueError`` unless ``prev``/``nxt`` are same-shape 2-D ``uint8`` arrays, and
    :class:`~flowprep.errors.FrameSizeError` (also a ValueError) if a side is under ``min_side``."""
    if prev.dtype != np.uint8 or nxt.dtype != np.uint8:
        raise ValueError(f"flow input must be uint8 gray frames, got {prev.dtype} and {nxt.dtype}")
    if prev.ndim != 2 or prev.shape != nxt.shape:
        raise ValueError(f"flow input must be two (H, W) frames of one shape, got {prev.shape} and {nxt.shape}")
    if min(prev.shape) < min_side:
        raise FrameSizeError(
            f"frames of {prev.shape[1]}x{prev.shape[0]} are too small for the {name or 'flow'} "
            f"backend (at least {min_side}x{min_side} pixels); use larger frames or "
            "another backend (farneback, tvl1)"
        )
