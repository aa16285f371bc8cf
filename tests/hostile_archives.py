"""Deliberately hostile archives, for the tests of the archive reader's safety rules (never for real data).

Each archive holds the ``good`` files given plus members a careless extractor would write outside
its target folder: ``../evil.txt``, ``/abs.txt``, ``walk/../../evil.avi``, and (tar, zip, RAR) a
symlink ``walk/link.avi`` -> ``/etc/passwd``; the tar also has a hardlink and a character device.
"""

from __future__ import annotations

import io
import stat
import tarfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

from flowprep.archive.rar4 import write_rar4

#: Member names no reader may use; every hostile archive holds all of them.
EVIL_NAMES = ("../evil.txt", "/abs.txt", "walk/../../evil.avi")
#: Link and device members (names are harmless, their kind is not).
LINK_NAMES = ("walk/link.avi",)
TAR_SPECIAL_NAMES = ("walk/hard.avi", "walk/dev.avi")


def write_malicious_archive(path: Path, kind: str, good: Mapping[str, bytes] | None = None) -> Path:
    """Write a ``kind`` ("zip", "tar" or "rar") archive with ``good`` files and the hostile members."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    good = dict(good or {})
    evil = {name: b"pwned\n" for name in EVIL_NAMES}
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in {**good, **evil}.items():
                # ZipFile.writestr keeps the name as given when passed a ZipInfo
                zf.writestr(zipfile.ZipInfo(name, (2011, 1, 1, 0, 0, 0)), data)
            link = zipfile.ZipInfo(LINK_NAMES[0], (2011, 1, 1, 0, 0, 0))
            link.create_system = 3
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(link, "/etc/passwd")
    elif kind == "tar":
        with tarfile.open(path, "w") as tf:
            for name, data in {**good, **evil}.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), time.mktime((2011, 1, 1, 0, 0, 0, 0, 0, -1))
                tf.addfile(info, io.BytesIO(data))
            for name, typ, target in (
                (LINK_NAMES[0], tarfile.SYMTYPE, "/etc/passwd"),
                (TAR_SPECIAL_NAMES[0], tarfile.LNKTYPE, "../evil.txt"),
                (TAR_SPECIAL_NAMES[1], tarfile.CHRTYPE, ""),
            ):
                info = tarfile.TarInfo(name)
                info.type, info.linkname = typ, target
                tf.addfile(info)
    elif kind == "rar":
        write_rar4(path, [*good.items(), *evil.items()], symlinks=[(LINK_NAMES[0], "/etc/passwd")])
    else:
        raise ValueError(f"kind must be zip, tar or rar, not {kind!r}")
    return path
