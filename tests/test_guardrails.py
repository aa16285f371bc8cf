"""The import-layers contract (pyproject.toml, import-linter) holds, and fails when a lower layer
imports a higher one, also through a lazy import inside a function."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """Run the ``layers`` contract of ``tree``'s pyproject.toml on ``tree``'s flowprep package."""
    if not LINT_IMPORTS.exists():
        pytest.skip(f"import-linter is not installed ({LINT_IMPORTS} missing): pip install -e '.[dev]'")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--contract", "layers", "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A copy of the package and its pyproject.toml that a test may change."""
    shutil.copytree(ROOT / "flowprep", tmp_path / "flowprep", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_layers_contract_holds(tree):
    res = _lint_imports(tree)
    assert res.returncode == 0, res.stdout + res.stderr


def test_layers_contract_fails_when_a_lower_layer_imports_a_higher_one(tree):
    # a lazy import (inside a function) from the dataset layout up to the serve stage
    paths = tree / "flowprep" / "layout" / "paths.py"
    paths.write_text(
        paths.read_text(encoding="utf-8")
        + "\n\ndef _injected() -> None:\n    from flowprep.serve import runner  # noqa: F401\n",
        encoding="utf-8",
    )
    res = _lint_imports(tree)
    assert res.returncode != 0
    assert "flowprep.layout is not allowed to import flowprep.serve" in res.stdout, res.stdout
