"""The flow-backend plugin API, all in one place: what a backend implements and how it is found.

A backend is a :class:`FlowBackend` subclass in any module, listed in
:data:`flowprep.flow.registry.BACKENDS` as a :class:`~flowprep.flow.registry.BackendSpec`
(``module``, ``cls``, a one-line ``summary``, the ``install_hint`` shown when its import fails). The
registry imports the module only when the backend is asked for, so a backend may import CUDA, VPI
or other optional software at the top of its module.

Lifecycle, as the registry and the stages drive it:

1. ``cls.probe()`` (:meth:`FlowBackend.probe`): can it run here? Used by ``flowprep backends`` and
   ``--flow auto`` to choose without building anything expensive.
2. ``cls(**params)``: the constructor takes the parameters as keyword arguments, all with defaults;
   :attr:`FlowBackend.DEFAULTS`, when set, names them (the registry rejects other names before calling
   the constructor; without it, the constructor's named parameters are the names).
3. :meth:`~FlowBackend.calc` per frame pair; :meth:`~FlowBackend.describe` (name, :meth:`~FlowBackend.params`,
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

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from flowprep.errors import FrameSizeError


class FlowBackend(ABC):
    """Computes dense optical flow between two gray frames (see the module docstring for the lifecycle).

    Subclasses set :attr:`name` and implement :meth:`calc`; the other methods have defaults.
    A backend instance is used by one process at a time; worker processes each make their own.
    """

    #: registry name, e.g. ``"tvl1"``
    name: str = ""
    #: parameter name -> default, when the constructor takes ``**params`` (None: its signature says)
    DEFAULTS: ClassVar[dict[str, Any] | None] = None

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
