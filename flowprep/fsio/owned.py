"""What flowprep owns inside an output folder, and the one way it creates folders and deletes there.

An output folder (a dataset, a deploy folder, a preview page) may hold the user's own files beside
flowprep's. Each command lists what it wrote in an ownership manifest (:class:`Manifest`, one
format: ``{"entries": [relative names]}``) before writing it, and only ever replaces or removes
what that manifest lists. Every deletion goes through :func:`remove_inside` and every folder below an
output is made with :func:`make_dirs`: both refuse a symlink below the output folder (one would lead
the write or the deletion elsewhere), and deletion also needs the path to lie in an allowed entry.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from flowprep.errors import ConfigError, FlowprepError
from flowprep.fsio.paths import name_problem, printable
from flowprep.fsio.reading import read_json
from flowprep.fsio.writing import dump_json, write_text_atomic

#: the largest ownership manifest read (a preview lists a few thousand names at most)
MAX_MANIFEST_BYTES = 16 << 20


def _checked_parts(root: Path, rel: str | Path, doing: str) -> tuple[str, ...]:
    parts = Path(rel).parts
    if Path(rel).is_absolute() or not parts:
        raise ConfigError(f"refusing to {doing} {printable(rel)}: not a path inside {printable(root)}")
    for p in parts:
        if name_problem(p) is not None:
            raise ConfigError(
                f"refusing to {doing} {printable(root / rel)}: component {printable(p)!r} is not a plain name"
            )
    return parts


def _refuse_link(cur: Path, path: Path, doing: str) -> None:
    if cur.is_symlink():
        raise ConfigError(
            f"refusing to {doing} {printable(path)}: {printable(cur)} is a symlink (flowprep never follows "
            "one out of the output folder); remove or replace it yourself"
        )


def removable(root: Path, rel: str | Path, tops: Collection[str]) -> Path | None:
    """``root/rel`` if :func:`remove_inside` may delete it, None if it does not exist; checks only.

    Callers that delete several entries check them all first, so a refusal (a symlinked ``train/``)
    leaves the folder as it was instead of half removed.

    Raises:
        ConfigError: the path fails a check of :func:`remove_inside` (the one-line message names it).
    """
    root = Path(os.path.abspath(root))
    parts = _checked_parts(root, rel, "remove")
    path = root.joinpath(*parts)
    if parts[0] not in tops:
        raise ConfigError(f"refusing to remove {printable(path)}: not one of flowprep's entries in {printable(root)}")
    cur = root
    for p in parts:
        cur = cur / p
        _refuse_link(cur, path, "remove")
        if not os.path.lexists(cur):
            return None
    if root.resolve() not in path.resolve().parents:
        raise ConfigError(f"refusing to remove {printable(path)}: it resolves outside {printable(root.resolve())}")
    return path


def remove_inside(root: Path, rel: str | Path, tops: Collection[str]) -> bool:
    """Delete ``root/rel`` (a file or a whole folder) if it provably lies inside ``root/<top>``.

    ``rel`` must be plain names (no ``.``, ``..``, separators inside a name), its first one of
    ``tops``; no component below ``root`` may be a symlink (a symlinked ``train/`` would lead the
    deletion elsewhere), and the resolved path must still lie under the resolved ``root``. A missing
    path is fine (returns False; True when something was removed).

    Raises:
        ConfigError: the path fails a check (the one-line message names it); nothing was removed.
    """
    path = removable(root, rel, tops)
    if path is None:
        return False
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def make_dirs(root: Path, rel: str | Path) -> Path:
    """Create the folder ``root/rel`` (and its parents below ``root``), refusing any symlink below
    ``root`` on the way: a write into it would land outside the output folder. ``root`` itself may
    be a link (the user chose it). Returns the folder.

    Raises:
        ConfigError: a component is a symlink, not a plain name, or a file.
        OSError: the folder cannot be created (the caller reports it as an output error).
    """
    root = Path(root)
    parts = _checked_parts(root, rel, "write into")
    cur = root
    for p in parts:
        cur = cur / p
        _refuse_link(cur, root.joinpath(*parts), "write into")
        if os.path.lexists(cur) and not cur.is_dir():
            raise ConfigError(f"refusing to write into {printable(cur)}: it is a file, not a folder")
        cur.mkdir(exist_ok=True)
    return cur


def check_no_link(root: Path, rel: str | Path) -> Path:
    """``root/rel`` after checking that no existing component of it below ``root`` is a symlink
    (for a file about to be written there). Returns the path.

    Raises:
        ConfigError: a component is a symlink or not a plain name.
    """
    root = Path(root)
    parts = _checked_parts(root, rel, "write")
    cur = root
    for p in parts:
        cur = cur / p
        _refuse_link(cur, root.joinpath(*parts), "write")
    return cur


class Manifest:
    """The ownership manifest of an output folder: ``{"entries": [names relative to the folder]}``.

    Build (``.flowprep/owned.json``), export (``.flowprep-export.json``) and preview
    (``.flowprep-preview.json``) keep their file names, so folders made by earlier versions are still
    recognised; a preview manifest of before this format (key ``files``) is read too.

    Args:
        folder: the output folder.
        rel: the manifest's path relative to ``folder``.
        allowed: the names this command may ever write (or a test of a name); a listed name outside
            them is ignored (a tampered manifest cannot widen what flowprep replaces or removes).
        error: the exception class for a damaged manifest.
        fix: what the user should do about a damaged one (ends the message).
    """

    def __init__(
        self,
        folder: Path,
        rel: str,
        allowed: Collection[str] | Callable[[str], bool],
        error: type[FlowprepError] = ConfigError,
        fix: str = "",
    ) -> None:
        self.folder, self.path = Path(folder), Path(folder) / rel
        self.allowed = allowed if callable(allowed) else frozenset(allowed).__contains__
        self.error, self.fix = error, fix

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> set[str]:
        """The listed names that ``allowed`` holds; empty when there is no manifest.

        Raises:
            error: unreadable, not JSON, or not ``{"entries": [...]}`` (one line naming the file).
        """
        if not os.path.lexists(self.path):
            return set()
        what = "ownership manifest"
        try:
            d = read_json(self.path, what=what, max_bytes=MAX_MANIFEST_BYTES, owned=True, error=_Bad)
            entries = d.get("entries", d.get("files")) if isinstance(d, dict) else None
            if not isinstance(entries, list):
                raise _Bad(f'cannot read {what} {printable(self.path)}: not {{"entries": [names]}}')
        except _Bad as exc:
            fix = f"; {self.fix}" if self.fix else ""
            raise self.error(f"{exc} (damaged or edited by hand){fix}") from None
        return {n for n in entries if isinstance(n, str) and self.allowed(n)}

    def write(self, names: Iterable[str]) -> None:
        """List ``names`` (sorted), atomically. Raises OutputError when it cannot be written."""
        write_text_atomic(self.path, dump_json({"entries": sorted(set(names))}))


class _Bad(FlowprepError):
    """A damaged manifest; :meth:`Manifest.read` names the file and the fix."""
