"""The doctor's framework: checks as data, a runner with time budgets, the table and the JSON report.

Each check is a small function ``(ctx) -> (detail, numbers)`` in :data:`flowprep.doctor.checks.CHECKS`.
It raises :class:`Skip` when it cannot run here (no driver, no GPU, package missing; the reason is
reported) and :class:`CheckFailed` (or any other exception) when it ran and the claim did not hold.
Checks share what they found (GPUs, the built dataset, the trained model) through :class:`DoctorContext`.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flowprep import __version__
from flowprep.errors import OutputError, writing
from flowprep.fsio.writing import write_text_atomic
from flowprep.limits import json_safe

#: the whole run stops starting new checks after this many seconds (target on one GPU: < 300 s)
TOTAL_BUDGET_S = 600.0
STATUSES = ("pass", "fail", "skipped")


class Skip(Exception):
    """The check cannot run here; the message says why."""


class CheckFailed(Exception):
    """The check ran and the claim did not hold; ``numbers`` are still reported."""

    def __init__(self, message: str, numbers: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.numbers = numbers or {}


@dataclass
class DoctorContext:
    """What checks found and left for later checks.

    Attributes:
        workdir: scratch folder (release, dataset, runs, deploy folders).
        quick: smaller inputs and fewer combinations (seconds instead of minutes).
        gpus: ``[{"index", "name", "compute"}]`` from the GPU check.
        nvof_grids: output grids of GPU 0's optical-flow engine, once known.
        dataset: the dataset the build check made.
        checkpoint: a model the training check made (2D RGB), for export/inference checks.
        deploy: an ONNX deploy folder made from ``checkpoint``.
    """

    workdir: Path
    quick: bool = False
    gpus: list[dict[str, Any]] = field(default_factory=list)
    nvof_grids: list[int] = field(default_factory=list)
    dataset: Path | None = None
    checkpoint: Path | None = None
    deploy: Path | None = None


CheckFn = Callable[[DoctorContext], "tuple[str, dict[str, Any]]"]


@dataclass(frozen=True)
class Check:
    """One claim: ``name``, the function that checks it, and its time budget in seconds."""

    name: str
    fn: CheckFn
    budget_s: float
    what: str


@dataclass
class CheckResult:
    """Outcome of one check: ``status`` is pass/fail/skipped; ``seconds`` wall time."""

    name: str
    status: str
    detail: str
    numbers: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    budget_s: float = 0.0

    @property
    def over_budget(self) -> bool:
        return self.seconds > self.budget_s > 0


@dataclass
class DoctorSummary:
    """All results of one run; :attr:`exit_code` is 1 when a check that could run failed."""

    results: list[CheckResult]
    seconds: float
    quick: bool

    @property
    def failed(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "flowprep-doctor",
            "flowprep": __version__,
            "host": platform.node(),
            "machine": platform.machine(),
            "quick": self.quick,
            "seconds": round(self.seconds, 2),
            "counts": {s: sum(r.status == s for r in self.results) for s in STATUSES},
            "results": [{**asdict(r), "over_budget": r.over_budget} for r in self.results],
        }


def run_check(check: Check, ctx: DoctorContext) -> CheckResult:
    """Run one check, turning :class:`Skip`, :class:`CheckFailed` and errors into a result."""
    t0 = time.perf_counter()
    status = "pass"
    numbers: dict[str, Any] = {}
    try:
        detail, numbers = check.fn(ctx)
    except Skip as exc:
        status, detail = "skipped", str(exc)
    except CheckFailed as exc:
        status, detail, numbers = "fail", str(exc), exc.numbers
    except Exception as exc:  # noqa: BLE001 - reported as this check's failure (the doctor's job), not swallowed
        status, detail = "fail", f"{type(exc).__name__}: {exc}"
    return CheckResult(check.name, status, detail, numbers, time.perf_counter() - t0, check.budget_s)


def fresh_run_dir(workdir: Path) -> Path:
    """A new, empty ``workdir/run-NNN``. Each run starts clean: in a reused folder the build check
    would resume the earlier run's dataset (building nothing, yet pass) and training would find
    earlier checkpoints; and nothing else in ``workdir`` is ever touched."""
    workdir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        run = workdir / f"run-{n:03d}"
        try:
            run.mkdir()
        except FileExistsError:
            continue
        return run
    raise OutputError(f"{workdir} already holds 9999 doctor runs; choose another --workdir")


def run_checks(
    checks: Sequence[Check],
    quick: bool = False,
    workdir: Path | None = None,
    total_budget_s: float = TOTAL_BUDGET_S,
    progress: Callable[[CheckResult], None] | None = None,
) -> DoctorSummary:
    """Run ``checks`` in order in a scratch folder (a new ``run-NNN`` folder in ``workdir``, kept;
    else a temporary one removed after).

    Checks left when ``total_budget_s`` is used up are reported as skipped.
    """
    t0 = time.perf_counter()
    scratch = fresh_run_dir(Path(workdir)) if workdir is not None else Path(tempfile.mkdtemp(prefix="flowprep-doctor-"))
    ctx = DoctorContext(scratch, quick)
    results = []
    try:
        for check in checks:
            if time.perf_counter() - t0 > total_budget_s:
                result = CheckResult(check.name, "skipped", f"the doctor's {total_budget_s:.0f} s budget is used up")
            else:
                result = run_check(check, ctx)
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        if workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    return DoctorSummary(results, time.perf_counter() - t0, quick)


def _short(numbers: dict[str, Any], width: int = 70) -> str:
    text = json.dumps(json_safe(numbers), separators=(",", ":"), allow_nan=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def format_row(r: CheckResult) -> str:
    """One table line: name, status, seconds, detail (and numbers, shortened)."""
    budget = " OVER BUDGET" if r.over_budget else ""
    line = f"{r.name:<16} {r.status:<8} {r.seconds:6.1f}s{budget}  {r.detail}"
    return line + (f"\n{'':<34}{_short(r.numbers)}" if r.numbers else "")


def format_table(summary: DoctorSummary) -> str:
    head = f"{'check':<16} {'status':<8} {'time':>7}  detail"
    counts = summary.to_json()["counts"]
    tail = f"{counts['pass']} passed, {counts['fail']} failed, {counts['skipped']} skipped in {summary.seconds:.1f} s"
    return "\n".join([head, *(format_row(r) for r in summary.results), tail])


def write_report(summary: DoctorSummary, path: Path) -> Path:
    """The JSON report (:meth:`DoctorSummary.to_json`) to ``path``."""
    path = Path(path)
    with writing(path):  # a full disk names no file
        path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(json_safe(summary.to_json()), indent=2, allow_nan=False) + "\n")
    return path
