"""The public API (flowprep/__init__.py): every name imports, the type stub lists the same names,
``import flowprep`` stays cheap, examples/ use nothing else, and docs/api.md's examples run."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import flowprep
from flowprep import errors

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = {"flowprep", "flowprep.loader"}  # what examples and docs may import from


def test_every_public_name_imports():
    for name in flowprep.__all__:
        assert getattr(flowprep, name) is not None, name
    assert set(flowprep.__all__) <= set(dir(flowprep))


def test_the_stub_lists_the_public_names():
    tree = ast.parse((ROOT / "flowprep" / "__init__.pyi").read_text())
    stubbed = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    stubbed |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    stubbed |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    private = {n for n in stubbed if n.startswith("_") and not n.endswith("__")}
    assert stubbed - private - {"__all__"} == set(flowprep.__all__)


def test_every_error_is_public():
    family = {n for n, v in vars(errors).items() if isinstance(v, type) and issubclass(v, errors.FlowprepError)}
    assert family <= set(flowprep.__all__)


def test_stage_functions_do_not_hide_the_stage_packages():
    import flowprep.export.api  # noqa: F401 - binds the subpackage as an attribute of flowprep
    import flowprep.preview.api  # noqa: F401
    import flowprep.train.config  # noqa: F401

    assert flowprep.export_model.__name__ == "export" and flowprep.preview_dataset.__name__ == "preview"
    assert not ({"train", "export", "preview"} & set(flowprep.__all__))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        flowprep.nope  # noqa: B018


def test_import_flowprep_is_cheap():
    code = "import sys, flowprep; print(sorted(m for m in ('cv2', 'av', 'torch', 'numpy') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert r.stdout.strip() == "[]"


def _flowprep_imports(path: Path) -> list[tuple[str, list[str]]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "flowprep":
            out.append((node.module or "", [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "flowprep"]
    return out


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_examples_use_only_the_public_api(script):
    for module, names in _flowprep_imports(ROOT / "examples" / script):
        assert module in PUBLIC_MODULES, f"{script} imports {module}"
        if module == "flowprep":
            assert set(names) <= set(flowprep.__all__), f"{script} imports {names}"


def _examples() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)
    assert len(blocks) >= 7, "docs/api.md lost examples"
    return "\n".join(blocks)


def test_docs_examples_import_only_the_public_api(tmp_path):
    (tmp_path / "api_examples.py").write_text(_examples())
    for module, _ in _flowprep_imports(tmp_path / "api_examples.py"):
        assert module in PUBLIC_MODULES, module


@pytest.mark.slow
def test_docs_examples_run(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    (tmp_path / "api_examples.py").write_text(_examples())
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "api_examples.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "deploy" / "model.onnx").is_file() and (
        tmp_path / "data" / "mine-preview" / "index.html"
    ).is_file()
    assert "is not a flowprep dataset" in r.stdout
