"""How reading an archive fails, in one line: every library's exception becomes :class:`ArchiveError`.

:func:`archive_errors` wraps each open, listing and read of :mod:`flowprep.archive.formats`: rarfile's,
zipfile's, tarfile's, gzip's, lzma's and the OS's exceptions become one-line messages naming the
archive and member and, where it helps, what to do (:data:`RAR_TOOL_HINT`). Compressed RAR members
are decompressed by an external tool that rarfile picks; when it fails the message names it.

Importing this module also fixes rarfile's command line for bsdtar (:class:`_ToolSetup`), without
which every compressed member read through bsdtar fails.
"""

from __future__ import annotations

import contextlib
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import rarfile

from flowprep.errors import ArchiveError

#: What to tell users whose RAR needs a decompressor that is not installed.
RAR_TOOL_HINT = (
    "install one of: `apt-get install unar` (or unrar, 7zip, libarchive-tools/bsdtar); "
    "rarfile tries unrar, unar, 7z, 7zz, bsdtar in turn"
)


class _ToolSetup(rarfile.ToolSetup):
    """rarfile's tool setup, but without the ``--`` it puts between bsdtar's ``-f`` and the archive.

    rarfile 4.5 builds ``bsdtar -x --to-stdout -f -- archive.rar``, so bsdtar takes ``--`` for the
    archive name and every compressed member fails. ``tool_setup()`` looks ``ToolSetup`` up in its
    module at call time, so replacing it there is enough.
    """

    def get_cmdline(self, key, pwd, nodash=False):
        if self.setup["open_cmd"][-1] == "-f":
            nodash = True
        return super().get_cmdline(key, pwd, nodash)


if rarfile.BSDTAR_CONFIG["open_cmd"][-1] == "-f" and rarfile.ToolSetup.__name__ == "ToolSetup":
    rarfile.ToolSetup = _ToolSetup


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its type's name when it has none)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _tool_name() -> str:
    """The binary rarfile runs, e.g. "unar" (its config names a module global such as ``UNAR_TOOL``)."""
    if rarfile.CURRENT_SETUP is None:
        return "the RAR tool"
    var = rarfile.CURRENT_SETUP.setup["open_cmd"][0]
    return str(getattr(rarfile, var, var))


@contextlib.contextmanager
def archive_errors(path: Path, member: str | None = None, via_tool: bool = False) -> Iterator[None]:
    """Turn the many ways reading an archive fails into one-line :class:`ArchiveError`.

    ``via_tool``: the member is being decompressed by an external RAR tool, so a short or bad read
    may be the tool's fault (bsdtar cannot read solid RARs) and the message says so.
    """
    where = f"{path}" + (f" [{member}]" if member else "")
    try:
        yield
    except ArchiveError:
        raise
    except rarfile.RarCannotExec as exc:
        raise ArchiveError(
            f"{where}: this RAR member is compressed and needs an external decompressor, "
            f"none works here ({one_line(exc)}): {RAR_TOOL_HINT}"
        ) from None
    except (rarfile.PasswordRequired, rarfile.RarWrongPassword) as exc:
        raise ArchiveError(f"{where}: archive is encrypted; decrypt it first ({one_line(exc)})") from None
    except rarfile.NoRarEntry:
        raise ArchiveError(f"{where}: no such member (did the archive change since it was listed?)") from None
    except rarfile.NeedFirstVolume as exc:
        raise ArchiveError(
            f"{where}: this is not the first volume of a multi-volume RAR; give the "
            f"first one (.part1.rar / .rar) ({one_line(exc)})"
        ) from None
    except (rarfile.RarExecError, rarfile.BadRarFile) as exc:
        if not via_tool and not isinstance(exc, rarfile.RarExecError):
            raise ArchiveError(f"{where}: archive is truncated or corrupt: {one_line(exc)}") from None
        tool = _tool_name()
        raise ArchiveError(
            f"{where}: the external RAR decompressor ({tool}) failed: {one_line(exc)}; "
            f"the archive is corrupt, or {tool} cannot decode it (bsdtar reads no solid "
            f"RARs): {RAR_TOOL_HINT}"
        ) from None
    except (
        rarfile.Error,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
    ) as exc:
        raise ArchiveError(f"{where}: archive is truncated or corrupt: {one_line(exc)}") from None
    except NotImplementedError as exc:  # zipfile: compression method it cannot decode
        raise ArchiveError(f"{where}: unsupported compression: {one_line(exc)}") from None
    except OSError as exc:  # includes gzip.BadGzipFile
        raise ArchiveError(f"{where}: cannot read: {one_line(exc)}") from None
