"""The gate is enforced: no module outside :mod:`flowprep.fsio` opens, writes, renames or deletes a
file by itself, except the calls :data:`ALLOWED` names with the reason each one may.

The scan is of the syntax tree (aliases such as ``import numpy as np`` or ``from os import replace``
are resolved), so a new ``Path.write_text``, ``os.replace`` or ``open(...)`` in the package fails
here until it goes through :mod:`flowprep.fsio` or is added to :data:`ALLOWED` with its reason.
Limits: calls through a variable holding a function (``f = os.remove; f(p)``), ``getattr`` and
folder creation (``mkdir``) are not looked for.
"""

from __future__ import annotations

import ast
from pathlib import Path

from flowprep import fsio

PACKAGE = Path(fsio.__file__).resolve().parents[1]

#: functions of modules (by their full dotted name) that open, write, rename or delete by file name
MODULE_CALLS = {
    "builtins.open",
    "io.open",
    *(f"os.{f}" for f in ("open", "fdopen", "replace", "rename", "renames", "remove", "unlink", "rmdir")),
    *(f"os.{f}" for f in ("removedirs", "link", "symlink", "truncate", "mkfifo")),
    *(f"shutil.{f}" for f in ("rmtree", "move", "copy", "copy2", "copyfile", "copytree")),
    *(f"tempfile.{f}" for f in ("mkstemp", "NamedTemporaryFile", "TemporaryFile")),
    "cv2.imwrite",
    "cv2.imread",
    "cv2.imreadmulti",
    "cv2.VideoWriter",
    "cv2.VideoCapture",
    *(f"numpy.{f}" for f in ("save", "savez", "savez_compressed", "savetxt", "load", "loadtxt", "fromfile")),
    *(f"numpy.{f}" for f in ("tofile", "memmap", "genfromtxt")),
    "torch.save",
    "torch.load",
    "av.open",
    "tarfile.open",
    "tarfile.TarFile",
    "zipfile.ZipFile",
    "rarfile.RarFile",
    "onnx.load",
    "onnx.save",
    "onnx.load_model",
    "onnx.save_model",
    "onnxruntime.InferenceSession",
}
#: methods that write, read, rename or delete the file of their object (``Path``, a figure)
METHODS = {
    "write_text",
    "write_bytes",
    "read_text",
    "read_bytes",
    "open",
    "unlink",
    "rmdir",
    "rename",
    "touch",
    "symlink_to",
    "hardlink_to",
    "savefig",
    "tofile",
}


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> full dotted name, from every import in the module (lazy ones included)."""
    names = {"open": "builtins.open"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    top = a.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.expr, names: dict[str, str]) -> str | None:
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, names)
        return f"{base}.{node.attr}" if base else None
    return None


def gate_calls(source: str) -> list[tuple[int, str]]:
    """``(line, call)`` of every file operation in ``source``: ``"os.replace"``, ``"open"`` (the
    builtin), or a method as ``".write_text"``. ``x.replace(y)`` (one argument, none by keyword) is
    ``Path.replace``; ``str.replace`` takes two."""
    tree = ast.parse(source)
    names = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        dotted = _dotted(func, names)
        if dotted in MODULE_CALLS:
            found.append((node.lineno, "open" if dotted == "builtins.open" else dotted))
        elif isinstance(func, ast.Attribute) and (dotted is None or dotted.split(".")[0] not in {"os", "shutil"}):
            one_arg = len(node.args) == 1 and not node.keywords
            if func.attr in METHODS or (func.attr == "replace" and one_arg):
                if not isinstance(func.value, ast.Constant):  # "a b".replace(...) is text
                    found.append((node.lineno, f".{func.attr}"))
    return sorted(found)


def scan_package(root: Path = PACKAGE) -> dict[str, list[int]]:
    """``"<module>: <call>"`` -> its lines, for every module of ``root`` outside ``fsio/``."""
    hits: dict[str, list[int]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("fsio/"):
            continue
        for line, call in gate_calls(path.read_text(encoding="utf-8")):
            hits.setdefault(f"{rel}: {call}", []).append(line)
    return hits


_CACHE = "the per-class archive cache: a member streamed (GBs) into a new mkstemp file (O_EXCL), size-checked"
_RELEASE = "the user's release archive, streamed member by member (rarfile runs unrar on the name) once "
_RELEASE += "detect_kind found a regular file; members are bounded by archive/bounded.py"
_SHARD = "a shard or staged tar written under a new unique_tmp name, opened O_EXCL ('xb'), renamed when whole"
_STAGED = "the file is written to atomic_path's temporary sibling (same suffix), renamed when whole"
_ANNOTATE = "the annotated video streams into a unique_tmp sibling over many calls; close() renames or removes it"
_PYAV_IN = "FFmpeg decodes a user's video (check_regular first), a camera device or a stream URL: by name only"
_ORT = "given the model's bytes from serve.runner.read_onnx (regular file, bounded), not a name to open"

#: every file operation outside the gate (``"<module under flowprep/>: <call>"``), and why it may be there
ALLOWED: dict[str, str] = {
    "archive/cache.py: tempfile.mkstemp": _CACHE,
    "archive/cache.py: os.fdopen": _CACHE,
    "archive/cache.py: .open": "a member of the release archive, opened by the archive reader (not a file)",
    "archive/cache.py: os.replace": _CACHE + ", then renamed into place",
    "archive/cache.py: .unlink": _CACHE + "; removed after a failure",
    "archive/formats.py: rarfile.RarFile": _RELEASE,
    "archive/formats.py: zipfile.ZipFile": _RELEASE,
    "archive/formats.py: tarfile.open": _RELEASE,
    "archive/formats.py: .open": "a member inside the open release archive (not a file)",
    "archive/rar4.py: .read_bytes": "fixture packer (demo, tests): the regular non-link files of a release synth wrote",
    "builder/folder.py: .rmdir": "the empty state/output folders a refused build made (rmdir fails on a non-empty one)",
    "builder/job.py: cv2.imwrite": "frames into the job's new uuid-named staging folder (mkdir, not exist_ok)",
    "builder/job.py: os.rename": "publishes a finished clip folder in one step (the design's commit; theirs stands)",
    "builder/pack.py: open": _SHARD,
    "builder/pack.py: os.replace": _SHARD,
    "builder/pack.py: .unlink": _SHARD + "; an aborted one is removed",
    "builder/packbuild.py: os.rmdir": "drops side/class folders that packing emptied (rmdir: never a non-empty one)",
    "builder/packbuild.py: .write_bytes": "unpacks a sample into a new uuid-named folder in .flowprep/tmp",
    "builder/packbuild.py: os.rename": "publishes that unpacked folder in one step (fails if the clip folder exists)",
    "builder/workers.py: os.open": "flock slot files in the temp folder: opened and locked, never written or truncated",
    "commands/doctor.py: .unlink": "removes the probe it just wrote under a unique_tmp name",
    "commands/serve.py: .unlink": "--json-out --overwrite: the old file, after check_new_file (a link is removed)",
    "commands/serve.py: open": "--json-out streams lines as they come: created O_EXCL ('x'), so no link is followed",
    "doctor/checks/deploy.py: onnxruntime.InferenceSession": _ORT,
    "doctor/framework.py: shutil.rmtree": "the mkdtemp folder this doctor run created",
    "export/api.py: os.replace": "the export's commit: stage files (make_dirs, check_no_link) into the locked folder, "
    "after its manifest lists them",
    "export/onnx_export.py: onnx.load": "reads back the model this export just wrote into its stage folder",
    "export/onnx_export.py: onnx.save": _STAGED,
    "export/onnx_export.py: onnxruntime.InferenceSession": "the parity check of the model just written to the stage",
    "flow/bench_report.py: .savefig": _STAGED,
    "flow/pairs.py: av.open": _PYAV_IN,
    "flow/scenes.py: av.open": _PYAV_IN,
    "flow/vpi.py: .read_text": "/proc/device-tree/model, the kernel's name of the Jetson board",
    "preview/media.py: av.open": _STAGED,
    "serve/annotate.py: av.open": _ANNOTATE,
    "serve/annotate.py: .unlink": _ANNOTATE,
    "serve/annotate.py: os.replace": _ANNOTATE,
    "serve/runner.py: onnxruntime.InferenceSession": _ORT,
    "serve/stream.py: av.open": _PYAV_IN,
    "synth.py: av.open": _STAGED,
    "train/checkpoint.py: torch.save": "serialises into memory (io.BytesIO); write_bytes_atomic writes the file",
    "train/evaluate.py: .savefig": _STAGED,
    "train/torchfile.py: torch.load": "reads the file object open_file checked (regular, size, zip ratio)",
    "video/decode.py: av.open": "decodes clip bytes read through the gate (a BytesIO), or a path its caller checked",
}


def test_every_file_operation_outside_the_gate_is_named_and_justified():
    hits = scan_package()
    unexplained = {k: v for k, v in hits.items() if k not in ALLOWED}
    assert unexplained == {}, "route these through flowprep.fsio, or add them to ALLOWED with the reason"
    stale = sorted(set(ALLOWED) - set(hits))
    assert stale == [], "these ALLOWED entries match nothing any more: remove them"
    bad = [k for k, why in ALLOWED.items() if not why.strip() or "\n" in why]
    assert bad == []


def test_the_scan_finds_a_planted_offender(tmp_path: Path):
    pkg = tmp_path / "pkg"
    (pkg / "fsio").mkdir(parents=True)
    (pkg / "fsio" / "writing.py").write_text("import os\nos.replace('a', 'b')\n")  # the gate itself: exempt
    (pkg / "stage.py").write_text(
        "import os\n"
        "import numpy as n\n"
        "from pathlib import Path\n"
        "from shutil import rmtree\n"
        "def f(x):\n"
        "    Path(x).write_text('a')\n"
        "    tmp = Path(x)\n"
        "    tmp.replace(x)\n"
        "    n.save(x, 1)\n"
        "    rmtree(x)\n"
        "    with open(x, 'rb') as fh:\n"
        "        fh.read()\n"
        "    os.unlink(x)\n"
        "    return 'a-b'.replace('-', '_'), x.replace('a', 'b'), n.asarray(x)\n"
    )
    assert scan_package(pkg) == {
        "stage.py: .write_text": [6],
        "stage.py: .replace": [8],
        "stage.py: numpy.save": [9],
        "stage.py: shutil.rmtree": [10],
        "stage.py: open": [11],
        "stage.py: os.unlink": [13],
    }
