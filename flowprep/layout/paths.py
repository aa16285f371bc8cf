"""The folders a build keeps at the root of its output besides the dataset.

Where clips and frames go, and the names of list files and snippets, are the layout's
(:mod:`flowprep.layout.base`, one class per layout: :mod:`~flowprep.layout.tao`,
:mod:`~flowprep.layout.mmaction2`); records, lists and temporary files live at the root, never
among the frames.
"""

from __future__ import annotations

TMP_DIR = ".flowprep-tmp"  # clip jobs write here, then rename into place
STATE_DIR = ".flowprep"  # build config, failure notes, caches
