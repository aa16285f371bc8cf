"""Flow backends as data: a spec per backend, imported lazily, selected by name or ``auto``.

Adding a backend means adding a :class:`BackendSpec` here and a module with the class; nothing
imports the module until the backend is asked for, so ``import flowprep`` never needs CUDA or VPI.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowprep.errors import BackendNotInstalledError, BackendUnavailableError, ConfigError
from flowprep.flow.base import FlowBackend, parameter_names
from flowprep.flow.params import Param, Rule, with_absent

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and how to get it.

    Attributes:
        name: the ``--flow`` name.
        module: dotted module path, imported on first use.
        cls: class name inside ``module`` (a :class:`FlowBackend` subclass).
        install_hint: what to install when the import fails.
        summary: one line for ``flowprep backends``.
        gpu: True when it needs an accelerator.
    """

    name: str
    module: str
    cls: str
    install_hint: str
    summary: str
    gpu: bool = False


BACKENDS: dict[str, BackendSpec] = {
    s.name: s
    for s in [
        BackendSpec(
            "nvof",
            "flowprep.flow.nvof",
            "NvofBackend",
            "an NVIDIA driver with libnvidia-opticalflow.so.1 (Turing or newer GPU) and "
            "`pip install 'flowprep[nvof]'` (cuda-bindings); "
            "in containers set NVIDIA_DRIVER_CAPABILITIES=compute,utility,video",
            "NVIDIA Optical Flow hardware engine (Turing/Ampere/Hopper/Ada: A100, H100, L4, RTX)",
            gpu=True,
        ),
        BackendSpec(
            "vpi",
            "flowprep.flow.vpi",
            "VpiBackend",
            "JetPack's apt package `python3-vpi3` on Orin, `python3-vpi2` on Xavier (never the unrelated PyPI `vpi`)",
            "NVIDIA VPI dense flow on Jetson (NVENC on Xavier, OFA on Orin)",
            gpu=True,
        ),
        BackendSpec(
            "tvl1",
            "flowprep.flow.opencv_cpu",
            "TVL1Backend",
            "`pip install opencv-contrib-python-headless` (cv2.optflow is in the contrib build)",
            "OpenCV Dual TV-L1 on the CPU, standard defaults (parity with published pipelines)",
        ),
        BackendSpec(
            "tvl1-fast",
            "flowprep.flow.opencv_cpu",
            "FastTVL1Backend",
            "`pip install opencv-contrib-python-headless`",
            "OpenCV TV-L1 preset tuned for speed: DIS initialisation + short TV-L1 refinement",
        ),
        BackendSpec(
            "dis",
            "flowprep.flow.opencv_cpu",
            "DISBackend",
            "`pip install opencv-contrib-python-headless`",
            "OpenCV DIS (dense inverse search) on the CPU: fast",
        ),
        BackendSpec(
            "dis-fine",
            "flowprep.flow.dis_fine",
            "FineDISBackend",
            "`pip install opencv-contrib-python-headless`",
            "OpenCV DIS + occlusion fill, searched preset: about tvl1-fast's accuracy at ~20x its speed (CPU)",
        ),
        BackendSpec(
            "farneback",
            "flowprep.flow.opencv_cpu",
            "FarnebackBackend",
            "`pip install opencv-contrib-python-headless`",
            "OpenCV Farneback polynomial expansion on the CPU",
        ),
    ]
}

#: ``--flow auto`` tries these in order and takes the first that can run.
AUTO_PRIORITY: tuple[str, ...] = ("nvof", "vpi", "tvl1")


def _spec(name: str) -> BackendSpec:
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(f"unknown flow backend {name!r}; known: {known}, or auto") from None


def load_backend_class(name: str) -> type[FlowBackend]:
    """Import the backend's module and return its class.

    Raises:
        BackendNotInstalledError: the module (or a library it imports) is missing.
        ConfigError: unknown name.
    """
    spec = _spec(name)
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise BackendNotInstalledError(
            f"flow backend {name!r} is not installed ({exc}); install {spec.install_hint}"
        ) from exc
    return getattr(module, spec.cls)


def backend_parameters(cls: type[FlowBackend]) -> list[str] | None:
    """The parameter names ``cls`` takes (:func:`flowprep.flow.base.parameter_names`)."""
    return parameter_names(cls)


def check_params(name: str, params: Any) -> dict[str, Any]:
    """Check ``params`` against backend ``name``'s declarations; every parameter, defaults filled in.

    The gate for parameters from anywhere (``--flow-param``, ``BuildConfig``, a dataset or model
    record read back); constructing a backend passes it too. Imports the backend's module (the
    declarations live on its class), not its optional libraries' devices.

    Raises:
        ConfigError: unknown backend, not a mapping, an unknown parameter, a value of the wrong type
            or outside its range, or a broken rule between parameters (one line naming the backend,
            parameter, value and what is allowed).
        BackendNotInstalledError: the backend's module cannot be imported here.
    """
    return load_backend_class(name).check_params(params)


def recorded_params(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Backend ``name``'s parameters as a record gives them, checked (:func:`check_params`), with
    every parameter the record predates at the value that reproduces its flow
    (:func:`flowprep.flow.params.with_absent`), the rest at their defaults.

    The one way to recreate a backend from a record (``flowprep infer``): a model trained on flow
    from an older release must see the same flow, not the current defaults'.

    Raises:
        ConfigError / BackendNotInstalledError: as :func:`check_params`.
    """
    return check_params(name, with_absent(declared_params(name)[0], params))


def declared_params(name: str) -> tuple[tuple[Param, ...], tuple[Rule, ...]]:
    """Backend ``name``'s declared parameters and rules (:mod:`flowprep.flow.params`).

    A backend without declarations gets its parameter names as untyped entries.
    """
    cls = load_backend_class(name)
    if cls.PARAMS is not None:
        return tuple(cls.PARAMS), tuple(cls.RULES)
    return tuple(Param(n, str, (cls.DEFAULTS or {}).get(n), "(undeclared)") for n in parameter_names(cls) or []), ()


def create_backend(name: str, **params: Any) -> FlowBackend:
    """Make a ready-to-run backend by name (``"auto"`` allowed) with the given parameters.

    Raises:
        BackendNotInstalledError / BackendUnavailableError: with the fix in the message.
        ConfigError: unknown name, or parameters :func:`check_params` refuses.
    """
    if name == "auto":
        name = resolve_auto()
    cls = load_backend_class(name)
    cls.check_params(params)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"flow backend {name!r}: {exc}") from exc


def probe(name: str) -> str:
    """Check that a backend can run here without building it fully; return its device description.

    See :meth:`flowprep.flow.base.FlowBackend.probe` (cheap device checks, or one default instance).
    """
    return load_backend_class(name).probe()


def backend_status(name: str) -> dict[str, Any]:
    """``{"name", "available", "why", "install_hint", "device", "summary"}`` for ``flowprep backends``."""
    spec = _spec(name)
    status: dict[str, Any] = {
        "name": name,
        "summary": spec.summary,
        "install_hint": spec.install_hint,
        "available": False,
        "why": "",
        "device": "",
    }
    try:
        status["device"] = probe(name)
        status["available"] = True
        status["why"] = "ok"
    except (BackendNotInstalledError, BackendUnavailableError) as exc:
        status["why"] = str(exc)
    return status


def resolve_auto(priority: tuple[str, ...] = AUTO_PRIORITY) -> str:
    """The first backend in ``priority`` that can run here; logs why each earlier one was skipped."""
    reasons = []
    for name in priority:
        try:
            probe(name)
        except (BackendNotInstalledError, BackendUnavailableError) as exc:
            log.info("flow auto: skipping %s: %s", name, exc)
            reasons.append(f"{name}: {exc}")
            continue
        log.info("flow auto: using %s", name)
        return name
    raise BackendUnavailableError("no flow backend can run here: " + "; ".join(reasons))


def flow_backends() -> dict[str, BackendSpec]:
    """Every flow backend this flowprep knows, by ``--flow`` name (whether it can run here or not:
    :func:`backend_status`). Nothing is imported."""
    return dict(BACKENDS)
