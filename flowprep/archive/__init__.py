"""Reading video releases safely (folders, RAR, zip, tar, HMDB51's RAR of RARs) and writing stored RAR 4.x.

See :mod:`flowprep.archive.reader` for the source shapes understood and the safety rules, and
:mod:`flowprep.archive.rar4` for the writer used by tests and the demo.
"""

from flowprep.archive.bounded import MemberRef, read_member
from flowprep.archive.failures import RAR_TOOL_HINT
from flowprep.archive.formats import detect_kind
from flowprep.archive.reader import VIDEO_EXTS, list_classes, list_videos, read_text_file, read_text_files
from flowprep.archive.scan import VideoEntry

__all__ = [
    "MemberRef",
    "VideoEntry",
    "VIDEO_EXTS",
    "RAR_TOOL_HINT",
    "detect_kind",
    "list_classes",
    "list_videos",
    "read_member",
    "read_text_file",
    "read_text_files",
]
