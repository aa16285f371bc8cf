"""A minimal RAR 4.x writer (store method only), for tests, fixtures and the demo.

No RAR *writer* is installed on our machines (``rar`` is proprietary), yet HMDB51 ships as a RAR of
RARs. This module writes archives in the RAR 1.5–4.x format ("``Rar!\\x1a\\x07\\x00``") as described
in RARLAB's technote: marker block, archive header (``0x73``), one file header (``0x74``) per entry with
method ``0x30`` (store: the data follows the header unchanged), and the end-of-archive block
(``0x7B``). Every block starts with ``HEAD_CRC`` (low 16 bits of the CRC32 of the header from
``HEAD_TYPE`` on), ``HEAD_TYPE``, ``HEAD_FLAGS`` and ``HEAD_SIZE``.

Entries are written with ``HOST_OS`` = Unix and Unix permission bits, a fixed DOS timestamp (so the
bytes are reproducible), ``UNP_VER`` 20. Non-ASCII names use the unicode flag (``0x200``) with RAR's own
encoded-UTF-16 name after an ASCII fallback name, which is what WinRAR writes and what rarfile, unar,
unrar and bsdtar all decode. Files over 4 GiB, compression, encryption and volumes are not supported.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

from flowprep.fsio.writing import write_bytes_atomic

RAR4_MARKER = b"Rar!\x1a\x07\x00"

_HEAD_MAIN, _HEAD_FILE, _HEAD_END = 0x73, 0x74, 0x7B
_LONG_BLOCK = 0x8000  # a PACK_SIZE field follows the base header; always set for file headers
_SKIP_IF_UNKNOWN = 0x4000
_FILE_UNICODE = 0x0200
_FILE_DIRECTORY = 0x00E0  # all three dictionary-size bits set means "directory"
_FILE_DICT_64K = 0x0000
_HOST_UNIX = 3
_UNP_VER = 20  # RAR 2.0 is enough to extract a stored file
_METHOD_STORE = 0x30
_MODE_FILE, _MODE_DIR, _MODE_LINK = 0o100644, 0o040755, 0o120777

#: 2011-01-01 00:00:00 (the year HMDB51 came out), as a DOS date/time; any fixed value keeps bytes stable.
FIXED_DOS_TIME = ((2011 - 1980) << 25) | (1 << 21) | (1 << 16)


def _block(head_type: int, flags: int, body: bytes) -> bytes:
    """One header block: CRC16 over ``HEAD_TYPE..end``, then the bytes."""
    size = 7 + len(body)
    if size > 0xFFFF:
        raise ValueError(f"RAR header too long ({size} bytes); use shorter names")
    tail = struct.pack("<BHH", head_type, flags, size) + body
    return struct.pack("<H", zlib.crc32(tail) & 0xFFFF) + tail


def _encode_name(name: str) -> tuple[bytes, int]:
    """File name bytes and the extra header flags they need.

    ASCII names are written as they are. Otherwise: an ASCII stand-in, NUL, then RAR's compressed
    UTF-16 form: a "high byte" then groups of one flag byte (2 bits per char, high bits first) and the
    chars' bytes; we use mode 0 (one byte, high byte 0) for Latin-1 chars and mode 2 (low, high) for
    the rest of the Basic Multilingual Plane.
    """
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        pass
    if any(ord(c) > 0xFFFF for c in name):
        raise ValueError(f"RAR 4 names must be in the Basic Multilingual Plane: {name!r}")
    std = name.encode("ascii", "replace").replace(b"?", b"_")
    enc = bytearray([0])  # high byte for mode 1, which we do not use
    for start in range(0, len(name), 4):
        group = name[start : start + 4]
        flags, data = 0, bytearray()
        for k, ch in enumerate(group):
            code = ord(ch)
            mode = 0 if code < 0x100 else 2
            flags |= mode << (6 - 2 * k)
            data += bytes([code & 0xFF]) if mode == 0 else bytes([code & 0xFF, code >> 8])
        enc.append(flags)
        enc += data
    return std + b"\0" + bytes(enc), _FILE_UNICODE


def _file_block(name: str, data: bytes, mode: int, extra_flags: int = 0) -> bytes:
    """A file header (``0x74``) for a stored entry, followed by ``data``."""
    # RAR uses backslashes inside archives; readers map them back to "/".
    raw_name, name_flags = _encode_name(name.replace("/", "\\"))
    if len(data) > 0xFFFFFFFF:
        raise ValueError(f"{name}: files over 4 GiB are not supported by this writer")
    body = (
        struct.pack(
            "<LLBLLBBHL",
            len(data),
            len(data),
            _HOST_UNIX,
            zlib.crc32(data),
            FIXED_DOS_TIME,
            _UNP_VER,
            _METHOD_STORE,
            len(raw_name),
            mode,
        )
        + raw_name
    )
    return _block(_HEAD_FILE, _LONG_BLOCK | name_flags | extra_flags, body) + data


def _check_name(name: str) -> str:
    # Leading "/" and ".." are kept on purpose: the hostile archives of the tests need them.
    name = name.rstrip("/")
    if not name:
        raise ValueError("empty member name")
    return name


def rar4_bytes(
    files: Iterable[tuple[str, bytes]], dirs: Iterable[str] = (), symlinks: Iterable[tuple[str, str]] = ()
) -> bytes:
    """The bytes of a stored RAR 4.x archive: directory entries first, then files, then symlinks.

    ``symlinks`` (name, target) are Unix symlink entries (mode ``0o120777``, target as data); they
    exist to test that readers refuse them.
    """
    out = bytearray(RAR4_MARKER)
    out += _block(_HEAD_MAIN, 0, b"\0" * 6)  # RESERVED1 (2) + RESERVED2 (4)
    for d in dirs:
        out += _file_block(_check_name(d), b"", _MODE_DIR, _FILE_DIRECTORY)
    for name, data in files:
        out += _file_block(_check_name(name), bytes(data), _MODE_FILE, _FILE_DICT_64K)
    for name, target in symlinks:
        out += _file_block(_check_name(name), target.encode("utf-8"), _MODE_LINK, _FILE_DICT_64K)
    out += _block(_HEAD_END, _SKIP_IF_UNKNOWN, b"")
    return bytes(out)


def _write_atomic(path: Path, payload: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, payload)
    return path


def write_rar4(
    path: Path, files: Iterable[tuple[str, bytes]], dirs: Iterable[str] = (), symlinks: Iterable[tuple[str, str]] = ()
) -> Path:
    """Write a stored RAR 4.x archive of ``files`` (member name with "/" separators, bytes) to ``path``.

    ``dirs`` become directory entries. The whole archive is built in memory (fine for fixtures and
    per-class archives of ~100 MB) and written aside then renamed. Returns ``path``.
    """
    return _write_atomic(Path(path), rar4_bytes(files, dirs, symlinks))


def write_rar4_from_folder(path: Path, folder: Path, arc_prefix: str = "") -> Path:
    """Archive everything under ``folder`` (recursive, sorted, directory entries included).

    Member names are ``arc_prefix/relative/path``; with ``arc_prefix="walk"`` a folder holding
    ``a.avi`` gives member ``walk/a.avi`` and a directory entry ``walk``. Symlinks are not followed
    (they are skipped). Returns ``path``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(folder)
    prefix = arc_prefix.strip("/")
    dirs = [prefix] if prefix else []
    files: list[tuple[str, bytes]] = []
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            continue
        rel = p.relative_to(folder).as_posix()
        name = f"{prefix}/{rel}" if prefix else rel
        if p.is_dir():
            dirs.append(name)
        elif p.is_file():
            files.append((name, p.read_bytes()))
    return write_rar4(path, files, dirs)


def make_hmdb51_rars(release_folder: Path, out_dir: Path) -> tuple[Path, Path]:
    """Pack an unpacked HMDB51-shaped release the way HMDB51 is distributed.

    ``release_folder`` holds ``<class>/*.avi`` and ``testTrainMulti_7030_splits/*.txt`` (as written
    by :func:`flowprep.synth.make_release_folder`). Writes ``out_dir/hmdb51_org.rar`` (one stored
    ``<class>.rar`` per class, each holding ``<class>/<clip>.avi``) and ``out_dir/test_train_splits.rar``
    (``testTrainMulti_7030_splits/*.txt``). Bytes are deterministic. Returns ``(outer, splits)``.
    """
    release_folder, out_dir = Path(release_folder), Path(out_dir)
    splits_name = "testTrainMulti_7030_splits"
    class_dirs = sorted(
        p for p in release_folder.iterdir() if p.is_dir() and not p.is_symlink() and p.name != splits_name
    )
    if not class_dirs:
        raise FileNotFoundError(f"no class folders in {release_folder}")
    inner = []
    for cdir in class_dirs:
        clips = [
            (f"{cdir.name}/{p.name}", p.read_bytes())
            for p in sorted(cdir.iterdir())
            if p.is_file() and not p.is_symlink()
        ]
        inner.append((f"{cdir.name}.rar", rar4_bytes(clips, dirs=[cdir.name])))
    outer = write_rar4(out_dir / "hmdb51_org.rar", inner)
    split_dir = release_folder / splits_name
    split_files = (
        [(f"{splits_name}/{p.name}", p.read_bytes()) for p in sorted(split_dir.glob("*.txt"))]
        if split_dir.is_dir()
        else []
    )
    splits = write_rar4(out_dir / "test_train_splits.rar", split_files, dirs=[splits_name])
    return outer, splits
